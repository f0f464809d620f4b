"""Training objectives: the ELBO with its common knobs (KL schedules, free bits), capacity control, and IWAE.

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))                                 (Kingma & Welling 2014)
    loss    = -E_q[log p(x|z)] + beta * w(step) * KL                              (beta-VAE, Higgins et al. 2017)
    w(step): the KL schedule, one of
        constant   w = 1
        linear     w = min(1, step / warmup_steps)                                 (KL warm-up, Sonderby et al. 2016)
        logistic   an S-curve over warmup_steps: w = (s(u) - s(-5)) / (s(5) - s(-5)), u = 10 t / W - 5, s the
                   sigmoid, so w(0) = 0, w(W / 2) = 1/2, w(W) = 1, and 1 after   (KL annealing, Bowman et al. 2016)
        cyclical   M cycles of T / M steps over the T training steps; in each, w rises linearly from 0 to 1
                   over the first fraction R of the cycle, then stays at 1        (Fu et al. 2019)
    free bits: KL term = sum_d max(lambda, mean_batch KL_d)                       (Kingma et al. 2016)
    capacity:  loss = -E_q[log p(x|z)] + gamma |KL - C(step)|, C rising linearly from 0 to C_max
                                                                                  (Burgess et al. 2018)
    IWAE_k(x) = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)],  z_i ~ q(z|x)             (Burda et al. 2016)

An objective is called as `objective(model, batch, step) -> Loss`; `Loss.total` is the scalar to minimise
and `Loss.terms` holds per-example values (B,) in nats, for logging. `step` is an int, or a 0-dim float64 tensor
(what a compiled training step passes, so that a new step is a new input value rather than a new graph).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .core.distributions import log_mean_exp
from .core.registry import Registry
from .errors import ConfigError
from .models.vae import VAE, Batch
from .posteriors import is_diagonal_normal

# Context: the length of training, which the trainer knows; schedules in the config are in epochs.
OBJECTIVES: Registry[Callable[..., "Objective"]] = Registry("objective", context=("steps_per_epoch", "epochs"))


@dataclass
class Loss:
    """The scalar to minimise and per-example terms (B,) in nats."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class Objective:
    """Base class: `__call__(model, batch, step) -> Loss`.

    An objective that reads `batch.noise` (the standard normal draws of z, shape (n_samples, B, D)) declares
    `n_samples`; the training loop then draws that noise for it (see `vaekit.training.train`), so that its result
    does not depend on how a global batch is split over processes. One without it draws z itself."""

    n_samples: int | None = None

    def __call__(self, model: VAE, batch: Batch, step: int = 0) -> Loss:
        raise NotImplementedError

    def warmed_up(self, step: int) -> bool:
        """True once the KL term has its full weight (a collapse warning before that would be premature)."""
        return True


KL_SCHEDULES = ("constant", "linear", "logistic", "cyclical")
WARMUP_SCHEDULES = ("linear", "logistic")  # the schedules whose ramp is the warm-up
LOGISTIC_SPAN = 5.0  # the logistic ramp runs over sigmoid(-5) .. sigmoid(5), rescaled to 0 .. 1


@dataclass(frozen=True)
class KLSchedule:
    """The KL weight factor w(step) in [0, 1] of the module docstring (the ELBO multiplies it by beta).

    Every schedule is a linear ramp from 0 to 1 over `ramp` steps, restarted every `period` steps:
    constant (ramp 0), linear (ramp = warmup_steps, one period), cyclical (period = total_steps / cycles,
    ramp = ratio * period). The logistic schedule bends the warm-up's ramp into an S-curve.
    """

    kind: str = "linear"
    warmup_steps: int = 0
    total_steps: int = 0
    cycles: int = 4
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KL_SCHEDULES:
            raise ConfigError(f"unknown kl_schedule {self.kind!r}; choose one of: {', '.join(KL_SCHEDULES)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"the warm-up must be >= 0, got {self.warmup_steps} steps")
        if self.kind not in WARMUP_SCHEDULES and self.warmup_steps > 0:
            raise ConfigError(f"a warm-up applies to kl_schedule 'linear' or 'logistic' only; set it to 0 for "
                              f"{self.kind!r}")
        if self.kind == "cyclical" and (self.total_steps < 1 or self.cycles < 1 or not 0 < self.ratio <= 1):
            raise ConfigError("kl_schedule 'cyclical' needs at least one training step, cycles >= 1 and "
                              "0 < cycle_ratio <= 1")

    @property
    def period(self) -> float:
        """Steps after which the ramp starts again (infinite unless cyclical)."""
        return self.total_steps / self.cycles if self.kind == "cyclical" else math.inf

    @property
    def ramp(self) -> float:
        """Steps from weight 0 to weight 1 within a period."""
        if self.kind == "cyclical":
            return self.ratio * self.period
        return float(self.warmup_steps) if self.kind in WARMUP_SCHEDULES else 0.0

    def __call__(self, step: int | torch.Tensor) -> float | torch.Tensor:
        if torch.is_tensor(step):
            return self._tensor_weight(step)
        position = step % self.period if self.kind == "cyclical" else step  # steps into the current period
        if self.ramp <= 0 or position >= self.ramp:
            return 1.0
        fraction = position / self.ramp
        if self.kind == "logistic":
            low, high = (1.0 / (1.0 + math.exp(LOGISTIC_SPAN * sign)) for sign in (1.0, -1.0))
            fraction = (1.0 / (1.0 + math.exp(-LOGISTIC_SPAN * (2.0 * fraction - 1.0))) - low) / (high - low)
        return fraction

    def _tensor_weight(self, step: torch.Tensor) -> torch.Tensor:
        """The same weight for a step held in a 0-dim tensor, without Python branches on its value (a compiled
        training step then needs no recompiling as the step changes)."""
        position = torch.remainder(step, self.period) if self.kind == "cyclical" else step
        if self.ramp <= 0:
            return torch.ones_like(step)
        fraction = (position / self.ramp).clamp(0.0, 1.0)
        if self.kind == "logistic":
            low, high = (1.0 / (1.0 + math.exp(LOGISTIC_SPAN * sign)) for sign in (1.0, -1.0))
            curve = (torch.sigmoid(LOGISTIC_SPAN * (2.0 * fraction - 1.0)) - low) / (high - low)
            fraction = torch.where(fraction >= 1.0, torch.ones_like(fraction), curve)
        return fraction

    def warmed_up(self, step: int) -> bool:
        """True once the first ramp is over (the KL term has had its full weight)."""
        return step >= self.ramp


def capacity(step: int | torch.Tensor, capacity_max: float, capacity_steps: int) -> float | torch.Tensor:
    """C(step) = capacity_max * min(1, step / capacity_steps), in nats (Burgess et al. 2018); `step` may be a
    0-dim tensor (see KLSchedule)."""
    if capacity_steps <= 0:
        return capacity_max
    if torch.is_tensor(step):
        return capacity_max * (step / capacity_steps).clamp(max=1.0)
    return capacity_max * min(1.0, step / capacity_steps)


def reconstruction_and_kl(model: VAE, batch: Batch, n_samples: int = 1):
    """-E_q[log p(x|z)] (B,), KL(q || p) (B,) (analytic, or Monte Carlo averaged over samples) and the output."""
    out = model(batch.x, batch.y, n_samples=n_samples, mask=batch.mask, noise=batch.noise)
    recon = -out.px.log_prob(batch.x).mean(0)  # (S, B) -> (B,)
    kl = model.prior.kl(out.qz, out.z, out.pz)  # (B,) analytic or (S, B) Monte Carlo
    if kl.dim() == 2:
        kl = kl.mean(0)
    return recon, kl, out


def penalty_of(out) -> torch.Tensor | float:
    """The batch mean of a model kind's training penalty outside the bound (`VAEOutput.penalty`, e.g. the
    VQ-VAE's commitment loss), 0 when it has none."""
    penalty = getattr(out, "penalty", None)
    return 0.0 if penalty is None else penalty.mean()


class ELBO(Objective):
    """Evidence lower bound with beta weighting, a KL schedule (constant, linear, logistic, cyclical) and free bits."""

    def __init__(self, beta: float = 1.0, warmup_steps: int = 0, free_bits: float = 0.0, n_samples: int = 1,
                 kl_schedule: str = "linear", total_steps: int = 0, cycles: int = 4, cycle_ratio: float = 0.5,
                 trim: float = 0.0) -> None:
        _check_nonnegative(beta=beta, free_bits=free_bits)
        _check_samples(n_samples)
        if not (isinstance(trim, (int, float)) and 0.0 <= trim < 0.5):
            raise ConfigError(f"trim must be in [0, 0.5), got {trim}")
        self.schedule = KLSchedule(kl_schedule, warmup_steps, total_steps, cycles, cycle_ratio)
        self.beta, self.free_bits, self.n_samples, self.trim = beta, free_bits, n_samples, trim

    def weight(self, step: int) -> float:
        """beta * w(step): the KL weight at `step`."""
        return self.beta * self.schedule(step)

    def warmed_up(self, step: int) -> bool:
        return self.schedule.warmed_up(step)

    def __call__(self, model: VAE, batch: Batch, step: int = 0) -> Loss:
        recon, kl, out = reconstruction_and_kl(model, batch, self.n_samples)
        kl_term = kl
        if self.free_bits > 0:
            kl_term = self._free_bits_kl(model, out.qz, kl)
        per_example = recon + self.weight(step) * kl_term  # (B,)
        if self.trim > 0:
            # Trimmed likelihood: the batch's highest-loss fraction `trim` is left out of the gradient, so rows
            # that the model fits worst (in contaminated data, mostly the anomalies) do not shape it.
            per_example = per_example.topk(max(1, math.ceil((1.0 - self.trim) * len(per_example))),
                                           largest=False).values
        total = per_example.mean() + penalty_of(out)
        return Loss(total=total, terms={"loss": recon + kl, "recon": recon, "kl": kl})

    def _free_bits_kl(self, model: VAE, qz, kl: torch.Tensor) -> torch.Tensor:
        # Each dimension's batch-averaged KL is held at >= lambda nats, so the optimiser gains nothing by
        # pushing it lower; the per-example values keep their shape for the mean that follows.
        if not model.prior.factorised or not is_diagonal_normal(qz):
            floor = self.free_bits * model.latent_dim  # one floor on the total KL
            return kl + (floor - kl.mean()).clamp_min(0.0)
        per_dim = model.prior.kl_per_dim(qz)  # (B, D)
        batch_mean = per_dim.mean(0)  # (D,)
        lifted = torch.maximum(batch_mean, torch.full_like(batch_mean, self.free_bits))
        return per_dim.sum(1) + (lifted - batch_mean).sum()


class CapacityELBO(Objective):
    """Controlled KL capacity: recon + gamma * |KL - C(step)|, C rising linearly (Burgess et al. 2018)."""

    def __init__(self, gamma: float = 1000.0, capacity_max: float = 25.0, capacity_steps: int = 0,
                 n_samples: int = 1) -> None:
        _check_nonnegative(gamma=gamma, capacity_max=capacity_max, capacity_steps=capacity_steps)
        _check_samples(n_samples)
        self.gamma, self.capacity_max, self.capacity_steps = gamma, capacity_max, capacity_steps
        self.n_samples = n_samples

    def capacity(self, step: int) -> float:
        """The target KL C(step) in nats."""
        return capacity(step, self.capacity_max, self.capacity_steps)

    def warmed_up(self, step: int) -> bool:
        return step >= self.capacity_steps

    def __call__(self, model: VAE, batch: Batch, step: int = 0) -> Loss:
        recon, kl, out = reconstruction_and_kl(model, batch, self.n_samples)
        # The penalty acts on the batch-mean KL, as in Burgess et al.: the KL is pushed towards C, not below it.
        total = recon.mean() + self.gamma * (kl.mean() - self.capacity(step)).abs() + penalty_of(out)
        return Loss(total=total, terms={"loss": recon + kl, "recon": recon, "kl": kl})


@OBJECTIVES.register("iwae")
class IWAE(Objective):
    """Importance-weighted bound with k samples; k=1 equals the ELBO."""

    def __init__(self, k: int = 5) -> None:
        _check_samples(k, "k")
        self.k = k

    @property
    def n_samples(self) -> int:
        """z draws per example (the training loop draws their noise)."""
        return self.k

    def __call__(self, model: VAE, batch: Batch, step: int = 0) -> Loss:
        out = model(batch.x, batch.y, n_samples=self.k, mask=batch.mask, noise=batch.noise)
        log_px_z = out.px.log_prob(batch.x)  # (k, B)
        log_w = log_px_z + out.pz.log_prob(out.z) - out.qz.log_prob(out.z)  # (k, B)
        bound = log_mean_exp(log_w, 0)  # (B,)
        kl_mc = (out.qz.log_prob(out.z) - out.pz.log_prob(out.z)).mean(0)
        return Loss(total=-bound.mean() + penalty_of(out), terms={"loss": -bound, "recon": -log_px_z.mean(0), "kl": kl_mc})


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a number >= 0, got {value}")


def _check_samples(n: int, name: str = "n_samples") -> None:
    if n < 1:
        raise ConfigError(f"{name} must be >= 1, got {n}")


# --- the config entries: schedules in epochs, turned into steps with the trainer's context -------------------


@OBJECTIVES.register("elbo")
def elbo_objective(steps_per_epoch: int = 1, epochs: int = 0, beta: float = 1.0, kl_schedule: str = "linear",
                   warmup_epochs: float = 0.0, cycles: int = 4, cycle_ratio: float = 0.5, free_bits: float = 0.0,
                   n_samples: int = 1, trim: float = 0.0) -> ELBO:
    """Evidence lower bound with beta weighting, a KL schedule (constant, linear, logistic, cyclical) and free bits.

    `warmup_epochs`: the linear or logistic schedule's ramp; `cycles`, `cycle_ratio`: the cyclical one's (over all epochs);
    `free_bits`: nats per latent dimension; `n_samples`: z draws per example; `trim`: the fraction of each batch
    with the highest loss left out of the gradient, in [0, 0.5) (training on data with outliers in it).
    """
    _check_nonnegative(warmup_epochs=warmup_epochs)
    return ELBO(beta=beta, warmup_steps=int(warmup_epochs * steps_per_epoch), free_bits=free_bits,
                n_samples=n_samples, kl_schedule=kl_schedule, total_steps=steps_per_epoch * epochs, cycles=cycles,
                cycle_ratio=cycle_ratio, trim=trim)


@OBJECTIVES.register("capacity")
def capacity_objective(steps_per_epoch: int = 1, epochs: int = 0, gamma: float = 1000.0, capacity_max: float = 25.0,
                       capacity_epochs: float | None = None, n_samples: int = 1) -> CapacityELBO:
    """Controlled KL capacity: recon + gamma * |KL - C(step)|, C rising linearly (Burgess et al. 2018).

    `capacity_max`: the final KL target in nats, reached after `capacity_epochs` (None: all of training).
    """
    capacity_epochs = epochs if capacity_epochs is None else capacity_epochs
    _check_nonnegative(capacity_epochs=capacity_epochs)
    return CapacityELBO(gamma=gamma, capacity_max=capacity_max, capacity_steps=int(capacity_epochs * steps_per_epoch),
                        n_samples=n_samples)


def build_objective(name: str, steps_per_epoch: int = 1, epochs: int = 0, **options) -> Objective:
    """Builds the objective registered as `name` from its config options (schedules in epochs of
    `steps_per_epoch` steps); an option it does not take is a ConfigError."""
    return OBJECTIVES.build(name, options, steps_per_epoch=steps_per_epoch, epochs=epochs)
