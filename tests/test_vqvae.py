"""The VQ-VAE model kind: quantiser, codebook updates and restarts, the code prior, training, evaluation, the codec."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit.apps.compress import compress, decompress
from vaekit.apps.vkz import CompressionError
from vaekit.build import build_model
from vaekit.cli import main
from vaekit.config import ModelConfig
from vaekit.errors import ConfigError
from vaekit.models.vae import Batch
from vaekit.models.vqvae import USAGE_WARNING_AFTER, CodePrior, VectorQuantizer
from vaekit.objectives import ELBO

# A VQ-VAE small enough to train on digits in a few seconds: 2x2 codes of 4 entries, 32 codes.
TINY_KIND = {"name": "vqvae", "codebook_size": 32, "hidden": 16, "blocks": 1, "prior_width": 16,
             "prior_layers": 1, "prior_heads": 2}


def vq_config(epochs: int = 3, **kind) -> vaekit.RunConfig:
    config = vaekit.RunConfig()
    config.data.name = "digits"
    config.model.kind = {**TINY_KIND, **kind}
    config.model.network = "conv"
    config.model.likelihood = "bernoulli"
    config.model.latent_dim = 4
    config.train.epochs = epochs
    config.train.progress = False
    return config


def vq_model(**kind) -> vaekit.VAE:
    config = ModelConfig(event_shape=[1, 8, 8], latent_dim=4, kind={**TINY_KIND, **kind}, likelihood="bernoulli")
    return build_model(config)


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory, digits) -> Path:
    run = tmp_path_factory.mktemp("vq") / "run"
    vaekit.fit(vq_config(epochs=8), run, data=digits)
    return run


# --- the quantiser --------------------------------------------------------------------------------------------


def test_quantiser_picks_the_nearest_code():
    q = VectorQuantizer(16, 3, decay=0.99, restart_threshold=0.0).eval()
    z = torch.randn(200, 3)
    codes, vectors = q(z)
    brute = torch.cdist(z, q.codebook).argmin(1)
    assert torch.equal(codes, brute)
    assert torch.equal(vectors, q.codebook[codes])


def test_codebook_follows_the_moving_average_of_its_vectors():
    q = VectorQuantizer(2, 2, decay=0.5, restart_threshold=0.0).train()
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    q.ema_sum.copy_(q.codebook)
    z = torch.tensor([[1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    for _ in range(30):
        q(z)
    # every code converges to the mean of the vectors assigned to it (the smoothing is negligible here)
    assert torch.allclose(q.codebook, torch.tensor([[1.0, 1.0], [9.0, 9.0]]), atol=1e-3)


def test_dead_codes_restart_at_encoder_outputs_and_live_ones_stay():
    q = VectorQuantizer(8, 2, decay=0.9, restart_threshold=1.0).train()
    q.codebook.copy_(torch.full((8, 2), 100.0))
    q.codebook[0] = 0.0
    q.ema_sum.copy_(q.codebook)
    z = torch.randn(64, 2) * 0.1  # all nearest to code 0: codes 1..7 are never used
    for _ in range(20):
        q(z)
    assert int(q.restarts) > 0
    assert (q.codebook.abs() < 1.0).all()  # every dead code was moved next to the data
    codes, _ = q.eval()(torch.randn(2000, 2) * 0.1)
    assert codes.unique().numel() > 1  # and the codebook is no longer one code


def test_a_quantiser_in_eval_mode_changes_nothing():
    q = VectorQuantizer(8, 2, decay=0.9, restart_threshold=1.0).eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q(torch.randn(50, 2))
    assert all(torch.equal(before[k], v) for k, v in q.state_dict().items())


# --- the prior ------------------------------------------------------------------------------------------------


def test_code_prior_is_a_normalised_distribution_over_code_sequences():
    prior = CodePrior(n_codes=3, codebook_size=3, n_starts=1, width=8, layers=1, heads=2, dropout=0.0).eval()
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))  # all 27 sequences
    with torch.no_grad():
        log_p = prior.log_prob(every, torch.zeros(len(every), dtype=torch.long))
    assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-5)


def test_code_prior_is_causal():
    prior = CodePrior(n_codes=5, codebook_size=7, n_starts=1, width=8, layers=2, heads=2, dropout=0.0).eval()
    codes = torch.randint(0, 7, (4, 5))
    changed = codes.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 7
    starts = torch.zeros(4, dtype=torch.long)
    a, b = prior.logits(codes[:, :-1], starts), prior.logits(changed[:, :-1], starts)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)  # positions up to 3 do not see code 3
    assert not torch.allclose(a[:, 4], b[:, 4])  # position 4 does


def test_one_position_at_a_time_gives_the_logits_of_the_whole_sequence():
    prior = CodePrior(n_codes=6, codebook_size=9, n_starts=3, width=16, layers=2, heads=4, dropout=0.0).eval()
    codes, starts = torch.randint(0, 9, (5, 6)), torch.tensor([0, 1, 2, 0, 1])
    full = prior.logits(codes[:, :-1], starts)  # (5, 6, 9)
    caches = [{} for _ in prior.blocks]
    tokens = [starts + 9, *codes[:, :-1].T]
    steps = torch.stack([prior.step(token, position, caches) for position, token in enumerate(tokens)], 1)
    assert torch.allclose(full, steps, atol=1e-5)


# --- the model and the objective ------------------------------------------------------------------------------


def test_the_kl_term_is_the_negative_log_prior_of_the_codes_and_the_penalty_is_the_commitment():
    torch.manual_seed(0)
    model = vq_model(commitment=0.5).eval()
    x = torch.rand(6, 1, 8, 8)
    loss = ELBO()(model, Batch(x))
    codes = model.codes(x)
    log_p = model.code_prior.log_prob(codes, torch.zeros(6, dtype=torch.long))
    assert torch.allclose(loss.terms["kl"], -log_p, atol=1e-4)
    qz = model.encode(x)
    commitment = 0.5 * (qz.z_e - qz.z_q).pow(2).sum(-1)
    expected = (loss.terms["recon"] + loss.terms["kl"]).mean() + commitment.mean()
    assert float(loss.total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_gradients_reach_the_encoder_straight_through_and_the_prior_through_the_kl():
    model = vq_model().train()
    ELBO()(model, Batch(torch.rand(8, 1, 8, 8))).total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert model.code_prior.out.weight.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.quantizer.buffers())  # the codebook is not a parameter


@pytest.mark.parametrize("kind, message", [
    ({"codebook_size": 1}, "codebook_size must be 2"),
    ({"grid": 3}, "cannot be reached by halving 8x8 images; choose one of 8, 4, 2, 1"),
    ({"decay": 1.0}, "decay must be in (0, 1)"),
    ({"commitment": -1.0}, "commitment must be in [0, 100]"),
    ({"prior_width": 10, "prior_heads": 4}, "multiple of prior_heads"),
    ({"grid": 2, "codes": 4}, "set one of them"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_options_are_refused_in_one_line(kind, message):
    with pytest.raises(ConfigError, match=None) as error:
        vq_model(**kind)
    assert message in str(error.value)


def test_the_prior_and_posterior_sections_are_refused():
    config = ModelConfig(event_shape=[1, 8, 8], latent_dim=4, kind=TINY_KIND, prior="mog")
    with pytest.raises(ConfigError, match="has its own prior"):
        build_model(config)


def test_non_image_data_get_a_vector_of_codes():
    config = ModelConfig(event_shape=[10], latent_dim=3, kind={**TINY_KIND, "codes": 5}, likelihood="gaussian")
    model = build_model(config)
    assert model.n_codes == 5 and model.latent_dim == 15
    x = torch.randn(7, 10)
    assert model.encode(x).mean.shape == (7, 15)
    assert model.reconstruct(x).shape == (7, 10)


# --- a trained run: training logs, evaluation, sampling, the commands -----------------------------------------


def test_training_logs_codebook_usage_every_epoch(vq_run):
    records = [json.loads(line) for line in (vq_run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 8
    for record in records:
        assert 0 < record["codebook_usage"] <= 1
        assert 1 <= record["codebook_perplexity"] <= 32
        assert record["codes_used"] == round(32 * record["codebook_usage"])
        assert "active_units" not in record  # no per-dimension KL for discrete codes


def test_the_elbo_trains_the_prior_on_the_codes(digits):
    torch.manual_seed(0)
    model = vq_model()
    model.quantizer.eval()  # the codes stay fixed: only the prior's fit to them changes
    x = digits.split("train").x[:256]
    optimizer = torch.optim.Adam(model.code_prior.parameters(), lr=3e-3)
    uniform = model.n_codes * np.log(model.codebook_size)  # the rate of a prior that knows nothing
    for _ in range(100):
        loss = ELBO()(model, Batch(x))  # the whole objective: only the KL term reaches the prior
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    assert float(loss.terms["kl"].detach().mean()) < 0.6 * uniform


def test_eval_reports_the_codebook_and_the_bound(vq_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(vq_run), "--iw-samples", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "codebook" in printed and "codes used" in printed and "point mass" in printed
    result = json.loads(out.read_text())
    metrics = result.get("metrics", result)
    # q(z|x) is a point mass: the importance-sampled bound is the negative ELBO itself
    assert metrics["nll"] == pytest.approx(metrics["neg_elbo"], rel=1e-5)
    assert metrics["model_diagnostics"]["codes_used"] >= 1


def test_sampling_draws_codes_from_the_prior_and_decodes_them(vq_run):
    model = vaekit.load_run(vq_run).model
    torch.manual_seed(1)
    x = model.sample(20)
    assert x.shape == (20, 1, 8, 8) and torch.isfinite(x).all()
    assert x.std(0).mean() > 0.01  # different codes, different images


def test_the_analysis_commands_run_on_code_vectors(vq_run, tmp_path, capsys):
    for argv in (["latent", "plot", str(vq_run), "--out", str(tmp_path / "p.png")],
                 ["latent", "interpolate", str(vq_run), "--out", str(tmp_path / "i.png")],
                 ["latent", "traverse", str(vq_run), "--dims", "0,1", "--out", str(tmp_path / "t.png")],
                 ["sample", str(vq_run), "-n", "8", "--out", str(tmp_path / "s.png")],
                 ["reconstruct", str(vq_run), "--out", str(tmp_path / "r.png")]):
        assert main(argv) == 0, argv
    capsys.readouterr()
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("p.png", "i.png", "t.png", "s.png", "r.png"))


def test_a_collapsed_codebook_is_warned_about(caplog):
    model = vq_model(restart_threshold=0.0).eval()
    model.quantizer.codebook[1:] = 1e3  # every vector lands on code 0
    model.quantizer.updates.fill_(USAGE_WARNING_AFTER)
    with caplog.at_level(logging.WARNING):
        usage = model.diagnostics(torch.rand(50, 1, 8, 8))
    assert usage["codes_used"] == 1
    assert "codebook collapse" in caplog.text and "restart_threshold" in caplog.text


def test_resumed_training_ends_where_an_uninterrupted_run_does(tmp_path, digits):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    vaekit.fit(vq_config(epochs=4), straight, data=digits)
    vaekit.fit(vq_config(epochs=2), resumed, data=digits)
    vaekit.fit(vq_config(epochs=4), resumed, data=digits, resume=True)
    a, b = vaekit.load_run(straight).model.state_dict(), vaekit.load_run(resumed).model.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


# --- the codec ------------------------------------------------------------------------------------------------


def test_codes_round_trip_through_the_codec_at_the_rate_of_the_prior(vq_run, digits):
    model = vaekit.load_run(vq_run).model
    x = digits.split("test").x[:300].numpy()
    data = compress(model, x, lossy=True)
    back = decompress(model, data)
    with torch.no_grad():
        expected = model.generate(model.vectors_of(model.codes(torch.as_tensor(x)))).numpy()
    assert back.shape == x.shape and back.dtype == x.dtype
    assert np.allclose(back, np.clip(expected, x.min(), x.max()))
    with torch.no_grad():
        bits = -model.code_prior.log_prob(model.codes(torch.as_tensor(x)), torch.zeros(300, dtype=torch.long))
    payload_bytes = float(bits.sum()) / np.log(2) / 8
    header = len(data) - payload_bytes
    assert 0 < header < 1500  # the payload is within a few bytes of -log2 p(codes)


def test_the_codec_refuses_lossless_steps_and_other_models(vq_run, trained_run, digits):
    model = vaekit.load_run(vq_run).model
    x = digits.split("test").x[:20].numpy()
    with pytest.raises(CompressionError, match="lossy"):
        compress(model, x)
    with pytest.raises(CompressionError, match="no step or rate"):
        compress(model, x, lossy=True, step=0.1)
    data = compress(model, x, lossy=True)
    with pytest.raises(CompressionError, match="another model"):
        decompress(vaekit.load_run(trained_run).model, data)


def test_the_explorer_serves_a_vq_vae_with_sliders_ranked_by_variance(vq_run):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from vaekit.serve.app import create_app
    from vaekit.serve.explorer import Explorer

    client = TestClient(create_app(Explorer(vq_run, max_points=100)))
    info = client.get("/api/info").json()
    assert info["score_name"] == "var" and info["latent_dim"] == 16  # 2x2 codes of 4 entries
    scores = [d["kl"] for d in info["dims"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    z = client.get("/api/point/3").json()["z"]
    assert client.post("/api/decode", json={"z": z}).status_code == 200
    assert client.post("/api/sample", json={"n": 4}).status_code == 200
    assert client.post("/api/traverse", json={"dim": info["dims"][0]["dim"], "z": z}).status_code == 200


def test_anomaly_scores_of_a_vq_vae(vq_run, trained_run, digits):
    from vaekit.apps.anomaly import anomaly_scores

    model = vaekit.load_run(vq_run).model
    x = digits.split("test").x[:40]
    codes = anomaly_scores(model, x, "codes")
    with torch.no_grad():
        expected = -model.code_prior.log_prob(model.codes(x), torch.zeros(40, dtype=torch.long))
    assert np.allclose(codes, expected.double().numpy(), rtol=1e-5)
    # the point-mass posterior: the bound is reconstruction NLL plus the codes' NLL
    nll, elbo = anomaly_scores(model, x, "nll", k=7), anomaly_scores(model, x, "elbo", k=3)
    assert np.allclose(nll, elbo, rtol=1e-5)
    with pytest.raises(ConfigError, match="needs model kind 'vqvae'"):
        anomaly_scores(vaekit.load_run(trained_run).model, x, "codes")


def test_the_anomaly_detector_trains_a_vq_vae_on_request(digits):
    from vaekit.apps.anomaly import VAEAnomalyDetector

    x = digits.split("train").x[:200].numpy()
    detector = VAEAnomalyDetector(model_kind="vqvae", score="codes", epochs=2, latent_dim=4).fit(x)
    assert hasattr(detector.model_, "code_prior") and detector.decision_scores_.shape == (200,)
    with pytest.raises(ConfigError, match="model_kind='vqvae'"):
        VAEAnomalyDetector(score="codes").fit(x)
    with pytest.raises(ConfigError, match="unknown model kind 'vq'"):
        VAEAnomalyDetector(model_kind="vq").fit(x)


def test_compress_and_decompress_commands_with_a_vq_vae(vq_run, digits, tmp_path, capsys):
    images = digits.split("test").x[:30].numpy()  # grey levels in [0, 1] (the model's likelihood is Bernoulli)
    np.save(tmp_path / "in.npy", images)
    out, back = tmp_path / "c.vkz", tmp_path / "back.npy"
    assert main(["compress", str(vq_run), str(tmp_path / "in.npy"), "--lossy", "--out", str(out)]) == 0
    assert "lossy (VQ-VAE codes)" in capsys.readouterr().out
    assert main(["decompress", str(vq_run), str(out), "--out", str(back)]) == 0
    assert np.load(back).shape == images.shape and np.load(back).dtype == images.dtype
    assert main(["compress", str(vq_run), str(tmp_path / "in.npy"), "--out", str(tmp_path / "l.vkz")]) != 0
    assert "compress lossy" in capsys.readouterr().err
    assert not (tmp_path / "l.vkz").exists()


def test_the_prior_only_stage_freezes_the_autoencoder_and_the_codebook(digits):
    model = vq_model(prior_epochs=1).train()
    x = digits.split("train").x[:64]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.start_epoch(0, 3)  # first stage: everything trains
    assert not model.prior_only
    model.start_epoch(2, 3)  # the last epoch: the prior alone
    assert model.prior_only
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(3):
        loss = ELBO()(model, Batch(x))
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("code_prior.") for k in changed)


def test_a_run_ends_with_its_prior_only_epochs(tmp_path, digits, caplog):
    run = tmp_path / "staged"
    vaekit.fit(vq_config(epochs=4, prior_epochs=2), run, data=digits)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # epochs 3 and 4: the autoencoder and codebook are frozen, so reconstructions and code use do not change
    assert records[2]["valid_recon"] == pytest.approx(records[3]["valid_recon"], rel=1e-6)
    assert records[2]["codes_used"] == records[3]["codes_used"]
    assert records[3]["valid_kl"] < records[2]["valid_kl"]  # ... while the prior keeps learning their codes
    with caplog.at_level(logging.WARNING):
        vaekit.fit(vq_config(epochs=1, prior_epochs=1), tmp_path / "only", data=digits)
    assert "every epoch trains only the prior" in caplog.text
