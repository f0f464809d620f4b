"""Benchmark: training throughput of the PTB sentence VAE with random batches against length-bucketed batches
(vaekit.text.batching), interleaved in one run on the same model and data.

    VAEKIT_DATA=../shared/data python benchmarks/text_throughput.py --threads 2 --rounds 3

Each round times `--steps` optimiser steps of each kind (after 2 warm-up steps); the report is sentences per
second and the ratio bucketed / random, per round and as the median.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import vaekit
from vaekit.build import build_model, resolve_model_config
from vaekit.models.vae import Batch
from vaekit.objectives import build_objective
from vaekit.text.batching import length_bucketed, sentence_lengths


def timed(model, optimizer, objective, x, batches, steps: int) -> float:
    """Sentences per second over `steps` steps, after 2 untimed ones."""
    for i in range(2):
        loss = objective(model, Batch(x[batches[i]]), i)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    started, n = time.perf_counter(), 0
    for i in range(2, 2 + steps):
        loss = objective(model, Batch(x[batches[i]]), i)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        n += len(batches[i])
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = vaekit.load_data("ptb")
    x = data.split("train").x
    config = vaekit.build_run_config("configs/ptb.toml").model
    model = build_model(resolve_model_config(config, data))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    objective = build_objective("elbo", steps_per_epoch=100, epochs=10)
    lengths = sentence_lengths(x)
    ratios = []
    for round_ in range(args.rounds):
        g = torch.Generator().manual_seed(round_)
        order = torch.randperm(len(x), generator=g)
        plain = list(order.split(args.batch_size))
        bucketed = list(length_bucketed(order, lengths, args.batch_size, g).split(args.batch_size))
        rate_plain = timed(model, optimizer, objective, x, plain, args.steps)
        rate_bucketed = timed(model, optimizer, objective, x, bucketed, args.steps)
        ratios.append(rate_bucketed / rate_plain)
        print(f"round {round_ + 1}: random {rate_plain:.1f} sentences/s, bucketed {rate_bucketed:.1f}, "
              f"ratio {ratios[-1]:.2f}", flush=True)
    print(f"median ratio bucketed / random: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
