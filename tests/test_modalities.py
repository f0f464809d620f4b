"""Modalities: chosen by the data, recorded in config.json, attached to the model, and asked (not tested for)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import vaekit
from vaekit.build import build_model, resolve_model_config
from vaekit.cli import main
from vaekit.config import ModelConfig, check_modality
from vaekit.data import load_data
from vaekit.modalities import MODALITIES, modality_for_shape, modality_of
from vaekit.text.batching import sentence_lengths


@pytest.mark.parametrize("spec, expected", [("digits", "image"), ("ring8", "points"), ("toy-sentences", "text")])
def test_the_data_chooses_the_modality_and_the_builder_attaches_it(spec, expected):
    data = load_data(spec)
    assert data.modality == expected
    config = resolve_model_config(ModelConfig(latent_dim=2), data)
    assert config.modality == expected
    model = build_model(config)
    assert modality_of(model).name == expected
    assert (type(model).__name__ == "SentenceVAE") == (expected == "text")


def test_a_table_of_numbers_is_a_table_and_a_model_for_images_refuses_it(tmp_path):
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32))
    data = load_data(str(tmp_path / "rows.npy"))
    assert data.modality == "table"
    with pytest.raises(vaekit.ConfigError, match="model expects image data, data set .* is table"):
        resolve_model_config(ModelConfig(modality="image"), data)
    with pytest.raises(vaekit.ConfigError, match="model.modality must be one of"):
        check_modality("audio")


def test_a_run_saved_without_its_modality_gets_it_from_its_shape(writable_run):
    saved = json.loads((writable_run / "config.json").read_text())
    assert saved["model"]["modality"] == "image"
    del saved["model"]["modality"]  # as runs written before modalities were recorded
    (writable_run / "config.json").write_text(json.dumps(saved))
    model = vaekit.load_run(writable_run).model
    assert modality_of(model).name == "image"
    assert modality_for_shape((2,)) == "points" and modality_for_shape((5,)) == "table"
    assert modality_for_shape((102,), vocab_size=63) == "text"


def test_the_text_modality_counts_predicted_tokens_and_keeps_its_vocabulary(tmp_path):
    data = load_data("toy-sentences")
    text = MODALITIES.get("text")()
    x = data.split("train").x[:7]
    # <bos> w1 .. wk <eos>: every token but <bos> is predicted, so k + 1 per sentence
    assert text.units(x, data.event_shape) == pytest.approx(float((sentence_lengths(x) - 1).sum()) / 7)
    assert MODALITIES.get("image")().units(x, (1, 8, 8)) == 64
    files = text.state_files(data)
    assert list(files) == ["vocab.json"] and json.loads(files["vocab.json"])
    order = text.evaluation_order(x)
    assert torch.equal(sentence_lengths(x[order]), sentence_lengths(x).sort(stable=True).values)


def test_ls_lists_the_modalities(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    listed = out[out.index("modalities:"):].split("\n\n")[0]
    for name in ("image", "table", "points", "text"):
        assert f"  {name} " in listed
