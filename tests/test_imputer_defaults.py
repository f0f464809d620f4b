"""VAEImputer's defaults are the configuration that benchmarks/imputation_protocol.py picked, by a protocol that
keeps tuning and reporting apart; the protocol's selection uses only its own half of the sets."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest
from conftest import REPO

from vaekit.apps import VAEImputer
from vaekit.apps.budget import auto_epochs
from vaekit.apps.imputer import AUTO_EPOCHS, AUTO_STEPS
from vaekit.errors import ConfigError

RESULTS = REPO / "benchmarks" / "results"


@pytest.fixture(scope="module")
def protocol():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        yield importlib.import_module("imputation_protocol")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


@pytest.fixture(scope="module")
def report():
    return json.loads((RESULTS / "imputation_protocol.json").read_text())


@pytest.fixture(scope="module")
def tuning():
    return json.loads((RESULTS / "imputation_tuning.json").read_text())


@pytest.mark.parametrize("n, f", [(178, 13), (2000, 5), (569, 30), (300, 1)])
def test_library_defaults_are_the_protocols_choice(report, n, f):
    settings = report["library_default"]["settings"]
    config = VAEImputer(random_state=0)._run_config(n, f)
    assert AUTO_STEPS == settings["steps"]
    assert config.train.epochs == auto_epochs(n, 64, settings["steps"], AUTO_EPOCHS)
    assert config.train.batch_size == 64 and config.train.lr == settings["lr"]
    assert config.model.network.hidden == settings["hidden"]
    assert config.model.latent_dim == max(1, min(settings["latent"], f - 1))
    assert config.objective.k == settings["k"]


def test_each_half_was_chosen_on_its_own_tuning_cells_and_reported_on_the_other(protocol, report, tuning):
    halves = report["halves"]
    assert set(halves["A"]).isdisjoint(halves["B"])
    assert set(halves["A"]) | set(halves["B"]) == set(protocol.DEFAULT_SETS)
    assert tuning["seed"] not in report["report_seeds"]  # tuning masks are never the reported masks
    for half, other in (("A", "B"), ("B", "A")):
        best, means = protocol.choose(tuning, tuple(halves[half]))
        assert report["chosen"][half]["config"] == best
        assert means[best] == min(means.values()) and len(means) == len(protocol.GRID)
        for row in report["rows"]:
            if row["half"] == other:
                assert row["vae_config"] == best
    library, _ = protocol.choose(tuning, protocol.DEFAULT_SETS)
    assert report["library_default"]["config"] == library
    assert report["library_default"]["settings"] == protocol.configuration(library)


def test_a_halfs_choice_ignores_the_other_half(protocol):
    a, b = protocol.HALVES["A"], protocol.HALVES["B"]
    rmse = {}
    for i, config in enumerate(protocol.GRID):
        for rate in protocol.RATES:
            for name in a:
                rmse[f"{name}|{rate}|{config}"] = 0.5 + 0.01 * i  # the first configuration is best on A
            for name in b:
                rmse[f"{name}|{rate}|{config}"] = 0.5 - 0.01 * i  # the last is best on B
    tuning = {"rmse": rmse}
    first, last = list(protocol.GRID)[0], list(protocol.GRID)[-1]
    assert protocol.choose(tuning, a)[0] == first and protocol.choose(tuning, b)[0] == last
    for name in b:  # whatever happens on B, A's choice stays
        rmse[f"{name}|0.2|{first}"] = 9.0
    assert protocol.choose(tuning, a)[0] == first
    del rmse[f"{a[0]}|0.5|{first}"]  # an incomplete configuration is not chosen
    assert protocol.choose(tuning, a)[0] == list(protocol.GRID)[1]


@pytest.mark.parametrize("params", [{"latent_dim": 0}, {"epochs": 0}, {"latent_dim": 2.5}, {"epochs": True}])
def test_latent_dim_and_epochs_zero_are_refused_not_replaced_by_the_default(params):
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ConfigError, match="integer >= 1"):
        VAEImputer(**params).fit(x)


def test_early_stopping_constants_are_the_ones_chosen_on_half_a():
    """The automatic training length stops early on held-out entries (docs/bench_impute.md, "Early stopping"): the
    patience was chosen on half A's tuning masks only (PATIENCE_STEPS from 200/400/800/1,600 steps); the held-out
    fraction and the validation samples were fixed before, not tuned. AUTO_STEPS (the cap) is the protocol's."""
    from vaekit.apps import imputer

    assert (imputer.VALID_FRACTION, imputer.VALID_SAMPLES) == (0.05, 50)
    assert (imputer.PATIENCE_STEPS, imputer.PATIENCE_EPOCHS) == (800, 5)
    assert VAEImputer().early_stopping is True


def test_the_protocols_fits_run_their_epochs_exactly(protocol):
    """The tuning grid's configurations give explicit epochs, so early stopping (automatic mode only) leaves the
    protocol's fits, and the defaults chosen from them, as they were."""
    imputer = protocol.vae(protocol.configuration("previous default"), 569, 30, seed=0)
    assert imputer.epochs == auto_epochs(569, 64, AUTO_STEPS, AUTO_EPOCHS)
