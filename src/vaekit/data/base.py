"""The in-memory data set that every loader returns, and the data set registry.

Data sets here are small enough to live in memory as tensors (MNIST is 47M floats); the training loop slices
pre-shuffled tensors, which is faster than a DataLoader and needs no worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

from ..registry import Registry

# What kind of values x holds; it picks the default likelihood:
#   "binary" -> {0, 1}                 (Bernoulli)
#   "unit"   -> [0, 1] grey levels      (Bernoulli as in pytorch/examples, or a continuous one)
#   "real"   -> standardised reals     (Gaussian)
ValueKind = Literal["binary", "unit", "real"]


@dataclass(frozen=True)
class Split:
    """One split: `x` is (N, *event_shape) float32, `y` is (N,) int64 labels or None."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class DataBundle:
    """A data set with its splits ("train", "valid", "test") and what a model needs to know about it."""

    name: str
    splits: dict[str, Split]
    event_shape: tuple[int, ...]
    value_kind: ValueKind
    num_classes: int = 0
    class_names: tuple[str, ...] | None = None
    # Resample x ~ Bernoulli(x) for every training batch (dynamic binarization); evaluation splits are
    # binarized once with a fixed seed by the loader.
    dynamic_binarize: bool = False
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        """The split called `name`; a DataError naming the available splits otherwise."""
        from ..errors import DataError

        if name in self.splits:
            return self.splits[name]
        raise DataError(f"data set {self.name!r} has no {name!r} split (it has: {', '.join(self.splits)})")

    @property
    def is_image(self) -> bool:
        """True for (C, H, W) data."""
        return len(self.event_shape) == 3


# A loader takes the resolved options and returns a bundle.
DATASETS: Registry[Callable[..., DataBundle]] = Registry("dataset")
