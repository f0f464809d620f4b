"""Build a `VAE` from a `ModelConfig`, filling data-dependent fields from a data set."""

from __future__ import annotations

import dataclasses

import torch

from .config import ModelConfig, parse_plugin
from .core import limits
from .data.base import DataBundle
from .errors import ConfigError, ResourceError, VaekitError
from .likelihoods import LIKELIHOODS
from .modalities import MODALITIES, Modality, modality_for_shape
from .models import MODEL_KINDS, ModelParts
from .models.vae import VAE
from .nets import NETWORKS
from .posteriors import POSTERIORS
from .priors import PRIORS
from .tabular import likelihood as _mixed_columns  # noqa: F401  (registers the likelihood "mixed")

# Priors defined in data space (pseudo-inputs): a modality without `data_space_priors` refuses them.
DATA_SPACE_PRIORS = ("vamp",)
# The plug-in sections of a model config and their registries.
PLUGINS = {"kind": MODEL_KINDS, "network": NETWORKS, "likelihood": LIKELIHOODS, "prior": PRIORS,
           "posterior": POSTERIORS}
# Bytes per parameter value while training: the float32 weights, their gradients and Adam's two moments.
TRAINING_BYTES_PER_PARAMETER = 4 * limits.FLOAT_BYTES
# Bytes per parameter value of a model used for inference: the weights and the checkpoint copy they load from.
INFERENCE_BYTES_PER_PARAMETER = 2 * limits.FLOAT_BYTES


def resolve_model_config(config: ModelConfig, data: DataBundle) -> ModelConfig:
    """A copy of `config` with the data's modality, shape, class count and vocabulary size filled in from `data`,
    the network and likelihood that its modality picks when none is named (the data set's own, else the one of
    its kind of values), and every plug-in section's options checked and completed with their defaults (as
    config.json records them)."""
    event_shape = list(data.event_shape)
    if config.event_shape is not None and list(config.event_shape) != event_shape:
        raise ConfigError(f"model expects data of shape {tuple(config.event_shape)}, data set {data.name!r} has "
                          f"{tuple(event_shape)}")
    modality = MODALITIES.get(data.modality)()
    if config.modality is not None and config.modality != modality.name:
        raise ConfigError(f"model expects {config.modality} data, data set {data.name!r} is {modality.name}")
    num_classes = 0
    vocab_size = modality.vocab_size(data)
    if config.vocab_size not in (0, vocab_size):
        raise ConfigError(f"model expects a vocabulary of {config.vocab_size} tokens, data set {data.name!r} has "
                          f"{vocab_size}")
    if config.conditional:
        if data.num_classes < 2:
            raise ConfigError(f"model.conditional needs labels, and data set {data.name!r} has none")
        num_classes = data.num_classes
    sections = {kind: _section(config, kind) for kind in PLUGINS}
    if sections["likelihood"].name is None:
        sections["likelihood"].name = modality.default_likelihood(data)
    if sections["network"].name is None:
        sections["network"].name = modality.default_network(data)
    _check_modality(sections, data.name, modality)
    if sections["posterior"].name != "gaussian" and sections["prior"].name in DATA_SPACE_PRIORS:
        raise ConfigError(f"model.prior {sections['prior'].name!r} mixes the encoder's Gaussians at its pseudo-inputs "
                          f"and needs model.posterior 'gaussian' (got {sections['posterior'].name!r})")
    resolved = {kind: section.resolved(f"model.{kind}") for kind, section in sections.items()}
    return dataclasses.replace(config, modality=modality.name, event_shape=event_shape, num_classes=num_classes,
                               vocab_size=vocab_size, **resolved)


def reads(kind: str, name: str) -> str | None:
    """The modality whose values the registered `kind` entry `name` reads only (its `modality` attribute, e.g.
    "text"), or None for an entry that reads arrays."""
    return getattr(PLUGINS[kind].get(name), "modality", None)


def _check_modality(sections: dict, data_name: str, modality: Modality) -> None:
    """A ConfigError when a network or likelihood for one modality meets data of another."""
    for kind in ("network", "likelihood"):  # (the model kind checks its own parts when it is built)
        name = sections[kind].name
        entry = reads(kind, name)
        if entry is not None and entry != modality.reads:
            described = MODALITIES.get(entry).values
            raise ConfigError(f"model.{kind} {name!r} reads {described}, and data set {data_name!r} is not {entry}")
        if modality.reads is not None and entry != modality.reads:
            choices = [n for n in PLUGINS[kind] if reads(kind, n) == modality.reads]
            raise ConfigError(f"data set {data_name!r} is {modality.name}: model.{kind} {name!r} does not read "
                              f"{modality.values} (choose {', '.join(map(repr, choices))}, or leave it unset)")
    if not modality.data_space_priors and sections["prior"].name in DATA_SPACE_PRIORS:
        raise ConfigError(f"model.prior {sections['prior'].name!r} lives in data space (pseudo-inputs), which "
                          f"{modality.values} are not; choose 'normal' or 'mog'")


def _section(config: ModelConfig, kind: str):
    """The model's `kind` section as a checked Plugin (a Python caller may have set a plain name)."""
    field = ModelConfig.__dataclass_fields__[kind]
    return parse_plugin(field.metadata["plugin"], getattr(config, kind), field.default_factory().name, f"model.{kind}")


def count_parameters(config: ModelConfig) -> int | None:
    """Parameter and buffer values of the model `config` describes, counted on the 'meta' device (nothing is
    allocated); None when a plug-in cannot be built there. Sizes too large for torch are a ResourceError."""
    try:
        with torch.device("meta"):
            model = _build(config)
    except VaekitError:
        raise
    except (RuntimeError, TypeError, OverflowError, ValueError, NotImplementedError) as error:
        if "overflow" in str(error).lower():
            raise ResourceError(f"the model is too large to build: its layer sizes overflow 64-bit sizes "
                                f"(model.latent_dim {config.latent_dim}, data shape "
                                f"{limits.describe_shape(config.event_shape)}; check model.network)") from None
        return None  # a plug-in that computes on its values while it is built; nothing to estimate
    return sum(t.numel() for t in model.parameters()) + sum(t.numel() for t in model.buffers())


def check_model_size(config: ModelConfig, training: bool = True) -> int | None:
    """The parameter count of `config`'s model, or a ResourceError when its weights (and, for training, their
    gradients and Adam state) do not fit the memory budget (`vaekit.core.limits`)."""
    n = count_parameters(config)
    if n is not None:
        per = TRAINING_BYTES_PER_PARAMETER if training else INFERENCE_BYTES_PER_PARAMETER
        use = "weights, gradients and optimiser state" if training else "weights"
        limits.check_allocation(n * per, f"a model of {n:,} parameters ({use}; model.latent_dim "
                                         f"{config.latent_dim}, model.network {_section(config, 'network').name!r})")
    return n


def build_model(config: ModelConfig, *, training: bool = True) -> VAE:
    """A freshly initialised VAE for a resolved `ModelConfig` (event_shape set).

    Its size is checked first against the memory budget (a ResourceError when it would not fit); `training`
    counts the gradients and optimiser state too (a model only used for inference may pass False)."""
    if config.event_shape is None:
        raise ConfigError("model.event_shape is not set: resolve the config against a data set first")
    if config.latent_dim < 1:
        raise ConfigError(f"model.latent_dim must be >= 1, got {config.latent_dim}")
    check_model_size(config, training)
    return _build(config)


def _build(config: ModelConfig) -> VAE:
    """The model of `config`'s kind, built by its registered factory from the configured plug-ins."""
    event_shape = tuple(config.event_shape)
    kind, net, lik, prior, post = (_section(config, k) for k in ("kind", "network", "likelihood", "prior", "posterior"))
    if lik.name is None:  # not resolved against a data set: the likelihood of [0, 1] data
        lik = parse_plugin("likelihood", {**lik.options, "name": "bernoulli"}, None, "model.likelihood")
    if net.name is None:
        net = parse_plugin("network", {**net.options, "name": "mlp"}, None, "model.network")
    likelihood = LIKELIHOODS.build(lik.name, lik.options, where="model.likelihood", event_shape=event_shape,
                                   latent_dim=config.latent_dim, vocab_size=config.vocab_size)

    def networks(latent_dim: int):
        return NETWORKS.build(net.name, net.options, where="model.network", event_shape=event_shape,
                              latent_dim=latent_dim, params_per_entry=likelihood.params_per_entry,
                              cond_dim=config.num_classes, vocab_size=config.vocab_size)

    def make_prior(latent_dim: int):
        return PRIORS.build(prior.name, prior.options, where="model.prior", latent_dim=latent_dim,
                            event_shape=event_shape)

    def make_posterior(latent_dim: int):
        return POSTERIORS.build(post.name, post.options, where="model.posterior", latent_dim=latent_dim)

    modality = model_modality(config)
    parts = ModelParts(event_shape=event_shape, latent_dim=config.latent_dim, num_classes=config.num_classes,
                       vocab_size=config.vocab_size, likelihood=likelihood, networks=networks, prior=make_prior,
                       posterior=make_posterior, network_name=net.name, prior_name=prior.name,
                       posterior_name=post.name,
                       sequence_data=modality.variable_length, model_class=modality.model_class)
    model = MODEL_KINDS.build(kind.name, kind.options, where="model.kind", parts=parts)
    model.modality = modality  # what its values are (vaekit.modalities.modality_of)
    # the registered names it was built from, for people (its notebook summary), never for dispatch
    model.plugins = {"kind": kind.name, "network": net.name, "likelihood": lik.name,
                     "prior": prior.name, "posterior": post.name}
    return model


def model_modality(config: ModelConfig) -> Modality:
    """The modality of a model config: the one it records, or for a config saved before modalities were
    recorded (or not yet resolved), the one its shape and vocabulary say."""
    name = config.modality or modality_for_shape(tuple(config.event_shape or ()), config.vocab_size)
    return MODALITIES.get(name)()


__all__ = ["build_model", "check_model_size", "count_parameters", "resolve_model_config", "LIKELIHOODS"]
