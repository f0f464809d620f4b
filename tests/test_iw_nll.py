"""The importance-sampled NLL (vaekit.evaluate.importance_sampled_nll) against the estimator it replaced, and the fast
log densities it uses (vaekit.core.distributions.summed_log_prob).

The fast estimator draws the same z from the same seed (the draws are made in the same chunks), decodes them in
smaller passes and computes the log densities in fewer operations, so it must agree with the old one to float
rounding for every likelihood, prior, posterior and model kind."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D

import vaekit
from vaekit.build import build_model, reads
from vaekit.config import ModelConfig, Plugin
from vaekit.core.distributions import log_mean_exp, summed_log_prob
from vaekit.evaluate import importance_sampled_nll, iw_pass_rows
from vaekit.likelihoods import LIKELIHOODS
from vaekit.priors import PRIORS

ARRAY_LIKELIHOODS = [n for n in LIKELIHOODS.names() if reads("likelihood", n) is None]
SHAPE = (1, 6, 6)


@torch.no_grad()
def reference_nll(model, x, y=None, k=1000, chunk_rows=16384):
    """The estimator before the fast one, verbatim: whole chunks decoded, the distributions' own log_prob."""
    qz = model.encode(x, y)
    pz = model.prior_for(y, x.shape[0])
    per_chunk = max(1, chunk_rows // x.shape[0])
    log_w = []
    for start in range(0, k, per_chunk):
        z = qz.sample((min(per_chunk, k - start),))  # (s, B, D)
        px = model.decode(z, y)
        log_w.append(px.log_prob(x) + pz.log_prob(z) - qz.log_prob(z))
    return -log_mean_exp(torch.cat(log_w, 0), 0)


def _model(likelihood="bernoulli", prior="normal", kind="vae", num_classes=0, posterior="gaussian", latent=5):
    kinds = {"vae": Plugin("model kind", "vae"),
             "hierarchical": Plugin("model kind", "hierarchical", {"layers": [3, 2], "hidden": 16})}
    config = ModelConfig(network=Plugin("network", "mlp", {"hidden": [16]}), latent_dim=latent, kind=kinds[kind],
                         likelihood=Plugin("likelihood", likelihood), prior=Plugin("prior", prior, {"components": 4}
                                                                                    if prior != "normal" else {}),
                         posterior=Plugin("posterior", posterior), event_shape=list(SHAPE), num_classes=num_classes)
    return build_model(config).eval()


def _data(likelihood, n=7):
    if likelihood == "bernoulli":
        return torch.bernoulli(torch.full((n, *SHAPE), 0.4))
    if likelihood == "discretized-logistic":
        return torch.randint(0, 256, (n, *SHAPE)) / 255.0
    return torch.rand(n, *SHAPE)


def _both(model, x, y=None, k=40, chunk_rows=60, pass_rows=20):
    """(old, new) from the same seed; chunks of 60 // 7 = 8 samples split into passes of 2 (and a last of 1)."""
    torch.manual_seed(11)
    old = reference_nll(model, x, y, k=k, chunk_rows=chunk_rows)
    torch.manual_seed(11)
    new = importance_sampled_nll(model, x, y, k=k, chunk_rows=chunk_rows, pass_rows=pass_rows)
    return old, new


def _assert_same(old, new):
    assert new.shape == old.shape and torch.isfinite(new).all()
    torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("prior", PRIORS.names())
@pytest.mark.parametrize("likelihood", ARRAY_LIKELIHOODS)
def test_the_fast_estimate_equals_the_old_one(likelihood, prior):
    torch.manual_seed(0)
    model = _model(likelihood, prior)
    _assert_same(*_both(model, _data(likelihood)))


@pytest.mark.parametrize("prior", ["normal", "vamp"])
def test_conditional_models_give_the_old_estimate(prior):
    torch.manual_seed(1)
    model = _model("bernoulli", prior, num_classes=3)
    x, y = _data("bernoulli"), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    _assert_same(*_both(model, x, y))


@pytest.mark.parametrize("kind, posterior", [("hierarchical", "gaussian"), ("vae", "iaf")])
def test_other_posteriors_give_the_old_estimate(kind, posterior):
    """A hierarchy and a flow sample and score themselves (no diagonal-Gaussian shortcut): still the same."""
    torch.manual_seed(2)
    model = _model("bernoulli", "normal", kind=kind, posterior=posterior)
    _assert_same(*_both(model, _data("bernoulli")))


def test_a_sentence_model_gives_the_old_estimate():
    from vaekit import VAE
    from vaekit.priors import StandardNormalPrior
    from vaekit.text import Vocabulary, toy_corpus
    from vaekit.text.encoder import SentenceEncoder
    from vaekit.text.sequence import PassCode, SentenceLikelihood

    sentences = toy_corpus(9, seed=0)
    vocab = Vocabulary.build(sentences)
    ids, _ = vocab.encode_batch(sentences)
    torch.manual_seed(3)
    model = VAE(SentenceEncoder(len(vocab), 3, embed_dim=8, hidden=16), PassCode(),
                SentenceLikelihood(len(vocab), 3, embed_dim=8, hidden=16), StandardNormalPrior(3),
                latent_dim=3, event_shape=(ids.shape[1],)).eval()
    _assert_same(*_both(model, ids, k=20, chunk_rows=45, pass_rows=18))


def test_the_pass_size_changes_no_draw():
    torch.manual_seed(4)
    model = _model("bernoulli", "mog")
    x = _data("bernoulli")
    estimates = []
    for pass_rows in (1, 7, 50, None):
        torch.manual_seed(5)
        estimates.append(importance_sampled_nll(model, x, k=30, chunk_rows=100, pass_rows=pass_rows))
    for other in estimates[1:]:
        torch.testing.assert_close(other, estimates[0], rtol=1e-6, atol=1e-5)
    assert iw_pass_rows(model) >= 1000  # 36 values a row: the default pass holds whole chunks here


def test_the_estimate_moves_with_the_model():
    """The comparison can fail: another decoder gives another estimate."""
    torch.manual_seed(6)
    model = _model("bernoulli")
    x = _data("bernoulli")
    torch.manual_seed(7)
    before = importance_sampled_nll(model, x, k=20)
    with torch.no_grad():
        model.decoder.net[-1].bias.add_(0.5)
    torch.manual_seed(7)
    assert (importance_sampled_nll(model, x, k=20) - before).abs().max() > 1e-2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("width", [1, 5, 56, 64, 100, 797])
def test_bernoulli_log_prob_is_the_cross_entropy(width, dtype):
    """Every width (one group, whole groups, a remainder), logits up to +-200, binary and grey-level targets."""
    generator = torch.Generator().manual_seed(width)
    logits = (torch.randn(3, 4, width, generator=generator, dtype=dtype) * 8).clamp(-200, 200)
    logits[0, 0, 0] = 200.0
    logits[0, 1, 0] = -200.0
    for target in (torch.bernoulli(torch.full((4, width), 0.3, dtype=dtype), generator=generator),
                   torch.rand(4, width, generator=generator, dtype=dtype)):
        p = D.Independent(D.Bernoulli(logits=logits, validate_args=False), 1)
        expected = p.log_prob(target)
        for consume in (False, True):
            got = summed_log_prob(D.Independent(D.Bernoulli(logits=logits.clone(), validate_args=False), 1),
                                  target, consume=consume)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4 * width ** 0.5)
    assert logits[0, 0, 0] == 200.0  # consume=False left the logits alone


def test_image_likelihood_log_probs_are_their_own():
    """The fast path of each likelihood (Bernoulli event over (C, H, W), Gaussians with full, broadcast and
    predicted scales) agrees with log_prob; the others take log_prob itself."""
    torch.manual_seed(8)
    for name in ARRAY_LIKELIHOODS:
        likelihood = LIKELIHOODS.build(name, {}, event_shape=SHAPE)
        params = torch.randn(5, 3, likelihood.params_per_entry, *SHAPE)
        px, x = likelihood(params), _data(name, n=3)
        torch.testing.assert_close(summed_log_prob(px, x), px.log_prob(x), rtol=1e-5, atol=1e-4)


def test_normal_with_a_broadcast_scale_and_the_prior():
    torch.manual_seed(9)
    loc = torch.randn(4, 3, 10)
    scale = (torch.rand(10) + 0.1).expand(4, 3, 10)  # one scale per entry shared by all rows (stride 0)
    p = D.Independent(D.Normal(loc, scale, validate_args=False), 1)
    x = torch.randn(3, 10)
    torch.testing.assert_close(summed_log_prob(p, x), p.log_prob(x))
    prior = _model().prior()
    z = torch.randn(6, 7, 5)
    torch.testing.assert_close(summed_log_prob(prior, z), prior.log_prob(z))
    mixture = _model(prior="mog").prior()  # not Independent: its own log_prob
    assert torch.equal(summed_log_prob(mixture, z), mixture.log_prob(z))


def test_evaluate_uses_the_fast_estimate():
    torch.manual_seed(10)
    model = _model("bernoulli")
    x = _data("bernoulli", n=12)
    torch.manual_seed(12)
    result = vaekit.evaluate(model, x, iw_samples=9, batch_size=12)
    assert result.nll > 0 and result.iw_samples == 9


def test_passes_take_whole_chunks_where_threads_sleep(monkeypatch):
    """On a busy machine (OMP_WAIT_POLICY=PASSIVE) several threads pay a wake-up per operation: fewer, larger ones."""
    model = _model("bernoulli")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert iw_pass_rows(model) == 2 * iw_pass_rows.__globals__["IW_PASS_BYTES"] // (36 * 4)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert iw_pass_rows(model) == iw_pass_rows.__globals__["IW_ROWS_PER_CHUNK"]
