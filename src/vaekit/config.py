"""Run configuration: dataclasses <-> dict/JSON/TOML, with type-checked dotted overrides.

A run config has four sections, each a dataclass next to the defaults it documents:
    data       which data set and how to read it
    model      latent size, conditioning, and three plug-in sections: network, likelihood, prior
    objective  a plug-in section: the objective's name (elbo, iwae, capacity) and its own options
    train      optimiser, epochs, batch size, seed
A plug-in section is a registered `name` plus that entry's own options, checked against its signature and
type hints (an option it does not take is an error naming the options it does take):

    [model.network]                  --set model.network=conv
    name = "mlp"                     --set model.network.hidden=[400]
    hidden = [400]                   --set objective.beta=4

`--set` overrides are parsed as JSON when possible and checked against the field type.

Every numeric field declares its valid range next to it (`ranged(default, lo, hi)`; a choice of strings with
`choice(default, ...)`), and a value is checked where it enters: `from_dict` (files, overrides), the dataclass
constructors and attribute assignment (`config.train.lr = 1e-3`) alike. A value outside its range is a
ConfigError naming the key and the range ("train.grad_clip must be > 0 (or null), got -1.0"); it is never
replaced by another. Floats must be finite everywhere, plug-in options included (`vaekit.core.typecheck`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from .core import runtime
from .core.registry import REQUIRED

# Device strings and memory limits are checked in vaekit.core.runtime; these names stay importable from here.
from .core.runtime import AUTO_DEVICE, DEVICE_TYPES, check_device_available, parse_memory_limit, resolve_device  # noqa: F401
from .core.typecheck import Range, check_type, shown
from .data.common import DEFAULT_MAX_LEN, DEFAULT_TEST_FRACTION, DEFAULT_VALID_FRACTION, DEFAULT_VOCAB_SIZE
from .errors import ConfigError

# Seeds reach torch (which derives per-epoch seeds from them) and scikit-learn (random_state < 2**32).
MAX_SEED = 2**32 - 1
MAX_THREADS = 1024
MAX_LATENT_DIM = 65536
MAX_CLASSES = 1_000_000
MAX_VOCAB = 1_000_000  # model.vocab_size, as data.vocab_size allows

# Checking a device's availability is deferred while `from_dict` reads a config: a saved run trained on a GPU
# must stay readable on a machine without one. `build_run_config` (a config to train with) checks it.
_CHECK_AVAILABLE: contextvars.ContextVar[bool] = contextvars.ContextVar("vaekit_check_device", default=True)


def ranged(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Any:
    """A dataclass field whose number (or each number of a list) must lie in [lo, hi] (open ends with
    `lo_open` / `hi_open`; None is unbounded); null passes when the field's type allows it."""
    return field(default=default, metadata={"range": Range(lo, hi, lo_open, hi_open)})


def choice(default: Any, *choices: Any) -> Any:
    """A dataclass field that must hold one of `choices` (null passes when the field's type allows it)."""
    return field(default=default, metadata={"choices": choices})


def checked_field(default: Any, check: Callable[[Any, str], Any]) -> Any:
    """A dataclass field checked by `check(value, key)`, which returns the value or raises ConfigError."""
    return field(default=default, metadata={"check": check})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_field(cls: type, key: str, value: Any, path: str | None = None) -> Any:
    """`value` for field `key` of section `cls`, checked: its type (ints widen to floats, floats finite), its
    range or choices, and the field's own check; a ConfigError naming the key otherwise."""
    f = cls.__dataclass_fields__[key]
    prefix = getattr(cls, "_section", "")
    path = path or (f"{prefix}.{key}" if prefix else key)
    hint = _hints(cls)[key]
    if dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            return from_dict(hint, value, path)
        if not isinstance(value, hint):
            raise ConfigError(f"config key {path!r} must be a {hint.__name__} or a table, got {shown(value)}")
        return value
    value = check_type(value, hint, path)
    if value is None:
        return None
    nullable = " (or null)" if _allows_none(hint) else ""
    bounds = f.metadata.get("range")
    if bounds is not None:
        if isinstance(value, list):
            if not all(v in bounds for v in value):
                raise ConfigError(f"{path} entries must be {bounds.describe()}, got {shown(value)}")
        elif value not in bounds:
            raise ConfigError(f"{path} must be {bounds.describe()}{nullable}, got {shown(value)}")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{path} must be one of {', '.join(repr(c) for c in choices if c is not None)}{nullable}, "
                          f"got {shown(value)}")
    check = f.metadata.get("check")
    return value if check is None else check(value, path)


def _allows_none(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def check_memory_limit(value: str | None, path: str = "data.memory_limit") -> str | None:
    """`value` if it reads as a size ("2G", "512M", "2.5GiB", "1000000" bytes); a ConfigError naming `path`."""
    if value is not None:
        parse_memory_limit(value, path)  # the one parser of memory limits (vaekit.core.runtime)
    return value


def check_device(value: str, path: str = "train.device") -> str:
    """`value` if torch reads it as a device of a type vaekit trains on, or "auto" (and, unless a saved config is
    being read, one this machine has); a one-line ConfigError otherwise."""
    return runtime.check_device(value, path, available=_CHECK_AVAILABLE.get())


class Section:
    """Base of the config sections: setting a key the section does not have is an error, not a new attribute
    that nothing reads (`config.model.hidden = [64]` would otherwise be silently ignored); a value is checked
    against the field's type and range (`check_field`) whether it comes from a file, the constructor or an
    assignment."""

    _section: ClassVar[str] = ""  # the section's key in a run config ("train"), for messages

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in self.__dataclass_fields__:
            hint = ""
            if isinstance(self, ModelConfig) and key in LEGACY_MODEL_KEYS:
                section, option = LEGACY_MODEL_KEYS[key]
                hint = f"; it is now model.{section}.{option} (config.model.{section}.{option} = ...){_kind_hint(key)}"
            raise ConfigError(f"{type(self).__name__} has no key {key!r}{hint or '; its keys: ' + ', '.join(self.__dataclass_fields__)}")
        kind = self.__dataclass_fields__[key].metadata.get("plugin")
        if kind is not None and not isinstance(value, Plugin):  # a name or a table, as in a config file
            value = parse_plugin(kind, value, self.__dataclass_fields__[key].default_factory().name, key)
        elif kind is None:
            value = check_field(type(self), key, value)
            self._check_together(key, value)
        object.__setattr__(self, key, value)

    def _check_together(self, key: str, value: Any) -> None:
        """A check of `value` against the section's other fields (those already set), before it is stored."""


@dataclass
class DataConfig(Section):
    """Which data set to train on; `name` is a registered name or a path to a file or folder."""

    _section: ClassVar[str] = "data"

    name: str = "digits"
    root: str | None = None  # folder holding the files (default: $VAEKIT_DATA/<name>)
    binarize: str | None = choice(None, None, "dynamic", "threshold")  # MNIST-style images
    limit: int | None = ranged(None, 1)  # keep at most this many examples per split
    valid_fraction: float = ranged(DEFAULT_VALID_FRACTION, 0.0, 1.0, hi_open=True)
    test_fraction: float = ranged(DEFAULT_TEST_FRACTION, 0.0, 1.0, hi_open=True)  # valid_fraction + test_fraction < 1
    seed: int = ranged(0, 0, MAX_SEED)
    label_column: str | None = None  # CSV: the column holding labels
    max_len: int = ranged(DEFAULT_MAX_LEN, 1, 10_000)  # text: words kept per sentence (longer ones are cut, with a warning)
    vocab_size: int = ranged(DEFAULT_VOCAB_SIZE, 5, 1_000_000)  # text: most frequent tokens kept, the 4 special ones included
    # Data larger than this are streamed from disk (memory-mapped .npy, IDX files, image folders) instead of being
    # loaded: a size such as "2G", "512M" or a number of bytes (null: vaekit's memory budget, see vaekit.core.limits)
    memory_limit: str | None = checked_field(None, check_memory_limit)
    workers: int = ranged(2, 0, 256)  # DataLoader worker processes that read streamed data (0: the main process)

    def _check_together(self, key: str, value: Any) -> None:
        fractions = ("valid_fraction", "test_fraction")
        if key in fractions:
            other = fractions[1 - fractions.index(key)]
            if other in self.__dict__:  # (the constructor sets valid_fraction first)
                valid, test = (value, self.test_fraction) if key == "valid_fraction" else (self.valid_fraction, value)
                if valid + test >= 1.0:
                    raise ConfigError(f"data.valid_fraction + data.test_fraction must be below 1, got {valid} + "
                                      f"{test} = {valid + test:g}")


@dataclass
class Plugin:
    """A config section that picks a registered entry of one plug-in kind: its `name` and that entry's own
    `options` (checked against the entry's signature and type hints; see `vaekit.core.registry`).

    In a file it is one table, `[model.network]` with `name = "mlp"` and `hidden = [400]`; an override may give
    the name alone (`model.network=conv`) or one option (`model.network.hidden=[400]`). Options read and set as
    attributes: `config.model.network.hidden = [64]`. A `name` of None means "chosen from the data" (the
    likelihood); its options are checked once the name is known.
    """

    kind: str
    name: str | None
    options: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key in ("kind", "name", "options"):
            raise AttributeError(key)
        options = self.__dict__.get("options", {})
        if key in options:
            return options[key]
        known = _registry(self.kind).options(self.name) if self.name else {}
        if key in known and known[key].default is not REQUIRED:
            return known[key].default
        raise AttributeError(f"{self.kind} {self.name!r} has no option {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("kind", "name", "options"):
            object.__setattr__(self, key, value)
        else:
            self.options[key] = value

    def checked(self, where: str) -> "Plugin":
        """A copy whose options are checked against the entry (unchanged when the name is not chosen yet)."""
        if self.name is None:  # no entry to check against yet; a non-finite float is wrong for every entry
            for key, value in self.options.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    check_type(value, float if isinstance(value, float) else int, f"{where}.{key}")
            return Plugin(self.kind, None, dict(self.options))
        return Plugin(self.kind, self.name, _registry(self.kind).check(self.name, self.options, where))

    def resolved(self, where: str) -> "Plugin":
        """A copy with every option of the entry, defaults filled in (what config.json records)."""
        return Plugin(self.kind, self.name, _registry(self.kind).resolve(self.name, self.options, where))

    def to_dict(self) -> dict:
        """{"name": ..., **options}: the form of a config file's table."""
        return {"name": self.name, **self.options}


def check_modality(value: str | None, path: str = "model.modality") -> str | None:
    """`value` if it names a registered modality (vaekit.modalities), or None (filled in from the data)."""
    if value is None:
        return None
    from .modalities import MODALITIES

    if value not in MODALITIES:
        raise ConfigError(f"{path} must be one of {', '.join(MODALITIES.names())} (or null), got {value!r}")
    return value


def _registry(kind: str):
    """The registry of a plug-in kind, with every built-in entry registered."""
    from . import likelihoods, modalities, models, nets, objectives, posteriors, priors  # noqa: F401  (importing registers the entries)
    from .core.registry import REGISTRIES
    from .tabular import likelihood  # noqa: F401,F811  (the likelihood "mixed")

    return REGISTRIES[kind]


def plugin(kind: str, name: str | None) -> Any:
    """A dataclass field holding a `Plugin` of `kind`, `name` by default."""
    return field(default_factory=lambda: Plugin(kind, name), metadata={"plugin": kind})


@dataclass
class ModelConfig(Section):
    """Architecture; `event_shape`, `num_classes`, `vocab_size` and the network's and likelihood's names are filled
    in from the data when left empty (mlp; bernoulli for [0, 1] data, gaussian-learned for real data, the rnn
    network and the sentence likelihood for text)."""

    _section: ClassVar[str] = "model"

    latent_dim: int = ranged(16, 1, MAX_LATENT_DIM)
    # The model kind (vaekit.models): 'vae' (one stochastic layer) or 'hierarchical' (several; its options are
    # the layer sizes and the width of the networks between them), with that kind's own options.
    kind: Plugin = plugin("model kind", "vae")
    network: Plugin = plugin("network", None)
    likelihood: Plugin = plugin("likelihood", None)
    prior: Plugin = plugin("prior", "normal")
    posterior: Plugin = plugin("posterior", "gaussian")  # q(z|x): a diagonal Gaussian, or 'iaf' (a flow on it)
    conditional: bool = False  # condition encoder and decoder on the class label (CVAE)
    # What the data's values are (vaekit.modalities: image, table, points, text), filled in from the data
    modality: str | None = checked_field(None, check_modality)
    event_shape: list[int] | None = ranged(None, 1)  # each size >= 1
    num_classes: int = ranged(0, 0, MAX_CLASSES)
    vocab_size: int = ranged(0, 0, MAX_VOCAB)  # text: the vocabulary's size, from the data (0 for other data)


# The default training length (train.epochs unset): enough epochs for this many optimiser steps, and no fewer
# than MIN_EPOCHS. Small data sets (digits: 10 steps per epoch) then train long enough; MNIST gets 20 epochs.
MIN_STEPS = 1000
MIN_EPOCHS = 20


def default_epochs(steps_per_epoch: int) -> int:
    """Epochs of a run whose train.epochs is unset."""
    return max(MIN_EPOCHS, -(-MIN_STEPS // max(1, steps_per_epoch)))


# Most epochs a run may ask for: a million passes over the data is beyond any use; a larger number (2^63, 1e11)
# is a mistake that would run for ever.
MAX_EPOCHS = 1_000_000


@dataclass
class TrainConfig(Section):
    """Optimisation."""

    _section: ClassVar[str] = "train"

    epochs: int | None = ranged(None, 1, MAX_EPOCHS)  # None: at least MIN_EPOCHS and MIN_STEPS optimiser steps
    batch_size: int = ranged(128, 1)
    lr: float = ranged(1e-3, 0.0, lo_open=True)
    weight_decay: float = ranged(0.0, 0.0)
    seed: int = ranged(0, 0, MAX_SEED)
    lr_schedule: str = choice("constant", "constant", "cosine")  # cosine decays to 0 over `epochs`
    patience: int | None = ranged(None, 1)  # stop after this many epochs without a better validation loss
    time_limit: float | None = ranged(None, 0.0, lo_open=True)  # minutes; stop at the first epoch end past it
    # torchrun jobs: minutes a process waits for the others at a collective before giving up (a frozen peer)
    peer_timeout: float = ranged(30.0, 0.1, 1440.0)
    grad_clip: float | None = ranged(None, 0.0, lo_open=True)  # max gradient norm (None: no clipping)
    threads: int | None = ranged(None, 1, MAX_THREADS)  # torch intra-op threads (default: torch's choice)
    device: str = checked_field("cpu", check_device)  # auto, cpu, cuda, cuda:N or mps (one this machine has)
    compile: bool = False  # torch.compile the training step (model, likelihood and objective)
    precision: str = choice("float32", "float32", "bfloat16", "float16")  # autocast dtype of the training step
    progress: bool = True
    # Experiment trackers that also receive every epoch's metrics (metrics.jsonl stays the record): "tensorboard"
    # (RUN/tensorboard/), "mlflow" (vaekit.training.trackers); rank 0 only
    log: list[str] = field(default_factory=list, metadata={"check": lambda value, path: _check_trackers(value, path)})
    # epochs between the sample and reconstruction images sent to train.log (None: every 30 s of training); and after
    # the last epoch
    log_images_every: int | None = ranged(None, 1)


def _check_trackers(value: list[str], path: str) -> list[str]:
    from .training.trackers import check_trackers  # the registry of trackers (no tracker package imported)

    return check_trackers(value, path)


@dataclass
class RunConfig(Section):
    """A complete, reproducible description of a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: Plugin = plugin("objective", "elbo")
    train: TrainConfig = field(default_factory=TrainConfig)


def to_dict(config: Any) -> dict:
    """The config as plain JSON-ready data (a plug-in section as {"name": ..., **options})."""
    if isinstance(config, Plugin):
        return json.loads(json.dumps(config.to_dict()))
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    return config


# Keys of the flat model section of earlier versions -> (plug-in section, option) that now holds them.
LEGACY_MODEL_KEYS = {"hidden": ("network", "hidden"), "channels": ("network", "channels"),
                     "conv_hidden": ("network", "dense"), "activation": ("network", "activation"),
                     "sigma": ("likelihood", "sigma"), "n_mix": ("likelihood", "n_mix"),
                     "prior_components": ("prior", "components"), "prior_init": ("prior", "init"),
                     "latent_layers": ("kind", "layers"), "layer_hidden": ("kind", "hidden")}
# The keys of the hierarchical VAE before model kinds were plug-ins -> the option of model.kind 'hierarchical'.
LEGACY_LAYER_KEYS = {"latent_layers": "layers", "layer_hidden": "hidden"}


def _kind_hint(key: str) -> str:
    """For an old key of the hierarchical VAE: the model kind it now belongs to."""
    return ", with model.kind.name = 'hierarchical'" if key in LEGACY_LAYER_KEYS else ""


def from_dict(cls: type, values: dict, where: str = "") -> Any:
    """Builds dataclass `cls` from a (nested) dict, rejecting unknown keys and values of the wrong type; a
    plug-in section's options are checked against the chosen entry."""
    if not isinstance(values, dict):
        raise ConfigError(f"config section {where or cls.__name__!r} must be a table, got {type(values).__name__}")
    token = _CHECK_AVAILABLE.set(False)  # a saved config stays readable where its device is not (see check_device)
    try:
        return _from_dict(cls, values, where)
    finally:
        _CHECK_AVAILABLE.reset(token)


def _from_dict(cls: type, values: dict, where: str) -> Any:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            hint = ""
            if cls is ModelConfig and key in LEGACY_MODEL_KEYS:
                section, option = LEGACY_MODEL_KEYS[key]
                hint = f"; it is now model.{section}.{option}{_kind_hint(key)}"
            raise ConfigError(f"unknown config key {path!r}{hint or '; known keys here: ' + ', '.join(fields)}")
        kind = fields[key].metadata.get("plugin")
        if kind is not None:
            kwargs[key] = parse_plugin(kind, value, fields[key].default_factory().name, path)
        elif dataclasses.is_dataclass(hints[key]):
            kwargs[key] = from_dict(hints[key], value, path)
        else:
            kwargs[key] = check_field(cls, key, value, path)  # type, range, choices
    return cls(**kwargs)


def parse_plugin(kind: str, value: Any, default_name: str | None, path: str) -> Plugin:
    """A plug-in section from a name, a table {"name": ..., **options} or an existing `Plugin`, checked."""
    if isinstance(value, Plugin):
        value = value.to_dict()
    if isinstance(value, str):
        value = {"name": value}
    if value is None and default_name is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"config key {path!r} must be the name of a {kind} or a table with its name and "
                          f"options, got {value!r}")
    options = dict(value)
    name = options.pop("name", default_name)
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"config key {path + '.name'!r} must be the name of a {kind}, got {name!r}")
    if name is not None:
        try:
            _registry(kind).get(name)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
    return Plugin(kind, name, options).checked(path)


def upgrade_legacy(values: dict) -> dict:
    """A run config dict of an earlier version (flat model and objective sections) in today's form.

    Those versions passed each plug-in only the options its signature took and ignored the rest, so an old
    option that the chosen entry does not take is dropped here: the converted run builds the same model.
    """
    values = json.loads(json.dumps(values))
    model = values.get("model")
    if isinstance(model, dict) and set(model) & set(LEGACY_LAYER_KEYS) and "kind" not in model:
        # model.latent_layers = [40, 40] (and model.layer_hidden) -> [model.kind] name = "hierarchical", layers = ...
        old = {key: model.pop(key) for key in LEGACY_LAYER_KEYS if key in model}
        if old.get("latent_layers") is not None:
            model["kind"] = {"name": "hierarchical", "layers": old["latent_layers"],
                             **({"hidden": old["layer_hidden"]} if "layer_hidden" in old else {})}
    if isinstance(model, dict) and (set(model) & set(LEGACY_MODEL_KEYS) or isinstance(model.get("network"), str)):
        sections = {kind: {"name": model.pop(kind, None)} for kind in ("network", "likelihood", "prior")}
        sections["network"]["name"] = sections["network"]["name"] or "mlp"
        sections["prior"]["name"] = sections["prior"]["name"] or "normal"
        for key in [k for k in model if k in LEGACY_MODEL_KEYS]:
            kind, option = LEGACY_MODEL_KEYS[key]
            value = model.pop(key)
            name = sections[kind]["name"]
            if name is not None and option in _registry(kind).options(name) and value is not None:
                sections[kind][option] = value
        model.update(sections)
    objective = values.get("objective")
    if isinstance(objective, dict) and isinstance(objective.get("name", "elbo"), str):
        name = objective.get("name", "elbo")
        if name in _registry("objective"):
            known = _registry("objective").options(name)
            values["objective"] = {"name": name, **{k: v for k, v in objective.items() if k in known}}
    return values


def parse_override(text: str) -> tuple[list[str], Any]:
    """'model.hidden=[400]' -> (['model', 'hidden'], [400]); values are JSON when they parse, else strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    raw = raw.strip()
    try:
        value = json.loads(raw)
    except ValueError:  # not JSON (json.JSONDecodeError), or an int of more digits than Python converts
        value = {"none": None, "null": None, "true": True, "false": False}.get(raw.lower(), raw)
    return key.strip().split("."), value


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Applies dotted overrides to a nested dict (type checks happen in `from_dict`). A plain name given to a
    plug-in table (`model.network=conv`) sets its name and keeps its options (which are then checked)."""
    values = json.loads(json.dumps(values))  # deep copy; never mutate the caller's dict
    for text in overrides:
        keys, value = parse_override(text)
        node = values
        for key in keys[:-1]:
            if isinstance(node.get(key), str):
                node[key] = {"name": node[key]}  # a plug-in given by name gains an option
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {key!r} is not a section")
        _set(node, keys[-1], value)
    return values


def _set(node: dict, key: str, value: Any) -> None:
    if isinstance(node.get(key), dict) and isinstance(value, str):
        node[key]["name"] = value
    else:
        node[key] = value


def merge(base: dict, update: dict) -> dict:
    """`update` merged into a copy of `base`, table by table (later values win; see `apply_overrides`)."""
    merged = json.loads(json.dumps(base))
    for key, value in update.items():
        if isinstance(merged.get(key), str) and isinstance(value, dict):
            merged[key] = {"name": merged[key]}
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = merge(merged[key], value)
        else:
            _set(merged, key, value)
    return merged


def read_config_file(path: str | Path) -> dict:
    """Reads a TOML or JSON config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {str(path)!r}: not a UTF-8 text file") from None
    if path.suffix == ".json":
        from .core.jsonfile import parse_json

        return parse_json(text, f"config file {str(path)!r}", ConfigError)
    try:
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
        values = merge(values, read_config_file(file))
        try:  # the file's own values checked first, so that an error in them names the file
            from_dict(RunConfig, json.loads(json.dumps(values)))
        except ConfigError as error:
            raise ConfigError(f"config file {str(file)!r}: {error}") from None
    values = apply_overrides(values, overrides or [])
    config = from_dict(RunConfig, values)
    check_device_available(config.train.device)  # a config to train with: its device must be on this machine
    return config
