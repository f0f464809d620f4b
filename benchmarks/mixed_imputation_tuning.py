"""Tuning driver for issue 26: vaekit TableImputer variants on the TUNING tables and TUNING masks of
mixed_imputation.py only (the report tables and masks are never read).

    python benchmarks/mixed_imputation_tuning.py '{"default": {}, "count-as-real": {"retype": {"count": "real"}}}'

Each variant: TableImputer keyword arguments, plus "retype" {role: type} to model every column of one role as
another type. Prints numeric RMSE / categorical error per table and rate, and their means."""
import json, sys, time
import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import mixed_imputation as B
from vaekit.tabular import TableImputer

VARIANTS = json.loads(sys.argv[1])  # {name: {params..., "types": {col: type}}}
specs = [s for s in B.TABLES if s["split"] == "tuning"]
out = {}
for name, params in VARIANTS.items():
    params = dict(params)
    retype = params.pop("retype", {})
    res = []
    t0 = time.time()
    for spec in specs:
        df = B.load_table(spec)
        types = B.vaekit_types(spec)
        types = {c: retype.get(t, t) for c, t in types.items()}
        for rate in B.RATES:
            for seed in B.MASK_SEEDS["tuning"]:
                missing = B.make_mask(df.shape, rate, seed)
                holey = B.apply_mask(df, missing)
                filled = TableImputer(types=types, random_state=seed, **params).fit_transform(holey)
                filled = B.fill_only_missing(holey, filled)
                rmse, err = B.score(df, filled, missing, spec["types"])
                res.append((spec["name"], rate, seed, rmse, err))
    by = {}
    for t, r, s, a, b in res:
        by.setdefault(f"{t} {r}", []).append((a, b))
    summary = {k: [float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v]))] for k, v in by.items()}
    out[name] = summary
    print(name, f"{time.time()-t0:.0f}s", " | ".join(f"{k}: {v[0]:.3f}/{v[1]:.3f}" for k, v in summary.items()),
          "| mean", f"{np.mean([v[0] for v in summary.values()]):.4f}/{np.mean([v[1] for v in summary.values()]):.4f}", flush=True)
print(json.dumps(out, indent=1))
