"""Priors p(z) and the KL term KL(q(z|x) || p(z)).

A prior is an `nn.Module` whose `forward()` returns a distribution over z with event shape (D,). Its `kl`
uses the closed form when torch.distributions knows one, otherwise the single-sample Monte Carlo estimate
log q(z|x) - log p(z) at the z the model drew (unbiased; its expectation is the KL).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import distributions as D
from torch import nn

from .distributions import diagonal_normal
from .registry import Registry

PRIORS: Registry[Callable[..., "Prior"]] = Registry("prior")


class Prior(nn.Module):
    """Base class of priors over a `latent_dim`-dimensional z."""

    #: True when KL(q || p) has a closed form for a diagonal-Gaussian q.
    analytic_kl: bool = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self) -> D.Distribution:
        raise NotImplementedError

    def kl(self, qz: D.Distribution, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example: (B,) when analytic, else the MC estimate at `z` (S, B, D) -> (S, B)."""
        pz = self()
        if self.analytic_kl:
            return D.kl_divergence(qz, pz)
        return qz.log_prob(z) - pz.log_prob(z)

    def kl_per_dim(self, qz: D.Independent) -> torch.Tensor:
        """Closed-form KL of each latent dimension, (B, D); only for factorised priors."""
        raise NotImplementedError(f"{type(self).__name__} has no per-dimension KL")


@PRIORS.register("normal")
class StandardNormalPrior(Prior):
    """Standard normal N(0, I), with the closed-form KL of a diagonal Gaussian."""

    analytic_kl = True

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        # Buffers so that the prior follows the model's device and dtype.
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("scale", torch.ones(latent_dim), persistent=False)

    def forward(self) -> D.Independent:
        return diagonal_normal(self.loc, self.scale)

    def kl_per_dim(self, qz: D.Independent) -> torch.Tensor:
        # KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1) / 2 - log s, per dimension.
        mu, s = qz.base_dist.loc, qz.base_dist.scale
        return 0.5 * (mu.pow(2) + s.pow(2) - 1.0) - s.log()


def build_prior(name: str, latent_dim: int, **options) -> Prior:
    """Builds the prior registered as `name`."""
    return PRIORS.get(name)(latent_dim, **options)
