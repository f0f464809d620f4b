"""Distributions that torch.distributions lacks, and small helpers around them.

Everything here returns `torch.distributions` objects so that downstream code only calls `log_prob`,
`rsample`, `mean` and `kl_divergence`.
"""

from __future__ import annotations

import math

import torch
from torch import distributions as D


class Masked(D.Distribution):
    """Wraps an `Independent` distribution so that only observed entries count in `log_prob`.

    `mask` has the data's shape (B, *event) with 1 for observed and 0 for missing entries; the log-probability
    is the sum over observed entries only: log p(x_obs | z) = sum_i m_i log p(x_i | z).
    """

    arg_constraints: dict = {}

    def __init__(self, base: D.Independent, mask: torch.Tensor) -> None:
        self.base = base
        self.mask = mask
        self.n_event = base.reinterpreted_batch_ndims
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        elementwise = self.base.base_dist.log_prob(value)  # (S?, B, *event)
        masked = elementwise * self.mask.to(elementwise.dtype)
        return masked.flatten(-self.n_event).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        return self.base.mean

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.base.sample(sample_shape)


def diagonal_normal(loc: torch.Tensor, scale: torch.Tensor) -> D.Independent:
    """N(loc, diag(scale^2)) over the last dimension: log_prob returns one value per row."""
    return D.Independent(D.Normal(loc, scale, validate_args=False), 1, validate_args=False)


def log_mean_exp(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log(mean(exp(values))) along `dim`, computed stably."""
    return torch.logsumexp(values, dim) - math.log(values.shape[dim])


# Entries multiplied together before one logarithm in `summed_log_prob`'s Bernoulli path (at most; a divisor of the
# row's width from half of it up is used when there is one): each factor lies in [1/2, 1], so a product of 64 stays
# above 2^-64, far from float32's smallest normal number (2^-126).
LOG_GROUP = 64


def _log_group(width: int) -> int:
    """The group size of `_sum_log_sigmoid_abs` for rows of `width`: a divisor in [LOG_GROUP / 2, LOG_GROUP] if
    there is one (no remainder to take apart), else LOG_GROUP."""
    return next((g for g in range(LOG_GROUP, LOG_GROUP // 2 - 1, -1) if width % g == 0), LOG_GROUP)


def _sum_log_sigmoid_abs(a: torch.Tensor) -> torch.Tensor:
    """sum over the last dimension of log sigmoid(a) for a >= 0, overwriting `a` (..., E) -> (...).

    log is the slowest elementwise function on a CPU (several times exp or sigmoid), so the factors sigmoid(a) in
    [1/2, 1] are multiplied in groups of up to LOG_GROUP and one log is taken per group: sum log = log prod."""
    a.sigmoid_()
    group = _log_group(a.shape[-1])
    width = a.shape[-1] - a.shape[-1] % group
    total = a[..., :width].unflatten(-1, (-1, group)).prod(-1).log_().sum(-1)
    if width < a.shape[-1]:
        total += a[..., width:].log().sum(-1)
    return total


def _bernoulli_log_prob(logits: torch.Tensor, value: torch.Tensor, consume: bool) -> torch.Tensor:
    """sum_i x_i l_i - softplus(l_i) over the last dimension (logits l (..., E), value x in [0, 1] broadcasting):
    -binary_cross_entropy_with_logits summed, in a few passes. With softplus(l) = (l + |l|)/2 - log sigmoid(|l|) and
    s = 2x - 1,
        log p(x | l) = -sum_i (|l_i| - s_i l_i) / 2 + sum_i log sigmoid(|l_i|),
    two sums of terms of one sign (|s_i| <= 1), so that no large partial sums cancel in float32 (the first term is
    0 for a binary x_i whose sign the logit predicts). `consume`: the logits may be overwritten."""
    sign = 2.0 * value - 1.0
    magnitude = logits.abs()  # (..., E), overwritten by the last term
    # |l| - s l, into the logits' memory when they may be overwritten and have the result's shape
    into = consume and logits.is_contiguous() and logits.shape == torch.broadcast_shapes(logits.shape, sign.shape)
    misfit = torch.addcmul(magnitude, logits, sign, value=-1, out=logits if into else None)
    return -0.5 * misfit.sum(-1) + _sum_log_sigmoid_abs(magnitude)


def _sum_log_scale(scale: torch.Tensor, n_event: int) -> torch.Tensor:
    """sum of log scale over the last `n_event` dimensions, the log taken once per distinct value when `scale` is
    broadcast along leading dimensions (stride 0: one learned sigma per entry shared by every example)."""
    lead = scale.dim() - n_event
    compact = scale[tuple(slice(0, 1) if scale.stride(i) == 0 else slice(None) for i in range(lead))]
    return compact.log().flatten(lead).sum(-1)


def _normal_log_prob(loc: torch.Tensor, scale: torch.Tensor, value: torch.Tensor, n_event: int) -> torch.Tensor:
    """log N(x; mu, diag sigma^2) summed over the last `n_event` dimensions:
    -sum ((x - mu) / sigma)^2 / 2 - sum log sigma - n log(2 pi) / 2."""
    standardised = (value - loc).div_(scale)  # broadcast (..., *event), a new tensor
    quadratic = standardised.square_().flatten(-n_event).sum(-1)
    n = math.prod(standardised.shape[standardised.dim() - n_event :])
    return -0.5 * quadratic - _sum_log_scale(scale, n_event) - 0.5 * n * math.log(2 * math.pi)


def summed_log_prob(p: D.Distribution, value: torch.Tensor, consume: bool = False) -> torch.Tensor:
    """`p.log_prob(value)`, with faster paths for the two densities that importance sampling evaluates millions
    of times: `Independent` Bernoulli (given logits; a subclass whose log_prob is the same cross-entropy says so with
    `cross_entropy_log_prob = True`) and `Independent` Normal, in float32 or float64. Every other distribution (and
    dtype) gets its own `log_prob`. Equal to `log_prob` up to float rounding. `consume`: the caller discards `p`
    afterwards, so its parameters may be overwritten (saves a copy of the Bernoulli logits)."""
    if type(p) is not D.Independent or value.dtype not in (torch.float32, torch.float64):
        return p.log_prob(value)
    base, n_event = p.base_dist, p.reinterpreted_batch_ndims
    bernoulli = type(base) is D.Bernoulli or getattr(base, "cross_entropy_log_prob", False)
    if bernoulli and "logits" in base.__dict__ and base.logits.dtype == value.dtype:
        logits, value = base.logits.flatten(-n_event), value.flatten(-n_event)  # (..., E)
        return _bernoulli_log_prob(logits, value, consume)
    if type(base) is D.Normal and base.loc.dtype == value.dtype:
        return _normal_log_prob(base.loc, base.scale, value, n_event)
    return p.log_prob(value)
