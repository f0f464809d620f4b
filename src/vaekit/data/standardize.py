"""Per-feature standardisation, x' = (x - mean) / scale, fitted on observed entries only.

One class for every place that standardises: the tabular loaders, the anomaly detector and the imputer.
It is saved with the run (`to_dict` / `from_dict`, plain JSON), so that new data can be scaled the same way
and the model's outputs mapped back to the original units with `inverse`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from ..errors import DataError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Standardizer:
    """Mean and scale per feature (arrays of the event shape, float64); a constant feature keeps scale 1."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None = None) -> "Standardizer":
        """Mean and (population) standard deviation of each feature over the rows of `x` (N, *event), counting
        only entries where `mask` is 1 (and that are not NaN)."""
        values = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64).copy()
        if mask is not None:
            observed = np.asarray(mask.detach().cpu() if torch.is_tensor(mask) else mask).astype(bool)
            values[~observed] = np.nan
        counts = (~np.isnan(values)).sum(0)
        if (counts == 0).any():
            raise DataError(f"{int((counts == 0).sum())} feature(s) have no observed value; drop them first")
        mean = np.nanmean(values, axis=0)
        scale = np.nanstd(values, axis=0)
        return cls(mean=mean, scale=np.where(scale > 0, scale, 1.0))

    def transform(self, x: ArrayT) -> ArrayT:
        """(x - mean) / scale, in the type (and, for tensors, dtype and device) of `x`."""
        mean, scale = self._like(x)
        return (x - mean) / scale

    def inverse(self, x: ArrayT) -> ArrayT:
        """x * scale + mean: back to the original units."""
        mean, scale = self._like(x)
        return x * scale + mean

    def _like(self, x):
        if torch.is_tensor(x):
            return (torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.scale, dtype=x.dtype, device=x.device))
        return self.mean, self.scale

    def to_dict(self) -> dict:
        """Plain lists, for JSON."""
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> "Standardizer":
        """The inverse of `to_dict`; a DataError when the values are malformed."""
        try:
            mean = np.asarray(values["mean"], dtype=np.float64)
            scale = np.asarray(values["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"invalid standardisation values ({error})") from None
        if mean.shape != scale.shape or not (np.isfinite(mean).all() and (scale > 0).all()):
            raise DataError("invalid standardisation values: mean and scale must match and scale be > 0")
        return cls(mean=mean, scale=scale)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Standardizer) and np.array_equal(self.mean, other.mean)
                and np.array_equal(self.scale, other.scale))
