"""Interpolation in latent space, and the latent-plane "manifold" grid of a 2-D model.

    linear   z(t) = (1 - t) z_a + t z_b
    slerp    z(t) = sin((1 - t) w) / sin(w) z_a + sin(t w) / sin(w) z_b,  cos(w) = <z_a, z_b> / (|z_a| |z_b|)
             (spherical interpolation, White 2016, "Sampling generative networks"): under a Gaussian prior most
             mass lies near a sphere, and the straight line between two codes passes closer to the origin
             than typical codes do; slerp keeps to the sphere. Both paths start at z_a and end at z_b.
    grid     decode a regular grid over two latent dimensions through the prior's inverse CDF, so that each cell
             covers equal prior mass (Kingma & Welling 2014, fig. 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..core.latent_paths import METHODS, SLERP_EPS, lerp, slerp  # noqa: F401 (re-exported)
from ..core.runtime import to_model
from ..errors import ConfigError
from ..models.vae import VAE
from .traversal import check_latent_dims, prior_moments


@dataclass(frozen=True)
class Interpolation:
    """Decoded means `images` (T, *event) along the path `z` (T, D) at positions `t` (T,) from a (0) to b (1)."""

    t: np.ndarray
    z: torch.Tensor
    images: torch.Tensor
    method: str


def _labels(label: int | None, n: int) -> torch.Tensor | None:
    """`label` repeated n times; None stays None (the model says when it needs a label)."""
    return None if label is None else torch.full((n,), int(label), dtype=torch.long)


@torch.no_grad()
def interpolate_codes(model: VAE, z_a: torch.Tensor, z_b: torch.Tensor, steps: int = 10, method: str = "linear",
                      label: int | None = None) -> Interpolation:
    """Decodes `steps` points on the `method` path from code z_a (D,) to z_b (D,)."""
    if method not in METHODS:
        raise ConfigError(f"unknown interpolation {method!r}; choose one of {', '.join(METHODS)}")
    if steps < 2:
        raise ConfigError(f"an interpolation needs at least 2 steps, got {steps}")
    z_a, z_b = z_a.reshape(-1).float(), z_b.reshape(-1).float()
    if z_a.shape != (model.latent_dim,) or z_b.shape != (model.latent_dim,):
        raise ConfigError(f"codes must have {model.latent_dim} values, got {z_a.numel()} and {z_b.numel()}")
    model.check_generate(steps, f"an interpolation of {steps:,} steps (decoded examples of "
                                f"{'x'.join(map(str, model.event_shape))})", extra_per_row=3 * model.latent_dim * 4)
    t = torch.linspace(0, 1, steps, device=z_a.device)
    path = (lerp if method == "linear" else slerp)(z_a, z_b, t)  # (T, D)
    images = model.generate(path, _labels(label, steps), check=False)
    return Interpolation(t=t.cpu().numpy(), z=path.cpu(), images=images.cpu(), method=method)


@torch.no_grad()
def interpolate(model: VAE, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10, method: str = "linear",
                y_a: int | None = None, y_b: int | None = None, label: int | None = None) -> Interpolation:
    """Encodes x_a and x_b (each (*event) or (1, *event)) to their posterior means and interpolates between them.

    For conditional models `y_a`/`y_b` are the examples' labels and `label` the class decoded along the path
    (default `y_a`)."""
    x = torch.stack([x_a.reshape(model.event_shape), x_b.reshape(model.event_shape)])  # (2, *event)
    y_a, y_b = (label if v is None else v for v in (y_a, y_b))  # files have no label: use `label`
    y = None if y_a is None or y_b is None else torch.tensor([int(y_a), int(y_b)])
    z = model.embed(to_model(model, x), to_model(model, y))  # (2, D); a conditional model without both labels raises
    return interpolate_codes(model, z[0], z[1], steps, method, y_a if label is None else label)


@dataclass(frozen=True)
class LatentGrid:
    """Decoded means `images` (n, n, *event) over dimensions `dims`: row i has z[dims[1]] = `values[1][i]`
    (top row highest), column j has z[dims[0]] = `values[0][j]`."""

    images: torch.Tensor
    values: tuple[np.ndarray, np.ndarray]
    dims: tuple[int, int]


@torch.no_grad()
def latent_grid(model: VAE, n: int = 15, dims: Sequence[int] | None = None, *, low: float = 0.05,
                high: float = 0.95, label: int | None = None) -> LatentGrid:
    """The classic manifold plot: an n x n grid over two latent dimensions at the prior's quantiles low..high
    (the other dimensions at the prior mean). `dims` may be left out for 2-D models only."""
    latent = model.latent_dim
    if dims is None:
        if latent != 2:
            raise ConfigError(f"the latent grid varies two dimensions and this model has {latent}: choose which "
                              f"(e.g. --grid-dims 0,1; the others stay at the prior mean)")
        dims = (0, 1)
    dims = check_latent_dims(dims, latent)
    if len(dims) != 2:
        raise ConfigError(f"the latent grid varies exactly 2 dimensions, got {len(dims)}")
    if n < 2:
        raise ConfigError(f"the grid needs at least 2 points per side, got {n}")
    if not 0 < low < high < 1:
        raise ConfigError(f"quantiles must satisfy 0 < low < high < 1, got {low} and {high}")
    model.check_generate(n * n, f"a latent grid of {n:,} x {n:,} points ({n * n:,} decoded examples of "
                                f"{'x'.join(map(str, model.event_shape))})", extra_per_row=2 * latent * 4)
    centre, scale = prior_moments(model)
    # Equal prior mass per cell: z = mean + std * Phi^-1(q) (exact for the normal prior; a Gaussian
    # approximation for other priors).
    q = torch.linspace(low, high, n)
    unit = torch.distributions.Normal(0.0, 1.0).icdf(q)  # (n,)
    cols = centre[dims[0]] + scale[dims[0]] * unit
    rows = (centre[dims[1]] + scale[dims[1]] * unit).flip(0)  # top row = highest value, as on a plot's y axis
    z = centre.expand(n, n, latent).clone()  # (n, n, D)
    z[:, :, dims[0]] = cols.reshape(1, n)
    z[:, :, dims[1]] = rows.reshape(n, 1)
    images = model.generate(z.reshape(-1, latent), _labels(label, n * n), check=False)
    return LatentGrid(images=images.reshape(n, n, *images.shape[1:]).cpu(),
                      values=(cols.cpu().numpy(), rows.cpu().numpy()), dims=dims)
