"""Seeded blocks that leave torch's global random state as they found it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block torch's global RNG starts from `seed`; afterwards the caller's state is back.

    Forks the CPU generator and, when CUDA is in use, every CUDA device's generator (seeded alike, as
    `torch.manual_seed` would); CUDA is neither initialised nor seeded when nothing has used it yet.
    """
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(int(seed))
        if cuda:
            torch.cuda.manual_seed_all(int(seed))
        yield
