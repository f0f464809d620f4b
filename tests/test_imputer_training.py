"""VAEImputer's training length: early stopping on held-out observed entries in the automatic mode, an explicit
`epochs` run exactly, and the loop's caller-given validation score behind it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.apps import VAEImputer
from vaekit.apps import imputer as imputer_module
from vaekit.apps.budget import auto_epochs
from vaekit.apps.imputer import AUTO_EPOCHS, AUTO_STEPS, VALID_FRACTION, _held_out_error, held_out_entries


def _table(n: int = 100, f: int = 5, rate: float = 0.2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) @ rng.normal(size=(2, f)) + 0.1 * rng.normal(size=(n, f))
    missing = rng.random(x.shape) < rate
    missing[missing.all(1), 0] = False
    return np.where(missing, np.nan, x)


def test_held_out_entries_are_observed_and_never_a_rows_last():
    rng = np.random.default_rng(0)
    mask = rng.random((2000, 6)) < 0.7
    mask[np.arange(2000), rng.integers(0, 6, 2000)] = True  # every row observes something
    mask[:50] = False
    mask[:50, 2] = True  # rows with a single observed entry
    held = held_out_entries(mask, 0.3, np.random.default_rng(1))
    assert not (held & ~mask).any()
    assert (mask & ~held).any(1).all()  # every row keeps an observed entry for training
    assert not held[:50].any()
    assert held.sum() / mask.sum() == pytest.approx(0.3, abs=0.03)
    assert not held_out_entries(mask, 0.0, np.random.default_rng(1)).any()


@pytest.fixture(scope="module")
def stopped():
    """An automatic fit with a small cap and patience (the library's are larger), so that it stops early fast."""
    patch = pytest.MonkeyPatch()
    patch.setattr(imputer_module, "AUTO_STEPS", 600)
    patch.setattr(imputer_module, "PATIENCE_STEPS", 20)
    patch.setattr(imputer_module, "PATIENCE_EPOCHS", 3)
    try:
        holey = _table()
        fitted = VAEImputer(hidden=(32, 32), samples=50, random_state=0).fit(holey)
    finally:
        patch.undo()
    return fitted, holey


def test_automatic_training_stops_early_and_keeps_the_best_epoch(stopped):
    imputer, holey = stopped
    cap = auto_epochs(len(holey), 64, 600, AUTO_EPOCHS)
    assert imputer.config_.train.epochs == cap and imputer.config_.train.patience == 10  # 2 steps an epoch: 20 steps
    run = len(imputer.history_)
    assert run < cap and len(imputer.valid_history_) == run
    assert imputer.best_epoch_ == 1 + int(np.argmin(imputer.valid_history_)) == run - 10
    # the kept weights are the best epoch's: scoring them again gives that epoch's held-out error
    mask = ~np.isnan(holey)
    seed = imputer.config_.train.seed
    held = held_out_entries(mask, VALID_FRACTION, np.random.default_rng([seed, 7919]))
    xt, mt = imputer._tensors(holey, mask)
    with torch.no_grad():
        again = _held_out_error(xt, mt, torch.from_numpy(held), seed)(imputer.model_)
    assert again == pytest.approx(min(imputer.valid_history_), rel=1e-5)
    assert again < imputer.valid_history_[-1]


def test_automatic_training_still_fills_every_hole_and_keeps_held_out_entries(stopped):
    imputer, holey = stopped
    filled = imputer.transform(holey)
    observed = ~np.isnan(holey)
    assert not np.isnan(filled).any() and np.array_equal(filled[observed], holey[observed])


def test_explicit_epochs_are_run_exactly_on_every_entry():
    holey = _table(n=60)
    imputer = VAEImputer(epochs=7, hidden=(16,), samples=20, random_state=0).fit(holey)
    assert len(imputer.history_) == 7 and imputer.best_epoch_ == 7 and imputer.valid_history_ == []
    assert imputer.config_.train.epochs == 7 and imputer.config_.train.patience is None


def test_without_early_stopping_the_automatic_length_is_the_step_budget(monkeypatch):
    calls = []

    def fit(config, *args, **kwargs):
        calls.append((config.train.epochs, config.train.patience, kwargs.get("valid_score"),
                      float(kwargs["data"].split("train").mask.sum())))
        raise RuntimeError("stop")

    monkeypatch.setattr(imputer_module, "fit", fit)
    holey = _table(n=300)
    for early in (False, True):
        with pytest.raises(RuntimeError):
            VAEImputer(early_stopping=early, random_state=0).fit(holey)
    (epochs, patience, score, seen), (epochs_es, patience_es, score_es, seen_es) = calls
    assert epochs == epochs_es == auto_epochs(300, 64, AUTO_STEPS, AUTO_EPOCHS)
    assert patience is None and score is None and seen == (~np.isnan(holey)).sum()
    assert patience_es >= imputer_module.PATIENCE_EPOCHS and callable(score_es) and seen_es < seen


def test_a_table_with_nothing_to_hold_out_trains_the_automatic_length():
    holey = np.array([[1.0, np.nan], [np.nan, 2.0], [3.0, np.nan]] * 4)  # every row observes one entry
    imputer = VAEImputer(hidden=(8,), samples=10, random_state=0)
    imputer.fit(holey)
    assert imputer.valid_history_ == [] and len(imputer.history_) == imputer.config_.train.epochs
