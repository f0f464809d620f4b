"""The trimmed ELBO (objective.trim): the batch's highest-loss rows leave the gradient, the rest are averaged as
before; the range is checked where it enters, and the anomaly detector passes it through."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vaekit.apps import VAEAnomalyDetector
from vaekit.apps.anomaly import AUTO_TRIM
from vaekit.build import build_model
from vaekit.cli import main
from vaekit.config import ModelConfig, Plugin
from vaekit.errors import ConfigError
from vaekit.models.vae import Batch
from vaekit.objectives import ELBO, build_objective


def _model_and_batch():
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=2, network=Plugin("network", "mlp", {"hidden": [8]}),
                                    likelihood=Plugin("likelihood", "gaussian"), event_shape=[4]))
    x = torch.randn(8, 4)
    x[0] += 20.0  # one row far off: the highest loss
    return model, Batch(x)


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_trim_averages_the_lowest_losses_and_drops_the_rest_from_the_gradient():
    model, batch = _model_and_batch()
    noise = torch.randn(1, 8, 2)
    full = ELBO()(model, Batch(batch.x, noise=noise))
    per_example = full.terms["loss"].detach()
    trimmed = ELBO(trim=0.25)(model, Batch(batch.x, noise=noise))  # 8 rows: the 2 worst are left out
    keep = per_example.argsort()[:6]
    assert 0 not in keep.tolist()
    assert trimmed.total.item() == pytest.approx(per_example[keep].mean().item(), rel=1e-5)
    assert torch.equal(trimmed.terms["loss"].detach(), per_example)  # the logged terms keep every row
    subset = ELBO()(model, Batch(batch.x[keep], noise=noise[:, keep]))
    for a, b in zip(_grads(model, trimmed.total), _grads(model, subset.total)):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("trim", [-0.1, 0.5, 1.0, float("nan"), "0.1"])
def test_trim_out_of_range_is_refused(trim):
    with pytest.raises(ConfigError, match="trim"):  # the range check, or the config's type check first
        build_objective("elbo", trim=trim)
    with pytest.raises(ConfigError, match="trim"):
        ELBO(trim=trim)


def test_detector_passes_trim_to_its_objective():
    x = np.random.default_rng(0).normal(size=(120, 3))
    det = VAEAnomalyDetector(trim=0.1, epochs=1, k=3, random_state=0).fit(x)
    assert det.config_.objective.options["trim"] == 0.1
    default = VAEAnomalyDetector(epochs=1, k=3, random_state=0).fit(x)
    assert default.config_.objective.options["trim"] == AUTO_TRIM["tabular"] == 0.3  # chosen by the protocol
    plain = VAEAnomalyDetector(trim=0.0, epochs=1, k=3, random_state=0).fit(x)
    assert plain.config_.objective.options["trim"] == 0.0
    assert not np.allclose(det.decision_scores_, plain.decision_scores_)
    with pytest.raises(ConfigError, match="trim"):
        VAEAnomalyDetector(trim=0.6, epochs=1).fit(x)


def test_cli_trim_is_used_or_refused(tmp_path, capsys):
    table = tmp_path / "t.csv"
    np.savetxt(table, np.random.default_rng(0).normal(size=(80, 3)), delimiter=",", header="a,b,c", comments="")
    assert main(["anomaly", "fit", str(table), "--out", str(tmp_path / "run"), "--trim", "0.15", "--epochs", "1"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["objective"]["trim"] == 0.15
    assert main(["anomaly", "fit", str(table), "--out", str(tmp_path / "bad"), "--trim", "0.5"]) != 0
    assert "must be a finite number in [0, 0.5)" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
