"""Posteriors q(z|x): what the encoder's output (B, 2D) becomes.

    gaussian  N(mu, diag sigma^2), sigma = softplus(.) + 1e-5                     (Kingma & Welling 2014)
    iaf       z_0 ~ N(mu, diag sigma^2), then T inverse autoregressive flow steps (Kingma et al. 2016)
                  z_t = s_t * z_{t-1} + (1 - s_t) * m_t,   [m_t, log-odds of s_t] = MADE(z_{t-1}, h)
              with s_t = sigmoid(.) in (0, 1), each output d reading only z_{t-1, <d} (and every entry of the
              context h, the encoder's output), and the order of the dimensions reversed between steps:
                  log q(z_T|x) = log N(z_0; mu, sigma^2) - sum_t sum_d log s_{t,d}
              The Jacobian of each step is triangular with diagonal s_t, hence the log-determinant.

A posterior plug-in is an `nn.Module` whose `forward(h)` maps the encoder output h (B, 2D) to a distribution
with batch shape (B,) and event shape (D,) that can `rsample`, `log_prob`, and give `mean` (a deterministic
code: the flow applied to the base mean) and `base_dist` (a diagonal Normal of q's per-dimension mean and spread,
which the collapse diagnostics and the latent tools read).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from .core.registry import Registry
from .errors import ConfigError

POSTERIORS: Registry[Callable[..., nn.Module]] = Registry("posterior", context=("latent_dim",))

# Smallest posterior standard deviation: keeps log q(z|x) finite.
MIN_POSTERIOR_SCALE = 1e-5
# Draws per example behind a flow posterior's per-dimension spread (`base_dist.scale`), from a fixed seed.
SPREAD_DRAWS = 32
SPREAD_SEED = 0
# Initial bias of the gates' log-odds: s_t starts near sigmoid(1.5) = 0.82, so each step starts close to the
# identity (the "forget gate" initialisation of Kingma et al. 2016).
GATE_BIAS = 1.5


def softplus_normal(h: torch.Tensor) -> D.Normal:
    """N(mu, sigma^2) per entry from raw network outputs h (..., 2D) = [mu, pre-scale]: sigma = softplus + 1e-5."""
    loc, raw_scale = h.chunk(2, dim=-1)
    return D.Normal(loc, F.softplus(raw_scale) + MIN_POSTERIOR_SCALE, validate_args=False)


def is_diagonal_normal(qz: D.Distribution) -> bool:
    """True for N(mu, diag sigma^2) as `diagonal_normal` builds it (the closed-form KL paths need one)."""
    return isinstance(qz, D.Independent) and isinstance(qz.base_dist, D.Normal)


def reparameterise(qz: D.Distribution, n_samples: int, noise: torch.Tensor | None = None) -> torch.Tensor:
    """n_samples reparameterised draws (S, B, D) of q(z|x); `noise` (S, B, D) gives their standard normal draws."""
    if noise is None:
        return qz.rsample((n_samples,))
    if is_diagonal_normal(qz):
        normal = qz.base_dist
        return normal.loc + normal.scale * noise.to(normal.loc)
    return qz.rsample((n_samples,), noise=noise)


@POSTERIORS.register("gaussian")
class GaussianPosterior(nn.Module):
    """q(z|x) = N(mu, diag sigma^2) from the encoder's [mu, pre-scale]."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self, h: torch.Tensor) -> D.Independent:
        return D.Independent(softplus_normal(h), 1, validate_args=False)


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out, in): MADE's autoregressive wiring."""

    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADEStep(nn.Module):
    """One IAF step: z (..., D) and context h (..., C) -> m, gate log-odds (..., D) each, output d depending on
    z_{<d} only (Germain et al. 2015), with a hidden layer of `hidden` units that also reads h."""

    def __init__(self, latent_dim: int, context_dim: int, hidden: int) -> None:
        super().__init__()
        d = latent_dim
        in_degree = torch.arange(1, d + 1)  # input d has degree d
        # hidden degrees cycle through 1 .. D-1 (with D = 1 there is nothing to condition on: degree 0)
        hid_degree = torch.arange(hidden) % max(1, d - 1) + 1 if d > 1 else torch.zeros(hidden, dtype=torch.long)
        self.z_in = MaskedLinear(d, hidden, (hid_degree[:, None] >= in_degree[None, :]))
        self.h_in = nn.Linear(context_dim, hidden)  # the context reaches every hidden unit
        out_mask = (in_degree[:, None] > hid_degree[None, :])  # output d reads hidden units of degree < d
        self.out = MaskedLinear(hidden, 2 * d, torch.cat([out_mask, out_mask], 0))
        with torch.no_grad():  # start near the identity: small outputs, gates open towards z
            self.out.weight.mul_(0.01)
            self.out.bias.zero_()
            self.out.bias[d:] = GATE_BIAS

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.elu(self.z_in(z) + self.h_in(h))
        m, gate = self.out(hidden).chunk(2, dim=-1)
        return m, gate


@POSTERIORS.register("iaf")
class IAFPosterior(nn.Module):
    """Inverse autoregressive flow on the diagonal Gaussian (Kingma et al. 2016): `steps` MADE steps of `hidden` units.

    See the module docstring for the transformation and its log-determinant."""

    def __init__(self, latent_dim: int, steps: int = 2, hidden: int = 128) -> None:
        super().__init__()
        if not 1 <= steps <= 64:
            raise ConfigError(f"model.posterior.steps must be 1 to 64, got {steps}")
        if not 1 <= hidden <= 65536:
            raise ConfigError(f"model.posterior.hidden must be 1 to 65536, got {hidden}")
        self.latent_dim, self.n_steps = latent_dim, steps
        self.steps = nn.ModuleList(MADEStep(latent_dim, 2 * latent_dim, hidden) for _ in range(steps))

    def forward(self, h: torch.Tensor) -> "FlowPosterior":
        return FlowPosterior(softplus_normal(h), self, h)

    def transform(self, z0: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_0 (..., B, D) -> z_T and sum_t sum_d log s_{t,d} (..., B)."""
        z, log_det = z0, torch.zeros(z0.shape[:-1], dtype=z0.dtype, device=z0.device)
        h = h.expand(*z0.shape[:-1], h.shape[-1])
        for t, step in enumerate(self.steps):
            if t > 0:
                z = z.flip(-1)  # reverse the order, so that every dimension gets to read the others
            m, gate = step(z, h)
            s = torch.sigmoid(gate)
            z = s * z + (1 - s) * m
            log_det = log_det + F.logsigmoid(gate).sum(-1)
        if self.n_steps % 2 == 0:
            z = z.flip(-1)  # T - 1 reversals so far: an odd number when T is even, so undo the last one
        return z, log_det

    def inverse(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_T -> z_0 and the same log-determinant, by D fixed-point passes per step (exact after D passes:
        output d depends on the entries before d only). Slow; only for codes the posterior did not draw."""
        h = h.expand(*z.shape[:-1], h.shape[-1])
        if self.n_steps % 2 == 0:
            z = z.flip(-1)
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for t in range(self.n_steps - 1, -1, -1):
            step, target, x = self.steps[t], z, z.clone()
            for _ in range(self.latent_dim):
                m, gate = step(x, h)
                s = torch.sigmoid(gate)
                x = (target - (1 - s) * m) / s
            m, gate = step(x, h)
            log_det = log_det + F.logsigmoid(gate).sum(-1)
            z = x.flip(-1) if t > 0 else x
        return z, log_det


class FlowPosterior(D.Distribution):
    """q(z|x) of the IAF posterior: the base Gaussian pushed through the flow. `log_prob` at the last draw reuses
    its log-determinant; at other codes it inverts the flow."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, base: D.Normal, flow: IAFPosterior, context: torch.Tensor) -> None:
        self.base, self.flow, self.context = base, flow, context
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (z, log q(z|x)) of the last draw
        self._moments: D.Normal | None = None
        super().__init__(base.loc.shape[:-1], base.loc.shape[-1:], validate_args=False)

    def _push(self, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z0 = self.base.loc + self.base.scale * eps
        z, log_det = self.flow.transform(z0, self.context)
        # log N(z_0; mu, sigma^2) = log N(eps; 0, 1) - sum log sigma
        log_base = (-0.5 * eps.pow(2) - 0.5 * math.log(2 * math.pi) - self.base.scale.log()).sum(-1)
        return z, log_base - log_det

    def rsample(self, sample_shape: torch.Size = torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.base.loc.shape
        eps = torch.randn(shape, dtype=self.base.loc.dtype, device=self.base.loc.device) if noise is None \
            else noise.to(self.base.loc)
        z, log_q = self._push(eps)
        self._last = (z, log_q)
        return z

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        if self._last is not None and self._last[0] is z:
            return self._last[1]
        z0, log_det = self.flow.inverse(z, self.context)
        return self.base.log_prob(z0).sum(-1) - log_det

    @property
    def mean(self) -> torch.Tensor:
        """The flow applied to the base mean (eps = 0): a deterministic code for reconstructions and plots."""
        return self.flow.transform(self.base.loc, self.context)[0]

    @property
    def base_dist(self) -> D.Normal:
        """A diagonal Normal (B, D) with loc = `mean` and q's per-dimension standard deviation, estimated from
        SPREAD_DRAWS draws of a fixed seed: what the diagnostics read as the spread of q."""
        if self._moments is None:
            generator = torch.Generator().manual_seed(SPREAD_SEED)
            eps = torch.randn((SPREAD_DRAWS, *self.base.loc.shape), generator=generator).to(self.base.loc)
            with torch.no_grad():
                z, _ = self._push(eps)
            self._moments = D.Normal(self.mean, z.std(0) + MIN_POSTERIOR_SCALE, validate_args=False)
        return self._moments


def build_posterior(name: str, latent_dim: int, **options) -> nn.Module:
    """Builds the posterior registered as `name`; an option it does not take is a ConfigError."""
    return POSTERIORS.build(name, options, latent_dim=latent_dim)


__all__ = ["POSTERIORS", "GaussianPosterior", "IAFPosterior", "FlowPosterior", "build_posterior",
           "is_diagonal_normal", "reparameterise"]
