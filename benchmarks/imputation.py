"""Benchmark: VAE imputation (MIWAE) vs mean, k-nearest neighbours and MICE, in the same run.

Tables: values removed completely at random (MCAR) at 20% and 50%; every method fills them; RMSE on the removed
entries, in standard deviations of each column (columns standardised with the complete data's statistics).
MNIST: a VAE trained on complete images fills the hidden bottom half of test digits (importance sampling,
pseudo-Gibbs, Metropolis-within-Gibbs), compared with filling each pixel with its training mean.

    python benchmarks/imputation.py                   # tables and MNIST
    python benchmarks/imputation.py --part tables --seeds 1 --sets breast_cancer,wine
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (makes IterativeImputer importable)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from vaekit.apps import VAEImputer

SKLEARN_SETS = ("breast_cancer", "wine", "diabetes")
ADBENCH_SETS = ("47_yeast", "6_cardio", "19_landsat", "22_magic.gamma", "44_Wilt")  # features only, labels dropped
DEFAULT_SETS = SKLEARN_SETS + ADBENCH_SETS
RATES = (0.2, 0.5)


def load_table(name: str, root: Path, max_rows: int) -> np.ndarray:
    if name in SKLEARN_SETS:
        import sklearn.datasets as ds

        x = getattr(ds, f"load_{name}")().data
    else:
        with np.load(root / "adbench" / f"{name}.npz", allow_pickle=False) as d:
            x = d["X"].astype(np.float64)
    if len(x) > max_rows:
        x = x[np.random.default_rng(0).choice(len(x), max_rows, replace=False)]
    x = x[:, x.std(0) > 0]
    return (x - x.mean(0)) / x.std(0)


def imputers(seed: int) -> dict:
    return {
        "mean": SimpleImputer(strategy="mean"),
        "kNN (k=5)": KNNImputer(n_neighbors=5),
        "MICE (IterativeImputer)": IterativeImputer(max_iter=20, random_state=seed),
        "VAE (vaekit, MIWAE)": VAEImputer(random_state=seed),
    }


def run_tables(root: Path, sets: list[str], seeds: int, max_rows: int) -> dict:
    results: dict = {}
    seconds: dict = {}
    for name in sets:
        x = load_table(name, root, max_rows)
        for rate in RATES:
            row: dict = {}
            for seed in range(seeds):
                rng = np.random.default_rng(1000 + seed)
                missing = rng.random(x.shape) < rate
                empty = missing.all(1)
                missing[empty, rng.integers(0, x.shape[1], empty.sum())] = False  # every row keeps a value
                holey = np.where(missing, np.nan, x)
                for method, imputer in imputers(seed).items():
                    start = time.perf_counter()
                    filled = imputer.fit_transform(holey)
                    seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - start
                    row.setdefault(method, []).append(float(np.sqrt(np.mean((filled[missing] - x[missing]) ** 2))))
            results[(name, rate)] = {"n": x.shape[0], "d": x.shape[1], "rmse": row}
            print(f"{name:<16} {rate:.0%}  " + "  ".join(f"{m.split(' ')[0]}={np.mean(v):.3f}" for m, v in row.items()),
                  flush=True)
    return {"rows": results, "seconds": seconds}


def markdown_tables(out: dict) -> str:
    methods = list(next(iter(out["rows"].values()))["rmse"])
    lines = ["| data set | n | d | missing | " + " | ".join(methods) + " |", "|---|---:|---:|---:|" + "---:|" * len(methods)]
    wins = dict.fromkeys(methods, 0)
    for (name, rate), entry in out["rows"].items():
        means = {m: np.mean(v) for m, v in entry["rmse"].items()}
        best = min(means.values())
        wins[min(means, key=means.get)] += 1
        cells = []
        for m in methods:
            text = f"{means[m]:.3f}" + (f" ± {np.std(entry['rmse'][m]):.3f}" if len(entry["rmse"][m]) > 1 else "")
            cells.append(f"**{text}**" if means[m] == best else text)
        lines.append(f"| {name} | {entry['n']} | {entry['d']} | {rate:.0%} | " + " | ".join(cells) + " |")
    lines.append("| best on (of {}) | | | | ".format(len(out["rows"])) + " | ".join(str(wins[m]) for m in methods) + " |")
    lines.append("| CPU seconds (all) | | | | " + " | ".join(f"{out['seconds'][m]:.0f}" for m in methods) + " |")
    return "\n".join(lines)


def run_mnist(root: Path, n_train: int, n_test: int, epochs: int, figure: str | None) -> str:
    import vaekit
    from vaekit.apps.impute import impute
    from vaekit.apps.inpaint import hole_pattern, inpainting_figure, observation_mask
    from vaekit.figures.plots import write_output

    bundle = vaekit.load_data("mnist", root / "mnist", limit=n_train)
    config = vaekit.RunConfig()
    config.model.network.hidden, config.model.latent_dim = [512, 256], 16
    config.train.epochs, config.train.progress = epochs, False
    start = time.perf_counter()
    model = vaekit.fit(config, data=bundle).model
    train_seconds = time.perf_counter() - start
    x = bundle.split("test").x[:n_test]
    observed = observation_mask(hole_pattern("bottom-half", model.event_shape), x)
    hidden = observed < 0.5
    mean_image = bundle.split("train").x.mean(0, keepdim=True).expand_as(x)
    rows = [("mean of the training pixels", mean_image, 0.0)]
    filled_all = {}
    for method, samples in (("importance", 1000), ("pseudo-gibbs", 200), ("metropolis", 200)):
        start = time.perf_counter()
        filled = impute(model, x, observed, method, samples, seed=0)
        rows.append((f"VAE, {method} ({samples} {'samples' if method == 'importance' else 'steps'})", filled,
                     time.perf_counter() - start))
        filled_all[method] = filled
    if figure:
        write_output(inpainting_figure(x[:12], observed[:12], {k: v[:12] for k, v in filled_all.items()},
                                       title="MNIST, bottom half hidden"), figure)
    lines = [f"VAE: MLP 784-512-256-16, Bernoulli, trained {epochs} epochs on {n_train} images "
             f"({train_seconds:.0f} s); {n_test} test digits, bottom half (392 pixels) hidden.", "",
             "| fill | RMSE on hidden pixels | MAE | seconds |", "|---|---:|---:|---:|"]
    for name, filled, secs in rows:
        err = filled[hidden] - x[hidden]
        lines.append(f"| {name} | {err.pow(2).mean().sqrt():.4f} | {err.abs().mean():.4f} | {secs:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("VAEKIT_DATA") or str(Path(__file__).resolve().parents[2]
                                                                              / "shared" / "data"))
    parser.add_argument("--part", choices=["tables", "mnist", "all"], default="all")
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--mnist-train", type=int, default=10000)
    parser.add_argument("--mnist-test", type=int, default=500)
    parser.add_argument("--mnist-epochs", type=int, default=10)
    parser.add_argument("--figure", help="write the MNIST inpainting figure here (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.data)
    if args.part in ("tables", "all"):
        out = run_tables(root, args.sets.split(","), args.seeds, args.max_rows)
        print("\nRMSE on the removed entries (standardised units; mean ± std over seeds)\n\n" + markdown_tables(out))
    if args.part in ("mnist", "all"):
        print("\nMNIST inpainting\n\n" + run_mnist(root, args.mnist_train, args.mnist_test, args.mnist_epochs,
                                                   args.figure))


if __name__ == "__main__":
    main()
