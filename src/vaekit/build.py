"""Build a `VAE` from a `ModelConfig`, filling data-dependent fields from a data set."""

from __future__ import annotations

import dataclasses

from .config import ModelConfig, parse_plugin
from .data.base import DataBundle
from .errors import ConfigError
from .likelihoods import LIKELIHOODS
from .models.vae import VAE
from .nets import NETWORKS
from .priors import PRIORS

# Default likelihood for each kind of data value.
DEFAULT_LIKELIHOOD = {"binary": "bernoulli", "unit": "bernoulli", "real": "gaussian-learned"}
# The plug-in sections of a model config and their registries.
PLUGINS = {"network": NETWORKS, "likelihood": LIKELIHOODS, "prior": PRIORS}


def resolve_model_config(config: ModelConfig, data: DataBundle) -> ModelConfig:
    """A copy of `config` with the data shape, class count and default likelihood (the data set's own, else the
    one of its kind of values) filled in from `data`, and
    every plug-in section's options checked and completed with their defaults (as config.json records them)."""
    event_shape = list(data.event_shape)
    if config.event_shape is not None and list(config.event_shape) != event_shape:
        raise ConfigError(f"model expects data of shape {tuple(config.event_shape)}, data set {data.name!r} has "
                          f"{tuple(event_shape)}")
    num_classes = 0
    if config.conditional:
        if data.num_classes < 2:
            raise ConfigError(f"model.conditional needs labels, and data set {data.name!r} has none")
        num_classes = data.num_classes
    sections = {kind: _section(config, kind) for kind in PLUGINS}
    if sections["likelihood"].name is None:
        sections["likelihood"].name = data.default_likelihood or DEFAULT_LIKELIHOOD[data.value_kind]
    resolved = {kind: section.resolved(f"model.{kind}") for kind, section in sections.items()}
    return dataclasses.replace(config, event_shape=event_shape, num_classes=num_classes, **resolved)


def _section(config: ModelConfig, kind: str):
    """The model's `kind` section as a checked Plugin (a Python caller may have set a plain name)."""
    default = ModelConfig.__dataclass_fields__[kind].default_factory().name
    return parse_plugin(kind, getattr(config, kind), default, f"model.{kind}")


def build_model(config: ModelConfig) -> VAE:
    """A freshly initialised VAE for a resolved `ModelConfig` (event_shape set)."""
    if config.event_shape is None:
        raise ConfigError("model.event_shape is not set: resolve the config against a data set first")
    if config.latent_dim < 1:
        raise ConfigError(f"model.latent_dim must be >= 1, got {config.latent_dim}")
    event_shape = tuple(config.event_shape)
    net, lik, prior = (_section(config, kind) for kind in ("network", "likelihood", "prior"))
    if lik.name is None:  # not resolved against a data set: the likelihood of [0, 1] data
        lik = parse_plugin("likelihood", {**lik.options, "name": "bernoulli"}, None, "model.likelihood")
    likelihood = LIKELIHOODS.build(lik.name, lik.options, where="model.likelihood", event_shape=event_shape)
    nets = NETWORKS.build(net.name, net.options, where="model.network", event_shape=event_shape,
                          latent_dim=config.latent_dim, params_per_entry=likelihood.params_per_entry,
                          cond_dim=config.num_classes)
    p_z = PRIORS.build(prior.name, prior.options, where="model.prior", latent_dim=config.latent_dim,
                       event_shape=event_shape)
    return VAE(nets.encoder, nets.decoder, likelihood, p_z, config.latent_dim, event_shape, config.num_classes)


__all__ = ["build_model", "resolve_model_config", "LIKELIHOODS"]
