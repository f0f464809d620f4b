"""Posterior plug-ins (vaekit.posteriors): the inverse autoregressive flow against autograd and integration."""

from __future__ import annotations

import json

import pytest
import torch
from torch import distributions as D

import vaekit
from vaekit.build import build_model
from vaekit.config import ModelConfig, Plugin
from vaekit.objectives import OBJECTIVES, build_objective
from vaekit.posteriors import POSTERIORS, FlowPosterior, IAFPosterior, build_posterior


def _model(prior="normal", posterior="iaf", latent_dim=3, **options) -> vaekit.VAE:
    config = ModelConfig(network=Plugin("network", "mlp", {"hidden": [16]}), latent_dim=latent_dim,
                         likelihood=Plugin("likelihood", "bernoulli"), event_shape=[1, 8, 8],
                         prior=Plugin("prior", prior), posterior=Plugin("posterior", posterior,
                                                                        options or {"steps": 3, "hidden": 16}))
    return build_model(config)


def _randomise(flow: IAFPosterior, std: float = 0.7) -> None:
    """Weights far from the near-identity start, so that the flow really bends."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0, std)


def test_log_determinant_equals_autograd_jacobian():
    flow = build_posterior("iaf", 3, steps=3, hidden=8)
    _randomise(flow)
    h = torch.randn(6)  # the context: the encoder's output (2D)
    for _ in range(3):
        z0 = torch.randn(3)
        jacobian = torch.autograd.functional.jacobian(lambda z: flow.transform(z[None], h[None])[0][0], z0)
        _, log_det = flow.transform(z0[None], h[None])
        sign, expected = torch.linalg.slogdet(jacobian)
        assert sign > 0
        assert torch.allclose(log_det[0], expected, atol=1e-4), (log_det, expected)
        # The flow mixes the dimensions: its Jacobian is not triangular after several reversed steps.
        assert jacobian.triu(1).abs().sum() > 1e-3 and jacobian.tril(-1).abs().sum() > 1e-3


def test_each_step_is_autoregressive():
    flow = build_posterior("iaf", 4, steps=1, hidden=12)
    _randomise(flow)
    h = torch.randn(1, 8)
    jacobian = torch.autograd.functional.jacobian(lambda z: flow.transform(z[None], h)[0][0], torch.randn(4))
    assert torch.equal(jacobian.triu(1), torch.zeros(4, 4))  # output d reads inputs < d (and itself) only


def test_flow_density_is_normalised_and_inverse_matches_the_draw():
    torch.manual_seed(1)
    model = _model(latent_dim=2, steps=2, hidden=16)
    _randomise(model.posterior, 0.3)  # bent, with gates that stay away from 0 over the proposal's range
    model = model.double()  # the inversion divides by the gates: float64 shows it is exact
    x = torch.bernoulli(torch.full((1, 1, 8, 8), 0.5)).double()
    with torch.no_grad():
        qz = model.encode(x)
        assert isinstance(qz, FlowPosterior)
        z = qz.sample((5,))
        assert torch.allclose(qz.log_prob(z), qz.log_prob(z.clone()), atol=1e-8)  # cached vs inverted
        proposal = D.Independent(D.Normal(qz.mean[0], torch.full((2,), 1.5, dtype=torch.float64)), 1)
        draws = proposal.sample((100000,))
        ratio = (qz.log_prob(draws[:, None, :])[:, 0] - proposal.log_prob(draws)).exp().mean()
    assert abs(float(ratio) - 1.0) < 0.05, float(ratio)


@pytest.mark.parametrize("prior", ["normal", "mog"])
@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_objectives_train_the_flow(prior, objective):
    torch.manual_seed(2)
    model = _model(prior)
    x = torch.bernoulli(torch.full((5, 1, 8, 8), 0.5))
    loss = build_objective(objective, **{"iwae": {"k": 3}}.get(objective, {}))(model, vaekit.Batch(x))
    assert torch.isfinite(loss.total)
    loss.total.backward()
    for name, parameter in model.posterior.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_normal_prior_kl_of_a_flow_is_the_monte_carlo_estimate():
    torch.manual_seed(3)
    model = _model()
    _randomise(model.posterior)
    x = torch.bernoulli(torch.full((4, 1, 8, 8), 0.5))
    with torch.no_grad():
        out = model(x, n_samples=7)
        kl = model.prior.kl(out.qz, out.z, out.pz)
        assert kl.shape == (7, 4)
        assert torch.allclose(kl, out.qz.log_prob(out.z) - out.pz.log_prob(out.z))


def test_flow_options_and_combinations_are_checked():
    assert "iaf" in POSTERIORS.names() and "gaussian" in POSTERIORS.names()
    with pytest.raises(vaekit.ConfigError, match="steps must be 1 to 64"):
        build_posterior("iaf", 2, steps=0)
    with pytest.raises(vaekit.ConfigError, match="needs model.posterior 'gaussian'"):
        _model("vamp")


def test_cli_trains_a_flow_posterior_and_reloads_it(tmp_path, capsys):
    from vaekit.cli import main

    run = tmp_path / "run"
    assert main(["train", "--set", "data.name=digits", "--set", "model.latent_dim=4", "--set",
                 "model.posterior.name=iaf", "--set", "model.posterior.steps=2", "--set", "model.network.hidden=[64]",
                 "--set", "train.epochs=2", "--out", str(run), "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["posterior"] == {"name": "iaf", "steps": 2, "hidden": 128}
    trained = vaekit.load_run(run).model
    assert isinstance(trained.posterior, IAFPosterior)
    x = torch.rand(3, *trained.event_shape)
    noise = torch.randn(1, 3, 4)
    again = vaekit.load_run(run).model
    assert torch.equal(trained(x, noise=noise).z, again(x, noise=noise).z)
    capsys.readouterr()
    assert main(["eval", str(run), "--iw-samples", "10"]) == 0
    assert "NLL" in capsys.readouterr().out
    # Refused with one line: a flow with the VampPrior, a flow on a hierarchical model.
    for extra in (["--set", "model.prior.name=vamp"], ["--set", "model.latent_dim=6", "--set",
                                                       "model.kind=hierarchical"]):
        assert main(["train", "--set", "data.name=digits", "--set", "model.posterior.name=iaf", *extra,
                     "--out", str(tmp_path / "bad"), "--no-progress"]) != 0
        err = capsys.readouterr().err
        assert "model.posterior" in err and "Traceback" not in err
