"""Likelihoods p(x|z): turn the decoder's output into a distribution over the data.

Each likelihood is a small `nn.Module` that says how many numbers the decoder must produce per data entry
(`params_per_entry`) and builds an `Independent` distribution whose `log_prob(x)` sums over the event
dimensions, so it returns one value per example: (S, B) or (B,).

    bernoulli         -log p(x|z) = binary cross-entropy (pytorch/examples' "BCE" loss)
    gaussian          fixed sigma: -log p = ||x - mu||^2 / (2 sigma^2) + const ("MSE" up to constants)
    gaussian-learned  one learned sigma per entry shared over examples (a free parameter, clamped)
    gaussian-hetero   sigma predicted by the decoder per example and entry
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from .registry import Registry

LIKELIHOODS: Registry[Callable[..., "Likelihood"]] = Registry("likelihood")

# Lower bound on learned standard deviations: keeps densities of near-constant pixels from diverging.
MIN_SCALE = 1e-3


class Likelihood(nn.Module):
    """Base class: `forward(params)` maps decoder output (..., P, *event) to p(x|z)."""

    params_per_entry: int = 1

    def __init__(self, event_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = tuple(event_shape)

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        """The elementwise (not yet Independent) distribution for params of shape (..., P, *event)."""
        raise NotImplementedError

    def forward(self, params: torch.Tensor) -> D.Independent:
        return D.Independent(self.distribution(params), len(self.event_shape), validate_args=False)


class _ContinuousBernoulliSafe(D.Bernoulli):
    """Bernoulli whose log_prob also accepts grey levels in [0, 1] (the cross-entropy of pytorch/examples)."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        logits, value = torch.broadcast_tensors(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """Bernoulli per entry (binary cross-entropy); accepts grey levels in [0, 1] as soft targets."""

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        return _ContinuousBernoulliSafe(logits=params.squeeze(-len(self.event_shape) - 1), validate_args=False)


@LIKELIHOODS.register("gaussian")
class GaussianLikelihood(Likelihood):
    """Gaussian with a fixed standard deviation `sigma` (squared error up to constants)."""

    def __init__(self, event_shape: tuple[int, ...], sigma: float = 0.1) -> None:
        super().__init__(event_shape)
        self.sigma = float(sigma)

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        loc = params.squeeze(-len(self.event_shape) - 1)
        return D.Normal(loc, torch.full_like(loc, self.sigma), validate_args=False)


@LIKELIHOODS.register("gaussian-learned")
class LearnedScaleGaussianLikelihood(Likelihood):
    """Gaussian with one learned standard deviation per data entry, shared across examples."""

    def __init__(self, event_shape: tuple[int, ...], sigma: float = 0.1) -> None:
        super().__init__(event_shape)
        # log sigma, one per entry; initialised at `sigma`.
        self.log_scale = nn.Parameter(torch.full(self.event_shape, math.log(sigma)))

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        loc = params.squeeze(-len(self.event_shape) - 1)
        scale = self.log_scale.exp().clamp_min(MIN_SCALE).expand_as(loc)
        return D.Normal(loc, scale, validate_args=False)


@LIKELIHOODS.register("gaussian-hetero")
class HeteroscedasticGaussianLikelihood(Likelihood):
    """Gaussian whose mean and standard deviation are both predicted by the decoder."""

    params_per_entry = 2

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        loc, raw_scale = params.unbind(-len(self.event_shape) - 1)
        return D.Normal(loc, F.softplus(raw_scale) + MIN_SCALE, validate_args=False)


def build_likelihood(name: str, event_shape: tuple[int, ...], **options) -> Likelihood:
    """Builds the likelihood registered as `name` for data of shape `event_shape`."""
    return LIKELIHOODS.get(name)(tuple(event_shape), **options)
