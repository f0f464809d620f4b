"""Run configuration: dataclasses <-> dict/JSON/TOML, with type-checked dotted overrides.

A run config has four sections, each a dataclass next to the defaults it documents:
    data       which data set and how to read it
    model      network, latent size, likelihood, prior (and the data shape, filled in when built)
    objective  ELBO / IWAE and their knobs
    train      optimiser, epochs, batch size, seed
`--set model.latent_dim=32` style overrides are parsed as JSON when possible and checked against the field type.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass
class DataConfig:
    """Which data set to train on; `name` is a registered name or a path to a file or folder."""

    name: str = "digits"
    root: str | None = None  # folder holding the files (default: $VAEKIT_DATA/<name>)
    binarize: str | None = None  # None, "dynamic" or "threshold" (MNIST-style images)
    limit: int | None = None  # keep at most this many examples per split
    valid_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    label_column: str | None = None  # CSV: the column holding labels


@dataclass
class ModelConfig:
    """Architecture; `event_shape`, `num_classes` and `likelihood` are filled in from the data when left empty."""

    network: str = "mlp"
    latent_dim: int = 16
    hidden: list[int] = field(default_factory=lambda: [512, 256])  # MLP hidden sizes (encoder order)
    channels: list[int] = field(default_factory=lambda: [32, 64])  # conv channels per stride-2 layer
    conv_hidden: int = 256
    activation: str = "relu"
    likelihood: str | None = None  # None: bernoulli for [0, 1] data, gaussian-learned for real data
    sigma: float = 0.1  # (initial) standard deviation of Gaussian likelihoods
    prior: str = "normal"
    prior_components: int | None = None  # mixture priors: K components (None: 10 for "mog", 500 for "vamp")
    prior_init: str = "data"  # "vamp": pseudo-inputs start as random training examples ("data") or noise ("random")
    n_mix: int = 5  # "discretized-logistic": logistic mixture components per entry (1: one discretized logistic)
    conditional: bool = False  # condition encoder and decoder on the class label (CVAE)
    event_shape: list[int] | None = None
    num_classes: int = 0


@dataclass
class ObjectiveConfig:
    """The loss; options that the chosen objective does not take are ignored."""

    name: str = "elbo"
    beta: float = 1.0
    warmup_epochs: float = 0.0  # KL weight rises linearly from 0 to beta over this many epochs
    kl_schedule: str = "linear"  # "constant", "linear" (over warmup_epochs) or "cyclical" (Fu et al. 2019)
    cycles: int = 4  # cyclical: number of cycles over train.epochs
    cycle_ratio: float = 0.5  # cyclical: fraction of each cycle spent raising the weight from 0 to beta
    free_bits: float = 0.0  # nats per latent dimension
    gamma: float = 1000.0  # "capacity": weight of |KL - C| (Burgess et al. 2018)
    capacity_max: float = 25.0  # "capacity": final KL target C in nats
    capacity_epochs: float | None = None  # "capacity": epochs over which C rises from 0 (None: all of train.epochs)
    n_samples: int = 1
    k: int = 5  # IWAE samples


@dataclass
class TrainConfig:
    """Optimisation."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    lr_schedule: str = "constant"  # "constant" or "cosine" (decays to 0 over `epochs`)
    patience: int | None = None  # stop after this many epochs without a better validation loss
    time_limit: float | None = None  # minutes; stop at the first epoch end past this budget
    grad_clip: float | None = None
    threads: int | None = None  # torch intra-op threads (default: torch's choice)
    device: str = "cpu"
    progress: bool = True


@dataclass
class RunConfig:
    """A complete, reproducible description of a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def to_dict(config: Any) -> dict:
    """The config as plain JSON-ready data."""
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict, where: str = "") -> Any:
    """Builds dataclass `cls` from a (nested) dict, rejecting unknown keys and values of the wrong type."""
    if not isinstance(values, dict):
        raise ConfigError(f"config section {where or cls.__name__!r} must be a table, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}; known keys here: {', '.join(sorted(names))}")
        kwargs[key] = _check_type(value, hints[key], path)
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, path: str) -> Any:
    """Returns `value` converted to `hint` (int -> float, list for tuples) or raises ConfigError."""
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _check_type(value, option, path)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"config key {path!r} must be {_type_name(hint)}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
    elif origin is list:
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(hint)
            return [_check_type(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint in (str, bool):
        if isinstance(value, hint):
            return value
    else:
        return value
    raise ConfigError(f"config key {path!r} must be {_type_name(hint)}, got {value!r}")


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))


def parse_override(text: str) -> tuple[list[str], Any]:
    """'model.hidden=[400]' -> (['model', 'hidden'], [400]); values are JSON when they parse, else strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    raw = raw.strip()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = {"none": None, "null": None, "true": True, "false": False}.get(raw.lower(), raw)
    return key.strip().split("."), value


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Applies dotted overrides to a nested dict (type checks happen in `from_dict`)."""
    values = json.loads(json.dumps(values))  # deep copy; never mutate the caller's dict
    for text in overrides:
        keys, value = parse_override(text)
        node = values
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {key!r} is not a section")
        node[keys[-1]] = value
    return values


def read_config_file(path: str | Path) -> dict:
    """Reads a TOML or JSON config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            return json.loads(text)
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        return tomllib.loads(text)
    except Exception as error:  # json.JSONDecodeError, tomllib.TOMLDecodeError
        raise ConfigError(f"cannot parse config file {str(path)!r}: {error}") from None


def build_run_config(file: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None) -> RunConfig:
    """Defaults <- `base` dict <- config file <- overrides, checked into a `RunConfig`."""
    values: dict = json.loads(json.dumps(base or {}))
    if file is not None:
        for section, table in read_config_file(file).items():
            if isinstance(table, dict) and isinstance(values.get(section), dict):
                values[section].update(table)
            else:
                values[section] = table
    values = apply_overrides(values, overrides or [])
    return from_dict(RunConfig, values)
