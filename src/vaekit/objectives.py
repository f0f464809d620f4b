"""Training objectives: the ELBO with its common knobs, and the IWAE bound.

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))                                 (Kingma & Welling 2014)
    loss    = -E_q[log p(x|z)] + beta * w(step) * KL                              (beta-VAE, Higgins et al. 2017)
    w(step) = min(1, step / warmup_steps)                                          (KL warm-up, Bowman et al. 2016)
    free bits: KL term = sum_d max(lambda, mean_batch KL_d)                       (Kingma et al. 2016)
    IWAE_k(x) = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)],  z_i ~ q(z|x)             (Burda et al. 2016)

An objective is called as `objective(model, batch, step) -> Loss`; `Loss.total` is the scalar to minimise
and `Loss.terms` holds per-example values (B,) in nats, for logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .distributions import log_mean_exp
from .errors import ConfigError
from .models.vae import VAE, Batch
from .registry import Registry

OBJECTIVES: Registry[Callable[..., "Objective"]] = Registry("objective")


@dataclass
class Loss:
    """The scalar to minimise and per-example terms (B,) in nats."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class Objective:
    """Base class: `__call__(model, batch, step) -> Loss`."""

    def __call__(self, model: VAE, batch: Batch, step: int = 0) -> Loss:
        raise NotImplementedError


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """beta times the linear warm-up factor min(1, step / warmup_steps)."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


@OBJECTIVES.register("elbo")
class ELBO(Objective):
    """Evidence lower bound with beta weighting, KL warm-up and free bits."""

    def __init__(self, beta: float = 1.0, warmup_steps: int = 0, free_bits: float = 0.0, n_samples: int = 1) -> None:
        if beta < 0 or free_bits < 0 or warmup_steps < 0 or n_samples < 1:
            raise ConfigError("objective: beta, free_bits and warmup_steps must be >= 0 and n_samples >= 1")
        self.beta, self.warmup_steps, self.free_bits, self.n_samples = beta, warmup_steps, free_bits, n_samples

    def __call__(self, model: VAE, batch: Batch, step: int = 0) -> Loss:
        out = model(batch.x, batch.y, n_samples=self.n_samples, mask=batch.mask)
        recon = -out.px.log_prob(batch.x).mean(0)  # (S, B) -> (B,)
        kl = model.prior.kl(out.qz, out.z)  # (B,) analytic or (S, B) Monte Carlo
        if kl.dim() == 2:
            kl = kl.mean(0)
        kl_term = kl
        if self.free_bits > 0:
            kl_term = self._free_bits_kl(model, out.qz, kl)
        weight = kl_weight(step, self.beta, self.warmup_steps)
        total = (recon + weight * kl_term).mean()
        return Loss(total=total, terms={"loss": recon + kl, "recon": recon, "kl": kl})

    def _free_bits_kl(self, model: VAE, qz, kl: torch.Tensor) -> torch.Tensor:
        # Each dimension's batch-averaged KL is held at >= lambda nats, so the optimiser gains nothing by
        # pushing it lower; the per-example values keep their shape for the mean that follows.
        try:
            per_dim = model.prior.kl_per_dim(qz)  # (B, D)
        except NotImplementedError:
            floor = self.free_bits * model.latent_dim  # one floor on the total KL
            return kl + (floor - kl.mean()).clamp_min(0.0)
        batch_mean = per_dim.mean(0)  # (D,)
        lifted = torch.maximum(batch_mean, torch.full_like(batch_mean, self.free_bits))
        return per_dim.sum(1) + (lifted - batch_mean).sum()


@OBJECTIVES.register("iwae")
class IWAE(Objective):
    """Importance-weighted bound with k samples; k=1 equals the ELBO."""

    def __init__(self, k: int = 5) -> None:
        if k < 1:
            raise ConfigError("objective 'iwae' needs k >= 1")
        self.k = k

    def __call__(self, model: VAE, batch: Batch, step: int = 0) -> Loss:
        out = model(batch.x, batch.y, n_samples=self.k, mask=batch.mask)
        log_px_z = out.px.log_prob(batch.x)  # (k, B)
        log_w = log_px_z + out.pz.log_prob(out.z) - out.qz.log_prob(out.z)  # (k, B)
        bound = log_mean_exp(log_w, 0)  # (B,)
        kl_mc = (out.qz.log_prob(out.z) - out.pz.log_prob(out.z)).mean(0)
        return Loss(total=-bound.mean(), terms={"loss": -bound, "recon": -log_px_z.mean(0), "kl": kl_mc})


def build_objective(name: str, **options) -> Objective:
    """Builds the objective registered as `name`; options it does not take are ignored."""
    import inspect

    factory = OBJECTIVES.get(name)
    accepted = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in options.items() if k in accepted})
