"""Priors p(z) and the KL term KL(q(z|x) || p(z)).

A prior is an `nn.Module` whose `forward()` returns a distribution over z with event shape (D,). Its `kl`
uses the closed form when torch.distributions knows one, otherwise the single-sample Monte Carlo estimate
log q(z|x) - log p(z) at the z the model drew (unbiased; its expectation is the KL).

    normal  N(0, I)                                                 (Kingma & Welling 2014)
    mog     p(z) = sum_k pi_k N(z; mu_k, diag sigma_k^2), all learned (a learnable mixture of Gaussians)
    vamp    p(z) = 1/K sum_k q(z | u_k), K learned pseudo-inputs u_k  (VampPrior, Tomczak & Welling 2018)

The two mixtures make the prior multi-modal, so that it can follow the aggregate posterior instead of pulling
every q(z|x) towards one Gaussian blob. Their KL is always the Monte Carlo estimate.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import distributions as D
from torch import nn

from .core.distributions import diagonal_normal
from .core.registry import Registry
from .errors import ConfigError
from .posteriors import GaussianPosterior, is_diagonal_normal

# Context: the latent size and the data shape (for priors that live in data space); the rest are options.
PRIORS: Registry[Callable[..., "Prior"]] = Registry("prior", context=("latent_dim", "event_shape"))

# Generator seed of the Monte Carlo per-dimension KL diagnostics (fixed, so that they never touch the global RNG).
DIAGNOSTIC_SEED = 0


class Prior(nn.Module):
    """Base class of priors over a `latent_dim`-dimensional z."""

    #: True when KL(q || p) has a closed form for a diagonal-Gaussian q.
    analytic_kl: bool = False
    #: True when p(z) = prod_d p(z_d), so that the KL is the sum of `kl_per_dim`.
    factorised: bool = False
    #: True when the prior depends on the class label, p(z|y) (a conditional model's VampPrior): `forward(c)` then
    #: takes the one-hot labels c (B, K) and returns a distribution with batch shape (B,).
    label_conditional: bool = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def forward(self, c: torch.Tensor | None = None) -> D.Distribution:
        """p(z), or p(z|y) for one-hot labels c (B, K) when `label_conditional` (priors that do not depend on the
        label are the same distribution for every label, and read no c)."""
        raise NotImplementedError

    def attach(self, model: nn.Module) -> None:
        """Called by the VAE that holds this prior; a prior defined through the model's encoder keeps it."""

    def init_from_data(self, x: torch.Tensor, generator: torch.Generator | None = None,
                       labels: torch.Tensor | None = None) -> None:
        """Called once before training with the training data (N, *event) and, for conditional models, their
        labels (N,); a prior may start from them."""

    def kl(self, qz: D.Distribution, z: torch.Tensor, pz: D.Distribution | None = None) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example: (B,) when analytic, else the MC estimate at `z` (S, B, D) -> (S, B).

        `pz` is this prior's distribution when the caller already has it (saves a second VampPrior encoding).
        """
        pz = self() if pz is None else pz
        if self.analytic_kl and is_diagonal_normal(qz):
            return D.kl_divergence(qz, pz)
        return qz.log_prob(z) - pz.log_prob(z)  # also for a flow posterior, which has no closed form

    def kl_per_dim(self, qz: D.Independent) -> torch.Tensor:
        """Closed-form KL of each latent dimension, (B, D); only for factorised priors."""
        raise NotImplementedError(f"{type(self).__name__} has no per-dimension KL")

    def marginal(self) -> D.Distribution:
        """The prior's one-dimensional marginals p(z_d): a distribution with batch shape (D,)."""
        raise NotImplementedError(f"{type(self).__name__} has no marginals")

    def marginal_kl_per_dim(self, qz: D.Independent, generator: torch.Generator | None = None) -> torch.Tensor:
        """KL(q(z_d|x) || p(z_d)) per example and dimension, (B, D): a posterior-collapse diagnostic.

        Exact (`kl_per_dim`) for factorised priors. Otherwise a one-sample Monte Carlo estimate against the
        prior's 1-D marginals, log q(z_d|x) - log p(z_d) at z_d ~ q(z_d|x); a dimension whose q(z_d|x) equals
        the marginal for every x carries no information. For non-factorised priors the values do not sum to
        the KL of the joint.
        """
        if self.factorised:
            return self.kl_per_dim(qz)
        q = qz.base_dist  # Normal with batch shape (B, D)
        eps = torch.randn(q.loc.shape, generator=generator, device="cpu").to(q.loc)
        z = q.loc + q.scale * eps  # (B, D)
        return q.log_prob(z) - self.marginal().log_prob(z)


@PRIORS.register("normal")
class StandardNormalPrior(Prior):
    """Standard normal N(0, I), with the closed-form KL of a diagonal Gaussian."""

    analytic_kl = True
    factorised = True

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        # Buffers so that the prior follows the model's device and dtype.
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("scale", torch.ones(latent_dim), persistent=False)

    def forward(self, c: torch.Tensor | None = None) -> D.Independent:
        return diagonal_normal(self.loc, self.scale)

    def kl(self, qz: D.Distribution, z: torch.Tensor, pz: D.Distribution | None = None) -> torch.Tensor:
        if not is_diagonal_normal(qz):  # a flow posterior: the Monte Carlo estimate
            return super().kl(qz, z, pz)
        # The closed form below rather than torch's kl_divergence, whose dispatch torch.compile cannot trace.
        return self.kl_per_dim(qz).sum(-1)

    def kl_per_dim(self, qz: D.Independent) -> torch.Tensor:
        # KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1) / 2 - log s, per dimension.
        mu, s = qz.base_dist.loc, qz.base_dist.scale
        return 0.5 * (mu.pow(2) + s.pow(2) - 1.0) - s.log()

    def marginal(self) -> D.Normal:
        return D.Normal(self.loc, self.scale, validate_args=False)


class DiagonalGaussianMixture(D.MixtureSameFamily):
    """A mixture of K diagonal Gaussians whose `log_prob` is one matrix product instead of a (..., K, D) broadcast.

    log pi_k + log N(z; mu_k, s_k^2) = [z^2, z, 1] . [-p_k / 2, mu_k p_k, c_k] with p_k = 1 / s_k^2 and
    c_k = log pi_k - sum_d (mu_kd^2 p_kd / 2 + log s_kd) - D/2 log(2 pi): an (N, 2D+1) x (2D+1, K) product,
    in float64 so that the expanded square loses nothing. Evaluating a VampPrior (K = 500) at the 10^7 importance
    samples of a test-set NLL needs this.
    """

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        normal = self.component_distribution.base_dist  # Normal, batch (K, D)
        dtype = _exact_dtype(z)
        log_weights = torch.log_softmax(self.mixture_distribution.logits.to(dtype), -1)  # (K,)
        terms = component_log_densities(normal.loc, normal.scale, z)  # (..., K)
        return torch.logsumexp(terms + log_weights, -1).to(z.dtype)  # (...)


def _exact_dtype(z: torch.Tensor) -> torch.dtype:
    return z.dtype if z.device.type == "mps" else torch.float64  # MPS has no float64


def component_log_densities(loc: torch.Tensor, scale: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log N(z; mu_k, diag s_k^2) for every component k, (..., K), as one matrix product (see
    `DiagonalGaussianMixture`), in float64 (float32 on MPS); loc and scale (K, D), z (..., D)."""
    dtype = _exact_dtype(z)
    loc, scale = loc.to(dtype), scale.to(dtype)
    precision = scale.pow(-2)  # (K, D)
    const = -(0.5 * loc.pow(2) * precision + scale.log()).sum(-1) - 0.5 * loc.shape[-1] * math.log(2 * math.pi)
    weights = torch.cat([-0.5 * precision, loc * precision, const[:, None]], -1)  # (K, 2D+1)
    zd = z.to(dtype)
    features = torch.cat([zd.pow(2), zd, torch.ones_like(zd[..., :1])], -1)  # (..., 2D+1)
    return features @ weights.T


class LabelledMixture(D.Distribution):
    """p(z|y) of a class-conditional VampPrior: for each example b, the mixture of the K shared diagonal Gaussians
    with weights w_bk (1 / K_y over the components of b's class, 0 elsewhere). Batch shape (B,), event (D,)."""

    arg_constraints: dict = {}

    def __init__(self, log_weights: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> None:
        self.log_weights, self.loc, self.scale = log_weights, loc, scale  # (B, K), (K, D), (K, D)
        super().__init__(log_weights.shape[:-1], loc.shape[-1:], validate_args=False)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., B, D) -> (..., B)."""
        terms = component_log_densities(self.loc, self.scale, z)  # (..., B, K)
        return torch.logsumexp(terms + self.log_weights.to(terms.dtype), -1).to(z.dtype)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            k = D.Categorical(logits=self.log_weights, validate_args=False).sample(sample_shape)  # (*shape, B)
            return self.loc[k] + self.scale[k] * torch.randn(k.shape + self.loc.shape[-1:], dtype=self.loc.dtype,
                                                             device=self.loc.device)


class MixturePrior(Prior):
    """A mixture of K diagonal Gaussians; subclasses say where the weights, means and scales come from."""

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture logits (K,), means (K, D) and standard deviations (K, D)."""
        raise NotImplementedError

    def forward(self, c: torch.Tensor | None = None) -> DiagonalGaussianMixture:
        logits, loc, scale = self.components()
        # log p(z) = logsumexp_k [log pi_k + log N(z; mu_k, diag sigma_k^2)], one matrix product (see above).
        return DiagonalGaussianMixture(D.Categorical(logits=logits, validate_args=False), diagonal_normal(loc, scale),
                                       validate_args=False)

    def marginal(self) -> D.MixtureSameFamily:
        logits, loc, scale = self.components()
        # p(z_d) = sum_k pi_k N(z_d; mu_kd, sigma_kd^2): batch shape (D,), K components each.
        weights = D.Categorical(logits=logits.expand(self.latent_dim, -1), validate_args=False)  # (D, K)
        return D.MixtureSameFamily(weights, D.Normal(loc.T, scale.T, validate_args=False), validate_args=False)


@PRIORS.register("mog")
class MixtureOfGaussiansPrior(MixturePrior):
    """Learnable mixture of K diagonal Gaussians (weights, means and scales are parameters)."""

    def __init__(self, latent_dim: int, components: int = 10) -> None:
        super().__init__(latent_dim)
        if components < 1:
            raise ConfigError(f"components must be >= 1, got {components}")
        self.n_components = components
        self.logits = nn.Parameter(torch.zeros(components))
        # Means spread like draws from N(0, I), so that the components start apart; unit scales.
        self.loc = nn.Parameter(torch.randn(components, latent_dim))
        self.log_scale = nn.Parameter(torch.zeros(components, latent_dim))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.logits, self.loc, self.log_scale.exp()


@PRIORS.register("vamp")
class VampPrior(MixturePrior):
    """VampPrior: p(z) = 1/K sum_k q(z|u_k), the encoder at K learned pseudo-inputs (Tomczak & Welling 2018)."""

    def __init__(self, latent_dim: int, components: int = 500, event_shape: tuple[int, ...] | None = None,
                 init: str = "data") -> None:
        super().__init__(latent_dim)
        if components < 1:
            raise ConfigError(f"components must be >= 1, got {components}")
        if event_shape is None:
            raise ConfigError("needs the data shape: build it through build_model (event_shape set)")
        if init not in ("data", "random"):
            raise ConfigError(f"init must be 'data' or 'random', got {init!r}")
        self.n_components, self.init = components, init
        # Pseudo-inputs u_k live in data space, (K, *event); `init_from_data` may replace them by examples.
        self.pseudo_inputs = nn.Parameter(0.1 * torch.randn(components, *event_shape))

    def attach(self, model: nn.Module) -> None:
        """Remembers the encoder q(z|u) of the VAE that defines the prior (a bound method, not a submodule,
        so that the model's modules are not registered twice)."""
        if tuple(model.event_shape) != tuple(self.pseudo_inputs.shape[1:]):
            raise ConfigError(f"prior 'vamp': pseudo-inputs of shape {tuple(self.pseudo_inputs.shape[1:])} do not "
                              f"fit data of shape {tuple(model.event_shape)}")
        if model.conditional:
            # A conditional model: pseudo-input k carries label k mod C, and p(z|y) mixes the q(z | u_k, y) of
            # the pseudo-inputs of class y (so that a sample of class y starts where codes of class y live).
            classes = int(model.num_classes)
            if self.n_components < classes:
                raise ConfigError(f"prior 'vamp' on a conditional model needs at least one pseudo-input per class: "
                                  f"components {self.n_components} < {classes} classes")
            self.label_conditional = True
            self.register_buffer("pseudo_labels", torch.arange(self.n_components) % classes, persistent=False)
            self.register_buffer("label_members", nn.functional.one_hot(self.pseudo_labels, classes).float(),
                                 persistent=False)  # (K, C)
        posterior = getattr(model, "posterior", None)
        if posterior is not None and not isinstance(posterior, GaussianPosterior):
            raise ConfigError("prior 'vamp' mixes the encoder's Gaussians at its pseudo-inputs and needs "
                              "model.posterior 'gaussian'")
        self._encode = model.encode

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, generator: torch.Generator | None = None,
                       labels: torch.Tensor | None = None) -> None:
        """With init='data', sets the pseudo-inputs to K random training examples (repeated if fewer); for a
        conditional model, pseudo-input k is an example of its class k mod C."""
        if self.init != "data" or x.shape[0] == 0:
            return
        n = x.shape[0]
        if self.label_conditional:
            if labels is None:
                raise ConfigError("prior 'vamp' on a conditional model starts from labelled examples: give labels")
            labels = labels.reshape(-1).cpu()
            index = torch.empty(self.n_components, dtype=torch.long)
            for c in range(self.label_members.shape[1]):
                slots = (self.pseudo_labels.cpu() == c).nonzero().reshape(-1)
                members = (labels == c).nonzero().reshape(-1)
                if members.numel() == 0:
                    raise ConfigError(f"prior 'vamp': no training example of class {c} to start its pseudo-inputs")
                index[slots] = members[torch.randint(members.numel(), (slots.numel(),), generator=generator)]
        elif n >= self.n_components:
            index = torch.randperm(n, generator=generator)[: self.n_components]
        else:
            index = torch.randint(n, (self.n_components,), generator=generator)
        self.pseudo_inputs.copy_(x[index.to(x.device)].to(self.pseudo_inputs))

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        encode = getattr(self, "_encode", None)
        if encode is None:
            raise ConfigError("prior 'vamp' is not attached to a VAE: build it through build_model")
        # q(z|u_k) (with its label for a conditional model): batch (K,), event (D,)
        qu = encode(self.pseudo_inputs, self.pseudo_labels) if self.label_conditional else encode(self.pseudo_inputs)
        logits = torch.zeros(self.n_components, device=qu.mean.device, dtype=qu.mean.dtype)  # uniform 1/K
        return logits, qu.base_dist.loc, qu.base_dist.scale

    def forward(self, c: torch.Tensor | None = None) -> D.Distribution:
        """The mixture over all pseudo-inputs; for a conditional model given one-hot labels c (B, C), p(z|y) per
        example over the pseudo-inputs of its class."""
        if not self.label_conditional or c is None:
            return super().forward()
        _, loc, scale = self.components()
        members = c.to(self.label_members) @ self.label_members.T  # (B, K): 1 where pseudo-input k has b's class
        log_weights = (members / members.sum(-1, keepdim=True)).log()  # log 1/K_y, -inf for other classes
        return LabelledMixture(log_weights, loc, scale)


def build_prior(name: str, latent_dim: int, event_shape: tuple[int, ...] | None = None, **options) -> Prior:
    """Builds the prior registered as `name`; an option it does not take is a ConfigError."""
    return PRIORS.build(name, options, latent_dim=latent_dim, event_shape=event_shape)

