"""The one pipeline: in-memory arrays through `fit`, masks in batches, one standardiser, one writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_config

import vaekit
from vaekit.build import build_model
from vaekit.config import ModelConfig, Plugin
from vaekit.data import DataBundle
from vaekit.data.standardize import Standardizer
from vaekit.training.train import torch_threads


def test_fit_trains_on_in_memory_arrays_without_validation():
    rng = np.random.default_rng(0)
    x = rng.random((120, 6)).astype(np.float32)
    config = tiny_config(epochs=3)
    config.model.likelihood = Plugin("likelihood", "gaussian", {"sigma": 0.5})
    result = vaekit.fit(config, data=DataBundle.from_arrays(x), validate=False)
    assert len(result.history) == 3
    assert all("valid_loss" not in r and "active_units" not in r for r in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.config.model.event_shape == [6] and result.config.data.name == "digits"  # untouched: not loaded


def test_arrays_are_checked_where_they_enter():
    with pytest.raises(vaekit.DataError, match="NaN or infinite"):
        DataBundle.from_arrays(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(vaekit.DataError, match="mask has shape"):
        DataBundle.from_arrays(np.zeros((3, 2)), mask=np.ones((3, 3)))
    with pytest.raises(vaekit.DataError, match="labels must be 3 whole numbers"):
        DataBundle.from_arrays(np.zeros((3, 2)), y=[0, 1])
    # NaN where the mask says "missing" is fine, and becomes 0.
    bundle = DataBundle.from_arrays(np.array([[1.0, np.nan], [0.5, 1.0]]), mask=np.array([[1, 0], [1, 1]]))
    assert bundle.split("train").x[0, 1] == 0 and bundle.split("train").mask[0, 1] == 0


def test_a_mask_reading_encoder_ignores_the_values_of_missing_entries():
    config = ModelConfig(network=Plugin("network", "mlp", {"hidden": [8], "mask_input": True}), latent_dim=2,
                         likelihood=Plugin("likelihood", "gaussian"), event_shape=[5])
    model = build_model(config)
    x = torch.randn(4, 5)
    mask = torch.ones_like(x)
    mask[:, 1] = 0
    other = x.clone()
    other[:, 1] = 50.0
    assert torch.allclose(model.encode(x, mask=mask).mean, model.encode(other, mask=mask).mean)
    # It does read the mask: the same zero-filled values, observed or missing, give different posteriors.
    zero_filled = x * mask
    assert not torch.allclose(model.encode(zero_filled, mask=mask).mean, model.encode(zero_filled).mean)


def test_fit_carries_the_mask_in_every_batch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 4))
    mask = (rng.random((80, 4)) > 0.3).astype(np.float32)
    mask[:, 0] = 1
    config = tiny_config(epochs=2)
    config.model.network.mask_input = True
    config.model.likelihood = "gaussian-learned"
    poisoned = np.where(mask == 1, x, 1e6)  # values at missing entries must never reach the loss
    a = vaekit.fit(config, data=DataBundle.from_arrays(x, mask=mask), validate=False).history
    b = vaekit.fit(config, data=DataBundle.from_arrays(poisoned, mask=mask), validate=False).history
    assert a[-1]["train_loss"] == pytest.approx(b[-1]["train_loss"])


def test_standardizer_fits_observed_entries_and_round_trips():
    x = np.array([[1.0, 10.0, 3.0], [3.0, np.nan, 3.0], [5.0, 30.0, 3.0]])
    s = Standardizer.fit(x)
    assert s.mean.tolist() == [3.0, 20.0, 3.0] and s.scale[2] == 1.0  # a constant column keeps scale 1
    z = s.transform(x)
    assert np.allclose(np.nanmean(z, 0), 0) and np.allclose(s.inverse(z)[~np.isnan(x)], x[~np.isnan(x)])
    t = s.transform(torch.tensor(x[[0]], dtype=torch.float32))
    assert t.dtype == torch.float32 and torch.allclose(t, torch.tensor(z[[0]], dtype=torch.float32))
    assert Standardizer.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(vaekit.DataError, match="scale be > 0"):
        Standardizer.from_dict({"mean": [0.0], "scale": [0.0]})
    with pytest.raises(vaekit.DataError, match="no observed value"):
        Standardizer.fit(x, mask=np.array([[1, 0, 1]] * 3))


def test_a_standardised_run_saves_its_standardizer(tmp_path):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "table.npy", rng.normal(5.0, 3.0, (60, 3)))
    config = vaekit.build_run_config(None, [f"data.name={json.dumps(str(tmp_path / 'table.npy'))}",
                                            "train.epochs=1", "train.progress=false", "model.network.hidden=[8]"])
    vaekit.fit(config, tmp_path / "run")
    saved = Standardizer.from_dict(json.loads((tmp_path / "run" / "standardizer.json").read_text()))
    assert saved == vaekit.load_data(str(tmp_path / "table.npy")).standardizer


def test_fit_with_figures_writes_them_through_the_writer(tmp_path, digits):
    result = vaekit.fit(tiny_config(epochs=1), tmp_path / "run", data=digits, figures=True)
    assert {p.name for p in result.figures} == {"samples.png", "reconstructions.png", "curves.png"}
    assert all(p.is_file() for p in result.figures)


def test_in_memory_fit_returns_the_best_validation_weights(digits):
    config = tiny_config(epochs=4, lr=3e-2)  # a high rate: later epochs may be worse than the best
    result = vaekit.fit(config, data=digits)
    best = min(result.history, key=lambda r: r["valid_loss"])
    again = vaekit.training.train.average_terms(result.model, vaekit.ELBO(), digits.split("valid"), 0)
    assert again["loss"] == pytest.approx(best["valid_loss"], rel=0.05)


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_values_beyond_float32_are_out_of_range_not_non_finite(tmp_path):
    with pytest.raises(vaekit.DataError, match=r"1e\+300 at index \(0, 1\) is outside the float32 range"):
        DataBundle.from_arrays(np.array([[1.0, 1e300], [0.0, 1.0]]))
    # where the mask says "missing", any value is fine
    DataBundle.from_arrays(np.array([[1.0, 1e300], [0.0, 1.0]]), mask=np.array([[1, 0], [1, 1]]))
    (tmp_path / "big.csv").write_text("a,b\n1,1e400\n2,3\n3,4\n")
    with pytest.raises(vaekit.DataError, match="1e400 at row 2, column 2 .* outside the float32 range"):
        vaekit.load_data(str(tmp_path / "big.csv"))
    (tmp_path / "inf.csv").write_text("a,b\n1,inf\n2,3\n3,4\n")
    with pytest.raises(vaekit.DataError, match="non-finite value 'inf'"):
        vaekit.load_data(str(tmp_path / "inf.csv"))
