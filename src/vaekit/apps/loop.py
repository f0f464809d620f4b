"""The short in-memory training loop of the applications (anomaly detection, imputation).

`vaekit.train.fit` is the loop for runs (checkpoints, metrics, validation every epoch); the estimators here
train on a tensor that the user handed over, often a few hundred rows for a few hundred epochs, where that
per-epoch bookkeeping would cost more than the training. This loop is the bare version: shuffled mini-batches,
an optional observation mask carried with every batch (1 = observed), Adam, and a finite-loss check.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch

from ..errors import TrainingError
from ..models.vae import VAE, Batch
from ..objectives import Objective


def train_in_memory(model: VAE, objective: Objective, x: torch.Tensor, mask: torch.Tensor | None = None,
                    epochs: int = 100, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.0,
                    seed: int = 0, progress: bool = False, desc: str = "training") -> list[float]:
    """Minimises `objective` over the rows of `x` (N, *event) with masks `mask` (same shape, or None);
    returns the mean loss of each epoch. The model is left in eval mode."""
    from tqdm.auto import tqdm

    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise TrainingError(f"epochs and batch_size must be >= 1 and lr > 0 (got {epochs}, {batch_size}, {lr})")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if mask is not None:
        x = x * mask  # missing entries carry no information (a NaN there would poison the gradients)
    history: list[float] = []
    model.train()
    bar = tqdm(range(epochs), disable=not progress, desc=desc, unit="epoch", dynamic_ncols=True)
    for epoch in bar:
        order = torch.randperm(x.shape[0], generator=generator)
        total = torch.zeros(())
        for start in range(0, x.shape[0], batch_size):
            index = order[start : start + batch_size]
            loss = objective(model, Batch(x[index], None, None if mask is None else mask[index]), 0)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
            total += loss.total.detach() * index.numel()
        history.append(float(total) / x.shape[0])
        if not math.isfinite(history[-1]):
            raise TrainingError(f"the training loss became non-finite at epoch {epoch + 1}; try a lower learning "
                                "rate or fewer epochs")
        bar.set_postfix(loss=f"{history[-1]:.3f}", refresh=False)
    model.eval()
    return history


@contextlib.contextmanager
def few_threads(n: int = 1) -> Iterator[None]:
    """Runs the block with at most `n` torch threads, then restores the setting. The estimators' networks are
    small: extra threads buy nothing there, and on a busy machine their spin-waiting made a fit 40x slower
    (2 s -> 94 s measured on 2 shared cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(n, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def auto_epochs(n: int, batch_size: int, steps: int, bounds: tuple[int, int]) -> int:
    """Epochs giving about `steps` optimiser steps on `n` rows, clipped to `bounds`."""
    per_epoch = math.ceil(n / batch_size)
    return int(min(max(math.ceil(steps / per_epoch), bounds[0]), bounds[1]))
