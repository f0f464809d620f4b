"""Contract tests over every registered likelihood, prior, network and objective."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

import vaekit
from vaekit.build import build_model
from vaekit.config import ModelConfig, Plugin
from vaekit.likelihoods import LIKELIHOODS, build_likelihood
from vaekit.nets import NETWORKS, build_networks
from vaekit.objectives import OBJECTIVES, build_objective
from vaekit.priors import PRIORS, build_prior

EVENT_SHAPES = [(6,), (1, 8, 8), (3, 7, 5)]
# Entries for sentences of token ids have contracts of their own (the end of this file).
from vaekit.build import reads  # noqa: E402

ARRAY_LIKELIHOODS = [n for n in LIKELIHOODS.names() if reads("likelihood", n) is None]
ARRAY_NETWORKS = [n for n in NETWORKS.names() if reads("network", n) is None]


def _data_for(name: str, shape) -> torch.Tensor:
    if name == "bernoulli":
        return torch.bernoulli(torch.full((4, *shape), 0.5))
    if name == "discretized-logistic":
        return torch.randint(0, 256, (4, *shape)) / 255.0  # 8-bit grey levels
    return torch.randn(4, *shape)


@pytest.mark.parametrize("name", ARRAY_LIKELIHOODS)
@pytest.mark.parametrize("shape", EVENT_SHAPES)
def test_likelihood_shapes_gradients_and_masks(name, shape):
    likelihood = build_likelihood(name, shape)
    params = torch.randn(3, 4, likelihood.params_per_entry, *shape, requires_grad=True)  # (S, B, P, *event)
    px = likelihood(params)
    x = _data_for(name, shape)
    log_p = px.log_prob(x)
    assert log_p.shape == (3, 4)
    assert torch.isfinite(log_p).all()
    log_p.sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0
    assert px.mean.shape == (3, 4, *shape)
    # A mask of zeros removes every contribution; a full mask changes nothing.
    from vaekit.core.distributions import Masked

    zeros = Masked(px, torch.zeros_like(x)).log_prob(x)
    ones = Masked(px, torch.ones_like(x)).log_prob(x)
    assert torch.equal(zeros, torch.zeros_like(zeros))
    assert torch.allclose(ones, log_p)


def test_bernoulli_is_binary_cross_entropy():
    logits = torch.randn(5, 1, 4)
    x = torch.rand(5, 4)
    px = build_likelihood("bernoulli", (4,))(logits)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], x, reduction="none").sum(1)
    assert torch.allclose(-px.log_prob(x), bce)


def test_fixed_gaussian_is_squared_error_up_to_constants():
    sigma = 0.5
    mu = torch.randn(5, 1, 3)
    x = torch.randn(5, 3)
    px = build_likelihood("gaussian", (3,), sigma=sigma)(mu)
    expected = ((x - mu[:, 0]) ** 2).sum(1) / (2 * sigma**2) + 3 * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
    assert torch.allclose(-px.log_prob(x), expected, atol=1e-5)


@pytest.mark.parametrize("name", PRIORS.names())
def test_prior_sampling_log_prob_and_kl(name):
    torch.manual_seed(0)
    prior = _model(prior=name).prior  # through a model: the VampPrior needs its encoder
    pz = prior()
    z = pz.sample((5, 2))
    assert z.shape == (5, 2, 3)
    assert pz.log_prob(z).shape == (5, 2)
    qz = vaekit.core.distributions.diagonal_normal(torch.randn(2, 3), torch.rand(2, 3) + 0.3)
    samples = qz.sample((40000,))  # (S, B, D)
    monte_carlo = (qz.log_prob(samples) - pz.log_prob(samples)).mean(0)  # (B,)
    kl = prior.kl(qz, samples)
    kl = kl.mean(0) if kl.dim() == 2 else kl
    assert torch.allclose(kl, monte_carlo, atol=0.05), (kl, monte_carlo)


def test_standard_normal_kl_per_dim_sums_to_kl():
    prior = build_prior("normal", 4)
    qz = vaekit.core.distributions.diagonal_normal(torch.randn(3, 4), torch.rand(3, 4) + 0.1)
    assert torch.allclose(prior.kl_per_dim(qz).sum(1), D.kl_divergence(qz, prior()), atol=1e-5)


# Small options for every network, so that the contract tests run in seconds.
SMALL_NETWORK = {"mlp": {"hidden": [16]}, "conv": {"channels": [4, 8], "dense": 16},
                 "rnn": {"embed_dim": 8, "hidden": 8}}


def test_every_network_has_small_test_options():
    assert set(SMALL_NETWORK) == set(NETWORKS.names())


@pytest.mark.parametrize("name", ARRAY_NETWORKS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 13, 9), (1, 28, 28)])
@pytest.mark.parametrize("cond_dim", [0, 5])
def test_network_shapes(name, shape, cond_dim):
    nets = build_networks(name, shape, latent_dim=3, params_per_entry=2, cond_dim=cond_dim, **SMALL_NETWORK[name])
    c = torch.randn(2, cond_dim) if cond_dim else None
    assert nets.encoder(torch.rand(2, *shape), c).shape == (2, 6)
    assert nets.decoder(torch.randn(2, 3), c).shape == (2, 2, *shape)


def test_mlp_handles_flat_data():
    nets = build_networks("mlp", (7,), latent_dim=2, hidden=[8])
    assert nets.decoder(torch.randn(3, 2)).shape == (3, 1, 7)


def test_conv_rejects_flat_data():
    with pytest.raises(vaekit.ConfigError, match="needs images"):
        build_networks("conv", (7,), latent_dim=2)


def _model(likelihood="bernoulli", network="mlp", shape=(1, 8, 8), num_classes=0, prior="normal"):
    config = ModelConfig(network=Plugin("network", network, SMALL_NETWORK[network]), latent_dim=3,
                         likelihood=Plugin("likelihood", likelihood), event_shape=list(shape), num_classes=num_classes,
                         prior=Plugin("prior", prior))
    return build_model(config)


def _objective(name):
    """The objective `name` with a few samples where it takes a sample count."""
    return build_objective(name, **{"iwae": {"k": 3}}.get(name, {}))


@pytest.mark.parametrize("name", OBJECTIVES.names())
@pytest.mark.parametrize("likelihood", ARRAY_LIKELIHOODS)
def test_objective_terms_and_gradients(name, likelihood):
    model = _model(likelihood)
    x = torch.rand(5, 1, 8, 8)
    loss = _objective(name)(model, vaekit.Batch(x))
    assert loss.total.dim() == 0 and torch.isfinite(loss.total)
    for value in loss.terms.values():
        assert value.shape == (5,)
    loss.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_objective_with_mask_ignores_missing_entries(name):
    """Changing the values of masked-out entries must not change the loss (at a fixed random draw)."""
    model = _model("gaussian", shape=(6,))
    x = torch.randn(4, 6)
    mask = torch.ones_like(x)
    mask[:, :2] = 0
    objective = _objective(name)
    torch.manual_seed(1)
    a = objective(model, vaekit.Batch(x, mask=mask)).terms["recon"]
    x2 = x.clone()
    x2[:, :2] = 100.0
    torch.manual_seed(1)
    b = objective(model, vaekit.Batch(x2, mask=mask)).terms["recon"]
    assert torch.allclose(a, b)


def test_iwae_with_one_sample_equals_the_single_sample_elbo():
    model = _model()
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(3)
    iwae = vaekit.IWAE(k=1)(model, vaekit.Batch(x)).terms["loss"]
    torch.manual_seed(3)
    out = model(x)
    single_sample_elbo = out.px.log_prob(x)[0] + out.pz.log_prob(out.z)[0] - out.qz.log_prob(out.z)[0]
    assert torch.allclose(iwae, -single_sample_elbo, atol=1e-4)
    # ... and in expectation it equals the analytic-KL ELBO.
    many = torch.stack([vaekit.IWAE(k=1)(model, vaekit.Batch(x)).terms["loss"] for _ in range(400)]).mean(0)
    elbo = torch.stack([vaekit.ELBO()(model, vaekit.Batch(x)).terms["loss"] for _ in range(400)]).mean(0)
    assert torch.allclose(many, elbo, atol=0.5)


def test_iwae_bound_is_at_least_the_elbo_on_average():
    model = _model()
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        elbo = torch.stack([vaekit.ELBO()(model, vaekit.Batch(x)).terms["loss"] for _ in range(50)]).mean()
        iwae = torch.stack([vaekit.IWAE(k=50)(model, vaekit.Batch(x)).terms["loss"] for _ in range(5)]).mean()
    assert iwae <= elbo  # losses: the IWAE bound on log p(x) is higher, so its negative is lower


def test_kl_warmup_and_beta():
    elbo = vaekit.ELBO(beta=2.0, warmup_steps=10)
    assert [elbo.weight(s) for s in (0, 5, 50)] == [0.0, 1.0, 2.0]
    assert vaekit.ELBO(beta=0.5).weight(3) == 0.5
    # In a config the warm-up is in epochs: 2 epochs of 5 steps reach the full weight at step 10.
    configured = build_objective("elbo", steps_per_epoch=5, epochs=4, beta=2.0, warmup_epochs=2.0)
    assert [configured.weight(s) for s in (0, 5, 10)] == [0.0, 1.0, 2.0]


def test_free_bits_hold_each_dimension_at_the_floor():
    model = _model()
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(0)
    plain = vaekit.ELBO()(model, vaekit.Batch(x))
    torch.manual_seed(0)
    floored = vaekit.ELBO(free_bits=5.0)(model, vaekit.Batch(x))
    # An untrained model's per-dimension KL is well below 5 nats, so the floored objective counts 3 * 5 nats.
    expected = plain.terms["recon"].mean() + 3 * 5.0
    assert torch.allclose(floored.total, expected, atol=1e-4)
    # The logged KL is the true KL, not the floored one.
    assert torch.allclose(floored.terms["kl"], plain.terms["kl"])


def test_conditional_model_requires_and_checks_labels():
    model = _model(num_classes=3)
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(vaekit.ConfigError, match="conditional"):
        model(x)
    with pytest.raises(vaekit.ConfigError, match="outside the trained classes"):
        model.sample(2, y=7)
    assert model.sample(2, y=1).shape == (2, 1, 8, 8)
    out = model(x, torch.tensor([0, 1, 2, 0]), n_samples=2)
    assert out.px.log_prob(x).shape == (2, 4)


def test_gated_activation_is_an_mlp_option_only():
    assert build_networks("mlp", (7,), latent_dim=2, hidden=[8], activation="gated").encoder is not None
    with pytest.raises(vaekit.ConfigError, match="unknown activation 'gated'"):
        build_networks("conv", (1, 8, 8), latent_dim=2, activation="gated")
    with pytest.raises(vaekit.ConfigError, match="hidden must hold sizes >= 1"):
        build_networks("mlp", (7,), latent_dim=2, hidden=[8, 0])


@pytest.mark.parametrize("kind, name, option", [
    ("network", "mlp", "channels"), ("likelihood", "bernoulli", "sigma"), ("prior", "normal", "components"),
    ("objective", "elbo", "k")])
def test_every_registry_refuses_an_option_its_entry_does_not_take(kind, name, option):
    from vaekit.core.registry import REGISTRIES

    registry = REGISTRIES[kind]
    with pytest.raises(vaekit.ConfigError, match=f"takes no option {option!r}; its options: "):
        registry.check(name, {option: 1})


# --- text entries: the rnn network and the sentence likelihood --------------------------------------------------


def _text_model(cell="gru", vocab_size=12, width=9, **likelihood_options):
    config = ModelConfig(network=Plugin("network", "rnn", {"embed_dim": 8, "hidden": 8, "cell": cell}), latent_dim=3,
                         likelihood=Plugin("likelihood", "sentence", {"embed_dim": 8, "hidden": 16, "cell": cell,
                                                                      **likelihood_options}),
                         event_shape=[width], vocab_size=vocab_size)
    return build_model(config)


def _sentences(n=5, vocab_size=12, width=9, seed=0):
    """Random sentences of token ids: <bos> words <eos> <pad>..., of random lengths."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, width, dtype=torch.long)
    for i in range(n):
        k = int(torch.randint(1, width - 1, (1,), generator=g))
        x[i, 0], x[i, 1 : k + 1], x[i, k + 1] = 1, torch.randint(4, vocab_size, (k,), generator=g), 2
    return x


@pytest.mark.parametrize("name", OBJECTIVES.names())
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_every_objective_trains_a_text_model(name, cell):
    model = _text_model(cell)
    loss = _objective(name)(model, vaekit.Batch(_sentences()))
    assert loss.total.dim() == 0 and torch.isfinite(loss.total)
    assert all(value.shape == (5,) for value in loss.terms.values())
    loss.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("cutoffs", [[], [6]])
def test_sentence_log_prob_is_a_distribution_over_every_next_word(cutoffs):
    # full and adaptive softmax alike: each step's probabilities over the vocabulary sum to one
    model = _text_model(cutoffs=cutoffs).eval()
    decoder = model.likelihood.decoder
    logp, _ = decoder.step(torch.randn(4, 3), torch.tensor([1, 5, 6, 7]), None)
    assert logp.shape == (4, 12)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(4), atol=1e-5)


def test_text_entries_refuse_other_data_and_other_entries_refuse_text():
    with pytest.raises(vaekit.ConfigError, match="reads sentences"):
        build_networks("rnn", (1, 8, 8), latent_dim=2)
    with pytest.raises(vaekit.ConfigError, match="scores sentences"):
        LIKELIHOODS.build("sentence", {}, event_shape=(6,), latent_dim=2, vocab_size=0)
    text = vaekit.load_data("toy-sentences")
    for override, message in (("model.network=mlp", "does not read sentences"),
                              ("model.likelihood=bernoulli", "does not read sentences"),
                              ("model.prior=vamp", "lives in data space")):
        config = vaekit.build_run_config(overrides=[override])
        with pytest.raises(vaekit.ConfigError, match=message):
            vaekit.resolve_model_config(config.model, text)
    config = vaekit.build_run_config(overrides=["model.network=rnn"])
    with pytest.raises(vaekit.ConfigError, match="reads sentences, and data set 'digits' is not text"):
        vaekit.resolve_model_config(config.model, vaekit.load_data("digits"))
