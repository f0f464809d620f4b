"""Resume continues the run that was started: settings from the run folder, a lock, crash leftovers repaired."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import vaekit
from vaekit import io
from vaekit.cli import main
from vaekit.core.runlock import RunLock
from vaekit.training.writer import RunWriter

TINY = ["--data", "digits", "--no-progress", "--set", "model.network.hidden=[32]", "--latent-dim", "3",
        "--set", "model.likelihood=bernoulli"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def epochs_logged(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def interrupt_after(monkeypatch, epoch: int) -> None:
    """The next fit dies (KeyboardInterrupt) right after writing the checkpoint of `epoch`."""
    original = RunWriter.epoch

    def epoch_then_die(self, record, *args, **kwargs):
        original(self, record, *args, **kwargs)
        if record["epoch"] == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunWriter, "epoch", epoch_then_die)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The uninterrupted run: 5 epochs, seed 3."""
    run = tmp_path_factory.mktemp("straight") / "run"
    assert main(["train", *TINY, "--epochs", "5", "--seed", "3", "--out", str(run)]) == 0
    return run


def test_resume_takes_every_setting_from_the_run_folder(straight, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    interrupt_after(monkeypatch, 2)
    assert run_cli(capsys, "train", *TINY, "--epochs", "5", "--seed", "3", "--out", run)[0] == 130
    monkeypatch.undo()
    code, out, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress")  # no --epochs, no --seed
    assert code == 0, err
    assert epochs_logged(run) == [1, 2, 3, 4, 5]
    for name, value in weights(straight).items():
        assert torch.allclose(value, weights(run)[name], atol=1e-6), name  # the uninterrupted run's weights


@pytest.mark.parametrize("flags, message", [
    (["--seed", "4"], "train.seed is 3"),
    (["--lr", "0.01"], "train.lr is 0.001"),
    (["--data", "mnist"], "data.name is 'digits'"),
    (["--set", "model.latent_dim=5"], "model.latent_dim is 3"),
    (["--epochs", "4"], "not shorten them to 4"),
])
def test_resume_refuses_a_setting_that_would_change_the_run(straight, tmp_path, capsys, flags, message):
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(straight), str(run)], check=True)
    before = (run / "config.json").read_text()
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress", *flags)
    assert code != 0 and message in err and "Traceback" not in err
    assert (run / "config.json").read_text() == before


def test_resume_can_extend_the_run_and_records_it(straight, tmp_path, capsys):
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(straight), str(run)], check=True)
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress", "--epochs", "7")
    assert code == 0, err
    assert epochs_logged(run) == [1, 2, 3, 4, 5, 6, 7]
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 7


def test_resume_refuses_a_config_file(straight, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--out", straight, "--resume", "--config", tmp_path / "c.toml")
    assert code != 0 and "--config cannot be combined with --resume" in err


def test_a_run_killed_before_its_first_checkpoint_resumes_from_scratch(straight, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("vaekit.training.train._train_epoch", die)
    assert run_cli(capsys, "train", *TINY, "--epochs", "5", "--seed", "3", "--out", run)[0] == 130
    monkeypatch.undo()
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    (run / ".model.safetensors.x1y2.tmp").write_bytes(b"half a file")  # an interrupted write
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress")
    assert code == 0, err
    assert not (run / ".model.safetensors.x1y2.tmp").exists()
    for name, value in weights(straight).items():
        assert torch.allclose(value, weights(run)[name], atol=1e-6), name


def test_resume_never_retrains_over_a_model_it_cannot_continue(straight, tmp_path, capsys):
    """A finished run whose checkpoint was deleted holds a model but nothing to continue: refused, untouched."""
    import shutil

    run = Path(shutil.copytree(straight, tmp_path / "copy"))
    (run / io.LAST_CHECKPOINT).unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress")
    assert code != 0 and "no checkpoints/last.safetensors to continue from" in err and len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_cut_last_metrics_line_is_dropped_a_damaged_one_refused(straight, tmp_path, capsys):
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(straight), str(run)], check=True)
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 6, "step": 6')  # a crash mid-append
    assert run_cli(capsys, "train", "--out", run, "--resume", "--no-progress", "--epochs", "6")[0] == 0
    assert epochs_logged(run) == [1, 2, 3, 4, 5, 6]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress", "--epochs", "7")
    assert code != 0 and "line 2 is not a JSON record" in err


@pytest.mark.parametrize("state", [{"epoch": -1}, {"step": "x"}, {"best_valid": float("nan")}, {"bad_epochs": None}])
def test_invalid_trainer_state_is_refused(straight, tmp_path, capsys, state):
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(straight), str(run)], check=True)
    tensors, metadata = io.load_tensors(run / io.LAST_CHECKPOINT)
    trainer = {**json.loads(metadata["trainer"]), **state}
    io.save_tensors(run / io.LAST_CHECKPOINT, tensors, {**metadata, "trainer": json.dumps(trainer)})
    code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress", "--epochs", "6")
    assert code != 0 and "trainer state" in err and "Traceback" not in err


def test_a_second_writer_is_refused(straight, tmp_path, capsys):
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(straight), str(run)], check=True)
    held = RunLock(run)
    held.acquire()
    try:
        code, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--no-progress", "--epochs", "6")
        assert code != 0 and "another vaekit process is training" in err
    finally:
        held.release()
    assert epochs_logged(run) == [1, 2, 3, 4, 5]


def _vaekit(*argv) -> list[str]:
    return [sys.executable, "-m", "vaekit.cli", *map(str, argv)]


def test_concurrent_resumes_never_interleave_epochs(straight, tmp_path):
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(straight), str(run)], check=True)
    command = _vaekit("train", "--out", run, "--resume", "--no-progress", "--epochs", "12")
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert any(code == 0 for _, _, code in results)
    for _, err, code in results:
        assert code == 0 or "another vaekit process is training" in err, err
    assert epochs_logged(run) == list(range(1, 13))


def _logged(run: Path) -> int:
    try:
        return len((run / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def _wait_for_progress(run: Path, before: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until the process has logged an epoch beyond `before` (training is under way) or ended."""
    deadline = time.monotonic() + timeout
    while _logged(run) <= before and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_run(tmp_path):
    """SIGKILLs at random moments of a 30-epoch run, each once training is under way (a new epoch logged):
    mid-epoch, mid-checkpoint or mid-append; each time the next start resumes; the result equals the run that
    was never interrupted, and every epoch is logged once."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["train", *TINY, "--epochs", "30", "--seed", "1"]
    straight = tmp_path / "straight"
    assert main([*map(str, args), "--out", str(straight)]) == 0  # in this process (one thread, as the others)
    run = tmp_path / "killed"
    rng = random.Random(0)
    logged = []
    for trial in range(3):
        started = (run / "config.json").exists()
        command = _vaekit("train", "--out", run, "--resume", "--no-progress") if started else _vaekit(*args, "--out", run)
        before = _logged(run)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _wait_for_progress(run, before, proc)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        logged.append(_logged(run))
    started = (run / "config.json").exists()
    command = _vaekit("train", "--out", run, "--resume", "--no-progress") if started else _vaekit(*args, "--out", run)
    final = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert final.returncode == 0, final.stderr
    assert any(0 < n < 30 for n in logged), logged  # the kills did land during training
    assert epochs_logged(run) == list(range(1, 31)), logged
    for name, value in weights(straight).items():
        assert torch.allclose(value, weights(run)[name], atol=1e-6), name
