"""VAE anomaly detection: planted outliers, thresholds, persistence, bad input, surfaces, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vaekit.apps import VAEAnomalyDetector
from vaekit.apps.anomaly import anomaly_scores, detection_metrics
from vaekit.apps.surfaces import anomaly_maps, make_surfaces
from vaekit.cli import main
from vaekit.errors import ConfigError, DataError


def _planted(seed: int = 0, n: int = 300, n_out: int = 6):
    """Points near a 2-D plane in 6-D, plus `n_out` points 4 units off the plane (the last rows)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(2, 6))
    normal = rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, 6))
    q, _ = np.linalg.qr(np.vstack([basis, rng.normal(size=(4, 6))]).T)  # columns 2.. are orthogonal to the plane
    away = rng.normal(size=(n_out, 4)) @ q[:, 2:].T
    outliers = rng.normal(size=(n_out, 2)) @ basis + 4.0 * away / np.linalg.norm(away, axis=1, keepdims=True)
    return np.vstack([normal, outliers]), np.r_[np.zeros(n), np.ones(n_out)].astype(int)


@pytest.fixture(scope="module")
def fitted():
    x, y = _planted()
    detector = VAEAnomalyDetector(contamination=0.05, k=20, random_state=0).fit(x)
    return detector, x, y


@pytest.mark.parametrize("score,scaling", [("nll", "robust"), ("elbo", "robust"), ("recon", "robust"),
                                          ("elbo", "standard")])
def test_planted_outliers_are_ranked_highest(score, scaling):
    x, y = _planted()
    detector = VAEAnomalyDetector(score=score, scaling=scaling, k=20, random_state=0).fit(x)
    top = np.argsort(-detector.decision_scores_)[: y.sum()]
    assert set(top) == set(np.flatnonzero(y)), f"score {score}: top-ranked rows {sorted(top)}"


def test_threshold_honours_contamination(fitted):
    detector, x, _ = fitted
    assert detector.labels_.mean() == pytest.approx(0.05, abs=1.5 / len(x))
    assert np.array_equal(detector.predict(x), detector.labels_)  # same seed: same scores on the training data
    assert np.array_equal(detector.fit_predict(x), detector.labels_)
    assert set(np.unique(detector.predict(x))) <= {0, 1}


def test_scores_agree_with_the_library_function_and_calibrate(fitted):
    detector, x, _ = fitted
    scores = detector.score_samples(x[:20])
    assert np.allclose(scores, detector.decision_function(x[:20]))
    assert detector.score_ == "elbo"  # the tabular default (docs/bench_anomaly.md)
    direct = anomaly_scores(detector.model_, detector.as_model_input(x[:20]), "elbo", 20, seed=0)
    assert np.allclose(scores, direct)
    clone = VAEAnomalyDetector(**detector.get_params())
    clone.__dict__.update({k: v for k, v in detector.__dict__.items() if k.endswith("_")})
    clone.calibrate(x[:300], quantile=0.9)  # the normal rows only
    assert (clone.decision_function(x[:300]) > clone.threshold_).mean() == pytest.approx(0.1, abs=0.01)


def test_save_load_gives_the_same_scores(fitted, tmp_path):
    detector, x, _ = fitted
    detector.save(tmp_path / "run")
    loaded = VAEAnomalyDetector.load(tmp_path / "run")
    assert np.allclose(loaded.decision_function(x[:30]), detector.decision_function(x[:30]))
    assert loaded.threshold_ == detector.threshold_


@pytest.mark.parametrize("damage", ["delete", "garbage", "list"])
def test_a_table_detector_without_its_column_scaling_is_refused(fitted, tmp_path, damage):
    """Without standardizer.json the model would score unscaled columns: refused, naming the file."""
    from vaekit.errors import CheckpointError

    detector, _, _ = fitted
    run = detector.save(tmp_path / "run")
    path = run / "standardizer.json"
    if damage == "delete":
        path.unlink()
    else:
        path.write_text("{not json" if damage == "garbage" else "[1, 2]")
    with pytest.raises(CheckpointError, match="standardizer.json"):
        VAEAnomalyDetector.load(run)


def test_bad_input_gives_one_line_errors(fitted):
    detector, x, _ = fitted
    with pytest.raises(DataError, match="features"):
        detector.decision_function(x[:, :4])
    with pytest.raises(DataError, match="non-finite|missing"):
        bad = x.copy()
        bad[3, 2] = np.nan
        VAEAnomalyDetector(epochs=1).fit(bad)
    with pytest.raises(DataError, match="non-numeric"):
        VAEAnomalyDetector(epochs=1).fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(DataError, match="empty"):
        VAEAnomalyDetector(epochs=1).fit(np.zeros((0, 3)))
    with pytest.raises(ConfigError, match="contamination"):
        VAEAnomalyDetector(contamination=0.9).fit(x)
    named = VAEAnomalyDetector(epochs=1, random_state=0).fit(x, feature_names=list("abcdef"))
    with pytest.raises(DataError, match="columns differ"):
        named.decision_function(x, feature_names=list("abcdeg"))


def test_inputs_are_not_modified(fitted):
    detector, x, _ = fitted
    before = x.copy()
    detector.decision_function(x)
    assert np.array_equal(x, before)


def test_detection_metrics_on_a_perfect_ranking():
    labels = np.array([0, 0, 0, 1, 1])
    metrics = detection_metrics(labels, np.array([0.1, 0.2, 0.3, 0.9, 0.8]), threshold=0.5)
    assert metrics["roc_auc"] == 1.0 and metrics["precision_at_n"] == 1.0 and metrics["f1"] == 1.0
    assert detection_metrics(labels, np.array([0.9, 0.8, 0.7, 0.1, 0.2]))["roc_auc"] == 0.0


def test_surfaces_have_masks_only_where_defects_are():
    data = make_surfaces(30, size=16, defect_fraction=0.5, seed=3)
    assert data.x.shape == (30, 1, 16, 16) and data.x.min() >= 0 and data.x.max() <= 1
    assert data.y.sum() == 15
    assert (data.masks.reshape(30, -1).any(1) == data.y.astype(bool)).all()
    assert set(data.kinds[data.y == 1]) == {"scratch", "spot", "dent"}
    again = make_surfaces(30, size=16, defect_fraction=0.5, seed=3)
    assert np.array_equal(again.x, data.x)


def test_anomaly_map_sums_to_the_image_log_likelihood():
    data = make_surfaces(40, size=12, defect_fraction=0.0, seed=0)
    detector = VAEAnomalyDetector(epochs=2, likelihood="gaussian-learned", hidden=(32,), latent_dim=4,
                                  random_state=0).fit(data.x)
    x = torch.from_numpy(data.x[:5])
    maps = anomaly_maps(detector.model_, x)
    assert maps.shape == (5, 1, 12, 12)
    with torch.no_grad():
        model = detector.model_
        total = -model.decode(model.encode(x).mean).log_prob(x).double().numpy()
    assert np.allclose(maps.reshape(5, -1).sum(1), total, rtol=1e-4)


def test_cli_fit_score_eval(tmp_path, capsys):
    x, y = _planted(n=200, n_out=8)
    data = tmp_path / "planted.npz"
    np.savez(data, X=x, y=y)
    before = data.read_bytes()
    run = tmp_path / "run"
    assert main(["anomaly", "fit", str(data), "--out", str(run), "--epochs", "30", "--contamination", "0.04"]) == 0
    assert main(["anomaly", "score", str(run), str(data), "--out", str(tmp_path / "s.csv")]) == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "index,score,anomaly,label" and len(lines) == 209
    assert main(["anomaly", "eval", str(run), str(data)]) == 0
    metrics = json.loads((run / "eval-planted.json").read_text())
    assert metrics["roc_auc"] > 0.95
    assert (run / "eval-planted.png").stat().st_size > 0
    assert data.read_bytes() == before
    # refuses to overwrite, and scoring data with other columns is a one-line error
    assert main(["anomaly", "score", str(run), str(data), "--out", str(tmp_path / "s.csv")]) == 2
    np.savez(tmp_path / "narrow.npz", X=x[:, :3])
    capsys.readouterr()
    assert main(["anomaly", "score", str(run), str(tmp_path / "narrow.npz"), "--out", str(tmp_path / "n.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "features" in err and len(err.splitlines()) == 1


def test_cli_empty_file_is_a_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["anomaly", "fit", str(empty), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "empty" in err and len(err.splitlines()) == 1


def test_cli_surfaces_demo_and_maps(tmp_path):
    run = tmp_path / "surfaces"
    assert main(["anomaly", "surfaces", "--out", str(run), "--n-train", "60", "--n-test", "20", "--size", "12",
                 "--epochs", "2"]) == 0
    report = json.loads((run / "surfaces.json").read_text())
    assert 0.0 <= report["image_roc_auc"] <= 1.0 and 0.0 <= report["pixel_roc_auc"] <= 1.0
    assert report["n_defective"] == 10 and (run / "surfaces.png").stat().st_size > 0
    data = make_surfaces(10, size=12, defect_fraction=0.5, seed=5)
    np.save(tmp_path / "surf.npy", data.x)
    assert main(["anomaly", "map", str(run), str(tmp_path / "surf.npy"), "-n", "4", "--out",
                 str(tmp_path / "maps.png")]) == 0
    assert (tmp_path / "maps.png").stat().st_size > 0


def test_the_contamination_default_is_shown_in_help(capsys):
    from vaekit.cli import main

    assert main(["anomaly", "fit", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert "--contamination" in text and "(default: 0.1)" in text
