"""The network contract and registry.

A network factory returns an encoder and a decoder:
    encoder(x (B, *event), c (B, C) or None) -> (B, 2 * latent_dim)    raw [mu, pre-scale] of q(z|x)
    decoder(z (N, latent_dim), c (N, C) or None) -> (N, P, *event)     P = likelihood.params_per_entry
`c` is the conditioning vector (a one-hot label for a conditional VAE); `cond_dim` is 0 when there is none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import ConfigError
from ..registry import Registry

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


NETWORKS: Registry[Callable[..., NetworkPair]] = Registry("network")


def activation(name: str) -> nn.Module:
    """A fresh activation module by name ("gated" is handled by the MLP itself and means ReLU elsewhere)."""
    if name == "gated":
        return nn.ReLU()
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
    """Builds the network pair registered as `name`; options it does not take are ignored."""
    return NETWORKS.build(name, tuple(event_shape), latent_dim, params_per_entry, cond_dim, **options)
