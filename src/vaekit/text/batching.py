"""Batches of sentences of similar length, so that a recurrent network computes little padding.

Each epoch's permutation is cut into pools of `pool` batches; each pool is sorted by length and cut into batches,
and the batches of the whole epoch are shuffled. Every sentence is still seen exactly once an epoch, the
batches are still random, and the batch sizes are as before; a batch's sentences just differ little in length
(the PTB model of configs/ptb.toml trains 1.48x faster than with random batches: docs/benchmarks.md).
"""

from __future__ import annotations

import torch

from .vocab import PAD_ID

BATCHES_PER_POOL = 50


def sentence_lengths(ids: torch.Tensor) -> torch.Tensor:
    """Tokens of each padded sentence (N,) of ids (N, L): <bos> and <eos> included."""
    return (ids != PAD_ID).sum(1)


def length_bucketed(order: torch.Tensor, lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                    pool: int = BATCHES_PER_POOL) -> torch.Tensor:
    """`order` (a permutation of the examples) rearranged so that each run of `batch_size` holds sentences of
    similar `lengths`; the batches' order is shuffled with `generator`. The last batch of each pool may be short
    only where the epoch's last batch is (all batches but the epoch's last are full)."""
    if batch_size < 1 or pool < 1:
        raise ValueError(f"batch_size and pool must be >= 1, got {batch_size} and {pool}")
    order = order.cpu()
    lengths = lengths.cpu()
    size = batch_size * pool  # a multiple of batch_size: only the epoch's last batch can be short
    batches = []
    for chunk in order.split(size):
        # stable sort, so ties keep the random order of the permutation
        ordered = chunk[torch.sort(lengths[chunk], stable=True).indices]
        batches.extend(ordered.split(batch_size))
    full = [b for b in batches if len(b) == batch_size]
    short = [b for b in batches if len(b) != batch_size]  # at most one
    shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
    return torch.cat(shuffled + short) if shuffled or short else order
