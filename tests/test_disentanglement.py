"""Disentanglement metrics on reference representations, the no-factors error, and the report of a tiny model.

Reference cases use a factor source whose observations are the factor indices themselves (sizes 2, 3, 4, 5):
    true       the factors                                   -> every metric near its maximum
    mixing     standardised factors times a 4x4 Hadamard     -> every code an equal mix of all factors: low
               matrix / 2 (a rotation)
    rotation   standardised factors times a seeded random    -> MIG, DCI, SAP fall far; the beta-VAE and FactorVAE
               rotation                                         scores need not (they only ask that the fixed
                                                                factor be recoverable from the codes)
    noise      Gaussian codes independent of the factors     -> low (chance for the classifier-based scores)
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard
from scipy.stats import ortho_group

import vaekit
from vaekit.cli import main
from vaekit.errors import DataError
from vaekit.metrics import (
    FactorGrid, MetricSettings, all_metrics, dci_from_importance, disentanglement_report, factor_source,
    mig_from_codes,
)

from conftest import tiny_config

SIZES = (2, 3, 4, 5)
CHANCE = 1 / len(SIZES)
N_TRAIN = 200  # scaled disentanglement_lib counts (the standard is 10,000); enough for these clear cases


def _standardise(x: torch.Tensor) -> np.ndarray:
    sizes = np.array(SIZES, dtype=np.float64)
    return (x.numpy() - (sizes - 1) / 2) / np.sqrt((sizes**2 - 1) / 12)  # uniform indices -> mean 0, var 1


def _scores(represent) -> dict[str, float]:
    results = all_metrics(FactorGrid.identity(SIZES), represent, MetricSettings().scaled(N_TRAIN), seed=0)
    scores = {name: r.score for name, r in results.items()}
    scores["sap_continuous"] = results["sap"].details["continuous"]
    for value in scores.values():
        assert 0.0 <= value <= 1.0
    return scores


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    mixing, rotation = hadamard(4) / 2, ortho_group.rvs(4, random_state=0)
    return {
        "true": _scores(lambda x: x.numpy()),
        "mixing": _scores(lambda x: _standardise(x) @ mixing),
        "rotation": _scores(lambda x: _standardise(x) @ rotation),
        "noise": _scores(lambda x: rng.normal(size=x.shape)),
    }


@pytest.mark.parametrize("metric", ["mig", "beta_vae", "factor_vae", "dci", "sap_continuous"])
def test_true_factors_score_near_the_maximum(reference, metric) -> None:
    assert reference["true"][metric] >= 0.9


def test_discrete_sap_of_true_factors_is_its_best_but_below_one(reference) -> None:
    # A one-code linear SVM cannot separate 5 ordered classes, so even the true factors stay below 1.
    assert 0.3 <= reference["true"]["sap"] < 0.9
    for case in ("mixing", "rotation", "noise"):
        assert reference[case]["sap"] < reference["true"]["sap"] - 0.1


@pytest.mark.parametrize("metric", ["mig", "beta_vae", "factor_vae", "dci", "sap", "sap_continuous"])
def test_a_mixing_rotation_and_noise_score_low(reference, metric) -> None:
    floor = CHANCE if metric in ("beta_vae", "factor_vae") else 0.0
    for case in ("mixing", "noise"):
        assert reference[case][metric] <= floor + 0.15, case


@pytest.mark.parametrize("metric", ["mig", "dci", "sap_continuous"])
def test_a_random_rotation_scores_far_lower(reference, metric) -> None:
    assert reference["rotation"][metric] <= reference["true"][metric] - 0.25


@pytest.mark.parametrize("metric", ["beta_vae", "factor_vae"])
def test_a_random_rotation_scores_no_higher(reference, metric) -> None:
    assert reference["rotation"][metric] <= reference["true"][metric]
    assert reference["rotation"][metric] > reference["mixing"][metric]  # its codes still tell factors apart


def test_mig_is_zero_for_a_duplicated_code_and_dci_extremes() -> None:
    rng = np.random.default_rng(1)
    factors = np.stack([rng.integers(0, s, 1000) for s in SIZES], axis=1)
    alone, _ = mig_from_codes(factors.astype(float), factors)
    twice, _ = mig_from_codes(np.hstack([factors, factors]).astype(float), factors)
    assert alone > 0.9 and twice < 0.05  # two codes with the same information leave no gap
    assert dci_from_importance(np.eye(4)) == pytest.approx((1.0, 1.0))
    assert dci_from_importance(np.ones((4, 4))) == pytest.approx((0.0, 0.0), abs=1e-6)


def test_settings_scale_every_count() -> None:
    standard = MetricSettings()
    assert (standard.mig_train, standard.beta_vae_eval, standard.factor_vae_prune, standard.mig_bins) == (
        10_000, 5_000, 0.05, 20)
    small = standard.scaled(1000)
    assert (small.mig_train, small.dci_test, small.beta_vae_batch, small.mig_bins) == (1000, 500, 64, 20)
    with pytest.raises(DataError):
        standard.scaled(0)


# ---- data sets without factors, and a trained model -----------------------------------------------------------------


def test_data_without_factors_is_a_one_line_data_error(digits) -> None:
    message = "data set 'digits' has no generative factors; disentanglement metrics need one such as 'shapes'"
    with pytest.raises(DataError) as error:
        factor_source(digits)
    assert str(error.value) == message
    model = vaekit.build_model(vaekit.resolve_model_config(tiny_config().model, digits))
    with pytest.raises(DataError, match="no generative factors"):
        disentanglement_report(model, digits)


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    data = vaekit.load_data("shapes-16")
    config = tiny_config(epochs=1)
    config.data.name = "shapes-16"
    run_dir = tmp_path_factory.mktemp("runs") / "shapes"
    result = vaekit.fit(config, run_dir, data=data)
    return run_dir, result.model, data


def test_report_of_a_tiny_model_has_scores_in_unit_interval(shapes_run) -> None:
    _, model, data = shapes_run
    settings = dataclasses.replace(MetricSettings().scaled(100), dci_trees=10)  # fewer trees: a quicker test
    report = disentanglement_report(model, data, seed=0, settings=settings)
    assert report.data == "shapes-16" and report.latent_dim == 4 and report.factor_sizes == (3, 3, 6, 8, 8)
    assert set(report.scores()) == {"mig", "beta_vae", "factor_vae", "dci_disentanglement", "dci_completeness",
                                    "dci_informativeness", "sap"}
    for value in report.scores().values():
        assert 0.0 <= value <= 1.0
    assert report.metrics["mig"].settings["n_train"] == 100  # 10,000 scaled to 100
    assert json.loads(json.dumps(report.to_dict()))["factor_names"][0] == "shape"
    assert data.meta["factors"]["test"][: len(data.split("test"))].shape == (len(data.split("test")), 5)


def test_cli_writes_scores_and_rejects_data_without_factors(shapes_run, trained_run, capsys) -> None:
    run_dir, _, _ = shapes_run
    assert main(["disentangle", str(run_dir), "--n", "60", "--no-progress"]) == 0
    saved = json.loads((run_dir / "disentanglement.json").read_text())
    assert 0.0 <= saved["mig"] <= 1.0 and saved["data"] == "shapes-16"
    assert "FactorVAE score" in capsys.readouterr().out
    assert main(["disentangle", str(trained_run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no generative factors" in err
