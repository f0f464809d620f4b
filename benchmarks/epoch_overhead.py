"""What an epoch of `vaekit train` spends besides the training pass: the validation loss (which a hand-written
loop computes too), the posterior diagnostics (KL per dimension, active units, mutual information), and the
metrics line with the checkpoint and the best weights.

The pytorch/examples model (784-400-20 MLP, Bernoulli likelihood, batch 128) on statically binarized MNIST (50,000
training and 10,000 validation images), trained by `vaekit.fit` into a run folder; each part is timed by a
wrapper around the function the loop calls, and the first epoch (warm-up) is left out of the medians:

    VAEKIT_DATA=../shared/data python benchmarks/epoch_overhead.py --epochs 6 --threads 2

Prints seconds per epoch for each part and its share of the training pass.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import torch

import vaekit
import vaekit.training.train as loop
from vaekit.training.writer import RunWriter

PARTS = {"training pass": (loop, "_train_epoch"), "validation loss": (loop, "average_terms"),
         "posterior diagnostics": (loop, "posterior_diagnostics"), "metrics and checkpoint": (RunWriter, "epoch")}


def timed(seconds: list[float], function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seconds: dict[str, list[float]] = {name: [] for name in PARTS}
    for name, (owner, attribute) in PARTS.items():
        setattr(owner, attribute, timed(seconds[name], getattr(owner, attribute)))
    config = vaekit.build_run_config(overrides=[
        "data.name=binarized-mnist", "model.network.hidden=[400]", "model.latent_dim=20",
        "model.likelihood=bernoulli", "train.batch_size=128", f"train.epochs={args.epochs}",
        f"train.threads={args.threads}", "train.progress=false"])
    with tempfile.TemporaryDirectory() as tmp:
        vaekit.fit(config, Path(tmp) / "run", figures=False)
    train = statistics.median(seconds["training pass"][1:])
    print(f"per epoch, median of epochs 2..{args.epochs} ({args.threads} threads):")
    for name, values in seconds.items():
        value = statistics.median(values[1:])
        share = "" if name == "training pass" else f"   {100 * value / train:5.1f}% of the training pass"
        print(f"  {name:<24} {value:7.3f} s{share}")
    extras = sum(statistics.median(seconds[name][1:]) for name in PARTS if name not in ("training pass",
                                                                                       "validation loss"))
    print(f"  beyond a plain loop (diagnostics, metrics, checkpoint): {extras:.3f} s = "
          f"{100 * extras / train:.1f}% of the training pass")


if __name__ == "__main__":
    main()
