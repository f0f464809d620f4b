"""Training objectives: the ELBO with its common knobs (KL schedules, free bits), capacity control, and IWAE.

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))                                 (Kingma & Welling 2014)
    loss    = -E_q[log p(x|z)] + beta * w(step) * KL                              (beta-VAE, Higgins et al. 2017)
    w(step): the KL schedule, one of
        constant   w = 1
        linear     w = min(1, step / warmup_steps)                                 (KL warm-up, Bowman et al. 2016)
        cyclical   M cycles of T / M steps over the T training steps; in each, w rises linearly from 0 to 1
                   over the first fraction R of the cycle, then stays at 1        (Fu et al. 2019)
    free bits: KL term = sum_d max(lambda, mean_batch KL_d)                       (Kingma et al. 2016)
    capacity:  loss = -E_q[log p(x|z)] + gamma |KL - C(step)|, C rising linearly from 0 to C_max
                                                                                  (Burgess et al. 2018)
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

    def warmed_up(self, step: int) -> bool:
        """True once the KL term has its full weight (a collapse warning before that would be premature)."""
        return True


KL_SCHEDULES = ("constant", "linear", "cyclical")


def kl_schedule(step: int, kind: str = "linear", warmup_steps: int = 0, total_steps: int = 0, cycles: int = 4,
                ratio: float = 0.5) -> float:
    """The KL weight factor w(step) in [0, 1] of the module docstring (multiply by beta)."""
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)
    if kind == "cyclical":
        _check_cyclical(total_steps, cycles, ratio)
        period = total_steps / cycles  # steps per cycle
        tau = (step % period) / period  # position within the current cycle, in [0, 1)
        return min(1.0, tau / ratio)
    raise ConfigError(f"unknown objective.kl_schedule {kind!r}; choose one of: {', '.join(KL_SCHEDULES)}")


def _check_cyclical(total_steps: int, cycles: int, ratio: float) -> None:
    if total_steps < 1 or cycles < 1 or not 0 < ratio <= 1:
        raise ConfigError("kl_schedule 'cyclical' needs total_steps >= 1 (train.epochs >= 1), objective.cycles >= 1 "
                          "and 0 < objective.cycle_ratio <= 1")


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """beta times the linear warm-up factor min(1, step / warmup_steps)."""
    return beta * kl_schedule(step, "linear", warmup_steps)


def capacity(step: int, capacity_max: float, capacity_steps: int) -> float:
    """C(step) = capacity_max * min(1, step / capacity_steps), in nats (Burgess et al. 2018)."""
    if capacity_steps <= 0:
        return capacity_max
    return capacity_max * min(1.0, step / capacity_steps)


def reconstruction_and_kl(model: VAE, batch: Batch, n_samples: int = 1):
    """-E_q[log p(x|z)] (B,), KL(q || p) (B,) (analytic, or Monte Carlo averaged over samples) and the output."""
    out = model(batch.x, batch.y, n_samples=n_samples, mask=batch.mask)
    recon = -out.px.log_prob(batch.x).mean(0)  # (S, B) -> (B,)
    kl = model.prior.kl(out.qz, out.z, out.pz)  # (B,) analytic or (S, B) Monte Carlo
    if kl.dim() == 2:
        kl = kl.mean(0)
    return recon, kl, out


@OBJECTIVES.register("elbo")
class ELBO(Objective):
    """Evidence lower bound with beta weighting, a KL schedule (constant, linear, cyclical) and free bits."""

    def __init__(self, beta: float = 1.0, warmup_steps: int = 0, free_bits: float = 0.0, n_samples: int = 1,
                 kl_schedule: str = "linear", total_steps: int = 0, cycles: int = 4, cycle_ratio: float = 0.5) -> None:
        if beta < 0 or free_bits < 0 or warmup_steps < 0 or n_samples < 1:
            raise ConfigError("objective: beta, free_bits and warmup_steps must be >= 0 and n_samples >= 1")
        if kl_schedule not in KL_SCHEDULES:
            raise ConfigError(f"unknown objective.kl_schedule {kl_schedule!r}; choose one of: "
                              f"{', '.join(KL_SCHEDULES)}")
        if kl_schedule != "linear" and warmup_steps > 0:
            raise ConfigError(f"objective.warmup_epochs applies to kl_schedule 'linear' only; set it to 0 for "
                              f"{kl_schedule!r}")
        if kl_schedule == "cyclical":
            _check_cyclical(total_steps, cycles, cycle_ratio)
        self.beta, self.warmup_steps, self.free_bits, self.n_samples = beta, warmup_steps, free_bits, n_samples
        self.kl_schedule, self.total_steps = kl_schedule, total_steps
        self.cycles, self.cycle_ratio = cycles, cycle_ratio

    def weight(self, step: int) -> float:
        """beta * w(step): the KL weight at `step`."""
        return self.beta * kl_schedule(step, self.kl_schedule, self.warmup_steps, self.total_steps, self.cycles,
                                       self.cycle_ratio)

    def warmed_up(self, step: int) -> bool:
        if self.kl_schedule == "linear":
            return step >= self.warmup_steps
        if self.kl_schedule == "cyclical":
            return step >= self.total_steps / self.cycles * self.cycle_ratio  # the end of the first ramp
        return True

    def __call__(self, model: VAE, batch: Batch, step: int = 0) -> Loss:
        recon, kl, out = reconstruction_and_kl(model, batch, self.n_samples)
        kl_term = kl
        if self.free_bits > 0:
            kl_term = self._free_bits_kl(model, out.qz, kl)
        total = (recon + self.weight(step) * kl_term).mean()
        return Loss(total=total, terms={"loss": recon + kl, "recon": recon, "kl": kl})

    def _free_bits_kl(self, model: VAE, qz, kl: torch.Tensor) -> torch.Tensor:
        # Each dimension's batch-averaged KL is held at >= lambda nats, so the optimiser gains nothing by
        # pushing it lower; the per-example values keep their shape for the mean that follows.
        if not model.prior.factorised:
            floor = self.free_bits * model.latent_dim  # one floor on the total KL
            return kl + (floor - kl.mean()).clamp_min(0.0)
        per_dim = model.prior.kl_per_dim(qz)  # (B, D)
        batch_mean = per_dim.mean(0)  # (D,)
        lifted = torch.maximum(batch_mean, torch.full_like(batch_mean, self.free_bits))
        return per_dim.sum(1) + (lifted - batch_mean).sum()


@OBJECTIVES.register("capacity")
class CapacityELBO(Objective):
    """Controlled KL capacity: recon + gamma * |KL - C(step)|, C rising linearly (Burgess et al. 2018)."""

    def __init__(self, gamma: float = 1000.0, capacity_max: float = 25.0, capacity_steps: int = 0,
                 n_samples: int = 1) -> None:
        if gamma < 0 or capacity_max < 0 or capacity_steps < 0 or n_samples < 1:
            raise ConfigError("objective 'capacity': gamma, capacity_max and capacity_epochs must be >= 0 and "
                              "n_samples >= 1")
        self.gamma, self.capacity_max, self.capacity_steps = gamma, capacity_max, capacity_steps
        self.n_samples = n_samples

    def capacity(self, step: int) -> float:
        """The target KL C(step) in nats."""
        return capacity(step, self.capacity_max, self.capacity_steps)

    def warmed_up(self, step: int) -> bool:
        return step >= self.capacity_steps

    def __call__(self, model: VAE, batch: Batch, step: int = 0) -> Loss:
        recon, kl, _ = reconstruction_and_kl(model, batch, self.n_samples)
        # The penalty acts on the batch-mean KL, as in Burgess et al.: the KL is pushed towards C, not below it.
        total = recon.mean() + self.gamma * (kl.mean() - self.capacity(step)).abs()
        return Loss(total=total, terms={"loss": recon + kl, "recon": recon, "kl": kl})


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
    return OBJECTIVES.build(name, **options)
