"""Test log-likelihood on statically binarized MNIST (the standard VAE benchmark, in nats).

Trains `configs/binarized_mnist.toml` (train 50k, early stopping on valid 10k, a 29-minute budget on 2 CPU threads),
then estimates the test NLL with the IWAE bound, k = 5000 importance samples (Burda et al. 2016), and reports
the wall times and the peak resident memory of the training process.

    VAEKIT_DATA=../shared/data python benchmarks/mnist_nll.py --out runs/bmnist
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

import vaekit
from vaekit.training.train import load_bundle

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/binarized-mnist", help="run folder (must not exist yet)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "binarized_mnist.toml"))
    parser.add_argument("--iw-samples", type=int, default=5000)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config overrides")
    parser.add_argument("--skip-train", action="store_true", help="only evaluate an existing run")
    args = parser.parse_args()

    train_seconds = None
    if not args.skip_train:
        # Train in a child process so that its peak memory is measured on its own.
        command = [sys.executable, "-m", "vaekit.cli", "train", "--config", args.config, "--out", args.out,
                   "--no-progress"] + [f"--set={o}" for o in args.overrides]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        train_seconds = time.perf_counter() - started
        child_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    run = vaekit.load_run(args.out)
    torch.set_num_threads(run.config.train.threads or 2)
    test = load_bundle(run.config).split("test")
    started = time.perf_counter()
    result = vaekit.evaluate(run.model, test.x, iw_samples=args.iw_samples, batch_size=50, progress=True)
    eval_seconds = time.perf_counter() - started
    history = [json.loads(line) for line in (Path(args.out) / "metrics.jsonl").read_text().splitlines()]
    best = min(history, key=lambda r: r["valid_loss"])
    report = {
        "test": result.to_dict(),
        "epochs_trained": len(history),
        "best_epoch": best["epoch"],
        "best_valid_neg_elbo": best["valid_loss"],
        "train_wall_s": None if train_seconds is None else round(train_seconds),
        "eval_wall_s": round(eval_seconds),
        "train_peak_rss_mb": None if args.skip_train else round(child_peak_mb),
    }
    (Path(args.out) / "benchmark.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "test"}, indent=2))
    print(f"test NLL (IWAE, k={args.iw_samples}): {result.nll:.2f} nats; negative ELBO {result.neg_elbo:.2f}; "
          f"active units {result.active_units}/{result.latent_dim}")


if __name__ == "__main__":
    main()
