"""The hierarchical VAE (vaekit.models.hierarchical): contracts, densities, bounds and the per-layer diagnostics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

import vaekit
from vaekit.build import build_model, reads
from vaekit.config import ModelConfig, Plugin
from vaekit.evaluate import importance_sampled_nll, posterior_diagnostics
from vaekit.likelihoods import LIKELIHOODS
from vaekit.models.hierarchical import HierarchicalVAE, check_layers
from vaekit.objectives import OBJECTIVES, build_objective
from vaekit.priors import PRIORS

ARRAY_LIKELIHOODS = [n for n in LIKELIHOODS.names() if reads("likelihood", n) is None]
SMALL = {"mlp": {"hidden": [16]}, "conv": {"channels": [4, 8], "dense": 16}}


def _model(prior="normal", likelihood="bernoulli", network="mlp", layers=(3, 2), shape=(1, 8, 8), num_classes=0,
           prior_options=None) -> HierarchicalVAE:
    config = ModelConfig(network=Plugin("network", network, SMALL[network]), latent_dim=sum(layers),
                         kind=Plugin("model kind", "hierarchical", {"layers": list(layers), "hidden": 16}),
                         likelihood=Plugin("likelihood", likelihood), event_shape=list(shape),
                         num_classes=num_classes, prior=Plugin("prior", prior, prior_options or {}))
    model = build_model(config)
    assert isinstance(model, HierarchicalVAE)
    return model


def _data(likelihood, shape=(1, 8, 8), n=5):
    if likelihood == "bernoulli":
        return torch.bernoulli(torch.full((n, *shape), 0.5))
    if likelihood == "discretized-logistic":
        return torch.randint(0, 256, (n, *shape)) / 255.0
    return torch.rand(n, *shape)


def _objective(name):
    return build_objective(name, **{"iwae": {"k": 3}}.get(name, {}))


@pytest.mark.parametrize("prior", PRIORS.names())
@pytest.mark.parametrize("objective", OBJECTIVES.names())
@pytest.mark.parametrize("likelihood", ARRAY_LIKELIHOODS)
def test_every_prior_likelihood_and_objective_trains_every_part(prior, objective, likelihood):
    torch.manual_seed(0)
    model = _model(prior, likelihood)
    x = _data(likelihood)
    loss = _objective(objective)(model, vaekit.Batch(x))
    assert loss.total.dim() == 0 and torch.isfinite(loss.total)
    for value in loss.terms.values():
        assert value.shape == (5,) and torch.isfinite(value).all()
    loss.total.backward()
    # Every network of the hierarchy gets a gradient: encoders of each layer, combiners, p(z_l|z_{l+1}), decoder.
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("network", ["mlp", "conv"])
@pytest.mark.parametrize("num_classes", [0, 4])
def test_networks_and_conditional_models(network, num_classes):
    torch.manual_seed(0)
    model = _model("normal" if num_classes else "vamp", network=network, num_classes=num_classes,
                   layers=(2, 2, 1))
    x = _data("bernoulli")
    y = torch.tensor([0, 1, 2, 3, 0]) if num_classes else None
    out = model(x, y, n_samples=2)
    assert out.z.shape == (2, 5, 5)
    assert out.px.log_prob(x).shape == (2, 5)
    assert model.sample(3, y=1 if num_classes else None).shape == (3, 1, 8, 8)
    assert model.reconstruct(x, y).shape == x.shape


def _manual_log_q(model: HierarchicalVAE, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log q(z|x) of a two-layer model from its networks, written out: N(z2; top) N(z1; combiner(f(x), z2))."""
    z1, z2 = z.split(model.layers, -1)
    loc2, raw2 = model.encoder(x, None).chunk(2, -1)
    f = model.feature_encoders[0](x, None).expand(*z2.shape[:-1], -1)
    loc1, raw1 = model.combiners[0](torch.cat([f, z2], -1)).chunk(2, -1)
    scale = lambda raw: torch.nn.functional.softplus(raw) + 1e-5  # noqa: E731
    return (D.Normal(loc2, scale(raw2)).log_prob(z2).sum(-1) + D.Normal(loc1, scale(raw1)).log_prob(z1).sum(-1))


def test_posterior_log_prob_is_the_product_of_its_layers_and_the_cache_changes_nothing():
    torch.manual_seed(1)
    model = _model()
    x = _data("bernoulli")
    qz = model.encode(x)
    z = qz.rsample((4,))
    cached = qz.log_prob(z)  # from the Gaussians of the draw
    fresh = qz.log_prob(z.clone())  # recomputed through the networks
    assert torch.allclose(cached, fresh, atol=1e-5)
    assert torch.allclose(fresh, _manual_log_q(model, x, z), atol=1e-5)


@pytest.mark.parametrize("prior", PRIORS.names())
def test_prior_and_posterior_are_normalised_densities(prior):
    """E_{z~r}[p(z) / r(z)] = 1 for a broad proposal r: p(z) and q(z|x) integrate to one over the joint code."""
    torch.manual_seed(2)
    model = _model(prior, layers=(1, 1))
    proposal = D.Independent(D.Normal(torch.zeros(2), torch.full((2,), 4.0)), 1)
    z = proposal.sample((200000,))
    with torch.no_grad():
        ratio = (model.prior().log_prob(z) - proposal.log_prob(z)).exp().mean()
        assert abs(float(ratio) - 1.0) < 0.05, float(ratio)
        qz = model.encode(_data("bernoulli", n=1))
        ratio_q = (qz.log_prob(z[:, None, :])[:, 0] - proposal.log_prob(z)).exp().mean()
    assert abs(float(ratio_q) - 1.0) < 0.05, float(ratio_q)


def test_prior_samples_follow_the_prior():
    """Ancestral samples of p(z) have the moments that importance weights of p(z) give."""
    torch.manual_seed(3)
    model = _model("mog", layers=(1, 1))
    with torch.no_grad():
        pz = model.prior()
        samples = pz.sample((100000,))
        proposal = D.Independent(D.Normal(torch.zeros(2), torch.full((2,), 4.0)), 1)
        z = proposal.sample((400000,))
        w = (pz.log_prob(z) - proposal.log_prob(z)).exp()
        weighted_mean = (w[:, None] * z).sum(0) / w.sum()
    assert torch.allclose(samples.mean(0), weighted_mean, atol=0.05)


def test_vampprior_on_top_encodes_pseudo_inputs_with_the_top_layer():
    torch.manual_seed(4)
    model = _model("vamp", prior_options={"components": 7})
    top = model.prior.top
    logits, loc, scale = top.components()
    expected = model.encode_top(top.pseudo_inputs)
    assert loc.shape == (7, model.layers[-1])
    assert torch.allclose(loc, expected.base_dist.loc) and torch.allclose(scale, expected.base_dist.scale)


def test_iwae_bound_is_at_most_the_elbo_based_nll():
    """-log p(x) by importance sampling (k = 200) lies below the negative ELBO, on average over draws."""
    torch.manual_seed(5)
    model = _model("vamp")
    x = _data("bernoulli", n=8)
    with torch.no_grad():
        neg_elbo = torch.stack([vaekit.ELBO()(model, vaekit.Batch(x)).terms["loss"] for _ in range(200)]).mean(0)
        nll = importance_sampled_nll(model, x, k=200)
    assert (nll <= neg_elbo + 1e-3).all(), (nll, neg_elbo)
    assert (neg_elbo - nll).mean() > 0.01  # a real gap: the bound is not the same number


def test_per_layer_kl_adds_up_to_the_kl_of_the_elbo():
    torch.manual_seed(6)
    model = _model("normal")
    x = _data("bernoulli", n=200)
    with torch.no_grad():
        diagnostics = posterior_diagnostics(model, x)
        elbo_kl = torch.stack([vaekit.ELBO()(model, vaekit.Batch(x)).terms["kl"].mean() for _ in range(200)]).mean()
    assert len(diagnostics.kl_per_layer) == 2 and len(diagnostics.active_units_per_layer) == 2
    assert sum(diagnostics.kl_per_layer) == pytest.approx(sum(diagnostics.kl_per_dim), rel=1e-6)
    assert sum(diagnostics.kl_per_layer) == pytest.approx(float(elbo_kl), rel=0.1, abs=0.05)
    assert sum(diagnostics.active_units_per_layer) == diagnostics.active_units


def test_given_noise_gives_the_same_codes():
    torch.manual_seed(7)
    model = _model()
    x = _data("bernoulli", n=3)
    noise = torch.randn(2, 3, 5)
    a = model(x, n_samples=2, noise=noise).z
    b = model(x, n_samples=2, noise=noise.clone()).z
    assert torch.equal(a, b)
    assert not torch.equal(a, model(x, n_samples=2, noise=torch.randn(2, 3, 5)).z)
    # The top layer's code is its mean plus its scale times the top part of the noise.
    top = model.encode(x).top
    assert torch.allclose(a[..., 3:], top.loc + top.scale * noise[..., 3:], atol=1e-6)
    with pytest.raises(vaekit.ConfigError, match="noise must have shape"):
        model(x, n_samples=2, noise=torch.randn(2, 3, 4))


def test_layer_sizes_are_checked():
    assert check_layers([3, 2], 5) == [3, 2]
    with pytest.raises(vaekit.ConfigError, match="set model.latent_dim = 5"):
        check_layers([3, 2], 16)
    with pytest.raises(vaekit.ConfigError, match="2 to 8 layer sizes"):
        check_layers([5], 5)
    with pytest.raises(vaekit.ConfigError, match="must hold sizes >= 1"):
        check_layers([3, 0, 2], 5)


def test_cli_trains_and_evaluates_a_hierarchical_run_with_per_layer_diagnostics(tmp_path, capsys):
    from vaekit.cli import main

    run = tmp_path / "run"
    code = main(["train", "--set", "data.name=digits", "--set", "model.latent_dim=6", "--set",
                 "model.kind.name=hierarchical", "--set", "model.kind.layers=[4, 2]", "--set", "model.kind.hidden=32",
                 "--set", "model.prior.name=vamp",
                 "--set", "model.prior.components=20", "--set", "model.network.hidden=[64]",
                 "--set", "train.epochs=2", "--out", str(run), "--no-progress"])
    assert code == 0
    import json

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records[-1]["valid_kl_per_layer"]) == 2 and len(records[-1]["active_units_per_layer"]) == 2
    loaded = vaekit.load_run(run)
    assert isinstance(loaded.model, HierarchicalVAE) and loaded.model.latent_layers == [4, 2]
    capsys.readouterr()
    assert main(["eval", str(run), "--iw-samples", "20"]) == 0
    out = capsys.readouterr().out
    assert "per layer (bottom first)" in out and "z2: 2 dims" in out
    result = json.loads((run / "eval.json").read_text())
    assert result["latent_layers"] == [4, 2] and math.isfinite(result["nll"])


def test_cli_refuses_layers_that_do_not_add_up(tmp_path, capsys):
    from vaekit.cli import main

    code = main(["train", "--set", "data.name=digits", "--set", "model.kind.name=hierarchical",
                 "--set", "model.kind.layers=[4, 2]",
                 "--out", str(tmp_path / "bad"), "--no-progress"])
    assert code != 0
    err = capsys.readouterr().err
    assert "model.kind.layers [4, 2] sum to 6" in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_a_run_saved_with_the_old_latent_layers_keys_loads_as_the_hierarchical_kind(tmp_path):
    import json

    from vaekit.cli import main

    run = tmp_path / "run"
    assert main(["train", "--set", "data.name=digits", "--set", "model.latent_dim=6", "--set",
                 "model.kind=hierarchical", "--set", "model.kind.layers=[4, 2]", "--set", "model.kind.hidden=24",
                 "--set", "model.network.hidden=[32]", "--set", "train.epochs=1", "--out", str(run),
                 "--no-progress"]) == 0
    new = vaekit.load_run(run).model
    # The config.json of a run saved before model kinds were plug-ins: flat keys in the model section.
    config = json.loads((run / "config.json").read_text())
    kind = config["model"].pop("kind")
    config["model"].update(latent_layers=kind["layers"], layer_hidden=kind["hidden"])
    (run / "config.json").write_text(json.dumps(config))
    old = vaekit.load_run(run).model
    assert isinstance(old, HierarchicalVAE) and old.latent_layers == [4, 2] and old.prior.hidden == 24
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(new.embed(x), old.embed(x))
    assert old.capabilities.layers == (4, 2) and not old.capabilities.entropy_coding


def test_model_kinds_are_listed_with_their_options_and_default_to_two_halves(capsys):
    from vaekit.cli import main

    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    kinds = out[out.index("model kinds:"):]
    assert "hierarchical" in kinds and "layers: a list of int or null = None" in kinds and "vae " in kinds
    model = build_model(ModelConfig(kind="hierarchical", latent_dim=7, event_shape=[1, 8, 8],
                                    network=Plugin("network", "mlp", {"hidden": [16]})))
    assert model.latent_layers == [3, 4]
    assert build_model(ModelConfig(latent_dim=3, event_shape=[4])).capabilities.layers is None
