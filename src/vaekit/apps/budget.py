"""Training length and threads of the applications' estimators, which train through `vaekit.fit`."""

from __future__ import annotations

import math

# The estimators' networks are small: extra threads buy nothing there, and on a busy machine their
# spin-waiting made a fit 40x slower (2 s -> 94 s measured on 2 shared cores).
ESTIMATOR_THREADS = 1


def auto_epochs(n: int, batch_size: int, steps: int, bounds: tuple[int, int]) -> int:
    """Epochs giving about `steps` optimiser steps on `n` rows, clipped to `bounds`."""
    per_epoch = math.ceil(n / batch_size)
    return int(min(max(math.ceil(steps / per_epoch), bounds[0]), bounds[1]))
