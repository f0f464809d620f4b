"""How VAEImputer's early-stopping patience was chosen (half A, tuning masks) and reported (half B): see
docs/bench_impute.md, "Early stopping".

    python benchmarks/imputation_early_stopping.py tune --out curves_A.json      # half A, tuning masks (seed 100)
    python benchmarks/imputation_early_stopping.py replay --out curves_A.json    # each patience replayed on them
    python benchmarks/imputation_early_stopping.py report --out report_B.json --seeds 1   # half B, before/after

`tune` fits every half-A cell to the 4,000-step cap with early stopping switched off by an unreachable patience,
recording after every epoch the held-out-entry error (the library's validation score) and the RMSE on the removed
entries (a 50-sample importance fill); `replay` applies the loop's patience rule to those curves for each candidate
PATIENCE_STEPS; `report` fits VAEImputer(early_stopping=False) (before) and VAEImputer() (after) per cell of half B
with the masks and seeds of benchmarks/imputation.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imputation_protocol import HALVES, RATES, TUNING_SEED, load_table, masked, rmse  # noqa: E402

import vaekit.apps.imputer as imputer_module  # noqa: E402
from vaekit.apps.impute import impute_importance  # noqa: E402
from vaekit.core.rng import seeded  # noqa: E402

CANDIDATES = (200, 400, 800, 1600)


def tune(root: Path, path: Path) -> None:
    out = json.loads(path.read_text()) if path.exists() else {}
    patience_epochs = imputer_module.PATIENCE_EPOCHS
    imputer_module.PATIENCE_EPOCHS = 10**9  # never stops: the whole curve is recorded
    held_out_error = imputer_module._held_out_error
    for name in HALVES["A"]:
        x = load_table(name, root, 2000)
        for rate in RATES:
            if f"{name}|{rate}" in out:
                continue
            missing, holey = masked(x, rate, TUNING_SEED)
            true, fitted = [], {}

            def recording(xt, mt, held, seed, missing=missing, holey=holey, x=x, true=true, fitted=fitted):
                score = held_out_error(xt, mt, held, seed)

                def both(model):
                    st = fitted["imputer"].standardizer_
                    z = torch.from_numpy(np.where(~missing, st.transform(holey), 0.0).astype(np.float32))
                    m = torch.from_numpy((~missing).astype(np.float32))
                    with seeded(seed):
                        f = torch.cat([impute_importance(model, z[i:i + 256], m[i:i + 256], k=50)[0]
                                       for i in range(0, len(z), 256)])
                    true.append(rmse(st.inverse(f.double().numpy()), x, missing))
                    return score(model)

                return both

            imputer_module._held_out_error = recording
            fitted["imputer"] = imputer = imputer_module.VAEImputer(random_state=TUNING_SEED)
            start = time.perf_counter()
            imputer.fit(holey)
            out[f"{name}|{rate}"] = {"valid": imputer.valid_history_, "true": true,
                                     "per_epoch": -(-x.shape[0] // 64), "seconds": time.perf_counter() - start}
            print(name, rate, len(true), flush=True)
            path.write_text(json.dumps(out))
    imputer_module._held_out_error, imputer_module.PATIENCE_EPOCHS = held_out_error, patience_epochs


def stop(valid: list[float], patience: int) -> tuple[int, int]:
    """The loop's rule: (kept epoch index, epochs run)."""
    best, bad = 0, 0
    for epoch in range(len(valid)):
        if epoch == 0 or valid[epoch] < valid[best]:
            best, bad = epoch, 0
        else:
            bad += 1
        if bad >= patience:
            return best, epoch + 1
    return best, len(valid)


def replay(path: Path) -> None:
    curves = json.loads(path.read_text())
    for steps in CANDIDATES:
        kept, run = [], []
        for c in curves.values():
            best, epochs = stop(c["valid"], max(imputer_module.PATIENCE_EPOCHS, -(-steps // c["per_epoch"])))
            kept.append(c["true"][best])
            run.append(epochs * c["per_epoch"])
        print(f"patience {steps} steps: mean RMSE {np.mean(kept):.4f} over {len(kept)} cells, mean steps {np.mean(run):.0f}")
    print(f"to the cap: {np.mean([c['true'][-1] for c in curves.values()]):.4f}")


def report(root: Path, path: Path, seeds: int) -> None:
    out = []
    for name in HALVES["B"]:
        x = load_table(name, root, 2000)
        for rate in RATES:
            for seed in range(seeds):
                missing, holey = masked(x, rate, seed)
                row = {"set": name, "rate": rate, "seed": seed}
                for label, options in (("before", {"early_stopping": False}), ("after", {})):
                    start = time.perf_counter()
                    imputer = imputer_module.VAEImputer(random_state=seed, **options)
                    filled = imputer.fit_transform(holey)
                    row[label] = {"rmse": rmse(filled, x, missing), "seconds": time.perf_counter() - start,
                                  "epochs": len(imputer.history_)}
                out.append(row)
                print(name, rate, seed, row["before"], row["after"], flush=True)
                path.write_text(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["tune", "replay", "report"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--data", default=os.environ.get("VAEKIT_DATA") or str(Path(__file__).resolve().parents[2]
                                                                              / "shared" / "data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part == "tune":
        tune(Path(args.data), Path(args.out))
    elif args.part == "replay":
        replay(Path(args.out))
    else:
        report(Path(args.data), Path(args.out), args.seeds)


if __name__ == "__main__":
    main()
