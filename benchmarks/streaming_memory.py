"""Streaming benchmark: one training epoch over a generated .npy far larger than the memory limit.

    python benchmarks/streaming_memory.py --gigabytes 2 --limit 200M --workers 2 --out benchmarks/results/streaming.json

Writes a (N, 28, 28) float32 .npy of grey levels in [0, 1] (2 GB: N = 680,000) in a temporary folder, loads it
with `load_data(memory_limit=...)` (which streams it), and trains one epoch of a small MLP VAE on it through
`batch_loader` (seeded per-epoch permutation cut into batches, the way the training loop will call it). Reports
the peak resident memory of this process (ru_maxrss: what it held with torch imported, and the increase over
that) and of the DataLoader workers, and samples/s next to the same loop over an in-memory slice of the file.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vaekit
from vaekit.core.limits import parse_size
from vaekit.data import load_data
from vaekit.data.base import Split
from vaekit.data.streaming import batch_loader, check_batch_fits, is_streamed
from vaekit.models.vae import Batch


def maxrss(who: int = resource.RUSAGE_SELF) -> int:
    return resource.getrusage(who).ru_maxrss * 1024  # Linux reports KiB


def write_npy(path: Path, gigabytes: float, side: int = 28) -> int:
    """A float32 (N, side, side) array of random grey levels, written in chunks with file writes (a writable
    mapping would leave its pages resident in this process); returns N."""
    n = int(gigabytes * 2**30) // (side * side * 4)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, side, side)})
        for lo in range(0, n, 2_000):  # 6 MB at a time
            rng.random((min(n, lo + 2_000) - lo, side, side), dtype=np.float32).tofile(f)
    return n


def one_epoch(model, split: Split, batch_size: int, workers: int, seed: int = 0) -> float:
    """Samples/s of one epoch of ELBO training over `split` through batch_loader."""
    objective = vaekit.ELBO()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    started = time.perf_counter()
    for step, batch in enumerate(batch_loader(split, order.split(batch_size), workers=workers)):
        loss = objective(model, Batch(batch.x), step)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
    return len(split) / (time.perf_counter() - started)


def small_vae(bundle) -> vaekit.VAE:
    config = vaekit.ModelConfig(latent_dim=8)
    config.network.hidden = [128]
    return vaekit.build_model(vaekit.resolve_model_config(config, bundle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--limit", default="200M")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--memory-rows", type=int, default=100_000, help="rows of the in-memory comparison")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = maxrss()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.npy"
        started = time.perf_counter()
        n = write_npy(path, args.gigabytes)
        written = time.perf_counter() - started
        started = time.perf_counter()
        bundle = load_data(path, memory_limit=args.limit, valid_fraction=0, test_fraction=0)
        opened = time.perf_counter() - started
        train = bundle.split("train")
        assert is_streamed(train.x)
        check_batch_fits(train, args.batch_size, parse_size(args.limit), workers=args.workers)
        torch.manual_seed(0)
        streamed_rate = one_epoch(small_vae(bundle), train, args.batch_size, args.workers)
        peak = maxrss()
        # the same loop over an in-memory slice (the fast path), and the streamed one without workers
        head = Split(train.x[: args.memory_rows])
        memory_rate = one_epoch(small_vae(bundle), head, args.batch_size, 0)
        streamed_head = Split(train.x.head(args.memory_rows))
        streamed_head_rate = one_epoch(small_vae(bundle), streamed_head, args.batch_size, 0)
    report = {
        "rows": n, "file_bytes": n * 28 * 28 * 4, "limit": args.limit, "workers": args.workers,
        "batch_size": args.batch_size, "threads": args.threads,
        "write_s": round(written, 1), "open_and_scan_s": round(opened, 1),
        "rss_before_mb": round(base / 2**20, 1), "rss_peak_mb": round(peak / 2**20, 1),
        "rss_increase_mb": round((peak - base) / 2**20, 1),
        "worker_rss_peak_mb": round(maxrss(resource.RUSAGE_CHILDREN) / 2**20, 1),
        "streamed_samples_per_s": round(streamed_rate), "memory_rows": args.memory_rows,
        "in_memory_samples_per_s": round(memory_rate), "streamed_no_workers_samples_per_s": round(streamed_head_rate),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), {platform.platform()}",
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
