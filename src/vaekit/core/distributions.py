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
