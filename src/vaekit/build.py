"""Build a `VAE` from a `ModelConfig`, filling data-dependent fields from a data set."""

from __future__ import annotations

import dataclasses

from .config import ModelConfig
from .data.base import DataBundle
from .errors import ConfigError
from .likelihoods import LIKELIHOODS, build_likelihood
from .models.vae import VAE
from .nets import build_networks
from .priors import build_prior

# Default likelihood for each kind of data value.
DEFAULT_LIKELIHOOD = {"binary": "bernoulli", "unit": "bernoulli", "real": "gaussian-learned"}


def resolve_model_config(config: ModelConfig, data: DataBundle) -> ModelConfig:
    """A copy of `config` with the data shape, class count and default likelihood filled in from `data`."""
    event_shape = list(data.event_shape)
    if config.event_shape is not None and list(config.event_shape) != event_shape:
        raise ConfigError(f"model expects data of shape {tuple(config.event_shape)}, data set {data.name!r} has "
                          f"{tuple(event_shape)}")
    num_classes = 0
    if config.conditional:
        if data.num_classes < 2:
            raise ConfigError(f"model.conditional needs labels, and data set {data.name!r} has none")
        num_classes = data.num_classes
    return dataclasses.replace(
        config,
        event_shape=event_shape,
        num_classes=num_classes,
        likelihood=config.likelihood or DEFAULT_LIKELIHOOD[data.value_kind],
    )


def build_model(config: ModelConfig) -> VAE:
    """A freshly initialised VAE for a resolved `ModelConfig` (event_shape set)."""
    if config.event_shape is None:
        raise ConfigError("model.event_shape is not set: resolve the config against a data set first")
    if config.latent_dim < 1:
        raise ConfigError(f"model.latent_dim must be >= 1, got {config.latent_dim}")
    if any(h < 1 for h in config.hidden) or any(c < 1 for c in config.channels):
        raise ConfigError("model.hidden and model.channels must hold positive sizes")
    event_shape = tuple(config.event_shape)
    likelihood_name = config.likelihood or "bernoulli"
    # Each likelihood and prior takes the options it knows (build_* drop the others).
    likelihood = build_likelihood(likelihood_name, event_shape, sigma=config.sigma, n_mix=config.n_mix)
    nets = build_networks(
        config.network,
        event_shape,
        config.latent_dim,
        params_per_entry=likelihood.params_per_entry,
        cond_dim=config.num_classes,
        hidden=config.hidden,
        channels=config.channels,
        conv_hidden=config.conv_hidden,
        activation=config.activation,
    )
    prior = build_prior(config.prior, config.latent_dim, components=config.prior_components,
                        event_shape=event_shape, init=config.prior_init)
    return VAE(nets.encoder, nets.decoder, likelihood, prior, config.latent_dim, event_shape, config.num_classes)


__all__ = ["build_model", "resolve_model_config", "LIKELIHOODS"]
