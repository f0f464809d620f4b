"""Data-parallel training: torchrun with 2 gloo processes computes what one process computes, and the pieces
(sharding, per-step noise, collectives of one process) behave as documented."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from vaekit.errors import ConfigError
from vaekit.training.distributed import Cluster, check_shareable, shard_rows
from vaekit.training.train import split_noise
from vaekit.training.train_step import StepNoise

# A batch that 2 processes cannot split evenly (32 + 31), and a last short batch: the weighting must handle both.
CONFIG = """
[data]
name = "digits"
binarize = "dynamic"
[model]
latent_dim = 4
[model.network]
name = "mlp"
hidden = [32]
[train]
epochs = 2
batch_size = 63
threads = 1
progress = false
"""


def _torchrun(args: list[str], nproc: int, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "vaekit", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _vaekit(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vaekit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_run(one: Path, two: Path, skip=lambda key, tensor: tensor) -> None:
    a, b = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert a.keys() == b.keys()
    a, b = ({key: skip(key, t) for key, t in weights.items()} for weights in (a, b))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    m1, m2 = _metrics(one), _metrics(two)
    assert len(m1) == len(m2)
    for r1, r2 in zip(m1, m2):
        for key in ("train_loss", "train_kl", "valid_loss", "valid_kl"):
            assert r1[key] == pytest.approx(r2[key], rel=1e-5), (key, r1["epoch"])
        assert r2["processes"] == 2 and "processes" not in r1


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One process and 2 torchrun processes trained from the same config (the second also resumed)."""
    root = tmp_path_factory.mktemp("ddp")
    (root / "run.toml").write_text(CONFIG)
    single = _vaekit(["train", "--config", "run.toml", "--out", "one"], root)
    assert single.returncode == 0, single.stderr
    double = _torchrun(["train", "--config", "run.toml", "--out", "two"], 2, root)
    assert double.returncode == 0, double.stderr[-3000:]
    (root / "two.stdout").write_text(double.stdout)
    return root


def test_two_processes_train_the_same_parameters_and_losses(runs):
    _assert_same_run(runs / "one", runs / "two")
    assert (runs / "two" / "samples.png").is_file()  # rank 0 wrote the figures
    # ... and reported the run, once: a second process printing would duplicate the summary
    assert (runs / "two.stdout").read_text().count("run folder:") == 1


VQ_CONFIG = """
[data]
name = "digits"
[model]
latent_dim = 4
likelihood = "bernoulli"
[model.kind]
name = "vqvae"
codebook_size = 64
hidden = 16
blocks = 1
prior_width = 16
prior_layers = 1
prior_heads = 2
prior_epochs = 1
[train]
epochs = 2
batch_size = 63
threads = 1
progress = false
"""


def _without_key_bias(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """An attention layer's bias of the keys has a gradient of exactly 0 in theory (adding the same number to every
    score changes no softmax), so its gradients are rounding noise, which Adam scales up to full-size steps: it
    differs between runs that agree everywhere else, and changes no output. Compared without it."""
    if key.endswith("qkv.bias"):
        q, _, v = tensor.chunk(3)
        return torch.cat([q, v])
    return tensor


def test_two_processes_train_a_vq_vae_as_one_does(tmp_path):
    # The codebook's moving averages add up both processes' statistics, and dead codes restart at rows of the
    # global batch: the codebook (a buffer) and the weights end where one process's do, through the second,
    # prior-only epoch too (parameters without gradients under DDP).
    (tmp_path / "run.toml").write_text(VQ_CONFIG)
    single = _vaekit(["train", "--config", "run.toml", "--out", "one"], tmp_path)
    assert single.returncode == 0, single.stderr
    double = _torchrun(["train", "--config", "run.toml", "--out", "two"], 2, tmp_path)
    assert double.returncode == 0, double.stderr[-3000:]
    _assert_same_run(tmp_path / "one", tmp_path / "two", skip=_without_key_bias)
    restarts = load_file(tmp_path / "two" / "model.safetensors")["quantizer.restarts"]
    assert int(restarts) > 0  # the restarts were exercised


def test_resume_under_torchrun_continues_the_same_run(runs):
    # 1 epoch, then resumed to 2 epochs under torchrun: the same as 2 epochs in one go (same per-step noise).
    # With TensorBoard logging (when installed): rank 0 alone writes events, and the resumed session continues the
    # same curve.
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    log = ["--track", "tensorboard"] if tensorboard else []
    first = _torchrun(["train", "--config", "run.toml", "--out", "resumed", "--epochs", "1", *log], 2, runs)
    assert first.returncode == 0, first.stderr[-3000:]
    more = _torchrun(["train", "--out", "resumed", "--resume", "--epochs", "2", *log], 2, runs)
    assert more.returncode == 0, more.stderr[-3000:]
    _assert_same_run(runs / "one", runs / "resumed")
    if tensorboard:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        assert len(list((runs / "resumed" / "tensorboard").glob("events.*"))) == 2  # one per session, rank 0's
        events = EventAccumulator(str(runs / "resumed" / "tensorboard"))
        events.Reload()
        assert [e.step for e in events.Scalars("train/loss")] == [1, 2]


def test_bad_torchrun_requests_are_one_line_errors(runs):
    tiny = _torchrun(["train", "--config", "run.toml", "--out", "tiny", "--batch-size", "1"], 2, runs)
    assert tiny.returncode != 0
    ours = [line for line in tiny.stderr.splitlines() if line.startswith("vaekit train: error:")]
    assert len(ours) == 1 and "at least 2" in ours[0], tiny.stderr[-2000:]
    assert "Traceback" not in tiny.stderr.split("torch.distributed.elastic")[0].replace(
        "Traceback (most recent call last):\n  File", "")  # (torchrun's own report follows our line)
    assert not (runs / "tiny").exists()


# --- the pieces, in one process ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(0, 500), world=st.integers(1, 9))
def test_shards_cover_each_row_once_in_order(rows, world):
    bounds = [shard_rows(rows, Cluster(rank, world)) for rank in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, in rank order
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1
    # the same rule as torch.tensor_split
    assert sizes == [len(part) for part in torch.tensor_split(torch.arange(rows), world)]


def test_split_noise_depends_on_the_row_only():
    whole = split_noise(3, 2, 5, 0, 2500, torch.device("cpu"))
    assert whole.shape == (2, 2500, 5)
    for start, stop in [(0, 7), (1000, 1030), (1020, 2100), (2499, 2500)]:
        torch.testing.assert_close(split_noise(3, 2, 5, start, stop, torch.device("cpu")), whole[:, start:stop])
    assert not torch.equal(split_noise(4, 2, 5, 0, 10, torch.device("cpu")), whole[:, :10])
    assert abs(float(whole.mean())) < 0.05 and abs(float(whole.std()) - 1) < 0.05


def test_step_noise_gives_each_process_its_rows_of_the_global_draw():
    noise = StepNoise(0, torch.device("cpu"))
    noise.start(12)
    full = noise.normal(3, 10, 4, 0, 10)
    noise.start(12)
    assert torch.equal(noise.normal(3, 10, 4, 6, 4), full[:, 6:])
    noise.start(13)
    assert not torch.equal(noise.normal(3, 10, 4, 0, 10), full)
    p = torch.full((20000, 1), 0.3)
    noise.start(0)
    assert abs(float(noise.binarize(p, 20000, 0).mean()) - 0.3) < 0.02


def test_one_process_collectives_do_nothing():
    one = Cluster()
    assert not one.distributed and one.is_main
    values = torch.tensor([1.0, 2.0])
    assert torch.equal(one.all_sum(values.clone()), values)
    assert one.broadcast({"a": 1}) == {"a": 1} and one.any(True, torch.device("cpu"))
    assert one.from_main(lambda: 5) == 5


def test_environment_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert Cluster.from_environment() == Cluster(2, 4, 0)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="inconsistent"):
        Cluster.from_environment()
    monkeypatch.delenv("WORLD_SIZE")
    assert Cluster.from_environment() == Cluster()


def test_more_processes_than_examples_or_batch_rows_are_refused():
    with pytest.raises(ConfigError, match="cannot share 3 training"):
        check_shareable(3, 128, Cluster(0, 4))
    with pytest.raises(ConfigError, match="at least 4"):
        check_shareable(100, 2, Cluster(0, 4))
    check_shareable(4, 4, Cluster(0, 4))


# --- compiled and mixed-precision training steps ---------------------------------------------------------------


def _short_fit(**train):
    import vaekit

    config = vaekit.build_run_config(None, ["data.name=digits", "model.latent_dim=4", "model.network.hidden=[32]",
                                            "objective.warmup_epochs=1", "train.epochs=2", "train.progress=false",
                                            *[f"train.{k}={json.dumps(v)}" for k, v in train.items()]])
    return vaekit.fit(config, validate=True)


def test_compiled_training_computes_what_eager_training_does():
    eager, compiled = _short_fit(compile=False), _short_fit(compile=True)
    for a, b in zip(eager.history, compiled.history):
        for key in ("train_loss", "train_kl", "valid_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
    for (name, p), q in zip(eager.model.state_dict().items(), compiled.model.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4, msg=name)


def test_bfloat16_autocast_trains_close_to_float32():
    full, half = _short_fit(), _short_fit(precision="bfloat16")
    assert all(math.isfinite(r["train_loss"]) for r in half.history)
    # bfloat16 keeps 8 bits of mantissa: the losses agree to about a percent, not to float32's tolerance
    assert half.history[-1]["valid_loss"] == pytest.approx(full.history[-1]["valid_loss"], rel=0.03)
    assert half.history[-1]["valid_loss"] < half.history[0]["train_loss"]  # it learned


def test_device_auto_trains_where_it_can():
    result = _short_fit(device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(result.model.parameters()).device.type == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_matches_cpu_training():
    cpu, gpu = _short_fit(device="cpu"), _short_fit(device="cuda")
    for a, b in zip(cpu.history, gpu.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_nccl_processes_train_what_one_gpu_trains(tmp_path):
    (tmp_path / "run.toml").write_text(CONFIG.replace("threads = 1", 'threads = 1\ndevice = "cuda"'))
    one = _vaekit(["train", "--config", "run.toml", "--out", "one"], tmp_path)
    two = _torchrun(["train", "--config", "run.toml", "--out", "two"], 2, tmp_path)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    _assert_same_run(tmp_path / "one", tmp_path / "two")


@pytest.mark.parametrize("error, lost", [
    (RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:5"),
     True),
    (RuntimeError("Timed out waiting 1800000ms for recv operation to complete"), True),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x5 and 6x7)"), False),  # a bug, not a peer
    (ValueError("gloo"), False),
])
def test_a_lost_peer_is_one_line_and_other_errors_pass_through(error, lost):
    from vaekit.errors import TrainingError
    from vaekit.training.distributed import peer_failure

    result = peer_failure(error, rank=1)
    assert (result is not None) == lost
    if lost:
        assert isinstance(result, TrainingError) and len(str(result).splitlines()) == 1
        assert "process 1 lost the other processes" in str(result) and "train.peer_timeout" in str(result)


def test_a_collective_failing_in_a_session_ends_it_in_one_line(monkeypatch):
    """Inside a two-process session, gloo's error from a dead peer becomes the one-line TrainingError, and the
    process group gets the user's timeout (train.peer_timeout)."""
    import datetime

    import torch.distributed as dist

    from vaekit.errors import TrainingError

    joined = {}
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, timeout: joined.update(timeout=timeout))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: None)
    cluster = Cluster(rank=0, world=2, local_rank=0)
    with pytest.raises(TrainingError, match="lost the other processes"):
        with cluster.session(torch.device("cpu"), datetime.timedelta(minutes=2)):
            raise RuntimeError("[gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:29500")
    assert joined["timeout"] == datetime.timedelta(minutes=2)
    with pytest.raises(RuntimeError, match="shapes"):  # any other error is left as it is
        with cluster.session(torch.device("cpu")):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


def test_the_peer_timeout_is_a_checked_train_setting():
    import vaekit

    assert vaekit.build_run_config(overrides=["train.peer_timeout=2"]).train.peer_timeout == 2.0
    with pytest.raises(ConfigError, match="train.peer_timeout"):
        vaekit.build_run_config(overrides=["train.peer_timeout=0"])
