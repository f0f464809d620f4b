"""Closed-form check: a linear-Gaussian VAE (probabilistic PCA) has an exact log-likelihood.

    z ~ N(0, I_d),  x | z ~ N(W z + b, s^2 I)   =>   x ~ N(b, W W^T + s^2 I)
With W's columns orthogonal, the exact posterior p(z|x) = N(M^-1 W^T (x - b), s^2 M^-1), M = W^T W + s^2 I, is
diagonal, so a VAE whose encoder returns it has constant importance weights: its IWAE estimate is exact.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import vaekit
from vaekit.evaluate import importance_sampled_nll
from vaekit.likelihoods import build_likelihood
from vaekit.priors import build_prior

D_X, D_Z, SIGMA = 5, 2, 0.5


class LinearDecoder(nn.Module):
    def __init__(self, W, b):
        super().__init__()
        self.W, self.b = W, b

    def forward(self, z, c=None):
        return (z @ self.W.T + self.b).unsqueeze(1)  # (N, 1, D_x)


class ExactPosteriorEncoder(nn.Module):
    """Returns [mu, softplus^-1(scale)] of the exact PPCA posterior."""

    def __init__(self, W, b):
        super().__init__()
        self.W, self.b = W, b
        self.M = W.T @ W + SIGMA**2 * torch.eye(D_Z)

    def forward(self, x, c=None):
        mu = (x - self.b) @ self.W @ torch.linalg.inv(self.M).T
        scale = (SIGMA**2 / torch.diagonal(self.M)).sqrt().expand_as(mu) - vaekit.models.vae.MIN_POSTERIOR_SCALE
        raw = torch.log(torch.expm1(scale))  # inverse softplus
        return torch.cat([mu, raw], dim=1)


class NoisyEncoder(ExactPosteriorEncoder):
    """A deliberately imperfect posterior: the exact one, shifted and widened."""

    def forward(self, x, c=None):
        mu, raw = super().forward(x).chunk(2, dim=1)
        return torch.cat([mu + 0.3, raw + 0.5], dim=1)


def _ppca(encoder_cls):
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(D_X, D_Z))
    W = q * torch.tensor([2.0, 1.0])  # orthogonal columns with different lengths
    b = torch.randn(D_X)
    likelihood = build_likelihood("gaussian", (D_X,), sigma=SIGMA)
    model = vaekit.VAE(encoder_cls(W, b), LinearDecoder(W, b), likelihood, build_prior("normal", D_Z), D_Z, (D_X,))
    # A dummy parameter: the model reads its device and dtype from its parameters.
    model.register_parameter("_anchor", nn.Parameter(torch.zeros(1)))
    exact = torch.distributions.MultivariateNormal(b, W @ W.T + SIGMA**2 * torch.eye(D_X))
    x = exact.sample((50,))
    return model, x, -exact.log_prob(x)


def test_exact_posterior_gives_the_exact_log_likelihood():
    model, x, exact_nll = _ppca(ExactPosteriorEncoder)
    estimate = importance_sampled_nll(model, x, k=3)
    assert torch.allclose(estimate, exact_nll, atol=1e-3)


def test_importance_sampling_converges_with_an_imperfect_posterior():
    model, x, exact_nll = _ppca(NoisyEncoder)
    elbo = vaekit.ELBO()(model, vaekit.Batch(x)).terms["loss"]
    estimate = importance_sampled_nll(model, x, k=5000)
    assert (elbo - exact_nll).mean() > 0.1  # the ELBO is visibly loose ...
    assert (estimate - exact_nll).abs().mean() < 0.02  # ... the IWAE estimate is tight
    assert math.isfinite(float(estimate.mean()))
