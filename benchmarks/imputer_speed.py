"""How long `VAEImputer` takes on a small table: the issue's case, 400 rows and 6 columns with about a fifth of
the values missing (scikit-learn's diabetes table, first 400 rows and 6 columns, values removed at random with
seed 0), with the automatic training length stopping early on held-out entries against the full automatic length
(`early_stopping=False`, the behaviour before), interleaved in one process, and IterativeImputer as the
reference. RMSE on the removed entries, in standard deviations of each column.

    python benchmarks/imputer_speed.py --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (makes IterativeImputer importable)
from sklearn.impute import IterativeImputer

from vaekit.apps import VAEImputer


def table(missing: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = load_diabetes().data[:400, :6].astype(np.float64)
    holes = np.random.default_rng(seed).random(x.shape) < missing
    holes[holes.all(1), 0] = False  # every row keeps an observed value
    damaged = x.copy()
    damaged[holes] = np.nan
    return x, damaged


def rmse(x: np.ndarray, filled: np.ndarray, damaged: np.ndarray) -> float:
    holes = np.isnan(damaged)
    return float(np.sqrt((((filled - x) / x.std(0)) ** 2)[holes].mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    x, damaged = table()
    print(f"table {damaged.shape}, {np.isnan(damaged).mean():.1%} missing")
    runs: dict[str, list[tuple[float, float, int]]] = {"early stopping (now)": [], "full length (before)": [],
                                                      "IterativeImputer": []}
    for _ in range(args.rounds):
        for name in runs:
            started = time.perf_counter()
            if name == "IterativeImputer":
                imputer = IterativeImputer(max_iter=20, random_state=0)
                filled, epochs = imputer.fit_transform(damaged), 0
            else:
                imputer = VAEImputer(random_state=0, early_stopping=name.startswith("early"))
                filled = imputer.fit_transform(damaged)
                epochs = len(imputer.history_)
            runs[name].append((time.perf_counter() - started, rmse(x, filled, damaged), epochs))
    for name, values in runs.items():
        seconds = statistics.median(v[0] for v in values)
        print(f"{name:<22} {seconds:6.1f} s (runs {', '.join(f'{v[0]:.1f}' for v in values)})  RMSE "
              f"{values[0][1]:.4f}  epochs {values[0][2]}")


if __name__ == "__main__":
    main()
