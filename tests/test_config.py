"""Config files, dotted overrides and their type checks; every shipped config builds a model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import vaekit
from vaekit.build import build_model
from vaekit.config import RunConfig, build_run_config, from_dict, to_dict

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
# Data shapes of the registered data sets, so that configs build without the data files.
SHAPES = {"digits": [1, 8, 8], "mnist": [1, 28, 28], "fashion-mnist": [1, 28, 28], "binarized-mnist": [1, 28, 28],
          "shapes": [1, 64, 64], "ptb": [102], "toy-sentences": [14]}
VOCABULARIES = {"ptb": 10_002, "toy-sentences": 63}  # text data: the vocabulary's size


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_builds(path):
    config = build_run_config(path)
    config.model.event_shape = SHAPES.get(config.data.name, [1, 28, 28])
    config.model.vocab_size = VOCABULARIES.get(config.data.name, 0)
    if config.model.conditional:
        config.model.num_classes = 10
    model = build_model(config.model)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_overrides_are_typed():
    config = build_run_config(overrides=["model.latent_dim=32", "model.network.hidden=[400]", "train.lr=1e-2",
                                         "data.root=null", "objective.beta=2", "train.progress=false"])
    assert config.model.latent_dim == 32 and config.model.network.hidden == [400]
    assert config.train.lr == 0.01 and config.data.root is None
    assert config.objective.beta == 2.0 and isinstance(config.objective.beta, float)
    assert config.train.progress is False


@pytest.mark.parametrize("override, message", [
    ("model.latent_dim=abc", "must be int"),
    ("model.latent_dim=2.5", "must be int"),
    ("train.lr=true", "must be float"),
    ('model.network={"name": "mlp", "hidden": [1, "a"]}', "model.network.hidden"),
    ("model.hidden=[4]", "it is now model.network.hidden"),
    ("model.network=nope", "unknown network 'nope'"),
    ('model.network={"name": "mlp", "nope": 1}', "network 'mlp' (model.network) takes no option 'nope'; its "
     "options: hidden"),
    ("model.prior.components=3", "prior 'normal' (model.prior) takes no option 'components'"),
    ("objective.k=5", "objective 'elbo' takes no option 'k'; its options: beta"),
    ("objective.beta=\"x\"", "objective.beta' must be float"),
    ("model.nope=1", "unknown config key 'model.nope'"),
    ("nosection.key=1", "unknown config key 'nosection'"),
    ("no_equals_sign", "section.key=value"),
])
def test_bad_overrides_are_rejected(override, message):
    with pytest.raises(vaekit.ConfigError, match=re.escape(message)):
        build_run_config(overrides=[override])


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\nlatent_dim = 5\n[model.network]\nhidden = [10, 20]\n[train]\nepochs = 3\n")
    config = build_run_config(path, ["train.epochs=7"])
    assert config.model.latent_dim == 5 and config.model.network.hidden == [10, 20] and config.train.epochs == 7
    assert config.model.network.name is None  # untouched defaults stay: the data choose the network (mlp here)
    assert vaekit.resolve_model_config(config.model, vaekit.load_data("digits")).network.name == "mlp"


def test_a_name_override_keeps_the_files_options_and_checks_them(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model.network]\nname = "mlp"\nhidden = [10]\n')
    assert build_run_config(path, ["model.network.activation=tanh"]).model.network.options == {
        "hidden": [10], "activation": "tanh"}
    with pytest.raises(vaekit.ConfigError, match="network 'conv' .* takes no option 'hidden'"):
        build_run_config(path, ["model.network=conv"])  # the file's hidden is not silently dropped


def test_python_api_settings_are_checked_too(digits):
    config = vaekit.RunConfig()
    with pytest.raises(vaekit.ConfigError, match="it is now model.network.hidden"):
        config.model.hidden = [8]
    config.objective.k = 50  # an option of IWAE, not of the ELBO: refused when training starts
    with pytest.raises(vaekit.ConfigError, match="objective 'elbo' takes no option 'k'"):
        vaekit.fit(config, data=digits)
    config = vaekit.RunConfig()
    config.model.prior = "mog"  # a plain name works in Python as on the command line
    config.model.prior.components = 0
    with pytest.raises(vaekit.ConfigError, match="model.prior.*components must be >= 1"):
        vaekit.fit(config, data=digits)


def test_every_option_listed_by_the_registries_has_a_type_and_a_default():
    from vaekit.core.registry import REGISTRIES, REQUIRED

    for kind in ("network", "likelihood", "prior", "posterior", "objective", "model kind"):
        for name in REGISTRIES[kind].names():
            for option in REGISTRIES[kind].options(name).values():
                assert option.default is not REQUIRED and option.hint is not None, (kind, name, option)


def test_old_flat_run_configs_still_load(tmp_path):
    """A config.json of the earlier flat form: options of other entries were ignored then, and are dropped."""
    old = {"data": {"name": "digits"},
           "model": {"network": "conv", "latent_dim": 3, "hidden": [512, 256], "channels": [4], "conv_hidden": 16,
                     "activation": "relu", "likelihood": "gaussian", "sigma": 0.2, "prior": "mog",
                     "prior_components": 3, "prior_init": "data", "n_mix": 5, "conditional": False,
                     "event_shape": [1, 8, 8], "num_classes": 0},
           "objective": {"name": "elbo", "beta": 2.0, "warmup_epochs": 1.0, "kl_schedule": "linear", "cycles": 4,
                         "cycle_ratio": 0.5, "free_bits": 0.0, "gamma": 1000.0, "capacity_max": 25.0,
                         "capacity_epochs": None, "n_samples": 1, "k": 5},
           "train": {"epochs": 1}}
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = vaekit.io.load_config(tmp_path)
    assert config.model.network.to_dict() == {"name": "conv", "channels": [4], "dense": 16, "activation": "relu"}
    assert config.model.likelihood.to_dict() == {"name": "gaussian", "sigma": 0.2}
    assert config.model.prior.to_dict() == {"name": "mog", "components": 3}
    assert config.objective.to_dict() == {"name": "elbo", "beta": 2.0, "warmup_epochs": 1.0, "kl_schedule": "linear",
                                          "cycles": 4, "cycle_ratio": 0.5, "free_bits": 0.0, "n_samples": 1}
    model = build_model(config.model)
    assert model.prior.n_components == 3 and model.likelihood.sigma == 0.2


def test_broken_toml_is_a_clear_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model\nlatent_dim = ")
    with pytest.raises(vaekit.ConfigError, match="cannot parse config file"):
        build_run_config(path)


def test_round_trip_through_a_dict():
    config = build_run_config(overrides=["model.latent_dim=3"])
    assert from_dict(RunConfig, to_dict(config)) == config


def test_fit_does_not_mutate_the_callers_config(digits):
    config = build_run_config(overrides=["model.network.hidden=[8]", "train.epochs=1", "train.progress=false"])
    vaekit.fit(config, data=digits)
    assert config.model.event_shape is None and config.model.likelihood.name is None


def test_the_configuration_guide_lists_every_option_of_every_entry():
    from vaekit.core.registry import REGISTRIES

    guide = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    for kind in ("network", "likelihood", "prior", "posterior", "objective", "model kind"):
        for name in REGISTRIES[kind].names():
            row = next((line for line in guide.splitlines() if line.startswith(f"| `{name}` |")), None)
            assert row is not None, f"docs/configuration.md has no row for {kind} {name!r}"
            for option in REGISTRIES[kind].options(name).values():
                assert f"`{option.describe()}`" in row, (name, option.name)


def test_options_of_an_unnamed_network_are_checked_against_the_data_sets_network():
    # model.network names none: the data choose it (mlp for images, rnn for text), and its options are checked then
    config = build_run_config(overrides=["model.network.nope=1"])
    with pytest.raises(vaekit.ConfigError, match="network 'mlp' .* takes no option 'nope'"):
        vaekit.resolve_model_config(config.model, vaekit.load_data("digits"))
    with pytest.raises(vaekit.ConfigError, match="network 'rnn' .* takes no option 'nope'"):
        vaekit.resolve_model_config(config.model, vaekit.load_data("toy-sentences"))


def test_every_data_key_is_declared_once_and_reaches_the_loader():
    # data.* keys take their defaults from the data modules' constants, and each (but workers, which is how the
    # loop reads streamed data) is an option of load_data with the same default: one declaration each.
    import dataclasses
    import inspect

    from vaekit.config import DataConfig
    from vaekit.data import load_data

    params = inspect.signature(load_data).parameters
    for f in dataclasses.fields(DataConfig):
        if f.name in ("name", "workers"):
            continue
        assert f.name in params, f.name
        assert params[f.name].default == f.default, f.name
