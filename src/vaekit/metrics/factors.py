"""Data with known generative factors, and representations of it, as the disentanglement metrics consume them.

The metrics need two things (as in disentanglement_lib's `GroundTruthData`, Locatello et al. 2019):
    a factor source   `sample(n, rng)` -> factor indices (n, K) and observations (n, *event), and
                      `sample_fixed(ks, values, rng)` -> n draws whose factor ks[i] equals values[i] (the
                      beta-VAE and FactorVAE scores hold one factor fixed and let the others vary)
    a representation  observations (n, *event) -> codes (n, D) numpy array, e.g. a VAE's posterior means

`FactorGrid` is a source over every combination of the factor values with a renderer (the `shapes` data sets);
`FactorGrid.identity(sizes)` returns the factor values themselves as observations, so that the metrics can be
checked on reference representations (the true factors, a random rotation of them, noise) without any model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..data.base import DataBundle
from ..errors import ConfigError, DataError

Representation = Callable[[torch.Tensor], np.ndarray]  # observations (n, *event) -> codes (n, D)


@dataclass(frozen=True)
class FactorGrid:
    """Factors uniform over the grid of all combinations; `render(factors (n, K)) -> observations (n, *event)`."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    render: Callable[[np.ndarray], torch.Tensor]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.sizes) or not self.sizes or min(self.sizes) < 1:
            raise DataError(f"factor names {self.names} and sizes {self.sizes} must match and be positive")

    @property
    def num_factors(self) -> int:
        return len(self.sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n factor combinations drawn uniformly, (n, K) int64."""
        return np.stack([rng.integers(0, size, n) for size in self.sizes], axis=1).astype(np.int64)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
        """n uniform factor combinations (n, K) and their observations (n, *event)."""
        factors = self.sample_factors(n, rng)
        return factors, self.render(factors)

    def sample_fixed(self, ks: np.ndarray, values: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
        """n draws in which factor ks[i] of draw i equals values[i] and every other factor is uniform."""
        ks, values = np.asarray(ks, dtype=np.int64), np.asarray(values, dtype=np.int64)
        factors = self.sample_factors(len(values), rng)
        factors[np.arange(len(values)), ks] = values
        return factors, self.render(factors)

    @staticmethod
    def identity(sizes: Sequence[int], names: Sequence[str] | None = None) -> "FactorGrid":
        """A source whose observations are the factor indices themselves as float64 (n, K): reference cases."""
        names = tuple(names or (f"factor{i}" for i in range(len(sizes))))
        return FactorGrid(names, tuple(int(s) for s in sizes),
                          lambda f: torch.as_tensor(np.asarray(f, dtype=np.float64)))


def has_factors(bundle: DataBundle) -> bool:
    """True when the data set carries generative factor labels and a renderer (e.g. 'shapes')."""
    return "factor_sizes" in bundle.meta and callable(bundle.meta.get("render"))


def factor_source(bundle: DataBundle) -> FactorGrid:
    """The factor source of a data set such as 'shapes'; a one-line DataError for data sets without factors."""
    if not has_factors(bundle):
        raise DataError(f"data set {bundle.name!r} has no generative factors; disentanglement metrics need one "
                        "such as 'shapes'")
    meta = bundle.meta
    sizes = tuple(int(s) for s in meta["factor_sizes"])
    names = tuple(meta.get("factor_names") or (f"factor{i}" for i in range(len(sizes))))
    return FactorGrid(names, sizes, meta["render"])


def model_representation(model, batch_size: int = 1024) -> Representation:
    """The posterior means E_q[z|x] of an unconditional VAE, as the representation (the usual choice)."""
    if getattr(model, "conditional", False):
        raise ConfigError("disentanglement metrics need an unconditional model; this one is conditioned on labels")
    from ..evaluate import posterior_means

    def represent(x: torch.Tensor) -> np.ndarray:
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        codes = posterior_means(model, x.to(device), None, batch_size=batch_size)
        model.train(was_training)
        return codes.cpu().numpy().astype(np.float64)

    return represent


def encode_samples(source: FactorGrid, represent: Representation, n: int, rng: np.random.Generator,
                   batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Codes (n, D) and factors (n, K) of n uniform draws, rendered and encoded `batch_size` at a time."""
    codes, factors = [], []
    for start in range(0, n, batch_size):
        f, x = source.sample(min(batch_size, n - start), rng)
        codes.append(np.asarray(represent(x), dtype=np.float64))
        factors.append(f)
    return np.concatenate(codes), np.concatenate(factors)
