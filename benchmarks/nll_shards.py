"""Importance-sampled test NLL of a run, in shards that can run as parallel processes and report as they go.

Test examples are taken in a seeded random order (binarized MNIST's test file is sorted by label, so any prefix
of the random order is an unbiased subsample); shard K of N takes every N-th of them and appends one JSON line per
batch to RUN/nll_shard_K.jsonl. `--collect` averages whatever the shards have written so far.

    python benchmarks/nll_shards.py RUN --shard 0/2 &  python benchmarks/nll_shards.py RUN --shard 1/2
    python benchmarks/nll_shards.py RUN --collect
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import vaekit
from vaekit.evaluate import importance_sampled_nll
from vaekit.training.train import load_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--shard", default="0/1", help="K/N")
    parser.add_argument("--iw-samples", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--collect", action="store_true")
    args = parser.parse_args()
    run_dir = Path(args.run)
    if args.collect:
        rows = [json.loads(line) for path in sorted(run_dir.glob("nll_shard_*.jsonl"))
                for line in path.read_text().splitlines()]
        n = sum(r["n"] for r in rows)
        total = sum(r["nll_sum"] for r in rows)
        sq = sum(r["nll_sq_sum"] for r in rows)
        mean = total / n
        stderr = math.sqrt(max(sq / n - mean**2, 0.0) / n)
        print(json.dumps({"n": n, "nll": round(mean, 3), "stderr": round(stderr, 3),
                          "iw_samples": rows[0]["k"] if rows else None}))
        return
    shard, shards = (int(v) for v in args.shard.split("/"))
    torch.set_num_threads(1)
    run = vaekit.load_run(run_dir)
    test = load_bundle(run.config).split("test")
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[shard::shards]
    out = run_dir / f"nll_shard_{shard}.jsonl"
    done = len(out.read_text().splitlines()) if out.exists() else 0
    torch.manual_seed(1000 + shard)
    for i, start in enumerate(range(0, len(order), args.batch_size)):
        if i < done:
            continue  # resume after an interruption
        index = order[start : start + args.batch_size]
        nll = importance_sampled_nll(run.model, test.x[index], k=args.iw_samples)
        with open(out, "a") as handle:
            handle.write(json.dumps({"batch": i, "n": len(index), "k": args.iw_samples,
                                     "nll_sum": float(nll.sum()), "nll_sq_sum": float((nll**2).sum())}) + "\n")


if __name__ == "__main__":
    main()
