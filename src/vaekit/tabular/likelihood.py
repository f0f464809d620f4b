"""The likelihood "mixed": one distribution per table column, each of its registered column type (HI-VAE,
Nazabal et al. 2020), over the table's F features (see `vaekit.tabular.columns`).

    log p(x | z) = sum_j log p_j(x_j | params_j(z))      j over the columns, each from its block of features

Option `columns`: the columns in order as "type" or "type:levels" ("real", "count", "categorical:4",
"ordinal:5"); their widths must add up to the data's F features (data of more dimensions are read flattened).
Without columns every feature is "real". Options `centers` and `scales` (one number per column, default 0 and
1) are the standardisation of each numeric column's feature, which a count's distribution over whole numbers
undoes (k = exp(x * scale + center) - 1); a Gaussian column is modelled in standardised units as it is. The elementwise `log_prob` puts each column's
log-probability at the first feature of its block and 0 at the others, so that a mask over features that is
equal within a block (as the table encoder makes it) counts each observed column once.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import distributions as D
from torch import nn

from ..errors import ConfigError
from ..likelihoods import LIKELIHOODS, Likelihood
from .columns import COLUMN_TYPES, column_type


def parse_columns(columns: Sequence[str]) -> list[tuple[str, int]]:
    """("type" or "type:levels") strings as (type, levels) pairs; a ConfigError for unknown types or levels."""
    parsed = []
    for spec in columns:
        name, _, levels = str(spec).partition(":")
        if name not in COLUMN_TYPES:
            raise ConfigError(f"unknown column type {name!r} in columns; choose one of: {', '.join(COLUMN_TYPES)}")
        kind = column_type(name)
        if kind.discrete != bool(levels):
            raise ConfigError(f"column type {name!r} " + ("needs its number of levels, e.g. 'categorical:3'"
                                                          if kind.discrete else "takes no levels") + f" (got {spec!r})")
        count = int(levels) if levels.isdigit() else -1
        if kind.discrete and count < (2 if name in ("binary", "ordinal") else 1):
            raise ConfigError(f"column {spec!r}: the number of levels must be a whole number >= "
                              f"{2 if name in ('binary', 'ordinal') else 1}")
        if name == "binary" and count != 2:
            raise ConfigError(f"column {spec!r}: a binary column has 2 levels")
        parsed.append((name, count if kind.discrete else 0))
    return parsed


class MixedColumns(D.Distribution):
    """Elementwise view of the per-column distributions: batch shape (..., F); `log_prob` (..., F)."""

    arg_constraints: dict = {}

    def __init__(self, params: torch.Tensor, blocks: list[tuple[object, int, int]], scale: torch.Tensor,
                 event_shape: tuple[int, ...]) -> None:
        self.n_event = len(event_shape)
        self.params = params.flatten(-self.n_event)  # (..., 2, *event) -> (..., 2, F)
        self.blocks = blocks  # (column type, first feature, width)
        self.scale = scale.flatten()  # (F,)
        super().__init__(params.shape[: -self.n_event - 1] + tuple(event_shape), validate_args=False)

    def _features(self, value: torch.Tensor) -> torch.Tensor:
        return value.flatten(-self.n_event)  # (..., *event) -> (..., F)

    def _event(self, features: torch.Tensor) -> torch.Tensor:
        return features.unflatten(-1, self.batch_shape[-self.n_event :])  # (..., F) -> (..., *event)

    def _each(self, method: str, *args):
        return [getattr(kind, method)(self.params[..., start : start + width], *[a[..., start : start + width]
                                                                                  for a in args],
                                      self.scale[start : start + width])
                for kind, start, width in self.blocks]

    def column_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log p_j(x_j) of every column (..., C)."""
        return torch.stack(self._each("log_prob", self._features(value)), dim=-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        per_column = self.column_log_prob(value)  # (..., C)
        out = torch.zeros(per_column.shape[:-1] + (self.params.shape[-1],), dtype=per_column.dtype,
                          device=per_column.device)
        firsts = torch.tensor([start for _, start, _ in self.blocks], device=out.device)
        return self._event(out.index_copy_(-1, firsts, per_column))  # each column at its first feature

    @property
    def mean(self) -> torch.Tensor:
        return self._event(torch.cat(self._each("mean"), dim=-1))

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        if sample_shape != torch.Size():
            raise ValueError("MixedColumns draws one sample per set of parameters")
        with torch.no_grad():
            return self._event(torch.cat(self._each("sample"), dim=-1))


@LIKELIHOODS.register("mixed")
class MixedLikelihood(Likelihood):
    """Mixed column types (real, positive, count, binary, categorical, ordinal): one distribution per column."""

    params_per_entry = 2
    support = "mixed"

    def __init__(self, event_shape: tuple[int, ...], columns: Sequence[str] = (), centers: Sequence[float] = (),
                 scales: Sequence[float] = ()) -> None:
        super().__init__(event_shape)
        n_features = math.prod(self.event_shape)
        # no columns given: every feature is a real number (then it is the 'gaussian-learned' likelihood)
        self.columns = parse_columns(columns) if columns else [("real", 0)] * n_features
        centers = list(centers) or [0.0] * len(self.columns)
        scales = list(scales) or [1.0] * len(self.columns)
        if len(centers) != len(self.columns) or len(scales) != len(self.columns):
            raise ConfigError(f"centers and scales need one number per column ({len(self.columns)}), got "
                              f"{len(centers)} and {len(scales)}")
        if not all(math.isfinite(v) and v > 0 for v in scales):
            raise ConfigError("scales must be positive numbers")
        self.blocks, start = [], 0
        for (name, levels), center, scale in zip(self.columns, centers, scales):
            kind = column_type(name, center, scale)
            self.blocks.append((kind, start, kind.width(levels)))
            start += kind.width(levels)
        if start != n_features:
            raise ConfigError(f"the columns take {start} features, the data have {n_features}")
        # log sigma of the real and positive columns (the others ignore theirs), one per feature; standardised
        # columns start at 1.
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        return MixedColumns(params, self.blocks, self.log_scale.exp(), self.event_shape)

    def column_log_prob(self, px: D.Independent, x: torch.Tensor) -> torch.Tensor:
        """log p_j(x_j | z) of every column (..., C) from the distribution this likelihood made."""
        return px.base_dist.column_log_prob(x)


__all__ = ["MixedLikelihood", "MixedColumns", "parse_columns"]
