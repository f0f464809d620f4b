"""The network contract and registry.

A network factory returns an encoder and a decoder:
    encoder(x (B, *event), c (B, C) or None, mask (B, *event) or None) -> (B, 2 * latent_dim)
                                                                       raw [mu, pre-scale] of q(z|x)
    decoder(z (N, latent_dim), c (N, C) or None) -> (N, P, *event)     P = likelihood.params_per_entry
`c` is the conditioning vector (a one-hot label for a conditional VAE); `cond_dim` is 0 when there is none.
`mask` marks the observed entries (1 = observed; missing ones arrive zero-filled). An encoder may read it (the
`mlp` network's `mask_input` option: the MIWAE encoder of Mattei & Frellsen 2019) or ignore it.
Text networks read x (B, L) of token ids and take the vocabulary size (`vocab_size`, 0 for other data).
The context parameters (event_shape, latent_dim, params_per_entry, cond_dim, vocab_size) come from the builder; every other
parameter of a factory is an option of `[model.network]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..core.registry import Registry
from ..errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "leaky-relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}


@dataclass
class NetworkPair:
    """An encoder and a decoder built for one data shape and latent size."""

    encoder: nn.Module
    decoder: nn.Module


NETWORKS: Registry[Callable[..., NetworkPair]] = Registry(
    "network", context=("event_shape", "latent_dim", "params_per_entry", "cond_dim", "vocab_size"))


def check_activation(name: str, extra: tuple[str, ...] = ()) -> None:
    """A ConfigError unless `name` is a known activation (or one of the network's own `extra` choices)."""
    if name not in ACTIVATIONS and name not in extra:
        raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join([*ACTIVATIONS, *extra])}")


# Most layers a network option may list: far beyond any VAE's depth; a longer list is a mistake that would take
# hours to build (100,000 layers of width 1 pass the parameter budget).
MAX_LAYERS = 100


def check_sizes(what: str, sizes) -> None:
    """A ConfigError unless every layer size is >= 1 and there are at most MAX_LAYERS of them."""
    if len(sizes) > MAX_LAYERS:
        raise ConfigError(f"{what} lists {len(sizes):,} layers; at most {MAX_LAYERS} are allowed")
    if any(size < 1 for size in sizes):
        raise ConfigError(f"{what} must hold sizes >= 1, got {list(sizes)}")


def activation(name: str) -> nn.Module:
    """A fresh activation module by name."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def build_networks(
    name: str,
    event_shape: tuple[int, ...],
    latent_dim: int,
    params_per_entry: int = 1,
    cond_dim: int = 0,
    **options,
) -> NetworkPair:
    """Builds the network pair registered as `name`; an option it does not take is a ConfigError."""
    return NETWORKS.build(name, options, event_shape=tuple(event_shape), latent_dim=latent_dim,
                          params_per_entry=params_per_entry, cond_dim=cond_dim)
