"""Per-feature quantile scaling: each column through its own empirical CDF, then through the standard normal's
inverse CDF, x' = Phi^-1(F_j(x_j)), so that every column comes out about N(0, 1) whatever its units and shape.

Affine scaling (`Standardizer`) keeps a column's shape: a count that is 0 in 99% of rows and large in the rest, or
a heavy-tailed measurement, still has a few entries tens of standard deviations out, and a model with a learned
scale per column spends its likelihood on them. The quantile map bounds every column to about [-5.2, 5.2] and
spaces the values by rank. It is monotone, so the order within a column (what an outlier is) is kept; values beyond
the fitted range are clamped to the range's ends. Fitted on the rows given; saved as plain JSON beside the model.

The interpolation is scikit-learn's QuantileTransformer's (a value tied over several levels gets the middle of
them), written out here so that the fitted quantiles can be stored in a run folder without pickle. One difference:
scikit-learn sends a value equal to the column's minimum to the lower bound, -5.2, so a sparse column's zeros (most
rows) would land far out; here they get the middle of their tied levels like any other tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from ..errors import DataError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

MAX_LEVELS = 256  # quantile levels kept per column (fewer when there are fewer rows)
BOUND = 1e-7  # CDF values are clipped to [BOUND, 1 - BOUND]: Phi^-1 of them is about +-5.2


@dataclass(frozen=True)
class QuantileScaler:
    """Levels (Q,) in [0, 1] and the column values at them, `quantiles` (Q, F), non-decreasing down each column."""

    levels: np.ndarray
    quantiles: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, max_levels: int = MAX_LEVELS) -> "QuantileScaler":
        """The empirical quantiles of each column of `x` (N, F) at min(N, max_levels) evenly spaced levels."""
        values = np.asarray(x, dtype=np.float64)
        if values.ndim != 2 or len(values) < 2:
            raise DataError(f"quantile scaling needs a table of at least 2 rows, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise DataError("quantile scaling needs finite values (no NaN or infinity)")
        levels = np.linspace(0.0, 1.0, min(len(values), max_levels))
        quantiles = np.quantile(values, levels, axis=0)
        # np.quantile can give a value a hair below its predecessor by rounding; the CDF needs a monotone grid
        return cls(levels=levels, quantiles=np.maximum.accumulate(quantiles, axis=0))

    def transform(self, x: ArrayT) -> ArrayT:
        """Phi^-1(F_j(x_j)) per column j, in the type (and, for tensors, dtype and device) of `x` (N, F)."""
        from scipy.special import ndtri

        values = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64)
        self._check_width(values)
        cdf = np.empty_like(values)
        for j in range(values.shape[1]):
            q = self.quantiles[:, j]
            # forward and backward interpolation, averaged: a run of tied quantiles maps to the middle of its levels
            cdf[:, j] = 0.5 * (np.interp(values[:, j], q, self.levels)
                               - np.interp(-values[:, j], -q[::-1], -self.levels[::-1]))
        out = ndtri(np.clip(cdf, BOUND, 1.0 - BOUND))
        return torch.as_tensor(out, dtype=x.dtype, device=x.device) if torch.is_tensor(x) else out

    def inverse(self, x: ArrayT) -> ArrayT:
        """F_j^-1(Phi(x'_j)): back to the original units (within the fitted range)."""
        from scipy.special import ndtr

        values = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64)
        self._check_width(values)
        cdf = ndtr(values)
        out = np.stack([np.interp(cdf[:, j], self.levels, self.quantiles[:, j]) for j in range(values.shape[1])], 1)
        return torch.as_tensor(out, dtype=x.dtype, device=x.device) if torch.is_tensor(x) else out

    def _check_width(self, values: np.ndarray) -> None:
        if values.ndim != 2 or values.shape[1] != self.quantiles.shape[1]:
            raise DataError(f"expected rows of {self.quantiles.shape[1]} columns, got shape {values.shape}")

    def to_dict(self) -> dict:
        """Plain lists, for JSON; `kind` tells it from an affine Standardizer's file."""
        return {"kind": "quantile", "levels": self.levels.tolist(), "quantiles": self.quantiles.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> "QuantileScaler":
        """The inverse of `to_dict`; a DataError when the values are malformed."""
        try:
            levels = np.asarray(values["levels"], dtype=np.float64)
            quantiles = np.asarray(values["quantiles"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"invalid quantile scaling values ({error})") from None
        valid = (levels.ndim == 1 and len(levels) >= 2 and quantiles.ndim == 2 and quantiles.shape[0] == len(levels)
                 and np.isfinite(quantiles).all() and (np.diff(levels) > 0).all()
                 and levels[0] == 0.0 and levels[-1] == 1.0 and (np.diff(quantiles, axis=0) >= 0).all())
        if not valid:
            raise DataError("invalid quantile scaling values: levels must rise from 0 to 1 and each column's "
                            "quantiles must be finite and non-decreasing")
        return cls(levels=levels, quantiles=quantiles)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, QuantileScaler) and np.array_equal(self.levels, other.levels)
                and np.array_equal(self.quantiles, other.quantiles))
