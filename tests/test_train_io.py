"""Training, checkpoints and loading: a short fit learns, save -> load is exact, resume continues the schedule."""

from __future__ import annotations

import json
import os

import pytest
import torch

import vaekit
from vaekit import io

from conftest import tiny_config


def test_short_fit_lowers_the_loss(digits):
    result = vaekit.fit(tiny_config(epochs=4), data=digits)
    losses = [r["train_loss"] for r in result.history]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 1.0


def test_run_folder_contents(trained_run):
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "checkpoints/last.safetensors"):
        assert (trained_run / name).is_file(), name
    lines = (trained_run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    record = json.loads(lines[-1])
    for key in ("train_loss", "train_recon", "train_kl", "valid_loss", "valid_recon", "valid_kl", "samples_per_s"):
        assert key in record
    assert abs(record["valid_loss"] - record["valid_recon"] - record["valid_kl"]) < 1e-3


def test_save_then_load_gives_identical_outputs(trained_run, digits):
    model_a = vaekit.load(trained_run)
    model_b = vaekit.load(trained_run)
    x = digits.split("test").x[:16]
    assert torch.equal(model_a.reconstruct(x), model_b.reconstruct(x))
    assert torch.equal(model_a.encode(x).mean, model_b.encode(x).mean)
    torch.manual_seed(5)
    a = model_a.sample(4)
    torch.manual_seed(5)
    assert torch.equal(a, model_b.sample(4))


def test_loaded_model_equals_the_trained_one(tmp_path, digits):
    result = vaekit.fit(tiny_config(epochs=2), tmp_path / "run", data=digits)
    loaded = vaekit.load(tmp_path / "run")
    x = digits.split("test").x[:8]
    assert torch.equal(result.model.reconstruct(x), loaded.reconstruct(x))


def test_resume_continues_the_same_schedule(tmp_path, digits):
    straight = vaekit.fit(tiny_config(epochs=4), tmp_path / "straight", data=digits)
    vaekit.fit(tiny_config(epochs=2), tmp_path / "resumed", data=digits)
    resumed = vaekit.fit(tiny_config(epochs=4), tmp_path / "resumed", resume=True, data=digits)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(straight.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    for (name, p), q in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_refuses_to_overwrite_a_run(tmp_path, digits):
    vaekit.fit(tiny_config(epochs=1), tmp_path / "run", data=digits)
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(vaekit.CheckpointError, match="already exists"):
        vaekit.fit(tiny_config(epochs=1), tmp_path / "run", data=digits)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, digits, monkeypatch):
    run = tmp_path / "run"
    vaekit.fit(tiny_config(epochs=1), run, data=digits)
    good = (run / io.LAST_CHECKPOINT).read_bytes()
    good_model = (run / "model.safetensors").read_bytes()

    original = vaekit.ELBO.__call__

    def exploding(self, model, batch, step=0):
        loss = original(self, model, batch, step)
        loss.total = loss.total * float("nan")
        return loss

    monkeypatch.setattr(vaekit.ELBO, "__call__", exploding)
    with pytest.raises(vaekit.TrainingError, match="last good checkpoint is kept"):
        vaekit.fit(tiny_config(epochs=3), run, resume=True, data=digits)
    assert (run / io.LAST_CHECKPOINT).read_bytes() == good
    assert (run / "model.safetensors").read_bytes() == good_model


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    io.atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        io.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary file left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path, trained_run):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(vaekit.CheckpointError, match="unreadable or truncated"):
        vaekit.load(run)


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path, trained_run):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["latent_dim"] = 7
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(vaekit.CheckpointError, match="do not fit the architecture"):
        vaekit.load(run)


def test_loading_never_unpickles(trained_run, monkeypatch):
    import pickle

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert vaekit.load(trained_run).latent_dim == 4


def test_evaluate_reports_consistent_metrics(trained_run, digits):
    model = vaekit.load(trained_run)
    x = digits.split("test").x[:50]
    result = vaekit.evaluate(model, x, iw_samples=50)
    assert result.n == 50
    assert result.neg_elbo == pytest.approx(result.recon + result.kl, rel=1e-4)
    assert result.nll <= result.neg_elbo + 0.5  # the IWAE bound is tighter than the ELBO (up to noise)
    assert result.bits_per_dim == pytest.approx(result.nll / (64 * 0.6931471805599453))
    assert 0 <= result.active_units <= 4
    assert len(result.kl_per_dim) == 4
    assert sum(result.kl_per_dim) == pytest.approx(result.kl, rel=1e-3)


def test_active_units_counts_varying_dimensions():
    from vaekit.evaluate import active_units

    means = torch.zeros(100, 3)
    means[:, 0] = torch.randn(100)
    means[:, 2] = 0.001 * torch.randn(100)
    count, variances = active_units(means)
    assert count == 1
    assert variances.shape == (3,)


def test_dynamic_binarization_feeds_binary_batches(digits, monkeypatch):
    import dataclasses

    seen = []
    original = vaekit.ELBO.__call__

    def spy(self, model, batch, step=0):
        seen.append(batch.x)
        return original(self, model, batch, step)

    monkeypatch.setattr(vaekit.ELBO, "__call__", spy)
    bundle = dataclasses.replace(digits, dynamic_binarize=True)
    vaekit.fit(tiny_config(epochs=1), data=bundle)
    train_batches = seen[: len(seen) // 2]
    assert all(torch.all((b == 0) | (b == 1)) for b in train_batches[:3])


def test_the_mutual_information_as_matrix_products_equals_the_pairwise_estimate():
    # The estimator expands the square into matrix products; the pairwise broadcast it replaced is the reference.
    import math

    from vaekit.evaluate import mutual_information

    g = torch.Generator().manual_seed(3)
    loc = torch.randn(300, 5, generator=g) * 2
    scale = torch.rand(300, 5, generator=g) * 0.9 + 0.05
    eps = torch.randn(loc.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    z = loc.double() + scale.double() * eps
    own = -(scale.double().log() + 0.5 * math.log(2 * math.pi) + 0.5 * eps**2).sum(-1)
    logq = -(scale.double().log() + 0.5 * math.log(2 * math.pi)
             + 0.5 * ((z[:, None, :] - loc.double()) / scale.double()) ** 2).sum(-1)  # (N, N, D) -> (N, N)
    reference = float((own - (torch.logsumexp(logq, 1) - math.log(300))).mean())
    for chunk in (1, 64, 1024):
        estimate = mutual_information(loc, scale, torch.Generator().manual_seed(7), chunk=chunk)
        assert estimate == pytest.approx(reference, rel=1e-9, abs=1e-9)
