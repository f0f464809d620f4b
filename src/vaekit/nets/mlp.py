"""Fully connected encoder and decoder (the pytorch/examples VAE is `hidden=[400]`)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .base import NETWORKS, NetworkPair, activation, check_activation, check_sizes


class GatedLinear(nn.Module):
    """h = (W x + b) * sigmoid(V x + c): the gated dense layer of Dauphin et al. 2017, used by Tomczak & Welling
    2018 for MNIST VAEs. One matrix multiply computes both halves."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 2 * n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.linear(x).chunk(2, dim=-1)
        return value * torch.sigmoid(gate)


def mlp(sizes: Sequence[int], act: str) -> nn.Sequential:
    """Linear layers of the given sizes with `act` between them (none after the last); act "gated" makes every
    hidden layer a `GatedLinear` instead."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2
        if hidden and act == "gated":
            layers.append(GatedLinear(n_in, n_out))
            continue
        layers.append(nn.Linear(n_in, n_out))
        if hidden:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x (B, *event) -> flatten, append the mask (with `mask_input`) and c -> hidden layers -> (B, 2D)."""

    def __init__(self, n_in: int, hidden: Sequence[int], latent_dim: int, cond_dim: int, act: str,
                 mask_input: bool = False) -> None:
        super().__init__()
        self.mask_input = mask_input
        self.net = mlp([n_in * (2 if mask_input else 1) + cond_dim, *hidden, 2 * latent_dim], act)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)  # (B, F)
        if self.mask_input:
            # MIWAE's encoder reads [x * m, m] (B, 2F), so it knows which entries are missing (None: all observed).
            m = torch.ones_like(h) if mask is None else mask.flatten(1).to(h.dtype)
            h = torch.cat([h * m, m], dim=1)
        if c is not None:
            h = torch.cat([h, c], dim=1)
        return self.net(h)


class MLPDecoder(nn.Module):
    """z (N, D), c -> hidden layers -> (N, P, *event)."""

    def __init__(self, event_shape, hidden, latent_dim: int, params: int, cond_dim: int, act: str) -> None:
        super().__init__()
        self.out_shape = (params, *event_shape)
        self.net = mlp([latent_dim + cond_dim, *hidden, params * math.prod(event_shape)], act)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is not None:
            z = torch.cat([z, c], dim=1)
        return self.net(z).view(z.shape[0], *self.out_shape)


@NETWORKS.register("mlp")
def build_mlp(
    event_shape: tuple[int, ...],
    latent_dim: int,
    params_per_entry: int = 1,
    cond_dim: int = 0,
    hidden: Sequence[int] = (512, 256),
    activation: str = "relu",
    mask_input: bool = False,
) -> NetworkPair:
    """Multilayer perceptron; the decoder mirrors the encoder's hidden sizes.

    `hidden`: encoder layer sizes; `activation`: one of the activations or "gated" (gated dense layers);
    `mask_input`: the encoder also reads the observation mask (for data with missing entries).
    """
    check_sizes("hidden", hidden)
    check_activation(activation, extra=("gated",))
    n_in = math.prod(event_shape)
    return NetworkPair(
        encoder=MLPEncoder(n_in, list(hidden), latent_dim, cond_dim, activation, mask_input),
        decoder=MLPDecoder(event_shape, list(reversed(hidden)), latent_dim, params_per_entry, cond_dim, activation),
    )
