"""Disentanglement metrics on reference representations of a shapes data set's factors (no model involved).

The observations are the factor indices themselves (factor sizes of the chosen data set), and the codes are
    true           the factors                                         expected: near the maximum
    permuted       the factors in another order, each scaled by 0.1-10 expected: the same as true
    rotation       standardised factors times a random rotation        expected: low (MIG, DCI, SAP); the beta-VAE
                   (mean and range over --rotations seeds)               and FactorVAE scores can stay high
    noise          Gaussian codes independent of the factors          expected: low (chance for the classifiers)

    python benchmarks/disentanglement_reference.py                     # shapes factor sizes, n = 2000
    python benchmarks/disentanglement_reference.py --n 10000           # the standard disentanglement_lib counts
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import ortho_group

from vaekit.data.shapes import SPECS
from vaekit.metrics import FactorGrid, MetricSettings, all_metrics

COLUMNS = ["mig", "beta_vae", "factor_vae", "dci", "sap", "sap_continuous"]


def scores(source: FactorGrid, represent, n: int, seed: int) -> dict[str, float]:
    results = all_metrics(source, represent, MetricSettings().scaled(n), seed=seed)
    out = {name: r.score for name, r in results.items()}
    out["sap_continuous"] = results["sap"].details["continuous"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="shapes", choices=sorted(SPECS), help="whose factor sizes to use")
    parser.add_argument("--n", type=int, default=2000, help="training points per metric (standard: 10000)")
    parser.add_argument("--rotations", type=int, default=3, help="random rotations to average")
    args = parser.parse_args()
    sizes = SPECS[args.data].sizes
    source = FactorGrid.identity(sizes)
    k = len(sizes)
    size_arr = np.array(sizes, dtype=np.float64)
    mean, std = (size_arr - 1) / 2, np.sqrt((size_arr**2 - 1) / 12)  # of uniform factor indices
    rng = np.random.default_rng(0)
    order, gains = rng.permutation(k), 10.0 ** rng.uniform(-1, 1, k)
    cases = {
        "true": [lambda x: x.numpy()],
        "permuted": [lambda x: x.numpy()[:, order] * gains],
        "rotation": [(lambda q: lambda x: ((x.numpy() - mean) / std) @ q)(ortho_group.rvs(k, random_state=s))
                     for s in range(args.rotations)],
        "noise": [lambda x: rng.normal(size=x.shape)],
    }
    print(f"factor sizes {sizes} ({args.data}), n = {args.n} (disentanglement_lib counts x {args.n / 10000:g})")
    print(f"{'case':<10}" + "".join(f"{c:>19}" for c in COLUMNS) + f"{'seconds':>10}")
    for name, representations in cases.items():
        started = time.perf_counter()
        rows = [scores(source, rep, args.n, seed) for seed, rep in enumerate(representations)]
        seconds = (time.perf_counter() - started) / len(rows)
        cells = []
        for c in COLUMNS:
            values = [r[c] for r in rows]
            cell = f"{np.mean(values):.3f}"
            if len(values) > 1:
                cell += f" ({min(values):.2f}-{max(values):.2f})"
            cells.append(f"{cell:>19}")
        print(f"{name:<10}" + "".join(cells) + f"{seconds:>10.1f}")


if __name__ == "__main__":
    main()
