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
from vaekit.text.generate import to_text


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


# --- what the explorer page asks of a modality ------------------------------------------------------------------


def _built(spec: str):
    data = load_data(spec)
    model = build_model(resolve_model_config(ModelConfig(latent_dim=3), data)).eval()
    modality = modality_of(model)
    modality.attach(model, data)
    return model, modality, data.split("train").x


def _png_shape(content: bytes) -> tuple[int, ...]:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(content))).shape


def test_arrays_are_shown_as_png_and_take_no_typed_input():
    model, image, x = _built("digits")
    assert image.pictures and image.show_examples(model, x[:3], torch.zeros(3, 3)) == [{}, {}, {}]
    one = _png_shape(image.show_example(model, x[0]))
    assert one[0] >= 112  # an 8 x 8 digit, enlarged
    assert _png_shape(image.show_decoded(model, torch.zeros(3))) == one
    strip = _png_shape(image.show_strip(model, torch.zeros(4, 3)))
    assert strip[0] == one[0] and strip[1] > 4 * one[1]
    for ask in (lambda: image.check_input("a sentence"), lambda: image.encode_input(model, ["a"]),
                lambda: image.explore_input(model, "a", (torch.zeros(1, 3), x[:1]), 1, 1, 0)):
        with pytest.raises(vaekit.ConfigError, match="^this run is not a text run$"):
            ask()
    model, table, x = _built("ring8")  # 2-D points: a row of two grey cells
    assert table.name == "points" and _png_shape(table.show_example(model, x[0]))[0] == 40


def test_text_is_shown_as_sentences_and_takes_typed_sentences():
    model, text, x = _built("toy-sentences")
    assert not text.pictures and not text.class_labels
    with pytest.raises(vaekit.ConfigError, match="^this is a text run: it decodes to sentences, not images$"):
        text.show_example(model, x[0])
    shown = text.show_examples(model, x[:2])
    assert [row["text"] for row in shown] == to_text(model, x[:2]) and "reconstruction" not in shown[0]
    rebuilt = text.show_examples(model, x[:2], torch.zeros(2, 3))
    assert all(isinstance(row["reconstruction"], str) for row in rebuilt)
    assert set(text.show_decoded(model, torch.zeros(3))) == {"text"}
    assert len(text.show_strip(model, torch.zeros(5, 3))["sentences"]) == 5
    for bad, match in [("  ", "non-empty"), (5, "non-empty"), ("x" * 2001, "at most 2000 characters, got 2001")]:
        with pytest.raises(vaekit.DataError, match=match):
            text.check_input(bad)
    sentence = text.check_input(shown[0]["text"])
    assert text.encode_input(model, [sentence, "the cat"]).shape == (2, 3)
    neighbours = (torch.randn(6, 3), x[:6])
    out = text.explore_input(model, sentence, neighbours, n_samples=3, n_nearest=4, seed=1)
    assert len(out["z"]) == 3 and isinstance(out["reconstruction"], str) and len(out["samples"]) == 3
    assert len(out["nearest"]) == 4 and set(out["nearest"]) <= set(to_text(model, x[:6]))
    # the nearest are the closest codes: put one row's code on the sentence's own
    codes = neighbours[0].clone()
    codes[5] = torch.tensor(out["z"])
    assert text.explore_input(model, sentence, (codes, x[:6]), 0, 1, 0)["nearest"] == to_text(model, x[5:6])
    assert text.explore_input(model, sentence, neighbours, 2, 0, 7) == \
        text.explore_input(model, sentence, neighbours, 2, 0, 7)  # seeded
