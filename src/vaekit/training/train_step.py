"""One optimisation step's forward pass as a module, and what it is wrapped in: DDP, torch.compile, autocast.

`TrainingStep(model, objective)` scores one (shard of a) batch: objective(model, batch, step), its scalar loss
multiplied by the process's weight (see `vaekit.training.distributed`). Being one module call, it is what
DistributedDataParallel wraps (the gradients of every parameter it reaches are all-reduced) and what
torch.compile compiles (model, likelihood and objective in one graph).

`StepNoise` draws each step's random numbers (dynamic binarization, the reparameterisation noise) for the whole
global batch from a generator seeded by (seed, step), and gives each process its rows: the training result is
then the same function of the seed whatever the number of processes, and a resumed run draws what an
uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from ..models.vae import VAE, Batch
from ..objectives import Objective
from .distributed import Cluster

log = logging.getLogger(__name__)

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TrainingStep(nn.Module):
    """objective(model, batch, step) as a module: returns (weight * loss, per-example terms)."""

    def __init__(self, model: VAE, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Batch, step: int, weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = self.objective(self.model, batch, step)
        return loss.total * weight, loss.terms


class StepNoise:
    """The random draws of one training step, for the global batch, sliced to this process's rows."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed = int(seed)
        self.generator = torch.Generator(device=device)
        self.device = device

    def start(self, step: int) -> None:
        """Reseeds for `step` (every process gets the same stream)."""
        # A per-step seed from (seed, step); 2**61 - 1 is prime, so distinct steps of one seed never collide.
        self.generator.manual_seed((self.seed * 1_000_003 + step * 7_919 + 1) % (2**61 - 1))

    def binarize(self, x: torch.Tensor, rows: int, start: int) -> torch.Tensor:
        """x ~ Bernoulli(x) for this process's rows [start, start + len(x)) of a global batch of `rows`."""
        u = torch.rand((rows, *x.shape[1:]), generator=self.generator, device=self.device)
        return (u[start : start + x.shape[0]] < x).to(x.dtype)

    def normal(self, samples: int, rows: int, latent_dim: int, start: int, count: int) -> torch.Tensor:
        """Standard normal eps (samples, count, latent_dim): rows [start, start + count) of a global batch."""
        eps = torch.randn((samples, rows, latent_dim), generator=self.generator, device=self.device)
        return eps[:, start : start + count]


def unused_parameters(step: TrainingStep, batch: Batch) -> list[str]:
    """Names of the parameters that one forward and backward pass on `batch` leaves without a gradient (DDP must
    then be told to look for them); the pass changes nothing (random state and buffers restored, gradients
    cleared: a model that updates buffers in training mode, such as a VQ-VAE's codebook, would otherwise train
    differently under DDP)."""
    buffers = {name: b.detach().clone() for name, b in step.model.named_buffers()}
    with torch.random.fork_rng(devices=[batch.x.device] if batch.x.device.type == "cuda" else []):
        total, _ = step(batch, 0, 1.0)
        total.backward()
    names = [name for name, p in step.model.named_parameters() if p.requires_grad and p.grad is None]
    step.model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, b in step.model.named_buffers():
            b.copy_(buffers[name])
    return names


def wrap_step(step: TrainingStep, cluster: Cluster, device: torch.device, probe: Batch, variable_length: bool,
              compile_step: bool) -> nn.Module:
    """The module the loop calls: `step`, in DistributedDataParallel with several processes, compiled with
    `compile_step`."""
    module: nn.Module = step
    if cluster.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # Examples of unequal length (sentences) leave parts without gradients in some steps (an adaptive
        # softmax's clusters of words absent from a batch): look for unused parameters every step for them;
        # otherwise only when a probe pass finds some.
        # A model trained in stages leaves some parameters without gradients in a later stage (`start_epoch`).
        staged = hasattr(step.model, "start_epoch")
        unused = variable_length or staged or bool(unused_parameters(step, probe))
        ids = [device.index] if device.type == "cuda" else None
        module = DistributedDataParallel(step, device_ids=ids, find_unused_parameters=unused)
    if compile_step:
        module = torch.compile(module)
    return module


def autocast(device: torch.device, precision: str):
    """The autocast context of train.precision (nothing for float32)."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str):
    """A gradient scaler for float16 (whose small gradients would underflow), else None."""
    if precision != "float16":
        return None
    return torch.amp.GradScaler(device.type)


def samples_of(objective: Objective) -> int | None:
    """How many z draws per example the objective wants noise for (None: it draws its own)."""
    n = getattr(objective, "n_samples", None)
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else None
