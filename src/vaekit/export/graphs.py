"""The two graphs an export holds, as small modules over a trained model, and what can be exported.

    encoder   x (B, *event) [, y (B,) int64]  ->  the parameters of q(z|x)   (e.g. loc, scale: (B, D) each)
    decoder   z (B, D)      [, y (B,) int64]  ->  the parameters of p(x|z)   (e.g. logits: (B, *event)), and its mean

Each graph is one pass of the model's network and plug-in, exactly as `VAE.encode` and `VAE.decode` compute them
(without their checks of the labels' values, which depend on the data and cannot be part of a graph). A
distribution's parameters are the tensors it declares in `arg_constraints` and holds (torch's own convention: a
Bernoulli made from logits holds `logits`, a Normal `loc` and `scale`); a model whose q(z|x) or p(x|z) is not an
`Independent` distribution with such parameters (a flow posterior, sentences decoded word by word, a table's
per-column distributions) is refused in one line that names the plug-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn

from ..errors import ConfigError
from ..models.vae import VAE

# Batch size of the example inputs the graphs are traced with (not 0 or 1, which tracers treat as special sizes).
EXAMPLE_BATCH = 2


@dataclass(frozen=True)
class Plugins:
    """The registry names (and options) that a refusal and the description name: model kind, network, posterior,
    likelihood and prior, each `(name, options)`."""

    kind: tuple[str, dict]
    network: tuple[str, dict]
    posterior: tuple[str, dict]
    likelihood: tuple[str, dict]
    prior: tuple[str, dict]


@dataclass(frozen=True)
class Tensor:
    """One input or output of a graph: its name, dtype name and shape, "batch" for the dynamic first axis."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


def one_hot(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Labels (B,) int64 -> the one-hot condition (B, K) in `like`'s dtype, as `VAE.condition` makes it (a label
    outside 0..K-1 gives a row of zeros instead of an error: a graph cannot raise)."""
    return (y.unsqueeze(-1) == torch.arange(num_classes, device=y.device)).to(like.dtype)


def parameter_names(dist: D.Distribution) -> list[str]:
    """The parameters a distribution holds, in the order it declares them: e.g. ['logits'] for a Bernoulli made
    from logits (its `probs` is derived lazily, and not held until read), ['loc', 'scale'] for a Normal."""
    return [name for name in dist.arg_constraints if torch.is_tensor(dist.__dict__.get(name))]


def family(dist: D.Distribution) -> str:
    """The distribution's class name, skipping private subclasses (vaekit's Bernoulli that accepts grey levels
    is a 'Bernoulli')."""
    return next(cls.__name__ for cls in type(dist).__mro__ if not cls.__name__.startswith("_"))


class EncoderGraph(nn.Module):
    """x (B, *event) [, y (B,)] -> the parameters of q(z|x), each (B, D) (in `names` order)."""

    def __init__(self, model: VAE, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        c = None if y is None else one_hot(y, self.model.num_classes, x)
        qz = self.model.posterior(self.model.encoder(x, c))  # as VAE.encode: encoder (B, 2D) -> q(z|x)
        return tuple(getattr(qz.base_dist, name) for name in self.names)


class DecoderGraph(nn.Module):
    """z (B, D) [, y (B,)] -> the parameters of p(x|z) (in `names` order), then its mean (B, *event)."""

    def __init__(self, model: VAE, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        c = None if y is None else one_hot(y, self.model.num_classes, z)
        px = self.model.likelihood(self.model.decoder(z, c))  # as VAE.decode: decoder (B, P, *event) -> p(x|z)
        params = tuple(getattr(px.base_dist, name) for name in self.names)  # read before `mean` caches more
        return (*params, px.mean)


def example_inputs(model: VAE, what: str, batch: int = EXAMPLE_BATCH) -> tuple[torch.Tensor, ...]:
    """Random inputs of a graph ('encoder': x; 'decoder': z), with labels for a conditional model."""
    dtype, device = _dtype_device(model)
    shape = (batch, *model.event_shape) if what == "encoder" else (batch, model.latent_dim)
    first = torch.rand(shape, dtype=dtype, device=device)
    if not model.conditional:
        return (first,)
    return first, torch.arange(batch, device=device) % model.num_classes


def _dtype_device(model: VAE) -> tuple[torch.dtype, torch.device]:
    parameter = next(model.parameters())
    return parameter.dtype, parameter.device


def _independent_parameters(dist: D.Distribution) -> list[str]:
    """The parameters of an `Independent` distribution's base, or [] when it is not one or holds none."""
    if not isinstance(dist, D.Independent):
        return []
    return parameter_names(dist.base_dist)


def check_kind(model: VAE, plugins: Plugins) -> None:
    """A ConfigError unless the model encodes and decodes as the one-layer `VAE` does (what the graphs compute)."""
    if type(model).encode is not VAE.encode or type(model).decode is not VAE.decode:
        raise ConfigError(f"model kind {plugins.kind[0]!r} cannot be exported: only model kind 'vae' can, whose "
                          f"q(z|x) and p(x|z) are one network pass to distribution parameters each; "
                          f"{plugins.kind[0]!r} computes them its own way ({type(model).__name__})")


@torch.no_grad()
def decoder_parameters(model: VAE, plugins: Plugins) -> tuple[D.Independent, list[str]]:
    """p(x|z) of example codes and its parameter names; a ConfigError naming the likelihood when it has none."""
    z, *labels = example_inputs(model, "decoder")
    px = model.decode(z, *labels)
    names = _independent_parameters(px)
    if not names:
        raise ConfigError(f"likelihood {plugins.likelihood[0]!r} cannot be exported: its p(x|z) "
                          f"({family(getattr(px, 'base_dist', px))}) is not a distribution given by parameter tensors "
                          "(only likelihoods such as bernoulli, gaussian, gaussian-learned, gaussian-hetero and "
                          "discretized-logistic export)")
    return px, names


@torch.no_grad()
def encoder_parameters(model: VAE, plugins: Plugins) -> tuple[D.Independent, list[str]]:
    """q(z|x) of example inputs and its parameter names; a ConfigError naming the posterior when it has none."""
    try:
        qz = model.encode(*example_inputs(model, "encoder"))
    except (RuntimeError, TypeError) as error:  # an encoder that reads other values than real arrays
        raise ConfigError(f"network {plugins.network[0]!r} cannot be exported: its encoder does not read real arrays "
                          f"of shape {tuple(model.event_shape)} ({str(error).splitlines()[0]})") from None
    names = _independent_parameters(qz)
    if not names:
        raise ConfigError(f"posterior {plugins.posterior[0]!r} cannot be exported: its q(z|x) ({family(qz)}) is not a "
                          "distribution given by parameter tensors (only the 'gaussian' posterior exports)")
    return qz, names


__all__ = ["EXAMPLE_BATCH", "DecoderGraph", "EncoderGraph", "Plugins", "Tensor", "check_kind", "decoder_parameters",
           "encoder_parameters", "example_inputs", "family", "one_hot", "parameter_names"]
