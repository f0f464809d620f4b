"""Config files, dotted overrides and their type checks; every shipped config builds a model."""

from __future__ import annotations

from pathlib import Path

import pytest

import vaekit
from vaekit.build import build_model
from vaekit.config import RunConfig, build_run_config, from_dict, to_dict

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
# Data shapes of the registered data sets, so that configs build without the data files.
SHAPES = {"digits": [1, 8, 8], "mnist": [1, 28, 28], "fashion-mnist": [1, 28, 28], "binarized-mnist": [1, 28, 28],
          "shapes": [1, 64, 64]}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_builds(path):
    config = build_run_config(path)
    config.model.event_shape = SHAPES.get(config.data.name, [1, 28, 28])
    if config.model.conditional:
        config.model.num_classes = 10
    model = build_model(config.model)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_overrides_are_typed():
    config = build_run_config(overrides=["model.latent_dim=32", "model.hidden=[400]", "train.lr=1e-2",
                                         "data.root=null", "objective.beta=2", "train.progress=false"])
    assert config.model.latent_dim == 32 and config.model.hidden == [400]
    assert config.train.lr == 0.01 and config.data.root is None
    assert config.objective.beta == 2.0 and isinstance(config.objective.beta, float)
    assert config.train.progress is False


@pytest.mark.parametrize("override, message", [
    ("model.latent_dim=abc", "must be int"),
    ("model.latent_dim=2.5", "must be int"),
    ("train.lr=true", "must be float"),
    ("model.hidden=[1, \"a\"]", "model.hidden"),
    ("model.nope=1", "unknown config key 'model.nope'"),
    ("nosection.key=1", "unknown config key 'nosection'"),
    ("no_equals_sign", "section.key=value"),
])
def test_bad_overrides_are_rejected(override, message):
    with pytest.raises(vaekit.ConfigError, match=message.replace("[", r"\[")):
        build_run_config(overrides=[override])


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\nlatent_dim = 5\nhidden = [10, 20]\n[train]\nepochs = 3\n")
    config = build_run_config(path, ["train.epochs=7"])
    assert config.model.latent_dim == 5 and config.model.hidden == [10, 20] and config.train.epochs == 7
    assert config.model.network == "mlp"  # untouched defaults stay


def test_broken_toml_is_a_clear_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model\nlatent_dim = ")
    with pytest.raises(vaekit.ConfigError, match="cannot parse config file"):
        build_run_config(path)


def test_round_trip_through_a_dict():
    config = build_run_config(overrides=["model.latent_dim=3"])
    assert from_dict(RunConfig, to_dict(config)) == config


def test_fit_does_not_mutate_the_callers_config(digits):
    config = build_run_config(overrides=["model.hidden=[8]", "train.epochs=1", "train.progress=false"])
    vaekit.fit(config, data=digits)
    assert config.model.event_shape is None and config.model.likelihood is None
