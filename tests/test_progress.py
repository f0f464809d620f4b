"""Long jobs announce their estimated duration up front (vaekit.core.progress)."""

from __future__ import annotations

import pytest
from conftest import tiny_config

import vaekit
from vaekit.core.progress import LONG_JOB_SECONDS, announce_duration, format_duration, progress


class FakeClock:
    """A clock the test moves forward by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_loop(items: int, seconds_per_item: float) -> list[str]:
    clock, lines = FakeClock(), []
    seen = []
    for item in progress(range(items), desc="evaluating", unit="batch", clock=clock, write=lines.append):
        clock.now += seconds_per_item
        seen.append(item)
    assert seen == list(range(items))  # every item passes through, in order
    return lines


def test_a_long_job_is_announced_once_with_its_estimate():
    lines = run_loop(300, 2.0)  # 600 s in all; the first item alone is under TIMING_SECONDS
    assert lines == ["evaluating: about 10 min for 300 batches (timed on the first 2)"]


def test_a_short_job_is_not_announced():
    assert run_loop(100, 0.5) == []  # 50 s: under a minute


def test_a_slow_first_item_is_enough_to_time():
    lines = run_loop(20, 10.0)  # the first item alone passes TIMING_SECONDS
    assert lines == ["evaluating: about 3 min for 20 batches (timed on the first 1)"]


def test_disabled_progress_says_nothing():
    clock, lines = FakeClock(), []
    for _ in progress(range(50), disable=True, clock=clock, write=lines.append):
        clock.now += 100.0
    assert lines == []


def test_announce_duration_threshold_and_the_last_unit():
    lines: list[str] = []
    assert not announce_duration(lines.append, "training", LONG_JOB_SECONDS / 10 - 0.1, 1, 10, "epoch")
    assert announce_duration(lines.append, "training", LONG_JOB_SECONDS / 10, 1, 10, "epoch")
    assert not announce_duration(lines.append, "training", 1000.0, 1, 1, "epoch")  # nothing left to estimate
    assert lines == ["training: about 60 s for 10 epochs (timed on the first 1)"]


@pytest.mark.parametrize("seconds, text", [(5, "5 s"), (89, "89 s"), (90, "2 min"), (457, "8 min"),
                                           (5399, "1 h 30 min"), (4800, "80 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_eval_of_a_long_run_announces_itself(trained_run, tmp_path, capsys, monkeypatch):
    """`vaekit eval` goes through the announcing bar: a slow clock makes it say so."""
    import vaekit.core.progress as progress_module
    from vaekit.cli import main

    ticks = iter(range(0, 10**6, 50))  # every clock read is 50 s later: minutes for any split
    monkeypatch.setattr(progress_module, "now", lambda: float(next(ticks)))
    assert main(["eval", str(trained_run), "--iw-samples", "2", "--out", str(tmp_path / "eval.json")]) == 0
    assert "evaluating: about" in capsys.readouterr().err


def test_training_estimates_its_remaining_epochs_after_the_first(digits, tmp_path, monkeypatch):
    """The loop times its first epoch and asks for an estimate of the epochs it has left (all of them)."""
    import vaekit.training.train as train_module

    calls = []
    monkeypatch.setattr(train_module, "announce_duration", lambda *args: calls.append(args))
    vaekit.fit(tiny_config(epochs=3, progress=True), tmp_path / "run", data=digits)
    assert len(calls) == 1
    _, desc, elapsed, done, total, unit = calls[0]
    assert (desc, done, total, unit) == ("training", 1, 3, "epoch") and elapsed > 0


def test_training_in_a_log_file_writes_one_line_per_epoch(digits, tmp_path, capsys):
    """stderr captured by pytest is not a terminal: no bar updates, one short line per epoch."""
    vaekit.fit(tiny_config(epochs=3, progress=True), tmp_path / "run", data=digits)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "samples/s" in lines[0] and "valid" in lines[0]
    assert "\r" not in err and "batch/s" not in err  # no bar


def test_epoch_line_reads_the_record():
    from vaekit.training.train import epoch_line

    record = {"epoch": 3, "train_loss": 98.123, "valid_loss": 99.014, "samples_per_s": 12345.6, "seconds": 4.06}
    assert epoch_line(record, 50) == "epoch 3/50  loss 98.12  valid 99.01  12,346 samples/s  4.1 s"
    del record["valid_loss"]
    assert epoch_line(record, 50) == "epoch 3/50  loss 98.12  12,346 samples/s  4.1 s"
