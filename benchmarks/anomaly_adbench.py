"""Benchmark: VAE anomaly detection vs PyOD and scikit-learn detectors, in the same run.

ADBench / ODDS protocol: each detector is fitted on the whole data set without labels, scores every point,
and is judged by ROC-AUC against the labels (1 = anomaly); the mean over seeds is reported per set.
MNIST one-class: each digit in turn is the normal class; detectors are fitted on normal training images and
score a subsample of the test set, where the other nine digits are the anomalies.

    python benchmarks/anomaly_adbench.py                       # both parts (needs `pip install -e .[bench]`)
    python benchmarks/anomaly_adbench.py --part tabular --seeds 1 --sets 6_cardio,42_WBC

The VAE column is `VAEAnomalyDetector()` at the library defaults, which are chosen elsewhere, by protocols that
keep tuning and reporting apart: benchmarks/anomaly_protocol.py (tables, all 43 ADBench sets) and
benchmarks/anomaly_images.py (images); see docs/bench_anomaly.md.

Data: $VAEKIT_DATA or ../shared/data (adbench/*.npz with X, y; mnist/ IDX files). Sets larger than
--max-rows are subsampled (seeded, stratification-free) to keep the run to minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from vaekit.apps import VAEAnomalyDetector

# The ODDS sets of PyOD's own benchmark table that ADBench ships (arrhythmia is not in ADBench).
ODDS_SETS = ["6_cardio", "14_glass", "18_Ionosphere", "20_letter", "21_Lymphography", "24_mnist", "25_musk",
             "26_optdigits", "28_pendigits", "29_Pima", "30_satellite", "31_satimage-2", "32_shuttle",
             "39_vertebral", "40_vowels", "42_WBC"]
DEEP = ("VAE (vaekit)", "AutoEncoder (PyOD)", "VAE (PyOD)")


def detectors(seed: int) -> dict:
    """name -> function(X_fit, X_score) -> anomaly scores of X_score (higher = more anomalous)."""
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.iforest import IForest
    from pyod.models.vae import VAE

    def pyod(make):
        return lambda fit_x, score_x: make().fit(fit_x).decision_function(score_x)

    def lof(fit_x, score_x):
        if fit_x is score_x:  # unsupervised: the outlier factors of the fitted points
            model = LocalOutlierFactor(n_neighbors=20).fit(fit_x)
            return -model.negative_outlier_factor_
        return -LocalOutlierFactor(n_neighbors=20, novelty=True).fit(fit_x).score_samples(score_x)

    def ours(fit_x, score_x):
        detector = VAEAnomalyDetector(random_state=seed).fit(fit_x)
        return detector.decision_scores_ if fit_x is score_x else detector.decision_function(score_x)

    return {
        "VAE (vaekit)": ours,
        "AutoEncoder (PyOD)": pyod(lambda: AutoEncoder(random_state=seed, verbose=0)),
        "VAE (PyOD)": pyod(lambda: VAE(random_state=seed, verbose=0)),
        "IForest (PyOD)": pyod(lambda: IForest(random_state=seed)),
        "LOF (sklearn)": lof,
    }


def load_set(root: Path, name: str, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(root / "adbench" / f"{name}.npz", allow_pickle=False) as d:
        x, y = d["X"].astype(np.float64), d["y"].astype(np.int64)
    if len(x) > max_rows:
        keep = np.random.default_rng(0).choice(len(x), max_rows, replace=False)
        x, y = x[keep], y[keep]
    return x, y


def run_tabular(root: Path, sets: list[str], seeds: int, max_rows: int) -> dict:
    results: dict = {"sets": {}, "seconds": {}}
    for name in sets:
        x, y = load_set(root, name, max_rows)
        row = {}
        for seed in range(seeds):
            for method, fn in detectors(seed).items():
                start = time.perf_counter()
                row.setdefault(method, []).append(float(roc_auc_score(y, fn(x, x))))
                results["seconds"][method] = results["seconds"].get(method, 0.0) + time.perf_counter() - start
        results["sets"][name] = {"n": len(x), "d": x.shape[1], "anomalies": float(y.mean()), "auc": row}
        print(f"{name:<18} " + "  ".join(f"{m.split(' ')[0]}={np.mean(v):.3f}" for m, v in row.items()), flush=True)
    return results


def run_mnist(root: Path, n_train: int, n_test: int) -> dict:
    from vaekit.data import load_data

    bundle = load_data("mnist", root / "mnist")
    train, test = bundle.split("train"), bundle.split("test")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(test), n_test, replace=False)
    x_test = test.x[pick].flatten(1).numpy().astype(np.float64)
    y_test = test.y[pick].numpy()
    results: dict = {"digits": {}, "seconds": {}}
    for digit in range(10):
        normal = np.flatnonzero(train.y.numpy() == digit)
        chosen = rng.choice(normal, min(n_train, len(normal)), replace=False)
        x_fit = train.x[chosen].flatten(1).numpy().astype(np.float64)
        labels = (y_test != digit).astype(int)
        row = {}
        for method, fn in detectors(0).items():
            start = time.perf_counter()
            fit_x = x_fit.reshape(-1, 1, 28, 28) if method == "VAE (vaekit)" else x_fit  # images for ours
            score_x = x_test.reshape(-1, 1, 28, 28) if method == "VAE (vaekit)" else x_test
            row[method] = float(roc_auc_score(labels, fn(fit_x, score_x)))
            results["seconds"][method] = results["seconds"].get(method, 0.0) + time.perf_counter() - start
        results["digits"][digit] = row
        print(f"digit {digit}: " + "  ".join(f"{m.split(' ')[0]}={v:.3f}" for m, v in row.items()), flush=True)
    return results


def markdown_tabular(results: dict) -> str:
    methods = list(next(iter(results["sets"].values()))["auc"])
    lines = ["| data set | n | d | anomalies | " + " | ".join(methods) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(methods)]
    means = {m: [] for m in methods}
    for name, entry in results["sets"].items():
        cells = []
        best = max(np.mean(entry["auc"][m]) for m in methods)
        for m in methods:
            v = np.mean(entry["auc"][m])
            means[m].append(v)
            text = f"{v:.3f} ± {np.std(entry['auc'][m]):.3f}" if len(entry["auc"][m]) > 1 else f"{v:.3f}"
            cells.append(f"**{text}**" if v == best else text)
        lines.append(f"| {name} | {entry['n']} | {entry['d']} | {entry['anomalies']:.1%} | " + " | ".join(cells) + " |")
    best_mean = max(np.mean(v) for v in means.values())
    lines.append("| **mean** | | | | " + " | ".join(f"**{np.mean(means[m]):.3f}**" if np.mean(means[m]) == best_mean
                                                 else f"{np.mean(means[m]):.3f}" for m in methods) + " |")
    lines.append("| CPU seconds (all sets, all seeds) | | | | "
                 + " | ".join(f"{results['seconds'][m]:.0f}" for m in methods) + " |")
    return "\n".join(lines)


def markdown_mnist(results: dict) -> str:
    methods = list(results["digits"][0])
    lines = ["| normal digit | " + " | ".join(methods) + " |", "|---:|" + "---:|" * len(methods)]
    for digit, row in results["digits"].items():
        best = max(row.values())
        lines.append(f"| {digit} | " + " | ".join(f"**{row[m]:.3f}**" if row[m] == best else f"{row[m]:.3f}"
                                                  for m in methods) + " |")
    means = {m: np.mean([r[m] for r in results["digits"].values()]) for m in methods}
    lines.append("| **mean** | " + " | ".join(f"**{means[m]:.3f}**" if means[m] == max(means.values())
                                            else f"{means[m]:.3f}" for m in methods) + " |")
    lines.append("| CPU seconds | " + " | ".join(f"{results['seconds'][m]:.0f}" for m in methods) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("VAEKIT_DATA") or str(Path(__file__).resolve().parents[2]
                                                                              / "shared" / "data"))
    parser.add_argument("--part", choices=["tabular", "mnist", "all"], default="all")
    parser.add_argument("--sets", default=",".join(ODDS_SETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-rows", type=int, default=3000, help="subsample larger sets to this many rows")
    parser.add_argument("--mnist-train", type=int, default=1000, help="normal training images per digit")
    parser.add_argument("--mnist-test", type=int, default=2000, help="test images (all digits)")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # every detector on one thread: comparable CPU seconds on a shared machine
    root = Path(args.data)
    out = {}
    if args.part in ("tabular", "all"):
        out["tabular"] = run_tabular(root, args.sets.split(","), args.seeds, args.max_rows)
        print("\nROC-AUC on ODDS sets (mean ± std over seeds)\n\n" + markdown_tabular(out["tabular"]))
    if args.part in ("mnist", "all"):
        out["mnist"] = run_mnist(root, args.mnist_train, args.mnist_test)
        print("\nMNIST one-class ROC-AUC\n\n" + markdown_mnist(out["mnist"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
