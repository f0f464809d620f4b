"""Ensembles of VAE anomaly scores on the 43 ADBench sets, under the split protocol of anomaly_protocol.py.

The two configurations that protocol chose (the one best on half A, reported on half B, and the reverse; read
from its JSON when the run starts, and kept in --json) are each trained with --members seeds (0, 1, ...) on every
set; the members' `elbo` scores (k = 100) are combined in two ways fixed before the run:
    mean   the average score in nats (the log of the geometric mean of the members' likelihood bounds)
    rank   the average of each member's score ranks
A second kind of ensemble varies the column scaling instead of the seed (added after the quantile scaling's
protocol run showed it winning where robust scaling lost and the reverse): the configuration with its own scaling
and with "quantile" (and "standard"), seed 0 each, combined by rank only (the members' nats are on different
scales). The candidates (E = 1, the first member alone, which is what the protocol reported; E = 2 .. members with
each combination; the scaling ensembles) are chosen as before: the best on half A is reported on half B and the
reverse. IsolationForest (PyOD, seeds 0, 1, 2) runs in the same process on the same rows.

    VAEKIT_DATA=../shared/data python benchmarks/anomaly_ensemble.py --json benchmarks/results/anomaly_ensemble.json

Per-set results are cached in --json as the run goes (rerunning resumes). --shard i/n runs every n-th set, for
parallel processes writing their own files; --merge F1,F2,... joins those and prints the summary.
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
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly_adbench import detectors  # noqa: E402
from anomaly_protocol import all_sets, fit_detector, load_set  # noqa: E402

PROTOCOL = Path(__file__).resolve().parent / "results" / "anomaly_protocol.json"
COMBINATIONS = ("mean", "rank")
SCALING_SETS = (("quantile",), ("quantile", "standard"))  # added to the configuration's own scaling


def parse(config: str) -> dict:
    """'robust|beta=0.25|steps=600|hidden=64-32|latent=8[|trim=0.2]|elbo' -> the detector's settings."""
    scaling, *fields, score = config.split("|")
    values = dict(field.split("=") for field in fields)
    return {"scaling": scaling, "beta": float(values["beta"]), "steps": int(values["steps"]),
            "hidden": [int(h) for h in values["hidden"].split("-")], "latent": int(values["latent"]),
            "trim": float(values.get("trim", 0.0)), "score": score}


def member_scores(x: np.ndarray, c: dict, seed: int) -> np.ndarray:
    return fit_detector(x, c, seed, c["score"]).decision_scores_


def combine(scores: list[np.ndarray], how: str) -> np.ndarray:
    if how == "mean":
        return np.mean(scores, axis=0)
    return np.mean([rankdata(s) for s in scores], axis=0)


def run_set(root: Path, name: str, configs: dict[str, str], members: int, max_rows: int) -> dict:
    x, y = load_set(root, name, max_rows)
    entry: dict = {"n": len(x), "d": int(x.shape[1]), "aucs": {}, "seconds": {}}
    first: dict[str, np.ndarray] = {}  # each configuration's seed-0 member, reused by the scaling ensembles
    for label, config in configs.items():
        c = parse(config)
        start = time.perf_counter()
        scores = [member_scores(x, c, seed) for seed in range(members)]
        first[label] = scores[0]
        entry["seconds"][label] = time.perf_counter() - start
        entry["aucs"][f"{label}|E=1"] = float(roc_auc_score(y, scores[0]))
        entry["aucs"][f"{label}|members"] = [float(roc_auc_score(y, s)) for s in scores]
        for e in range(2, members + 1):
            for how in COMBINATIONS:
                entry["aucs"][f"{label}|E={e}|{how}"] = float(roc_auc_score(y, combine(scores[:e], how)))
    entry["aucs"].update(scaling_ensembles(x, y, configs, first))
    start = time.perf_counter()
    entry["aucs"]["IForest (PyOD)"] = float(np.mean([roc_auc_score(y, detectors(s)["IForest (PyOD)"](x, x))
                                                     for s in range(3)]))
    entry["seconds"]["IForest (PyOD)"] = time.perf_counter() - start
    return entry


def scaling_ensembles(x: np.ndarray, y: np.ndarray, configs: dict[str, str],
                      own_scores: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """ROC-AUCs of each configuration combined by rank with the same settings under other column scalings
    (seed 0), keyed 'label|scalings=robust+quantile|rank'. `own_scores`: each label's seed-0 scores when the
    caller already has them (trained here otherwise)."""
    out = {}
    for label, config in configs.items():
        c = parse(config)
        own = own_scores[label] if own_scores is not None else member_scores(x, c, 0)
        others = {}
        for extra in SCALING_SETS:
            for scaling in extra:
                if scaling != c["scaling"] and scaling not in others:
                    others[scaling] = member_scores(x, {**c, "scaling": scaling}, 0)
            used = [c["scaling"]] + [v for v in extra if v != c["scaling"]]
            scores = [own] + [others[v] for v in used[1:]]
            out[f"{label}|scalings={'+'.join(used)}|rank"] = float(roc_auc_score(y, combine(scores, "rank")))
    return out


def summarise(cache: dict, protocol: dict) -> dict:
    half_a, half_b = protocol["summary"]["half_a"], protocol["summary"]["half_b"]
    sets = cache["sets"]

    def mean(names, key):
        return float(np.mean([sets[s]["aucs"][key] for s in names]))

    out = {}
    # The configuration chosen on A is tuned and judged on A, reported on B; and the reverse.
    for tune, report, label in ((half_a, half_b, "chosen_on_a"), (half_b, half_a, "chosen_on_b")):
        keys = [k for k in sets[tune[0]]["aucs"] if k.startswith(label + "|") and not k.endswith("|members")]
        best = max(keys, key=lambda k: (mean(tune, k), -keys.index(k)))  # ties: the smaller ensemble
        out[label] = {"candidates_on_tuning_half": {k: mean(tune, k) for k in keys}, "chosen": best,
                      "reported_half_mean": mean(report, best), "single_model_reported_half_mean":
                      mean(report, f"{label}|E=1"), "iforest_reported_half_mean": mean(report, "IForest (PyOD)")}
    per_set = {}
    for s in half_a + half_b:
        key = out["chosen_on_b"]["chosen"] if s in half_a else out["chosen_on_a"]["chosen"]
        single = f"{'chosen_on_b' if s in half_a else 'chosen_on_a'}|E=1"
        per_set[s] = {"protocol, ensemble": sets[s]["aucs"][key], "protocol, one model": sets[s]["aucs"][single],
                      "IForest (PyOD)": sets[s]["aucs"]["IForest (PyOD)"]}
    means = {m: float(np.mean([row[m] for row in per_set.values()])) for m in next(iter(per_set.values()))}
    seconds = {}
    for s in sets.values():
        for k, v in s["seconds"].items():
            seconds[k] = seconds.get(k, 0.0) + v
    return {"choices": out, "per_set": per_set, "means": means, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("VAEKIT_DATA") or "../shared/data")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--max-rows", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shard", default="0/1", help="i/n: every n-th set from the i-th")
    parser.add_argument("--json", help="cache and results file (resumes from it)")
    parser.add_argument("--merge", help="comma-separated shard files to join and summarise (no training)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    protocol = json.loads(PROTOCOL.read_text())
    configs = {k: protocol["summary"][k] for k in ("chosen_on_a", "chosen_on_b")}
    if args.json and Path(args.json).is_file():  # a resumed run keeps the configurations it started with
        configs = json.loads(Path(args.json).read_text()).get("configs", configs)
    if args.merge:
        cache = {"sets": {}}
        for f in args.merge.split(","):
            cache["sets"].update(json.loads(Path(f).read_text())["sets"])
    else:
        cache = {"sets": {}, "configs": configs, "members": args.members}
        if args.json and Path(args.json).is_file():
            cache = json.loads(Path(args.json).read_text())
        i, n = (int(v) for v in args.shard.split("/"))
        for name in all_sets(Path(args.data))[i::n]:
            if name in cache["sets"]:
                entry = cache["sets"][name]
                if not any("|scalings=" in k for k in entry["aucs"]):  # cached before the scaling ensembles
                    x, y = load_set(Path(args.data), name, args.max_rows)
                    start = time.perf_counter()
                    entry["aucs"].update(scaling_ensembles(x, y, configs))
                    entry["seconds"]["scaling ensembles"] = time.perf_counter() - start
                    print(f"{name:<20} " + " ".join(f"{k.split('|', 1)[1]}={v:.3f}" for k, v in entry["aucs"].items()
                                                    if "|scalings=" in k), flush=True)
                    if args.json:
                        Path(args.json).write_text(json.dumps(cache, indent=1))
                continue
            cache["sets"][name] = run_set(Path(args.data), name, configs, args.members, args.max_rows)
            a = cache["sets"][name]["aucs"]
            print(f"{name:<20} one={a['chosen_on_a|E=1']:.3f} ens-mean={a[f'chosen_on_a|E={args.members}|mean']:.3f}"
                  f" ens-rank={a[f'chosen_on_a|E={args.members}|rank']:.3f} iforest={a['IForest (PyOD)']:.3f}",
                  flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(cache, indent=1))
    if len(cache["sets"]) < len(protocol["summary"]["half_a"]) + len(protocol["summary"]["half_b"]):
        return  # a shard: summarised by --merge
    cache["summary"] = summarise(cache, protocol)
    if args.json:
        Path(args.json).write_text(json.dumps(cache, indent=1))
    print(json.dumps({k: cache["summary"][k] for k in ("choices", "means")}, indent=1))


if __name__ == "__main__":
    main()
