"""Likelihoods p(x|z): turn the decoder's output into a distribution over the data.

Each likelihood is a small `nn.Module` that says how many numbers the decoder must produce per data entry
(`params_per_entry`) and builds an `Independent` distribution whose `log_prob(x)` sums over the event
dimensions, so it returns one value per example: (S, B) or (B,).

    bernoulli         -log p(x|z) = binary cross-entropy (pytorch/examples' "BCE" loss)
    gaussian          fixed sigma: -log p = ||x - mu||^2 / (2 sigma^2) + const ("MSE" up to constants)
    gaussian-learned  one learned sigma per entry shared over examples (a free parameter, clamped)
    gaussian-hetero   sigma predicted by the decoder per example and entry
    discretized-logistic  8-bit data in [0, 1]: a mixture of `n_mix` logistics per entry, integrated over each of
                      the 256 bins, the edge bins out to -inf / +inf (PixelCNN++, Salimans et al. 2017); a
                      proper probability mass function, so its NLL is a code length (bits/dim comparable)
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

# Context: the data shape, (C, H, W) or (F,) (or (L,) token ids), the latent size and the vocabulary size of text
# (0 otherwise), which the builder knows; every other parameter is an option.
LIKELIHOODS: Registry[Callable[..., "Likelihood"]] = Registry("likelihood",
                                                               context=("event_shape", "latent_dim", "vocab_size"))

# Lower bound on learned standard deviations: keeps densities of near-constant pixels from diverging.
MIN_SCALE = 1e-3


class Likelihood(nn.Module):
    """Base class: `forward(params)` maps decoder output (..., P, *event) to p(x|z)."""

    params_per_entry: int = 1
    # Discrete data: the support is the `levels` values k / (levels - 1), k = 0 .. levels - 1 (None: continuous).
    # A likelihood with levels can losslessly code data (vaekit.apps.compress).
    levels: int | None = None
    # What the likelihood models, which callers ask instead of recognising it by name: "binary" (0/1 values, or
    # grey levels in [0, 1] as soft targets), "levels" (the `levels` discrete values), "continuous" (a density
    # over real values: its NLL can be negative and is no code length) or "tokens" (sentences of token ids).
    support: str = "continuous"

    def __init__(self, event_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = tuple(event_shape)

    def level_probs(self, px: D.Independent) -> torch.Tensor:
        """P(x = k / (levels - 1)) for every level k: (..., *event, levels) float64, each row summing to 1.

        The general rule evaluates log_prob at each level; likelihoods with a cheaper closed form override it.
        """
        if self.levels is None:
            raise TypeError(f"{type(self).__name__} is a density over continuous values, not over levels")
        base = px.base_dist
        shape = base.batch_shape
        logp = torch.stack([base.log_prob(torch.full(shape, k / (self.levels - 1)))
                            for k in range(self.levels)], dim=-1)
        return torch.softmax(logp.double(), dim=-1)

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        """The elementwise (not yet Independent) distribution for params of shape (..., P, *event)."""
        raise NotImplementedError

    def forward(self, params: torch.Tensor) -> D.Independent:
        return D.Independent(self.distribution(params), len(self.event_shape), validate_args=False)


class _ContinuousBernoulliSafe(D.Bernoulli):
    """Bernoulli whose log_prob also accepts grey levels in [0, 1] (the cross-entropy of pytorch/examples)."""

    # log_prob is -binary_cross_entropy_with_logits, as torch's Bernoulli: vaekit.core.distributions.summed_log_prob
    # may compute it in its own faster way
    cross_entropy_log_prob = True

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        logits, value = torch.broadcast_tensors(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """Bernoulli per entry (binary cross-entropy); accepts grey levels in [0, 1] as soft targets."""

    levels = 2
    support = "binary"

    def level_probs(self, px: D.Independent) -> torch.Tensor:
        p1 = torch.sigmoid(px.base_dist.logits.double())
        return torch.stack([1.0 - p1, p1], dim=-1)

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        return _ContinuousBernoulliSafe(logits=params.squeeze(-len(self.event_shape) - 1), validate_args=False)


def _check_sigma(sigma: float) -> None:
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"sigma must be a positive number, got {sigma}")


@LIKELIHOODS.register("gaussian")
class GaussianLikelihood(Likelihood):
    """Gaussian with a fixed standard deviation `sigma` (squared error up to constants)."""

    def __init__(self, event_shape: tuple[int, ...], sigma: float = 0.1) -> None:
        super().__init__(event_shape)
        _check_sigma(sigma)
        self.sigma = float(sigma)

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        loc = params.squeeze(-len(self.event_shape) - 1)
        return D.Normal(loc, torch.full_like(loc, self.sigma), validate_args=False)


@LIKELIHOODS.register("gaussian-learned")
class LearnedScaleGaussianLikelihood(Likelihood):
    """Gaussian with one learned standard deviation per data entry, shared across examples."""

    def __init__(self, event_shape: tuple[int, ...], sigma: float = 0.1) -> None:
        super().__init__(event_shape)
        _check_sigma(sigma)
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


# 8-bit data: 256 grey levels k / 255, k = 0..255.
N_BINS = 256
# Lower bound on the logistic's log-scale in [-1, 1] units (as PixelCNN++): a bin is never sharper than this.
MIN_LOG_SCALE = -7.0


class DiscretizedLogisticMixture(D.Distribution):
    """Per-entry mixture of M logistics discretized to the 256 levels k/255 of [0, 1] (Salimans et al. 2017).

    Parameters have the mixture axis just before the event axes: logits, loc, log_scale of shape
    (..., M, *event); loc and scale are in [-1, 1] units (x' = 2x - 1, bin half-width 1/255). The distribution
    is elementwise over (..., *event): for k = round(255 x),
        P(k) = sum_m pi_m [sigma((x' + 1/255 - mu_m) / s_m) - sigma((x' - 1/255 - mu_m) / s_m)],
    with sigma(+inf) = 1 in the top bin and sigma(-inf) = 0 in the bottom bin, so the 256 masses sum to 1.
    Values off the grid are rounded to the nearest level (and clamped to [0, 1]).
    """

    # Its parameters, as torch's distributions declare theirs (not validated: validate_args is False); what reads a
    # distribution's parameters by name (vaekit.export) finds them here.
    arg_constraints: dict = {"logits": D.constraints.real, "loc": D.constraints.real, "log_scale": D.constraints.real}
    support = D.constraints.unit_interval

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, n_event: int) -> None:
        self.mix_dim = -n_event - 1
        self.logits, self.loc = logits, loc
        self.log_scale = log_scale.clamp_min(MIN_LOG_SCALE)
        batch_shape = loc.shape[: loc.dim() + self.mix_dim] + loc.shape[loc.dim() + self.mix_dim + 1 :]
        super().__init__(batch_shape, validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        k = (value.clamp(0.0, 1.0) * (N_BINS - 1)).round()  # bin index 0..255, (..., *event)
        x = (2.0 * k / (N_BINS - 1) - 1.0).unsqueeze(self.mix_dim)  # bin centre in [-1, 1], (..., 1, *event)
        edge = k.unsqueeze(self.mix_dim)
        inv_s = torch.exp(-self.log_scale)
        a = inv_s * (x - self.loc + 1.0 / (N_BINS - 1))  # upper bin edge, standardised
        b = inv_s * (x - self.loc - 1.0 / (N_BINS - 1))  # lower bin edge
        # log(sigma(a) - sigma(b)) = b - softplus(a) - softplus(b) + log(expm1(a - b)): stable for any a > b.
        softplus_a, softplus_b = F.softplus(a), F.softplus(b)
        log_mid = b - softplus_a - softplus_b + torch.log(torch.expm1(a - b).clamp_min(1e-30))
        log_bottom = a - softplus_a  # k = 0: log sigma(a)
        log_top = -softplus_b  # k = 255: log(1 - sigma(b))
        log_bin = torch.where(edge == 0, log_bottom, torch.where(edge == N_BINS - 1, log_top, log_mid))
        log_pi = torch.log_softmax(self.logits, self.mix_dim)
        return torch.logsumexp(log_pi + log_bin, self.mix_dim)  # (..., *event)

    def level_probs(self) -> torch.Tensor:
        """P(k) for all 256 levels: (..., *event, 256) float64, from differences of each logistic's CDF at the bin
        edges (the same masses as log_prob, the edge bins reaching -inf / +inf).

        Computed in float32 (half the memory traffic of float64; the absolute error, ~1e-7, is at the floor
        that coders put under every probability anyway) and returned as float64."""
        # Inner edges between levels k-1 and k in [-1, 1] units: 2k/255 - 1 - 1/255, k = 1..255.
        inner = (2.0 * torch.arange(1, N_BINS, dtype=torch.float32) - 1.0) / (N_BINS - 1) - 1.0
        inv_s = torch.exp(-self.log_scale).unsqueeze(-1)  # (..., M, *event, 1)
        cdf = torch.sigmoid((inner - self.loc.unsqueeze(-1)) * inv_s)  # (..., M, *event, 255)
        masses = torch.empty((*cdf.shape[:-1], N_BINS), dtype=cdf.dtype)
        masses[..., 0] = cdf[..., 0]
        torch.sub(cdf[..., 1:], cdf[..., :-1], out=masses[..., 1:-1])
        torch.sub(1.0, cdf[..., -1], out=masses[..., -1])
        masses.clamp_(min=0.0)  # rounding can make a difference of near-equal CDFs slightly negative
        weights = torch.softmax(self.logits, self.mix_dim).unsqueeze(-1)
        return (weights * masses).sum(self.mix_dim - 1).double()  # (..., *event, 256)

    def level_cdf(self, k: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
        """P(level < b) at inner level boundaries b = first + k in 1..255, float32 (..., *event, E); P(level < 0)
        = 0 and P(level < 256) = 1 need no call.

        `k` (E,) holds integers shared by every entry; `first` (..., *event) optionally shifts them per entry
        (integers; 0 when not given). The mass of levels b0 .. b1 - 1 is the difference of the CDF at b1 and b0:
        a few boundaries give the mass of a group of levels without the 256-level table of `level_probs`.
        The result is a view of a tensor laid out boundary by boundary, (E, ..., *event): `.movedim(-1, 0)` is
        contiguous (computing it so vectorises over the entries, twice as fast as over the few boundaries)."""
        # Boundary b lies at (b - 1/2) / 255 in [0, 1], 2b/255 - 1 - 1/255 in [-1, 1] units: (first - loc) / s,
        # with the first's distance from the location taken before scaling (as precise as (edge - loc) / s), plus
        # the steps 2k/255 / s.
        inv_s = torch.exp(-self.log_scale)  # (..., M, *event)
        start = -1.0 - 1.0 / (N_BINS - 1)
        if first is not None:
            start = first.unsqueeze(self.mix_dim).to(inv_s) * (2.0 / (N_BINS - 1)) + start
        scaled = (start - self.loc) * inv_s  # the first boundary standardised, (..., M, *event)
        steps = (k.to(inv_s.device, torch.float64) * (2.0 / (N_BINS - 1))).to(inv_s.dtype)
        steps = steps.reshape(-1, *[1] * (inv_s.dim() - 1))  # (E, 1, ...): broadcasts against one component
        n_mix = self.loc.shape[self.mix_dim]
        weights = torch.softmax(self.logits, self.mix_dim) if n_mix > 1 else None
        cdf = None
        for m in range(n_mix):  # sum_m pi_m sigma(t_m), one component at a time, each (E, ..., *event)
            component = torch.addcmul(scaled.select(self.mix_dim, m), steps, inv_s.select(self.mix_dim, m))
            component = component.sigmoid_()
            if weights is None:
                return component.movedim(0, -1)
            w = weights.select(self.mix_dim, m)
            cdf = component.mul_(w) if cdf is None else cdf.addcmul_(component, w)
        return cdf.movedim(0, -1)

    @property
    def mean(self) -> torch.Tensor:
        """Mixture mean of the logistics, mapped to [0, 1] and clipped (the discretization is ignored)."""
        m = (torch.softmax(self.logits, self.mix_dim) * self.loc).sum(self.mix_dim)
        return ((m + 1.0) / 2.0).clamp(0.0, 1.0)

    @property
    def mode(self) -> torch.Tensor:
        """Approximate mode: the level nearest the location of the most heavily weighted component."""
        best = self.logits.argmax(self.mix_dim, keepdim=True)
        loc = self.loc.gather(self.mix_dim, best).squeeze(self.mix_dim)
        return (((loc + 1.0) / 2.0).clamp(0.0, 1.0) * (N_BINS - 1)).round() / (N_BINS - 1)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        mix = self.loc.dim() + self.mix_dim + len(sample_shape)  # the mixture axis, counted from the left
        logits = self.logits.expand(shape).movedim(mix, -1)  # (..., *event, M)
        choice = D.Categorical(logits=logits).sample().unsqueeze(mix)  # (..., 1, *event)
        loc = self.loc.expand(shape).gather(mix, choice).squeeze(mix)
        scale = self.log_scale.expand(shape).gather(mix, choice).squeeze(mix).exp()
        u = torch.rand_like(loc).clamp(1e-5, 1.0 - 1e-5)
        x = loc + scale * (torch.log(u) - torch.log1p(-u))  # logistic draw in [-1, 1] units
        return (((x + 1.0) / 2.0) * (N_BINS - 1)).round().clamp(0, N_BINS - 1) / (N_BINS - 1)


@LIKELIHOODS.register("discretized-logistic")
class DiscretizedLogisticLikelihood(Likelihood):
    """Mixture of discretized logistics for 8-bit data in [0, 1] (n_mix=1: one discretized logistic)."""

    levels = N_BINS
    support = "levels"

    def level_probs(self, px: D.Independent) -> torch.Tensor:
        return px.base_dist.level_probs()

    def level_cdf(self, px: D.Independent, k: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
        """P(level < first + k) at inner level boundaries (see `DiscretizedLogisticMixture.level_cdf`)."""
        return px.base_dist.level_cdf(k, first)

    def __init__(self, event_shape: tuple[int, ...], n_mix: int = 5) -> None:
        super().__init__(event_shape)
        if n_mix < 1:
            raise ConfigError(f"n_mix must be >= 1, got {n_mix}")
        self.n_mix = n_mix
        # Per entry: M logits, M locations, M log-scales; a single logistic needs no logit.
        self.params_per_entry = 2 if n_mix == 1 else 3 * n_mix

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        n_event = len(self.event_shape)
        if self.n_mix == 1:
            loc, log_scale = params.chunk(2, dim=-n_event - 1)  # (..., 1, *event) each
            logits = torch.zeros_like(loc)
        else:
            logits, loc, log_scale = params.chunk(3, dim=-n_event - 1)  # (..., M, *event) each
        return DiscretizedLogisticMixture(logits, loc, log_scale, n_event)


def build_likelihood(name: str, event_shape: tuple[int, ...], **options) -> Likelihood:
    """Builds the likelihood registered as `name` for data of shape `event_shape`; an option it does not take
    is a ConfigError."""
    return LIKELIHOODS.build(name, options, event_shape=tuple(event_shape))
