"""The KL weight schedules: their values at known steps, and what each accepts."""

from __future__ import annotations

import math

import pytest
import torch

import vaekit
from vaekit.objectives import ELBO, KLSchedule


def test_linear_and_logistic_warm_ups_run_from_0_to_1():
    linear = KLSchedule("linear", warmup_steps=100)
    assert [linear(s) for s in (0, 25, 50, 100, 500)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    logistic = KLSchedule("logistic", warmup_steps=100)
    values = [logistic(s) for s in range(0, 121)]
    assert values[0] == 0.0 and values[50] == pytest.approx(0.5) and values[100] == 1.0 and values[120] == 1.0
    assert all(a < b for a, b in zip(values[:100], values[1:101]))  # rising all the way, no jump at the end
    # an S-curve: slower than the linear ramp in the first half, faster in the second
    assert logistic(20) < linear(20) and logistic(80) > linear(80)
    sigmoid = lambda u: 1 / (1 + math.exp(-u))  # noqa: E731
    assert logistic(25) == pytest.approx((sigmoid(-2.5) - sigmoid(-5)) / (sigmoid(5) - sigmoid(-5)))
    assert logistic.warmed_up(100) and not logistic.warmed_up(99)


def test_constant_and_cyclical_schedules():
    assert KLSchedule("constant")(0) == 1.0
    cyclical = KLSchedule("cyclical", total_steps=100, cycles=4, ratio=0.4)
    assert [cyclical(s) for s in (0, 5, 10, 25, 30, 35)] == [0.0, 0.5, 1.0, 0.0, 0.5, 1.0]


def test_the_elbo_config_entry_takes_the_logistic_schedule_in_epochs():
    elbo = vaekit.OBJECTIVES.build("elbo", {"kl_schedule": "logistic", "warmup_epochs": 2.0}, steps_per_epoch=10,
                                   epochs=5)
    assert elbo.weight(0) == 0.0 and elbo.weight(10) == pytest.approx(0.5) and elbo.weight(20) == 1.0
    with pytest.raises(vaekit.ConfigError, match="'linear' or 'logistic' only"):
        ELBO(kl_schedule="cyclical", warmup_steps=10, total_steps=100)
    with pytest.raises(vaekit.ConfigError, match="unknown kl_schedule"):
        ELBO(kl_schedule="sigmoid")


@pytest.mark.parametrize("kind, options", [("linear", {"warmup_steps": 37}), ("logistic", {"warmup_steps": 50}),
                                           ("cyclical", {"total_steps": 400, "cycles": 3, "ratio": 0.4}),
                                           ("constant", {})])
def test_a_step_in_a_tensor_gives_the_same_weight(kind, options):
    # (a compiled training step passes the step as a 0-dim tensor)
    schedule = KLSchedule(kind, **options)
    for step in range(0, 450, 7):
        assert float(schedule(torch.tensor(float(step), dtype=torch.float64))) == pytest.approx(schedule(step), abs=1e-12)


@pytest.mark.parametrize("epochs, warns", [(2, True), (4, False)])
def test_a_run_shorter_than_its_warm_up_warns_at_the_start(epochs, warns, caplog):
    """A warm-up of 3 epochs: a 2-epoch run never gives the KL its full weight (warned), a 4-epoch run does."""
    from vaekit.objectives import build_objective
    from vaekit.training.train import warn_if_never_warm

    objective = build_objective("elbo", steps_per_epoch=10, epochs=epochs, warmup_epochs=3.0)
    with caplog.at_level("WARNING", logger="vaekit"):
        assert warn_if_never_warm(objective, 10, epochs) is warns
    assert ("KL warm-up is longer than the run" in caplog.text) is warns


def test_the_cli_warns_when_the_run_is_shorter_than_its_warm_up(tmp_path, caplog):
    from vaekit.cli import main

    with caplog.at_level("WARNING", logger="vaekit"):
        assert main(["train", "--data", "digits", "--epochs", "1", "--set", "objective.warmup_epochs=5",
                     "--set", "model.network.hidden=[16]", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    assert "KL warm-up is longer than the run (1 epoch):" in caplog.text
