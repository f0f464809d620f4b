"""Latent traversals: vary one latent dimension at a time and decode (Higgins et al. 2017, beta-VAE, fig. 1).

Row r of a traversal varies dimension d_r around a base code z0 (an example's posterior mean, or the prior's
centre) in units of the prior's standard deviation, keeping every other dimension fixed:

    z[r, s] = z0 + v_s * sigma_prior[d_r] * e_{d_r},    v_s in linspace(-span, span, steps)

Rows are ordered by how much information each dimension carries (mean KL to the prior over a data set, the
most informative first); dimensions that are not active units (their posterior mean hardly varies over the data,
Cov_x(E_q[z_d]) <= 0.01, the definition `vaekit eval` counts by) are marked collapsed: they decode to nearly the
same picture along the whole row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..models.vae import VAE
from .latents import ACTIVE_UNIT_THRESHOLD, Embedding

PRIOR_MOMENT_SAMPLES = 8192  # draws used when the prior has no closed-form mean / standard deviation


@dataclass(frozen=True)
class Traversal:
    """Decoded means `images` (R, S, *event) of the codes `z` (R, S, D): row r varies dimension `dims[r]` over
    `values` (S,) prior standard deviations around `base` (D,); `scores` (R,) are the rows' KL (nats) or None."""

    images: torch.Tensor
    z: torch.Tensor
    dims: tuple[int, ...]
    values: np.ndarray
    base: torch.Tensor
    scores: np.ndarray | None
    collapsed: np.ndarray

    def row_labels(self) -> list[str]:
        """'z3  KL 2.41' per row, with 'collapsed' where the dimension carries no information."""
        labels = []
        for r, d in enumerate(self.dims):
            text = f"z{d}" if self.scores is None else f"z{d}  KL {self.scores[r]:.2f}"
            labels.append(text + ("  collapsed" if self.collapsed[r] else ""))
        return labels


def check_latent_dims(dims: Sequence[int], latent_dim: int) -> tuple[int, ...]:
    """`dims` as a tuple, or a ConfigError naming the first one outside 0..latent_dim-1."""
    dims = tuple(int(d) for d in dims)
    for d in dims:
        if not 0 <= d < latent_dim:
            raise ConfigError(f"latent dimension {d} is out of range: this model has dimensions 0..{latent_dim - 1}")
    if len(set(dims)) != len(dims):
        raise ConfigError(f"latent dimensions {list(dims)} repeat; give each at most once")
    if not dims:
        raise ConfigError("no latent dimensions given")
    return dims


@torch.no_grad()
def prior_moments(model: VAE) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each dimension of p(z), (D,) each; Monte Carlo when not in closed form."""
    pz = model.prior()
    try:
        mean, std = pz.mean, pz.stddev
        if mean.shape[-1:] == (model.latent_dim,) and torch.isfinite(mean).all() and torch.isfinite(std).all():
            return mean.reshape(-1, model.latent_dim)[0], std.reshape(-1, model.latent_dim)[0]
    except NotImplementedError:
        pass
    z = pz.sample((PRIOR_MOMENT_SAMPLES,)).reshape(-1, model.latent_dim)
    return z.mean(0), z.std(0)


@torch.no_grad()
def traverse(
    model: VAE,
    dims: Sequence[int] | None = None,
    base: torch.Tensor | None = None,
    *,
    span: float = 3.0,
    steps: int = 9,
    embedding: Embedding | None = None,
    label: int | None = None,
    collapsed_threshold: float = ACTIVE_UNIT_THRESHOLD,
) -> Traversal:
    """Decodes one row per latent dimension in `dims` (default: all), varied over +-`span` prior standard
    deviations around `base` (D,) (default: the prior's mean). With `embedding` the rows are sorted by each
    dimension's KL, most informative first, and collapsed dimensions are marked. `label`: conditional models."""
    latent = model.latent_dim
    dims = check_latent_dims(range(latent) if dims is None else dims, latent)
    if steps < 2:
        raise ConfigError(f"a traversal needs at least 2 steps, got {steps}")
    if not span > 0:
        raise ConfigError(f"span must be a positive number of prior standard deviations, got {span}")
    centre, scale = prior_moments(model)
    base = centre if base is None else torch.as_tensor(base, dtype=centre.dtype).reshape(-1).to(centre.device)
    if base.shape != (latent,):
        raise ConfigError(f"base code has {base.numel()} values; the model's latent space has {latent}")

    scores = collapsed = None
    if embedding is not None:
        if embedding.latent_dim != latent:
            raise ConfigError(f"embedding has {embedding.latent_dim} dimensions; the model has {latent}")
        info = embedding.informativeness()
        dims = tuple(sorted(dims, key=lambda d: -float(info[d])))  # stable: equal scores keep the given order
        scores = np.array([info[d] for d in dims], dtype=np.float64)
        collapsed = embedding.collapsed(collapsed_threshold)[list(dims)]
    n = len(dims) * int(steps)
    model.check_generate(n, f"a traversal of {len(dims)} dimensions x {steps:,} steps "
                            f"({n:,} decoded examples of {'x'.join(map(str, model.event_shape))})",
                         extra_per_row=2 * latent * 4)  # z and its CPU copy
    values = np.linspace(-span, span, steps)
    offsets = torch.as_tensor(values, dtype=base.dtype, device=base.device)  # (S,)
    z = base.expand(len(dims), steps, latent).clone()  # (R, S, D): every row starts as the base code
    for r, d in enumerate(dims):
        z[r, :, d] = base[d] + offsets * scale[d]  # only dimension d moves along row r
    labels = None if label is None else torch.full((len(dims) * steps,), int(label), dtype=torch.long)
    images = model.generate(z.reshape(-1, latent), labels, check=False)  # (R*S, *event), in chunks
    return Traversal(
        images=images.reshape(len(dims), steps, *images.shape[1:]).cpu(),
        z=z.cpu(), dims=dims, values=values, base=base.cpu(), scores=scores,
        collapsed=np.zeros(len(dims), dtype=bool) if collapsed is None else collapsed,
    )
