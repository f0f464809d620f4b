"""What experiment tracking costs: whole `vaekit train` processes with and without `--track tensorboard`, against the
code before tracking existed, interleaved, medians of N rounds.

Each process trains the pytorch/examples architecture (784-400-20 MLP, Bernoulli, batch 128) for 5 epochs on
statically binarized MNIST (50,000 images) with a validation pass each epoch, as in benchmarks/end_to_end.py:

    VAEKIT_DATA=../shared/data python benchmarks/tracking_overhead.py --before /path/to/old/checkout/src --rounds 3
    python benchmarks/tracking_overhead.py --demo --rounds 3     # the README's demo instead (digits, 100 epochs)

Variants: "before" (the checkout given by --before, on PYTHONPATH), "no log" (this checkout, train.log empty),
"tensorboard" (the default image schedule: every 30 s of training, and after the last epoch), "tensorboard, images
every epoch" (the worst case). Prints each
variant's wall times and its ratio to "no log" (1.00 = no cost).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EPOCHS = 5
HERE = Path(__file__).resolve().parents[1] / "src"
DEMO = ["train", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "digits.toml"), "--no-progress"]
BASE = ["train", "--data", "binarized-mnist", "--epochs", str(EPOCHS), "--set", "model.network.hidden=[400]",
        "--set", "model.latent_dim=20", "--set", "model.likelihood=bernoulli", "--set", "train.batch_size=128",
        "--no-progress"]


def timed(src: Path, extra: list[str], base: list[str]) -> float:
    """Wall seconds of one `vaekit train` process run from the source tree `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vaekit", *base, "--out", str(Path(tmp) / "run"), *extra], check=True,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="src/ folder of a checkout before train.log existed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="time the README's demo (digits) instead of MNIST")
    args = parser.parse_args()
    base = DEMO if args.demo else BASE
    variants = {"no log": (HERE, []), "tensorboard": (HERE, ["--track", "tensorboard"]),
                "tensorboard, images every epoch": (HERE, ["--track", "tensorboard",
                                                           "--set", "train.log_images_every=1"])}
    if args.before is not None:
        variants = {"before": (args.before, []), **variants}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (src, extra) in variants.items():
            times[name].append(timed(src, extra, base))
    reference = statistics.median(times["no log"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<32} median {median:6.2f} s  ({median / reference:.3f}x no log)   "
              f"runs {', '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    main()
