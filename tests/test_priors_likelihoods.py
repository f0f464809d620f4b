"""Mixture priors (MoG, VampPrior), the discretized logistic likelihood, KL schedules, capacity control,
posterior-collapse diagnostics and the sharpness measure."""

from __future__ import annotations

import copy
import json
import logging
import math

import numpy as np
import pytest
import torch
from conftest import tiny_config
from scipy import stats

import vaekit
from vaekit.build import build_model
from vaekit.config import ModelConfig, Plugin
from vaekit.evaluate import posterior_diagnostics, sharpness
from vaekit.likelihoods import N_BINS, build_likelihood
from vaekit.objectives import ELBO, CapacityELBO, KLSchedule, build_objective, capacity
from vaekit.priors import build_prior


def _model(prior="normal", latent_dim=2, shape=(1, 8, 8), likelihood="bernoulli", num_classes=0, **prior_options):
    config = ModelConfig(network=Plugin("network", "mlp", {"hidden": [16]}), latent_dim=latent_dim,
                         prior=Plugin("prior", prior, prior_options), likelihood=Plugin("likelihood", likelihood),
                         event_shape=list(shape), num_classes=num_classes)
    return build_model(config)


def _grid(lo=-12.0, hi=12.0, n=601):
    t = torch.linspace(lo, hi, n, dtype=torch.float64)
    return t, float(t[1] - t[0])


# --- priors ------------------------------------------------------------------------------------------------


def _spread_mog(latent_dim):
    prior = build_prior("mog", latent_dim, components=4)
    with torch.no_grad():  # distinct weights, means and scales, so that the check is not of a symmetric case
        prior.logits.copy_(torch.tensor([0.0, 1.0, -0.5, 0.3]))
        prior.loc.mul_(2.0)
        prior.log_scale.copy_(torch.randn_like(prior.log_scale) * 0.4)
    return prior.double()


def test_mog_density_integrates_to_one_in_1d_and_2d():
    t, h = _grid()
    p1 = _spread_mog(1)()
    with torch.no_grad():
        assert float(p1.log_prob(t[:, None]).exp().sum() * h) == pytest.approx(1.0, abs=1e-4)
        p2 = _spread_mog(2)()
        z = torch.cartesian_prod(t, t)  # (n^2, 2)
        assert float(p2.log_prob(z).exp().sum() * h * h) == pytest.approx(1.0, abs=1e-3)


def test_mog_marginals_are_the_integrals_of_the_joint():
    prior = _spread_mog(2)
    t, h = _grid()
    joint = prior().log_prob(torch.cartesian_prod(t, t)).exp().view(len(t), len(t))  # [i, j] = p(t_i, t_j)
    marginal = prior.marginal().log_prob(t[:, None].expand(-1, 2)).exp()  # (n, 2)
    assert torch.allclose(joint.sum(1) * h, marginal[:, 0], atol=1e-4)
    assert torch.allclose(joint.sum(0) * h, marginal[:, 1], atol=1e-4)


def test_mog_samples_follow_the_mixture():
    torch.manual_seed(0)
    pz = _spread_mog(2)()
    z = pz.sample((40000,))
    assert torch.allclose(z.mean(0), pz.mean, atol=0.05)
    assert torch.allclose(z.var(0), pz.variance, rtol=0.05)


def test_fast_mixture_log_prob_equals_torch_mixture():
    torch.manual_seed(0)
    from torch import distributions as D

    from vaekit.core.distributions import diagonal_normal
    from vaekit.priors import DiagonalGaussianMixture

    logits, loc, scale = torch.randn(30), torch.randn(30, 5), torch.rand(30, 5) * 0.5 + 0.01  # some narrow
    fast = DiagonalGaussianMixture(D.Categorical(logits=logits), diagonal_normal(loc, scale))
    slow = D.MixtureSameFamily(D.Categorical(logits=logits), diagonal_normal(loc, scale))
    z = torch.cat([loc[:10] + 0.01 * torch.randn(10, 5), 3 * torch.randn(10, 5)]).view(2, 10, 5)
    assert torch.allclose(fast.log_prob(z), slow.log_prob(z), atol=1e-4, rtol=1e-6)


def test_vamp_prior_is_the_mean_of_the_encoder_posteriors_and_normalised():
    torch.manual_seed(0)
    model = _model("vamp", components=7).double()
    prior = model.prior
    assert prior.pseudo_inputs.shape == (7, 1, 8, 8)
    # p(z) = 1/K sum_k q(z | u_k)
    z = torch.randn(5, 2, dtype=torch.float64)
    qu = model.encode(prior.pseudo_inputs)
    expected = torch.logsumexp(qu.log_prob(z[:, None, :]), 1) - math.log(7)
    assert torch.allclose(prior().log_prob(z), expected, atol=1e-10)
    t, h = _grid(-15, 15, 501)
    with torch.no_grad():
        mass = prior().log_prob(torch.cartesian_prod(t, t)).exp().sum() * h * h
    assert float(mass) == pytest.approx(1.0, abs=2e-3)


def test_vamp_pseudo_inputs_get_gradients_and_are_saved_once():
    model = _model("vamp", components=5)
    loss = ELBO()(model, vaekit.Batch(torch.rand(6, 1, 8, 8)))
    loss.total.backward()
    assert model.prior.pseudo_inputs.grad is not None and model.prior.pseudo_inputs.grad.abs().sum() > 0
    keys = list(model.state_dict())
    assert "prior.pseudo_inputs" in keys and not any(k.startswith("prior.encoder") for k in keys)
    assert len(list(model.parameters())) == len({id(p) for p in model.parameters()})
    twin = copy.deepcopy(model)  # the copy's prior uses the copy's encoder
    with torch.no_grad():
        for p in twin.encoder.parameters():
            p.add_(1.0)
    z = torch.randn(3, 2)
    assert not torch.allclose(twin.prior().log_prob(z), model.prior().log_prob(z))


def test_vamp_needs_the_data_shape_and_a_pseudo_input_per_class():
    with pytest.raises(vaekit.ConfigError, match="at least one pseudo-input per class"):
        _model("vamp", num_classes=3, components=2)
    with pytest.raises(vaekit.ConfigError, match="data shape"):
        build_prior("vamp", 2)


def test_conditional_vamp_mixes_the_pseudo_inputs_of_each_class():
    """p(z|y) = mean over the pseudo-inputs u_k of class y of q(z | u_k, y), written out; samples of a class come
    from its pseudo-inputs' posteriors."""
    torch.manual_seed(0)
    model = _model("vamp", num_classes=3, components=7)
    prior, d = model.prior, model.latent_dim
    x = torch.rand(30, 1, 8, 8)
    y = torch.arange(30) % 3
    prior.init_from_data(x, torch.Generator().manual_seed(0), y)
    for k, u in enumerate(prior.pseudo_inputs):  # each pseudo-input is an example of its own class k mod 3
        matches = [i for i in range(30) if torch.equal(u, x[i])]
        assert matches and all(int(y[i]) == k % 3 for i in matches)
    labels = torch.tensor([0, 1, 2, 1])
    pz = model.prior_for(labels, 4)
    z = torch.randn(5, 4, d)

    def class_density(c: int, z: torch.Tensor) -> torch.Tensor:  # z (N, D) -> log p(z | y = c), (N,)
        ks = [k for k in range(7) if k % 3 == c]
        q = model.encode(prior.pseudo_inputs[ks], torch.full((len(ks),), c))
        return torch.logsumexp(q.log_prob(z[:, None, :].expand(-1, len(ks), d)), -1) - math.log(len(ks))

    with torch.no_grad():
        expected = torch.stack([class_density(c, z[:, b]) for b, c in enumerate(labels.tolist())], -1)
        assert torch.allclose(pz.log_prob(z), expected, atol=1e-4)
        draws = model.prior_codes(4000, torch.ones(4000, dtype=torch.long))  # class 1
        assert draws.shape == (4000, d)
        # Draws of class 1 are likelier under p(z | y=1) than under the other classes' priors.
        own = class_density(1, draws).mean()
        assert own > class_density(0, draws).mean() and own > class_density(2, draws).mean()


def test_vamp_init_from_data_picks_training_examples():
    model = _model("vamp", components=4)
    x = torch.rand(10, 1, 8, 8)
    model.prior.init_from_data(x, torch.Generator().manual_seed(0))
    for u in model.prior.pseudo_inputs:
        assert any(torch.equal(u, row) for row in x)
    noise = _model("vamp", components=4, init="random")
    before = noise.prior.pseudo_inputs.clone()
    noise.prior.init_from_data(x)
    assert torch.equal(before, noise.prior.pseudo_inputs)


def test_vamp_run_saves_loads_and_samples(tmp_path, digits):
    config = tiny_config(epochs=1)
    config.model.prior = Plugin("prior", "vamp", {"components": 16})
    result = vaekit.fit(config, tmp_path / "run", data=digits)
    loaded = vaekit.load(tmp_path / "run")
    z = torch.randn(4, 4)
    assert torch.allclose(result.model.prior().log_prob(z), loaded.prior().log_prob(z))
    assert loaded.sample(3).shape == (3, 1, 8, 8)


def test_marginal_kl_per_dim_matches_the_closed_form():
    torch.manual_seed(0)
    qz = vaekit.core.distributions.diagonal_normal(torch.randn(3, 2), torch.rand(3, 2) + 0.3)
    normal = build_prior("normal", 2)
    assert torch.equal(normal.marginal_kl_per_dim(qz), normal.kl_per_dim(qz))
    # A one-component MoG at N(0, I) has the standard normal's marginals: the MC estimate converges to it.
    mog = build_prior("mog", 2, components=1)
    with torch.no_grad():
        mog.loc.zero_()
    many = vaekit.core.distributions.diagonal_normal(qz.mean.repeat(20000, 1), qz.base_dist.scale.repeat(20000, 1))
    estimate = mog.marginal_kl_per_dim(many, torch.Generator().manual_seed(0)).view(20000, 3, 2).mean(0)
    assert torch.allclose(estimate, normal.kl_per_dim(qz), atol=0.03)


def test_free_bits_with_a_mixture_prior_floor_the_total_kl():
    model = _model("mog", latent_dim=3)
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(0)
    plain = ELBO()(model, vaekit.Batch(x))
    torch.manual_seed(0)
    floored = ELBO(free_bits=50.0)(model, vaekit.Batch(x))
    assert torch.allclose(floored.total, plain.terms["recon"].mean() + 3 * 50.0, atol=1e-3)


# --- discretized logistic ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_mix", [1, 5])
def test_discretized_logistic_sums_to_one_over_the_256_bins(n_mix):
    torch.manual_seed(0)
    likelihood = build_likelihood("discretized-logistic", (3, 2, 2), n_mix=n_mix)
    params = torch.randn(4, likelihood.params_per_entry, 3, 2, 2, dtype=torch.float64) * 3  # wide and narrow
    px = likelihood(params)
    levels = (torch.arange(N_BINS, dtype=torch.float64) / (N_BINS - 1)).view(-1, 1, 1, 1, 1)
    mass = px.base_dist.log_prob(levels.expand(N_BINS, 4, 3, 2, 2)).exp().sum(0)  # (4, 3, 2, 2)
    assert torch.allclose(mass, torch.ones_like(mass), atol=1e-9)
    mean = px.mean
    assert mean.shape == (4, 3, 2, 2) and mean.min() >= 0 and mean.max() <= 1


def test_single_discretized_logistic_matches_scipy():
    loc, log_scale = torch.tensor([[0.3], [-0.9]]), torch.tensor([[-3.0], [-1.0]])  # (2 entries, 1 component)
    px = build_likelihood("discretized-logistic", (2,), n_mix=1)(torch.stack([loc[:, 0], log_scale[:, 0]])[None])
    for k in (0, 1, 100, 200, 254, 255):
        x = torch.full((1, 2), k / 255.0)
        got = px.base_dist.log_prob(x)[0].exp().double()
        centre = 2 * k / 255 - 1
        upper = np.where(k == 255, np.inf, centre + 1 / 255)
        lower = np.where(k == 0, -np.inf, centre - 1 / 255)
        s = np.exp(log_scale[:, 0].numpy())
        want = stats.logistic.cdf(upper, loc[:, 0].numpy(), s) - stats.logistic.cdf(lower, loc[:, 0].numpy(), s)
        assert np.allclose(got.numpy(), want, rtol=1e-4, atol=1e-12), (k, got, want)


def test_discretized_logistic_mode_is_the_most_probable_level_of_one_logistic():
    params = torch.tensor([[-0.37, 0.52, 0.9], [-4.0, -3.0, -5.0]]).view(1, 2, 3)  # loc, log_scale per entry
    px = build_likelihood("discretized-logistic", (3,), n_mix=1)(params)
    levels = (torch.arange(N_BINS) / 255.0).view(-1, 1, 1)
    most_probable = px.base_dist.log_prob(levels).argmax(0) / 255.0  # (1, 3)
    assert torch.allclose(px.mode, most_probable)


def test_discretized_logistic_samples_follow_its_probabilities():
    torch.manual_seed(0)
    likelihood = build_likelihood("discretized-logistic", (1,), n_mix=3)
    params = torch.tensor([[1.0, 0.0, -1.0, -0.5, 0.2, 0.9, -2.5, -2.0, -3.0]]).view(1, 9, 1)
    px = likelihood(params)
    draws = px.sample((50000,))  # (S, 1, 1)
    assert torch.equal(draws, (draws * 255).round() / 255)  # on the 8-bit grid
    empirical = torch.bincount((draws.flatten() * 255).round().long(), minlength=N_BINS).double() / draws.numel()
    levels = torch.arange(N_BINS).view(-1, 1, 1) / 255.0
    exact = px.base_dist.log_prob(levels).exp().flatten().double()
    assert 0.5 * (empirical - exact).abs().sum() < 0.03  # total variation


# --- objectives ------------------------------------------------------------------------------------------


def test_kl_schedules_at_given_steps():
    assert [KLSchedule("constant")(s) for s in (0, 7, 1000)] == [1.0, 1.0, 1.0]
    assert [KLSchedule("linear", warmup_steps=10)(s) for s in (0, 5, 10, 50)] == [0.0, 0.5, 1.0, 1.0]
    # T = 100 steps, M = 4 cycles of 25 steps, ramp over the first R = 0.4 of each (10 steps).
    cyclical = KLSchedule("cyclical", total_steps=100, cycles=4, ratio=0.4)
    cyc = [cyclical(s) for s in (0, 5, 10, 24, 25, 30, 60, 99)]
    assert cyc == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0])
    elbo = ELBO(beta=2.0, kl_schedule="cyclical", total_steps=100, cycles=4, cycle_ratio=0.4)
    assert elbo.weight(30) == pytest.approx(1.0) and elbo.weight(50) == 0.0
    assert not elbo.warmed_up(9) and elbo.warmed_up(10)


def test_kl_schedule_options_are_checked():
    with pytest.raises(vaekit.ConfigError, match="kl_schedule"):
        ELBO(kl_schedule="cosine")
    with pytest.raises(vaekit.ConfigError, match="warm-up applies to kl_schedule 'linear' or 'logistic' only"):
        ELBO(kl_schedule="cyclical", warmup_steps=10, total_steps=100)
    with pytest.raises(vaekit.ConfigError, match="cyclical"):
        ELBO(kl_schedule="cyclical")


def test_capacity_objective_penalises_the_distance_to_the_target():
    assert [capacity(s, 25.0, 100) for s in (0, 50, 100, 400)] == [0.0, 12.5, 25.0, 25.0]
    objective = build_objective("capacity", steps_per_epoch=50, epochs=3, gamma=10.0, capacity_max=20.0,
                                capacity_epochs=2.0)  # C reaches 20 nats after 2 epochs of 50 steps
    model = _model(latent_dim=3)
    x = torch.rand(6, 1, 8, 8)
    for step in (0, 40, 100):
        torch.manual_seed(1)
        loss = objective(model, vaekit.Batch(x), step)
        recon, kl = loss.terms["recon"].mean(), loss.terms["kl"].mean()
        assert torch.allclose(loss.total, recon + 10.0 * (kl - 0.2 * min(step, 100)).abs(), atol=1e-4)
    assert not objective.warmed_up(99) and objective.warmed_up(100)


def test_capacity_training_steers_the_kl_to_the_target(digits):
    kls = {}
    for target in (1.0, 6.0):
        config = tiny_config(epochs=4, lr=3e-3)
        config.objective.name, config.objective.gamma = "capacity", 20.0
        config.objective.capacity_max, config.objective.capacity_epochs = target, 0.0
        kls[target] = vaekit.fit(config, data=digits).history[-1]["valid_kl"]
    assert abs(kls[1.0] - 1.0) < 0.5 and abs(kls[6.0] - 6.0) < 1.5, kls


# --- diagnostics -------------------------------------------------------------------------------------------


def test_metrics_hold_per_dimension_kl_and_active_units(tmp_path, digits):
    vaekit.fit(tiny_config(epochs=2), tmp_path / "run", data=digits)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        assert len(record["valid_kl_per_dim"]) == 4 and 0 <= record["active_units"] <= 4
        # With the standard normal prior the per-dimension KLs add up to the validation KL.
        assert sum(record["valid_kl_per_dim"]) == pytest.approx(record["valid_kl"], rel=1e-3, abs=1e-3)


def test_collapse_warning_when_most_units_are_inactive(digits, caplog):
    config = tiny_config(epochs=2)
    config.objective.beta = 200.0  # the KL term drowns the reconstruction: every unit collapses
    with caplog.at_level(logging.WARNING, logger="vaekit.training.train"):
        result = vaekit.fit(config, data=digits)
    assert result.history[-1]["active_units"] < 2
    assert any("posterior collapse" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vaekit.training.train"):
        vaekit.fit(tiny_config(epochs=3, lr=3e-3), data=digits)
    assert not any("posterior collapse" in r.getMessage() for r in caplog.records)


def test_posterior_diagnostics_for_a_mixture_prior(digits):
    model = _model("mog", latent_dim=3)
    diag = posterior_diagnostics(model, digits.split("valid").x)
    again = posterior_diagnostics(model, digits.split("valid").x)
    assert len(diag.kl_per_dim) == 3 and diag.kl_per_dim == again.kl_per_dim  # seeded, repeatable
    assert all(math.isfinite(v) for v in diag.kl_per_dim)


# --- sharpness ---------------------------------------------------------------------------------------------


def test_sharpness_falls_when_images_are_blurred():
    torch.manual_seed(0)
    images = (torch.rand(5, 1, 16, 16) > 0.5).float()
    blurred = torch.nn.functional.avg_pool2d(images, 3, stride=1, padding=1)
    assert (sharpness(blurred) < sharpness(images)).all()
    assert torch.equal(sharpness(torch.full((2, 3, 4, 4), 0.7)), torch.zeros(2))
    # A unit step along x has gradient magnitude 1 on the one column that crosses it.
    step = torch.zeros(1, 1, 3, 4)
    step[..., 2:] = 1.0
    assert float(sharpness(step)) == pytest.approx(1 / 3)


def test_evaluate_reports_sharpness_for_images_only(digits):
    model = _model(latent_dim=2)
    x = digits.split("test").x[:20]
    result = vaekit.evaluate(model, x, iw_samples=2)
    assert result.sharpness_ratio == pytest.approx(result.sharpness_recon / result.sharpness_data)
    assert 0 < result.sharpness_data and result.sharpness_ratio > 0
    flat = _model(latent_dim=2, shape=(6,), likelihood="gaussian")
    assert vaekit.evaluate(flat, torch.randn(8, 6), iw_samples=2).sharpness_ratio is None
