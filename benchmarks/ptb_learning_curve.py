"""Benchmark: how much training the sentence VAE on Penn Treebank needs, from runs of configs/ptb.toml that differ
only in their length (the cosine schedule spans each run's own epochs).

    for e in 2 4 8 14; do
      VAEKIT_DATA=../shared/data vaekit train --config configs/ptb.toml --epochs $e --set train.time_limit=125 \\
          --out runs/ptb-e$e
    done
    python benchmarks/ptb_learning_curve.py runs/ptb-e2 runs/ptb-e4 runs/ptb-e8 runs/ptb-e14 \\
        --test-nll runs/ptb-e14=eval.json --target 101

Per run (its metrics.jsonl): the budget (epochs, minutes of training), the best validation -ELBO and its KL. The
budget curve fitted to the runs' best validation -ELBO is the usual power law with a floor,
    L(E) = L_inf + b * E^(-c)      (E: epochs of the run's schedule),
and it is solved for the budget at which the validation -ELBO would reach the target's level. The target is a
test NLL, so it is moved to the validation -ELBO's scale by the gap measured on the longest run (its validation
-ELBO minus its test NLL from `vaekit eval --split test`, an importance-sampled bound). The curve is a fit to a
handful of points: its extrapolation is a rough budget, and the JSON keeps the points and the fitted values.
Writes --json and --figure (validation -ELBO per epoch of every run, and the fitted curve over the runs' lengths).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def run_points(run: Path) -> dict:
    """Budget and best validation numbers of one run, from its metrics.jsonl."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((run / "config.json").read_text())
    best = min(records, key=lambda r: r["valid_loss"])
    return {"run": str(run), "schedule_epochs": int(config["train"]["epochs"]), "epochs_run": len(records),
            "minutes": round(sum(r["seconds"] for r in records) / 60, 1),
            "sentences_per_s": round(float(np.mean([r["samples_per_s"] for r in records])), 1),
            "best_epoch": best["epoch"], "best_valid_neg_elbo": round(best["valid_loss"], 3),
            "best_valid_kl": round(best["valid_kl"], 3),
            "valid_neg_elbo_by_epoch": [round(r["valid_loss"], 3) for r in records],
            "train_neg_elbo_by_epoch": [round(r["train_loss"], 3) for r in records]}


def fit_power_law(epochs: np.ndarray, loss: np.ndarray) -> tuple[float, float, float]:
    """(L_inf, b, c) of L(E) = L_inf + b E^-c by least squares (c > 0, b > 0)."""
    from scipy.optimize import curve_fit

    def law(e, l_inf, b, c):
        return l_inf + b * np.power(e, -c)

    start = (float(loss.min()) - 1.0, float(loss.max() - loss.min()) * float(epochs.min()), 1.0)
    (l_inf, b, c), _ = curve_fit(law, epochs, loss, p0=start, bounds=([0, 0, 1e-3], [np.inf, np.inf, 5]),
                                 maxfev=20000)
    return float(l_inf), float(b), float(c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of configs/ptb.toml, different --epochs")
    parser.add_argument("--test-nll", required=True,
                        help="RUN=FILE: the test evaluation (vaekit eval --split test) of one of the runs")
    parser.add_argument("--target", type=float, default=101.0, help="test NLL to budget for (default 101)")
    parser.add_argument("--earlier", action="append", default=[], metavar="EPOCHS=LOSS",
                        help="a point from an earlier run of the same config whose folder is gone: its schedule "
                             "length and best validation -ELBO (repeatable; drawn and fitted, marked as such)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/ptb_learning_curve.json"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/ptb_learning_curve.png"))
    args = parser.parse_args()

    points = [run_points(r) for r in args.runs]
    for text in args.earlier:
        epochs_text, _, loss_text = text.partition("=")
        points.append({"run": "earlier run", "schedule_epochs": int(epochs_text), "epochs_run": int(epochs_text),
                       "minutes": None, "best_valid_neg_elbo": float(loss_text), "valid_neg_elbo_by_epoch": None})
    points.sort(key=lambda p: p["schedule_epochs"])
    if len(points) < 3:
        parser.error("the curve has three parameters: give at least three runs")
    run_name, _, file_name = args.test_nll.partition("=")
    evaluated = next((p for p in points if Path(p["run"]) == Path(run_name)), None)
    if evaluated is None or not file_name:
        parser.error(f"--test-nll must name one of the runs, as RUN=FILE; got {args.test_nll!r}")
    test = json.loads((Path(run_name) / file_name).read_text())  # vaekit eval's eval.json, or nll_shards --collect
    test_nll = float(test["nll"])
    gap = evaluated["best_valid_neg_elbo"] - test_nll  # validation -ELBO minus test NLL, on the same model

    epochs = np.array([p["schedule_epochs"] for p in points], dtype=float)
    loss = np.array([p["best_valid_neg_elbo"] for p in points])
    l_inf, b, c = fit_power_law(epochs, loss)
    level = args.target + gap  # the target on the validation -ELBO's scale
    minutes_per_epoch = float(np.mean([p["minutes"] / p["epochs_run"] for p in points if p["minutes"]]))
    needed = None if level <= l_inf else (b / (level - l_inf)) ** (1.0 / c)
    report = {
        "points": points, "test": {**{k: v for k, v in test.items() if not isinstance(v, (list, dict))},
                                   "run": run_name, "valid_minus_test": round(gap, 3)},
        "fit": {"l_inf": round(l_inf, 3), "b": round(b, 3), "c": round(c, 3),
                "residuals": [round(float(v), 3) for v in loss - (l_inf + b * epochs ** -c)]},
        "target_test_nll": args.target, "target_on_valid_scale": round(level, 3),
        "minutes_per_epoch": round(minutes_per_epoch, 2),
        "epochs_needed": None if needed is None else round(needed, 1),
        "hours_needed": None if needed is None else round(needed * minutes_per_epoch / 60, 1),
        "target_reachable_by_budget": level > l_inf,  # False: the fitted floor lies above the target
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "points"}, indent=1))
    for p in points:
        print(f"{p['schedule_epochs']:>3} epochs  {p['minutes'] or float('nan'):>6.1f} min  best valid -ELBO "
              f"{p['best_valid_neg_elbo']:.2f}  ({p['run']})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for p in points:
        if p["valid_neg_elbo_by_epoch"]:
            curve = left.plot(range(1, p["epochs_run"] + 1), p["valid_neg_elbo_by_epoch"], marker=".",
                              label=f"{p['schedule_epochs']}-epoch schedule, validation")
            left.plot(range(1, p["epochs_run"] + 1), p["train_neg_elbo_by_epoch"], ls=":", color=curve[0].get_color())
    left.plot([], [], ls=":", color="grey", label="training loss (dropout on, KL weight ramping)")
    left.set(xlabel="epoch", ylabel="-ELBO (nats / sentence)", title="each run, per epoch",
             ylim=(min(loss) - 9, min(loss) + 12))
    left.legend()
    grid = np.geomspace(epochs.min(), max(epochs.max() * 3, needed or 0) * 1.2, 200)
    fresh = np.array([p["run"] != "earlier run" for p in points])
    right.plot(epochs[fresh], loss[fresh], "o", label="best validation -ELBO of a run")
    if (~fresh).any():
        right.plot(epochs[~fresh], loss[~fresh], "s", mfc="none", label="earlier run (same config)")
    right.plot(grid, l_inf + b * grid ** -c, "-", label=f"fit {l_inf:.1f} + {b:.0f} E^-{c:.2f}")
    right.axhline(level, color="grey", ls="--", label=f"test NLL {args.target:g}, on the validation scale")
    right.axhline(l_inf, color="C2", ls=":", label=f"fitted floor {l_inf:.1f} (no budget goes below it)")
    right.set(xscale="log", xlabel="epochs in the schedule (log)", ylabel="validation -ELBO",
              title="budget curve")
    ticks = sorted(set(epochs.astype(int).tolist()) | {int(round(grid[-1]))})
    right.set_xticks(ticks, [str(t) for t in ticks])
    right.minorticks_off()
    right.legend(fontsize=8)
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=110)
    print(f"wrote {args.json} and {args.figure}")


if __name__ == "__main__":
    main()
