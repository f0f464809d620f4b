"""Column types of a mixed table, each one registered entry: how its cells become the model's features, and which
distribution the decoder gives it (HI-VAE, Nazabal et al. 2020).

A table of C columns becomes F features: every column type says how many features a column takes (`width`) and
fills them from its cells; a missing cell is all-zero features with mask 0. The decoder gives 2 numbers per
feature, (..., 2, F), and each type reads its column's block of 2 x width numbers:

    real         x = (v - mean) / std                 Normal(mu, sigma), sigma learned per column
    positive     x = (log v - mean) / std              log-normal: Normal on the standardised log
    count        x = standardised log(1 + k)           negative binomial NB(r, p) (mean r p / (1 - p); an
                                                       overdispersed Poisson, which it approaches as r grows)
    binary       x = 0 / 1                             Bernoulli(logit)
    categorical  x = one-hot (K features)              Categorical(softmax(logits)), K logits
    ordinal      x = thermometer 1[level >= k], k = 1..K-1 (K-1 features)
                                                       cumulative link: P(level >= k) = sigmoid(eta - theta_k),
                                                       theta_1 < ... < theta_{K-1} (McCullagh 1980)

Every type's `mean` is in feature space and averages linearly over importance samples: the mean of a Normal, the
class probabilities (one-hot's expectation), P(level >= k), log(1 + E[k]). `decode` turns such features back
into a valid cell value (the mode of the probabilities, the median level, a non-negative integer count).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import distributions as D
from torch.nn import functional as F

from ..core.registry import Registry

COLUMN_TYPES: Registry = Registry("column type")
# Lower bound on a probability before its logarithm, and on learned scales.
EPS = 1e-6
MIN_SCALE = 1e-3


class ColumnType:
    """One kind of column. `levels`: the number of categories / ordered levels (0 for numeric types).

    `center` and `scale` standardise a numeric column's features (of v, log v or log(1 + k)); discrete types
    ignore them."""

    name = ""
    discrete = False  # its values are the column's `levels` labels
    numeric = False  # its cells are numbers
    help = ""

    def __init__(self, center: float = 0.0, scale: float = 1.0) -> None:
        self.center = float(center)
        self.scale = float(scale)

    # --- layout --------------------------------------------------------------------------------------------

    def width(self, levels: int) -> int:
        """Features of one column."""
        return 1

    # --- text side: cells -> features -> cells --------------------------------------------------------------

    def encode(self, values: np.ndarray, levels: int) -> np.ndarray:
        """Features (N, width) of the observed values (N,): numbers in the column's units, or level indices."""
        return ((values - self.center) / self.scale)[:, None]

    def decode(self, features: np.ndarray, levels: int) -> np.ndarray:
        """The value (N,) that features (N, width) stand for: a number in the column's units, or a level index."""
        return features[:, 0] * self.scale + self.center

    # --- model side ----------------------------------------------------------------------------------------

    def log_prob(self, params: torch.Tensor, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """log p(x | params) of the column: params (..., 2, w), x (..., w), scale (w,) the learned sigmas -> (...)."""
        raise NotImplementedError

    def mean(self, params: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The expected features (..., w) (see the module docstring)."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """One draw of the column as features (..., w)."""
        raise NotImplementedError


@COLUMN_TYPES.register("real")
class Real(ColumnType):
    """Real numbers: a Normal on the standardised value."""

    name = "real"
    numeric = True
    help = "real numbers (Gaussian on standardised values)"

    def _normal(self, params, scale):
        return D.Normal(params[..., 0, 0], scale[0].clamp_min(MIN_SCALE).expand_as(params[..., 0, 0]),
                        validate_args=False)

    def log_prob(self, params, x, scale):
        return self._normal(params, scale).log_prob(x[..., 0])

    def mean(self, params, scale):
        return params[..., 0, :1]

    def sample(self, params, scale):
        return self._normal(params, scale).sample()[..., None]


@COLUMN_TYPES.register("positive")
class Positive(Real):
    """Positive real numbers: log-normal, a Normal on the standardised logarithm."""

    name = "positive"
    help = "positive real numbers (log-normal)"

    def encode(self, values, levels):
        return super().encode(np.log(values), levels)

    def decode(self, features, levels):
        return np.exp(super().decode(features, levels))


@COLUMN_TYPES.register("count")
class Count(ColumnType):
    """Non-negative integers: negative binomial with mean m = exp(params[0]) and shape r = softplus(params[1]);
    the features are log(1 + k), standardised."""

    name = "count"
    numeric = True
    help = "non-negative integers (negative binomial)"

    def encode(self, values, levels):
        return super().encode(np.log1p(values), levels)

    def decode(self, features, levels):
        return np.maximum(0.0, np.round(np.expm1(super().decode(features, levels))))

    def _feature(self, k: torch.Tensor) -> torch.Tensor:
        return (torch.log1p(k) - self.center) / self.scale

    def _nb(self, params):
        # NB(r, logits = log m - log r): mean r * exp(logits) = m. Rates are bounded so that exp cannot overflow.
        log_mean = params[..., 0, 0].clamp(-20.0, 20.0)
        r = F.softplus(params[..., 1, 0]) + 1e-2
        return D.NegativeBinomial(total_count=r, logits=log_mean - r.log(), validate_args=False), log_mean

    def log_prob(self, params, x, scale):
        k = torch.expm1(x[..., 0] * self.scale + self.center).round().clamp_min(0.0)
        return self._nb(params)[0].log_prob(k)

    def mean(self, params, scale):
        return self._feature(self._nb(params)[1].exp())[..., None]

    def sample(self, params, scale):
        return self._feature(self._nb(params)[0].sample())[..., None]


@COLUMN_TYPES.register("binary")
class Binary(ColumnType):
    """Two values (yes/no, 0/1, two labels): Bernoulli; level 1 is the second label."""

    name = "binary"
    discrete = True
    help = "two values (Bernoulli)"

    def decode(self, features, levels):
        return (features[:, 0] > 0.5).astype(np.int64)

    def log_prob(self, params, x, scale):
        logit = params[..., 0, 0]
        return x[..., 0] * logit - F.softplus(logit)  # log Bernoulli(x; sigmoid(logit)), broadcasting

    def mean(self, params, scale):
        return torch.sigmoid(params[..., 0, :1])

    def sample(self, params, scale):
        return torch.bernoulli(torch.sigmoid(params[..., 0, :1]))


@COLUMN_TYPES.register("categorical")
class Categorical(ColumnType):
    """Unordered labels: one-hot features, a softmax over the K labels."""

    name = "categorical"
    discrete = True
    help = "unordered labels (categorical, one-hot)"

    def width(self, levels):
        return levels

    def encode(self, values, levels):
        return np.eye(levels)[values.astype(np.int64)]

    def decode(self, features, levels):
        return features.argmax(1).astype(np.int64)  # the most probable label

    def log_prob(self, params, x, scale):
        return (x * F.log_softmax(params[..., 0, :], dim=-1)).sum(-1)

    def mean(self, params, scale):
        return torch.softmax(params[..., 0, :], dim=-1)

    def sample(self, params, scale):
        logits = params[..., 0, :]
        return F.one_hot(D.Categorical(logits=logits, validate_args=False).sample(), logits.shape[-1]).to(logits.dtype)


@COLUMN_TYPES.register("ordinal")
class Ordinal(ColumnType):
    """Ordered labels: thermometer features 1[level >= k], a cumulative link model with ordered thresholds."""

    name = "ordinal"
    discrete = True
    help = "ordered labels (cumulative link)"

    def width(self, levels):
        return levels - 1

    def encode(self, values, levels):
        return (values[:, None] >= np.arange(1, levels)[None, :]).astype(np.float64)

    def decode(self, features, levels):
        return (features > 0.5).sum(1).astype(np.int64)  # the median level: P(level >= k) > 1/2 for k up to it

    def _at_least(self, params):
        """P(level >= k), k = 1..K-1 (..., K-1), decreasing in k: sigmoid(eta - theta_k), theta increasing."""
        eta = params[..., 0, :1]
        raw = params[..., 1, :]
        theta = torch.cat([raw[..., :1], F.softplus(raw[..., 1:]) + 1e-3], dim=-1).cumsum(-1)
        return torch.sigmoid(eta - theta)

    def _level_probs(self, params):
        """P(level = l), l = 0..K-1 (..., K)."""
        above = self._at_least(params)
        ones, zeros = torch.ones_like(above[..., :1]), torch.zeros_like(above[..., :1])
        cumulative = torch.cat([ones, above, zeros], dim=-1)  # P(level >= l), l = 0..K
        return (cumulative[..., :-1] - cumulative[..., 1:]).clamp_min(EPS)

    def log_prob(self, params, x, scale):
        probs = self._level_probs(params)  # (..., K)
        level = x.sum(-1).round().long().clamp(0, x.shape[-1])  # the thermometer's level (B,), broadcasting
        shape = torch.broadcast_shapes(probs.shape[:-1], level.shape)
        return probs.expand(*shape, probs.shape[-1]).log().gather(-1, level.expand(shape)[..., None])[..., 0]

    def mean(self, params, scale):
        return self._at_least(params)

    def sample(self, params, scale):
        probs = self._level_probs(params)
        level = D.Categorical(probs=probs, validate_args=False).sample()
        return (level[..., None] >= torch.arange(1, probs.shape[-1], device=probs.device)).to(probs.dtype)


def column_type(name: str, center: float = 0.0, scale: float = 1.0) -> ColumnType:
    """The registered column type `name` with its feature scaling (a ConfigError naming the choices otherwise)."""
    return COLUMN_TYPES.get(name)(center, scale)


def features_of(types_and_levels: list[tuple[str, int]]) -> int:
    """Total features of columns given as (type, levels)."""
    return sum(column_type(t).width(k) for t, k in types_and_levels)


__all__ = ["COLUMN_TYPES", "ColumnType", "column_type", "features_of"]
