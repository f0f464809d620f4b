"""How vaekit's time per epoch grows with data size, batch size, hidden size and latent size.

A small grid around one base setting (20,000 binarized MNIST images, batch 128, one hidden layer of 400, 20 latent
dimensions, the MLP VAE with a Bernoulli likelihood), one factor varied at a time. Every point trains one
untimed warm-up epoch and one timed epoch with vaekit's loop; the grid is run `--rounds` times, alternately
forwards and backwards (so that slow spells of the machine fall on different points), and the median is kept;
the base setting, shared by the four panels, is one point of the grid, measured once per round.
Writes one figure of four panels (seconds per epoch against each factor, log-log) and a JSON report.

    VAEKIT_DATA=../shared/data python benchmarks/epoch_scaling.py --threads 2 --rounds 2 \
        --figure docs/figures/epoch_scaling.png --out benchmarks/results/epoch_scaling.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from report_json import emit  # (benchmarks/report_json.py, beside this script)

import vaekit
from vaekit.data import DataBundle
from vaekit.training.train import _train_epoch, setup

BASE = {"examples": 20_000, "batch_size": 128, "hidden": 400, "latent_dim": 20}
GRID = {"examples": [5_000, 10_000, 20_000, 40_000], "batch_size": [32, 128, 512, 2048],
        "hidden": [100, 200, 400, 800, 1600], "latent_dim": [5, 20, 80, 320]}


def epoch_seconds(train: torch.Tensor, point: dict) -> float:
    """Seconds of one timed epoch (after a warm-up one) at `point`."""
    from tqdm import tqdm

    bundle = DataBundle.from_arrays(train[: point["examples"]], name="binarized-mnist", value_kind="binary")
    config = vaekit.build_run_config(None, [
        f"model.latent_dim={point['latent_dim']}", "model.network=mlp", f"model.network.hidden=[{point['hidden']}]",
        "model.likelihood=bernoulli", f"train.batch_size={point['batch_size']}", "train.progress=false",
        "train.epochs=2"])
    run = setup(config, data=bundle, validate=False)
    _, run.state["step"] = _train_epoch(run, 0, tqdm(disable=True))
    start = time.perf_counter()
    _train_epoch(run, 1, tqdm(disable=True))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--figure", help="write the four-panel figure here (PNG)")
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train = vaekit.load_data("binarized-mnist").split("train").x
    # Each distinct setting once (the base is shared by the four factors), as a sorted tuple of its values.
    points = list(dict.fromkeys(tuple(sorted({**BASE, factor: value}.items()))
                                for factor, values in GRID.items() for value in values))
    times: dict[tuple, list[float]] = {p: [] for p in points}
    for round_ in range(args.rounds):
        for point in points if round_ % 2 == 0 else reversed(points):
            seconds = epoch_seconds(train, dict(point))
            times[point].append(seconds)
            print(f"round {round_ + 1}: {dict(point)}: {seconds:.3f} s/epoch", flush=True)

    def median(factor: str, value: int) -> float:
        return round(statistics.median(times[tuple(sorted({**BASE, factor: value}.items()))]), 4)

    report = {"base": BASE, "threads": args.threads, "rounds": args.rounds, "torch": torch.__version__,
              "seconds_per_epoch": {factor: {str(v): median(factor, v) for v in values}
                                    for factor, values in GRID.items()}}
    emit(report, args.out)
    if args.figure:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), constrained_layout=True)
        labels = {"examples": "training examples", "batch_size": "batch size", "hidden": "hidden units",
                  "latent_dim": "latent dimensions"}
        for ax, (factor, values) in zip(axes, GRID.items()):
            seconds = [report["seconds_per_epoch"][factor][str(v)] for v in values]
            ax.loglog(values, seconds, "o-")
            ax.axvline(BASE[factor], color="grey", lw=0.8, ls="--")
            ax.set_xticks(values, [f"{v:,}" for v in values], minor=False)
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
            ax.set_xlabel(labels[factor])
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("seconds per epoch")
        fig.suptitle(f"vaekit time per epoch ({args.threads} CPU threads; base: {BASE['examples']:,} examples, "
                     f"batch {BASE['batch_size']}, hidden {BASE['hidden']}, latent {BASE['latent_dim']})")
        fig.savefig(args.figure, dpi=110)


if __name__ == "__main__":
    main()
