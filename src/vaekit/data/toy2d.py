"""Generated 2-D data with well-separated modes, for seeing what a model does with multi-modal data.

    ring8     8 Gaussians on a circle of radius 2, standard deviation 0.1 each (a common benchmark of mode
              covering; the labels are the components)
    pinwheel  5 curved arms (Johnson et al. 2016): x = R(rads_k + rate * exp(f_0)) f, f ~ N([1, 0],
              diag(0.3^2, 0.05^2)), rate 0.25, rads_k = 2 pi k / 5; the labels are the arms

Each has 10,000 points by default (`size`), drawn with `seed` and split 70/10/20 like the other data sets. The
bundle's `meta["modes"]` says where the modes are, for `vaekit.metrics.modes.mode_report`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .base import DATASETS, DataBundle
from .common import DEFAULT_TEST_FRACTION, DEFAULT_VALID_FRACTION, split_tensors

RING_MODES, RING_RADIUS, RING_STD = 8, 2.0, 0.1
PINWHEEL = {"arms": 5, "radial_std": 0.3, "tangential_std": 0.05, "rate": 0.25}
DEFAULT_SIZE = 10_000
MAX_SIZE = 10_000_000


def ring_spec(modes: int = RING_MODES, radius: float = RING_RADIUS, std: float = RING_STD) -> dict:
    """The ring's modes as `mode_report` reads them."""
    angles = 2 * np.pi * np.arange(modes) / modes
    means = np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)
    return {"kind": "gaussians", "means": means.round(12).tolist(), "stds": [[std, std]] * modes}


def sample_ring(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points (n, 2) of the ring and their components (n,)."""
    spec = ring_spec()
    labels = rng.integers(0, RING_MODES, n)
    x = np.asarray(spec["means"])[labels] + RING_STD * rng.standard_normal((n, 2))
    return x, labels


def sample_pinwheel(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points (n, 2) of the pinwheel and their arms (n,) (Johnson et al. 2016's construction)."""
    arms = PINWHEEL["arms"]
    labels = rng.integers(0, arms, n)
    f = rng.standard_normal((n, 2)) * [PINWHEEL["radial_std"], PINWHEEL["tangential_std"]] + [1.0, 0.0]
    angle = 2 * np.pi * labels / arms + PINWHEEL["rate"] * np.exp(f[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * f[:, 0] - s * f[:, 1], s * f[:, 0] + c * f[:, 1]], 1), labels


def _bundle(name: str, x: np.ndarray, labels: np.ndarray, spec: dict, k: int, seed: int, valid_fraction: float,
            test_fraction: float) -> DataBundle:
    splits = split_tensors(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(labels.astype(np.int64)),
                           valid_fraction, test_fraction, seed)
    return DataBundle(name=name, splits=splits, event_shape=(2,), value_kind="real", num_classes=k,
                      class_names=tuple(str(i) for i in range(k)),
                      meta={"modes": spec, "generator_seed": seed, "size": int(x.shape[0])})


def _check_size(size: int) -> int:
    if not 10 <= int(size) <= MAX_SIZE:
        raise ConfigError(f"size must be between 10 and {MAX_SIZE:,}, got {size}")
    return int(size)


@DATASETS.register("ring8")
def ring8(*, seed: int = 0, valid_fraction: float = DEFAULT_VALID_FRACTION,
          test_fraction: float = DEFAULT_TEST_FRACTION, size: int = DEFAULT_SIZE) -> DataBundle:
    """8 Gaussians (std 0.1) on a circle of radius 2, 10,000 points."""
    x, labels = sample_ring(_check_size(size), np.random.default_rng(seed))
    return _bundle("ring8", x, labels, ring_spec(), RING_MODES, seed, valid_fraction, test_fraction)


@DATASETS.register("pinwheel")
def pinwheel(*, seed: int = 0, valid_fraction: float = DEFAULT_VALID_FRACTION,
             test_fraction: float = DEFAULT_TEST_FRACTION, size: int = DEFAULT_SIZE) -> DataBundle:
    """5 curved arms (Johnson et al. 2016), 10,000 points."""
    x, labels = sample_pinwheel(_check_size(size), np.random.default_rng(seed))
    return _bundle("pinwheel", x, labels, {"kind": "pinwheel", **PINWHEEL}, PINWHEEL["arms"], seed,
                   valid_fraction, test_fraction)
