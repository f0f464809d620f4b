"""Quantile scaling of table columns (vaekit.data.quantile): scikit-learn's map where there are no ties, the middle
of the tied levels for a sparse column's zeros, order kept, the inverse, the JSON round trip and the detector
option that uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.special import ndtri
from sklearn.preprocessing import QuantileTransformer

from vaekit.apps import VAEAnomalyDetector
from vaekit.cli import main
from vaekit.data.quantile import MAX_LEVELS, QuantileScaler
from vaekit.errors import DataError


def _table(n: int = 500, seed: int = 0) -> np.ndarray:
    """Columns: exponential (heavy right tail), a sparse count (0 in about 95% of rows), normal."""
    rng = np.random.default_rng(seed)
    sparse = (rng.random(n) < 0.05) * rng.integers(1, 16, n)
    return np.c_[rng.exponential(size=n), sparse, rng.normal(size=n)].astype(np.float64)


def test_continuous_columns_match_scikit_learn():
    x = _table()
    ours = QuantileScaler.fit(x).transform(x)
    theirs = QuantileTransformer(n_quantiles=MAX_LEVELS, output_distribution="normal").fit(x).transform(x)
    for j in (0, 2):  # no ties: the same map
        assert np.allclose(ours[:, j], theirs[:, j], atol=1e-6)
        assert np.abs(ours[:, j]).max() == pytest.approx(5.199, abs=1e-3)  # the extremes at the clipped bounds


def test_sparse_column_zeros_sit_in_the_middle_and_outliers_stay_on_top():
    x = _table()
    z = QuantileScaler.fit(x).transform(x)[:, 1]
    zeros, counts = z[x[:, 1] == 0], z[x[:, 1] > 0]
    share = (x[:, 1] == 0).mean()
    # every zero gets the middle of the levels its tie spans: Phi^-1(share / 2), not the lower bound -5.2
    assert np.allclose(zeros, zeros[0]) and zeros[0] == pytest.approx(ndtri(share / 2), abs=0.02)
    assert counts.min() > zeros[0]


def test_order_is_kept_and_the_inverse_recovers_the_values():
    x = _table(seed=1)
    scaler = QuantileScaler.fit(x)
    z = scaler.transform(x)
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j], kind="stable")
        assert (np.diff(z[order, j]) >= 0).all()
    back = scaler.inverse(z)
    assert np.allclose(back[:, [0, 2]], x[:, [0, 2]], atol=1e-3 * np.abs(x).max())
    tensor = scaler.transform(torch.as_tensor(x, dtype=torch.float32))
    assert tensor.dtype == torch.float32 and np.allclose(tensor.numpy(), z, atol=1e-5)
    beyond = scaler.transform(np.array([[1e6, 1e6, 1e6]]))  # past the fitted range: clamped to the top
    assert np.allclose(beyond, 5.199, atol=1e-3)


def test_json_round_trip_and_bad_values():
    scaler = QuantileScaler.fit(_table())
    values = json.loads(json.dumps(scaler.to_dict()))
    assert values["kind"] == "quantile" and QuantileScaler.from_dict(values) == scaler
    falling = dict(values, quantiles=[row[::-1] for row in values["quantiles"]][::-1])
    with pytest.raises(DataError, match="non-decreasing"):
        QuantileScaler.from_dict(falling)
    with pytest.raises(DataError, match="invalid quantile scaling values"):
        QuantileScaler.from_dict({"levels": [0, 1]})
    with pytest.raises(DataError, match="columns"):
        scaler.transform(np.zeros((2, 5)))
    with pytest.raises(DataError, match="finite"):
        QuantileScaler.fit(np.array([[0.0], [np.nan]]))


def test_detector_with_quantile_scaling_saves_and_loads(tmp_path):
    x = _table(n=300)
    det = VAEAnomalyDetector(scaling="quantile", epochs=2, k=5, random_state=0).fit(x)
    assert isinstance(det.standardizer_, QuantileScaler)
    assert np.abs(det.as_model_input(x).numpy()).max() <= 5.2  # the model sees bounded columns
    det.save(tmp_path / "run")
    loaded = VAEAnomalyDetector.load(tmp_path / "run")
    assert loaded.scaling == "quantile" and loaded.standardizer_ == det.standardizer_
    assert np.allclose(loaded.decision_function(x[:20]), det.decision_function(x[:20]))


def test_cli_fits_with_quantile_scaling(tmp_path, capsys):
    table = tmp_path / "t.csv"
    np.savetxt(table, _table(n=200), delimiter=",", header="a,b,c", comments="")
    assert main(["anomaly", "fit", str(table), "--out", str(tmp_path / "run"), "--scaling", "quantile",
                 "--epochs", "2"]) == 0
    saved = json.loads((tmp_path / "run" / "standardizer.json").read_text())
    assert saved["kind"] == "quantile" and len(saved["quantiles"][0]) == 3
