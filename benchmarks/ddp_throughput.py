"""Data-parallel training on one machine: 1 process x 2 threads against 2 gloo processes x 1 thread, and the
gradient all-reduce's cost per step.

Each round trains `--epochs` timed epochs (after one untimed warm-up epoch) of the pytorch/examples VAE
(784-400-20 MLP, Bernoulli likelihood) on binarized MNIST with vaekit's loop, first as one process with 2 torch
threads, then under torchrun as 2 processes with 1 thread each (the same global batch); rounds interleave the two.
In the 2-process runs the script also measures, on the same model and batches:
    step_ms          one training step (forward, backward with DDP's all-reduce, Adam)
    step_no_sync_ms  the same step inside DDP's no_sync() (gradients kept local: no all-reduce)
    all_reduce_ms    one all_reduce of a float32 buffer as large as all the gradients
The all-reduce's cost per step is about step_ms - step_no_sync_ms (DDP overlaps it with the backward pass).

    VAEKIT_DATA=../shared/data python benchmarks/ddp_throughput.py --rounds 3 --epochs 2 --batch-size 128

With `--device cuda --processes N` it compares 1 GPU with N GPUs (NCCL), one process per GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from report_json import emit  # (benchmarks/report_json.py, beside this script)


def _config(batch_size: int, threads: int, device: str):
    import vaekit

    return vaekit.build_run_config(None, [
        "data.name=binarized-mnist", "model.latent_dim=20", "model.network=mlp", "model.network.hidden=[400]",
        "model.likelihood=bernoulli", f"train.batch_size={batch_size}", "train.progress=false",
        f"train.threads={threads}", "train.epochs=1000", f"train.device={device}"])


def worker(args) -> None:
    """One process (of 1 or of torchrun's 2): timed epochs, and with 2 processes the all-reduce timings."""
    from tqdm import tqdm

    import vaekit
    from vaekit.training.distributed import Cluster
    from vaekit.training.train import _step_batch, _train_epoch, setup

    cluster = Cluster.from_environment()
    threads = args.threads if cluster.world == 1 else max(1, args.threads // cluster.world)
    torch.set_num_threads(threads)
    bundle = vaekit.load_data("binarized-mnist")
    with cluster.session(cluster.device(args.device)):
        run = setup(_config(args.batch_size, threads, args.device), data=bundle, validate=False, cluster=cluster)
        rates = []
        for epoch in range(args.epochs + 1):
            start = time.perf_counter()
            _, run.state["step"] = _train_epoch(run, epoch, tqdm(disable=True))
            if epoch:  # the first epoch is a warm-up
                rates.append(len(run.train) / (time.perf_counter() - start))
        result = {"samples_per_s": statistics.median(rates)}
        if cluster.distributed:
            result.update(_sync_costs(run, _step_batch, cluster))
        if cluster.is_main:
            print("RESULT " + json.dumps(result), flush=True)


def _sync_costs(run, step_batch, cluster, steps: int = 100) -> dict:
    import torch.distributed as dist

    index = torch.arange(run.config.train.batch_size)

    def one_step() -> None:
        batch, weight = step_batch(run, index, 0)
        total, _ = run.step_module(batch, 0, weight)
        run.optimizer.zero_grad(set_to_none=True)
        total.backward()
        run.optimizer.step()

    def timed(fn) -> float:
        for _ in range(10):
            fn()
        dist.barrier()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        dist.barrier()
        return 1000 * (time.perf_counter() - start) / steps

    def no_sync_step() -> None:
        with run.step_module.no_sync():
            one_step()

    size = sum(p.numel() for p in run.model.parameters())
    buffer = torch.zeros(size, device=run.device)
    return {"step_ms": timed(one_step), "step_no_sync_ms": timed(no_sync_step),
            "all_reduce_ms": timed(lambda: dist.all_reduce(buffer)), "gradient_values": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in all (shared by the processes)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    common = [__file__, "--worker", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
              "--device", args.device, "--threads", str(args.threads)]
    n = args.processes
    commands = {"1 process": [sys.executable, *common],
                f"{n} processes": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   f"--nproc_per_node={n}", *common]}
    results: dict[str, list[dict]] = {name: [] for name in commands}
    for round_ in range(args.rounds):
        for name, command in commands.items():
            out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            if out.returncode != 0 or not lines:
                sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
            results[name].append(json.loads(lines[-1][7:]))
            print(f"round {round_ + 1} {name}: {results[name][-1]}", flush=True)
    summary = {name: {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
               for name, runs in results.items()}
    one, two = (summary[name]["samples_per_s"] for name in commands)
    report = {"device": args.device, "threads_in_all": args.threads, "batch_size": args.batch_size,
              "epochs_per_round": args.epochs, "rounds": args.rounds, "median": summary,
              f"{n} processes / 1 process": round(two / one, 3)}
    emit(report, args.out)


if __name__ == "__main__":
    main()
