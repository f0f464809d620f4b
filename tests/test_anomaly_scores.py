"""The image score that removes the targets' entropy ("nll-entropy") and the robust scaling of tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from vaekit.apps import VAEAnomalyDetector
from vaekit.apps.anomaly import AUTO_LIKELIHOOD, AUTO_SCORE, SCALINGS, SCORES, anomaly_scores, bernoulli_entropy
from vaekit.errors import ConfigError


def test_bernoulli_entropy_by_hand():
    x = torch.tensor([[0.0, 0.5, 1.0, 0.25], [0.0, 0.0, 1.0, 1.0]])
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert torch.allclose(bernoulli_entropy(x), torch.tensor([math.log(2) + h, 0.0], dtype=torch.float64))
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        bernoulli_entropy(torch.tensor([[0.5, 1.5]]))


def _grey(n: int, seed: int) -> np.ndarray:
    """Flat mid-grey 8x8 images with a little noise: every pixel near 0.5."""
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + 0.05 * rng.normal(size=(n, 8, 8)), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def grey_detector():
    return VAEAnomalyDetector(likelihood="bernoulli", score="nll", epochs=40, hidden=(32,), latent_dim=2, k=10,
                              random_state=0).fit(_grey(200, 0))


def test_nll_entropy_is_the_nll_minus_the_target_entropy(grey_detector):
    x = torch.from_numpy(_grey(7, 1))[:, None]
    nll = anomaly_scores(grey_detector.model_, x, "nll", k=10, seed=3)
    corrected = anomaly_scores(grey_detector.model_, x, "nll-entropy", k=10, seed=3)
    p = x.double().flatten(1).numpy()
    entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p)).sum(1)  # no pixel is exactly 0 or 1 here
    assert np.allclose(corrected, nll - entropy, atol=1e-3)
    assert (entropy > 40).all()  # most of the NLL of a mid-grey image is its own entropy (64 log 2 = 44.4 at most)


def test_nll_entropy_separates_what_the_cross_entropy_cannot(grey_detector):
    """Trained on mid-grey images, the model predicts p = 0.5 everywhere; a binary image (0/1 pixels) then has
    the same Bernoulli cross-entropy, 64 log 2, as a normal grey image, although it is far from every normal one.
    Minus the targets' entropy, the normal images score near 0 and the binary ones near 64 log 2."""
    normal = _grey(50, 2)
    binary = (np.random.default_rng(3).random((50, 8, 8)) < 0.5).astype(np.float32)
    x = np.concatenate([normal, binary])
    labels = np.r_[np.zeros(50), np.ones(50)]
    grey_detector.set_params(score="nll")
    auc_nll = roc_auc_score(labels, grey_detector.decision_function(x))
    grey_detector.set_params(score="nll-entropy")
    auc_corrected = roc_auc_score(labels, grey_detector.decision_function(x))
    grey_detector.set_params(score="nll")
    assert auc_corrected > 0.99
    assert auc_nll < 0.9


def test_nll_entropy_needs_a_bernoulli_model_and_valid_scores_only():
    assert "nll-entropy" in SCORES
    x = np.random.default_rng(0).normal(size=(60, 3))
    tabular = VAEAnomalyDetector(epochs=1, random_state=0).fit(x)
    with pytest.raises(ConfigError, match="bernoulli"):
        anomaly_scores(tabular.model_, tabular.as_model_input(x), "nll-entropy", k=2)
    with pytest.raises(ConfigError, match="unknown anomaly score 'entropy'"):
        VAEAnomalyDetector(score="entropy").fit(x)
    with pytest.raises(ConfigError, match="unknown anomaly score"):
        anomaly_scores(tabular.model_, tabular.as_model_input(x), "kl", k=2)


def test_robust_scaling_uses_median_and_iqr():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    x[:, 2] = (rng.random(400) < 0.1).astype(float)  # IQR 0: falls back to the standard deviation
    x[:8, 0] = 1e3  # gross outliers inflate the standard deviation, not the IQR
    det = VAEAnomalyDetector(scaling="robust", epochs=1, random_state=0).fit(x)
    s = det.standardizer_
    q25, q75 = np.quantile(x[:, 0], [0.25, 0.75])
    assert s.mean[0] == pytest.approx(np.median(x[:, 0]))
    assert s.scale[0] == pytest.approx((q75 - q25) / 1.349)
    assert s.scale[0] < 2  # the standard deviation of column 0 is about 140
    assert s.scale[2] == pytest.approx(x[:, 2].std())
    assert "robust" in SCALINGS
    with pytest.raises(ConfigError, match="unknown scaling 'minmax'"):
        VAEAnomalyDetector(scaling="minmax").fit(x)


def test_robust_scaling_survives_save_and_load(tmp_path):
    x = np.random.default_rng(1).standard_t(2, size=(200, 4))
    det = VAEAnomalyDetector(scaling="robust", epochs=2, k=5, random_state=0).fit(x)
    det.save(tmp_path / "run")
    loaded = VAEAnomalyDetector.load(tmp_path / "run")
    assert loaded.scaling == "robust"
    assert np.allclose(loaded.decision_function(x[:20]), det.decision_function(x[:20]))


def test_defaults_by_input_kind():
    """The defaults chosen by the protocols of docs/bench_anomaly.md: tables robust-scaled and scored by "elbo",
    images with a learned-scale Gaussian scored by "nll"; an explicit score or likelihood wins."""
    assert AUTO_SCORE == {"tabular": "elbo", "image": "nll"}
    assert AUTO_LIKELIHOOD == {"tabular": "gaussian-learned", "image": "gaussian-learned"}
    x = np.random.default_rng(0).normal(size=(80, 3))
    table = VAEAnomalyDetector(epochs=1, k=3, random_state=0).fit(x)
    assert table.score_ == "elbo" and table.config_.model.likelihood.name == "gaussian-learned"
    assert np.allclose(table.standardizer_.mean, np.median(x, axis=0))
    direct = anomaly_scores(table.model_, table.as_model_input(x), "elbo", k=3, seed=0)
    assert np.allclose(table.decision_scores_, direct)
    images = VAEAnomalyDetector(epochs=1, hidden=(16,), latent_dim=2, k=3, random_state=0).fit(_grey(40, 0))
    assert images.score_ == "nll" and images.config_.model.likelihood.name == "gaussian-learned"
    chosen = VAEAnomalyDetector(likelihood="bernoulli", score="nll-entropy", epochs=1, hidden=(16,), latent_dim=2,
                                k=3, random_state=0).fit(_grey(40, 0))
    assert chosen.score_ == "nll-entropy" and chosen.config_.model.likelihood.name == "bernoulli"
    with pytest.raises(ConfigError, match="bernoulli"):  # the entropy of a Gaussian target is not sum_i H(x_i)
        VAEAnomalyDetector(score="nll-entropy", epochs=1, hidden=(16,), latent_dim=2, k=3).fit(_grey(40, 0))


def test_the_score_histogram_uses_a_log_axis_when_scores_span_orders_of_magnitude(tmp_path):
    from vaekit.apps.anomaly import histogram_bins, save_score_histogram

    rng = np.random.default_rng(0)
    spread = np.concatenate([rng.uniform(0.01, 0.1, 900), rng.uniform(10.0, 100.0, 100)])
    bins, logarithmic = histogram_bins(spread)
    assert logarithmic and np.allclose(np.diff(np.log(bins)), np.log(bins[1] / bins[0]))  # equal in log space
    narrow = rng.normal(50.0, 5.0, 1000)
    bins, logarithmic = histogram_bins(narrow)
    assert not logarithmic and np.allclose(np.diff(bins), bins[1] - bins[0])
    assert not histogram_bins(np.concatenate([[-1.0], spread]))[1]  # a score <= 0: no log axis
    labels = np.arange(1000) >= 900
    for scores in (spread, narrow):
        path = save_score_histogram(scores, labels, tmp_path / "h.png", threshold=float(np.quantile(scores, 0.9)))
        assert path.stat().st_size > 1000
