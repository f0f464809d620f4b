"""Convolutional encoder and decoder for images (C, H, W) of any size.

The encoder halves the spatial size with each stride-2 3x3 convolution (H -> ceil(H / 2)); the decoder retraces
the exact sizes with transposed convolutions whose output padding is chosen per layer, so 28x28, 8x8 or
37x53 images all round-trip without cropping.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .base import NETWORKS, NetworkPair, activation, check_activation, check_sizes


def _halved_sizes(size: tuple[int, int], n: int) -> list[tuple[int, int]]:
    """[(H, W), (ceil(H/2), ceil(W/2)), ...] for n stride-2 layers (kernel 3, padding 1)."""
    sizes = [size]
    for _ in range(n):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


class ConvEncoder(nn.Module):
    """x (B, C, H, W) -> convs -> flatten, append c -> linear -> (B, 2D)."""

    def __init__(self, event_shape, channels, hidden: int, latent_dim: int, cond_dim: int, act: str) -> None:
        super().__init__()
        c_in, h, w = event_shape
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), activation(act)]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        h_out, w_out = _halved_sizes((h, w), len(channels))[-1]
        self.head = nn.Sequential(
            nn.Linear(c_in * h_out * w_out + cond_dim, hidden), activation(act), nn.Linear(hidden, 2 * latent_dim)
        )

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.convs(x).flatten(1)  # the mask is not read: missing pixels arrive zero-filled
        if c is not None:
            h = torch.cat([h, c], dim=1)
        return self.head(h)


class ConvDecoder(nn.Module):
    """z (N, D), c -> linear -> (C_last, h, w) -> transposed convs -> (N, P, C, H, W)."""

    def __init__(self, event_shape, channels, hidden: int, latent_dim: int, params: int, cond_dim: int, act: str):
        super().__init__()
        c_data, h, w = event_shape
        sizes = _halved_sizes((h, w), len(channels))
        self.start_shape = (channels[-1], *sizes[-1])
        self.out_shape = (params, c_data, h, w)
        self.head = nn.Sequential(
            nn.Linear(latent_dim + cond_dim, hidden), activation(act), nn.Linear(hidden, math.prod(self.start_shape)),
            activation(act),
        )
        layers: list[nn.Module] = []
        rev_channels = list(reversed(channels))
        for i in range(len(channels)):
            (h_in, w_in), (h_out, w_out) = sizes[-1 - i], sizes[-2 - i]
            # ConvTranspose(k=3, s=2, p=1) gives 2 * s_in - 1 + output_padding; pick the padding that hits s_out.
            pad = (h_out - (2 * h_in - 1), w_out - (2 * w_in - 1))
            c_out = rev_channels[i + 1] if i + 1 < len(channels) else rev_channels[-1]
            layers += [
                nn.ConvTranspose2d(rev_channels[i], c_out, 3, stride=2, padding=1, output_padding=pad),
                activation(act),
            ]
        layers.append(nn.Conv2d(rev_channels[-1], params * c_data, 3, padding=1))
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is not None:
            z = torch.cat([z, c], dim=1)
        h = self.head(z).view(z.shape[0], *self.start_shape)
        return self.convs(h).view(z.shape[0], *self.out_shape)


@NETWORKS.register("conv")
def build_conv(
    event_shape: tuple[int, ...],
    latent_dim: int,
    params_per_entry: int = 1,
    cond_dim: int = 0,
    channels: Sequence[int] = (32, 64),
    dense: int = 256,
    activation: str = "relu",
) -> NetworkPair:
    """Stride-2 convolutional encoder and transposed-convolution decoder for (C, H, W) images of any size.

    `channels`: output channels of each stride-2 layer (encoder order); `dense`: width of the fully connected
    layer between the convolutions and the latent code.
    """
    if len(event_shape) != 3:
        raise ConfigError(f"needs images (C, H, W), got data of shape {tuple(event_shape)}; use network 'mlp'")
    if not channels:
        raise ConfigError("channels needs at least one entry")
    check_sizes("channels", channels)
    check_sizes("dense", [dense])
    check_activation(activation)
    return NetworkPair(
        encoder=ConvEncoder(event_shape, list(channels), dense, latent_dim, cond_dim, activation),
        decoder=ConvDecoder(event_shape, list(channels), dense, latent_dim, params_per_entry, cond_dim, activation),
    )
