"""Model kinds as plug-ins: the registry, what a kind is built from, and what it declares it can do.

A model kind (`model.kind` in a config: `vae`, `hierarchical`, ...) is one registered factory in the file of its
model. The factory receives `ModelParts`, everything the builder knows and the user does not set (the data shape,
the latent size, the class count, the built likelihood, and builders for the network, prior and posterior
sections of the config), plus the kind's own options (`[model.kind]` with `name = "hierarchical"` and
`layers = [40, 40]`), checked against its signature like every other plug-in.

Evaluation, analysis and the applications ask a model through one small protocol instead of probing its class:
`embed(x, y)` (a point in latent space per input, (B, D)), `decode(z, y)`, `prior_codes(n, labels)` and
`capabilities` (a `Capabilities`: what it can be asked).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

from torch import nn

from ..core.registry import Registry

# Every factory takes the builder's parts; everything else it takes is an option of `[model.kind]`.
MODEL_KINDS: Registry[Callable[..., nn.Module]] = Registry("model kind", context=("parts",))


@dataclass(frozen=True)
class Capabilities:
    """What a model kind can be asked, declared by the model instead of recognised by its class.

    `density`: log p(x) can be estimated by importance sampling (the IWAE bound), so NLL and bits/dim exist.
    `kl_per_dimension`: the KL splits into one term per latent dimension (KL per dim, active units).
    `layers`: the sizes of its stochastic layers, bottom first, for models with several (None: one layer).
    `entropy_coding`: codes can be bits-back coded under its prior (a diagonal Gaussian q(z|x), one layer).
    """

    density: bool = True
    kl_per_dimension: bool = True
    layers: tuple[int, ...] | None = None
    entropy_coding: bool = True


@dataclass
class ModelParts:
    """What the builder hands a model kind's factory (`vaekit.build`).

    `networks(latent_dim)` builds an encoder/decoder pair of the configured network for a code of that size
    (the encoder gives (B, 2 * latent_dim) Gaussian parameters; the decoder reads (N, latent_dim));
    `prior(latent_dim)` and `posterior(latent_dim)` build the configured `[model.prior]` and `[model.posterior]`
    for that size; `prior_name`, `posterior_name` and `network_name` say which entries were configured, so that a
    kind can refuse a combination it does not support in one line.
    """

    event_shape: tuple[int, ...]
    latent_dim: int
    num_classes: int
    vocab_size: int
    likelihood: nn.Module
    networks: Callable[[int], object]
    prior: Callable[[int], nn.Module]
    posterior: Callable[[int], nn.Module]
    network_name: str
    prior_name: str
    posterior_name: str
    # True when the configured network and likelihood read sequences of token ids (the builder knows it from
    # their registry entries); a kind that needs fixed-size data refuses them.
    sequence_data: bool = False
    # The class of a one-layer model: VAE, or a subclass that turns outputs into the data's own values
    # (vaekit.text.model.SentenceVAE: sentences); None: VAE.
    model_class: type | None = None


def layer_slices(layers: Sequence[int]) -> list[slice]:
    """The index range of each layer in the joint code, bottom first."""
    bounds = [0, *itertools.accumulate(layers)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def split_per_layer(values: Sequence[float], layers: Sequence[int] | None) -> list[list[float]] | None:
    """Per-dimension values (D,) cut into one list per layer (bottom first); None for a one-layer model."""
    if not layers:
        return None
    values = list(values)
    return [values[s] for s in layer_slices(layers)]


__all__ = ["MODEL_KINDS", "Capabilities", "ModelParts", "layer_slices", "split_per_layer"]
