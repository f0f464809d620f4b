"""A VAE with L >= 2 stochastic layers z = [z_1, ..., z_L] (z_1 nearest the data, z_L on top).

The structure of the hierarchical VAE of Tomczak & Welling (2018, "HVAE"), for any number of layers:

    inference   q(z|x) = q(z_L | x) prod_{l<L} q(z_l | x, z_{l+1})          (top-down, every layer sees x)
    generation  p(x, z) = p(z_L) prod_{l<L} p(z_l | z_{l+1}) p(x | z_1, ..., z_L)

Every factor but p(z_L) is a diagonal Gaussian whose mean and scale come from a network. p(z_L) is any prior
of the registry (normal, mog, vamp: a VampPrior's pseudo-inputs go through q(z_L | x)). The decoder of the
network registry reads the whole code z (all layers concatenated), so conv and MLP decoders work unchanged.

The joint code is one vector of D = D_1 + ... + D_L entries, bottom layer first, and q(z|x) and p(z) are
distributions over it (`HierarchicalPosterior`, `HierarchicalPriorDistribution`): the ELBO and IWAE objectives
read their `log_prob`, with the Monte Carlo KL log q(z|x) - log p(z), and need no special case.

How x enters the lower layers: a network of the registry maps x once to features f_l(x) (B, 2 D_l), and a
small gated MLP maps [f_l(x), z_{l+1}] to the mean and scale of q(z_l | x, z_{l+1}). Only that small MLP runs
once per sample of z, so importance sampling with thousands of samples stays affordable.

Shapes: x (B, *event); z (S, B, D) or (B, D); log_prob returns (S, B) or (B,).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import distributions as D
from torch import nn

from ..errors import ConfigError
from ..nets.mlp import mlp
from ..posteriors import softplus_normal
from ..priors import Prior
from .base import MODEL_KINDS, Capabilities, ModelParts, layer_slices, split_per_layer  # noqa: F401 (re-exported)
from .vae import VAE

# Most stochastic layers a model may have (each adds three networks), and the widest networks between them.
MAX_LAYERS = 8
MAX_HIDDEN = 65536


def check_layers(layers: Sequence[int] | None, latent_dim: int) -> list[int]:
    """The layer sizes as a list, or a ConfigError: two or more layers, each >= 1, summing to `latent_dim`.
    None: two layers splitting `latent_dim` (the top one takes the larger half when it is odd)."""
    if layers is None:
        if latent_dim < 2:
            raise ConfigError(f"model.kind 'hierarchical' needs model.latent_dim >= 2 (one unit per layer at least), "
                              f"got {latent_dim}")
        return [latent_dim // 2, latent_dim - latent_dim // 2]
    layers = [int(size) for size in layers]
    if not 2 <= len(layers) <= MAX_LAYERS:
        raise ConfigError(f"model.kind.layers needs 2 to {MAX_LAYERS} layer sizes (bottom first), got {layers}; "
                          "for one stochastic layer use model.kind = 'vae'")
    if any(size < 1 for size in layers):
        raise ConfigError(f"model.kind.layers must hold sizes >= 1, got {layers}")
    if sum(layers) != latent_dim:
        raise ConfigError(f"model.kind.layers {layers} sum to {sum(layers)}, but model.latent_dim is {latent_dim}: "
                          f"set model.latent_dim = {sum(layers)} (the size of the whole code)")
    return layers


def _gated(sizes: Sequence[int]) -> nn.Sequential:
    return mlp(list(sizes), "gated")


class HierarchicalPosterior(D.Distribution):
    """q(z|x) = q(z_L | x) prod_{l<L} q(z_l | x, z_{l+1}) over the joint code z (event shape (D,)).

    Sampling is ancestral from the top. `log_prob(z)` evaluates every layer's Gaussian at z; the Gaussians of
    the last draw are kept, so scoring the z just drawn (what the objectives do) runs no network again.
    `mean` is the code along the means, z_L = E[z_L|x], z_l = E[z_l | x, z_{l+1} = its mean];
    `base_dist` is the Gaussian of each layer along that path (B, D), which the diagnostics read as q's spread.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, top: D.Normal, features: list[torch.Tensor], combiners: nn.ModuleList,
                 layers: list[int]) -> None:
        self.top, self.features, self.combiners, self.layers = top, features, combiners, layers
        self._last: tuple[torch.Tensor, list[D.Normal]] | None = None
        self._mean_path: tuple[torch.Tensor, D.Normal] | None = None
        super().__init__(top.loc.shape[:-1], torch.Size([sum(layers)]), validate_args=False)

    def _split(self, z: torch.Tensor) -> list[torch.Tensor]:
        return list(z.split(self.layers, dim=-1))

    def _conditional(self, level: int, above: torch.Tensor) -> D.Normal:
        """q(z_level | x, z_{level+1} = above), above (..., B, D_{level+1}); levels count from 0 at the bottom."""
        f = self.features[level]  # (B, 2 D_level)
        f = f.expand(*above.shape[:-1], f.shape[-1])
        return softplus_normal(self.combiners[level](torch.cat([f, above], -1)))

    def _path(self, sample_shape: torch.Size, noise: torch.Tensor | None, draw: bool) -> tuple[torch.Tensor, list]:
        """Ancestral pass from the top: codes (*sample_shape, B, D) and the Gaussians of each layer, bottom first.
        `noise` (*sample_shape, B, D) gives the standard normal draws; `draw` False follows the means."""
        eps = None if noise is None else self._split(noise)
        normals: list[D.Normal] = [None] * len(self.layers)  # type: ignore[list-item]
        codes: list[torch.Tensor] = [None] * len(self.layers)  # type: ignore[list-item]
        top = self.top.expand(torch.Size(sample_shape) + self.top.batch_shape)
        for level in range(len(self.layers) - 1, -1, -1):
            q = top if level == len(self.layers) - 1 else self._conditional(level, codes[level + 1])
            normals[level] = q
            if not draw:
                codes[level] = q.loc
            elif eps is None:
                codes[level] = q.rsample()
            else:
                codes[level] = q.loc + q.scale * eps[level].to(q.loc)
        return torch.cat(codes, -1), normals

    def rsample(self, sample_shape: torch.Size = torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        """Reparameterised draws (*sample_shape, B, D); `noise` gives their standard normal draws."""
        z, normals = self._path(torch.Size(sample_shape), noise, True)
        self._last = (z, normals)
        return z

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def layer_normals(self, z: torch.Tensor) -> list[D.Normal]:
        """The Gaussian of each layer at code z (..., B, D), bottom first (cached for the last draw)."""
        if self._last is not None and self._last[0] is z:
            return self._last[1]
        parts = self._split(z)
        top = self.top.expand(z.shape[:-1] + self.top.loc.shape[-1:]) if z.dim() > 2 else self.top
        return [self._conditional(level, parts[level + 1]) for level in range(len(self.layers) - 1)] + [top]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        parts = self._split(z)
        return sum(q.log_prob(part).sum(-1) for q, part in zip(self.layer_normals(z), parts))

    def _means(self) -> tuple[torch.Tensor, D.Normal]:
        if self._mean_path is None:
            z, normals = self._path(torch.Size(), None, False)
            self._mean_path = (z, D.Normal(z, torch.cat([q.scale for q in normals], -1), validate_args=False))
        return self._mean_path

    @property
    def mean(self) -> torch.Tensor:
        return self._means()[0]

    @property
    def base_dist(self) -> D.Normal:
        """Each layer's Gaussian along the mean path, (B, D): loc = `mean`, scale = the layers' scales there."""
        return self._means()[1]

    @property
    def stddev(self) -> torch.Tensor:
        return self.base_dist.scale


class HierarchicalPriorDistribution(D.Distribution):
    """p(z) = p(z_L) prod_{l<L} p(z_l | z_{l+1}) over the joint code z (event shape (D,))."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, top: D.Distribution, conditionals: nn.ModuleList, layers: list[int]) -> None:
        self.top, self.conditionals, self.layers = top, conditionals, layers
        super().__init__(torch.Size(), torch.Size([sum(layers)]), validate_args=False)

    def layer_normals(self, z: torch.Tensor) -> list[D.Normal]:
        """p(z_l | z_{l+1}) at code z for every layer below the top, bottom first."""
        parts = list(z.split(self.layers, dim=-1))
        return [softplus_normal(self.conditionals[level](parts[level + 1])) for level in range(len(self.layers) - 1)]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        parts = list(z.split(self.layers, dim=-1))
        below = sum(p.log_prob(part).sum(-1) for p, part in zip(self.layer_normals(z), parts))
        return self.top.log_prob(parts[-1]) + below

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        codes = [None] * len(self.layers)
        codes[-1] = self.top.rsample(sample_shape) if self.top.has_rsample else self.top.sample(sample_shape)
        for level in range(len(self.layers) - 2, -1, -1):
            codes[level] = softplus_normal(self.conditionals[level](codes[level + 1])).rsample()
        return torch.cat(codes, -1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class HierarchicalPrior(Prior):
    """The generative side of the hierarchy: p(z_L) from the prior registry and the networks of p(z_l | z_{l+1}).

    Its KL is the Monte Carlo estimate log q(z|x) - log p(z) (no closed form through the layers)."""

    analytic_kl = False
    factorised = False

    def __init__(self, top: Prior, layers: list[int], hidden: int) -> None:
        super().__init__(sum(layers))
        self.top, self.layers, self.hidden = top, list(layers), hidden
        # p(z_l | z_{l+1}): z_{l+1} -> gated hidden -> gated hidden -> [mean, pre-scale] of z_l
        self.conditionals = nn.ModuleList(
            _gated([layers[level + 1], hidden, hidden, 2 * layers[level]]) for level in range(len(layers) - 1))

    @property
    def n_components(self) -> int:
        """The top prior's mixture components (0 for a single Gaussian): what a draw from it costs."""
        return int(getattr(self.top, "n_components", 0) or 0)

    @property
    def label_conditional(self) -> bool:  # type: ignore[override]
        """True when the top prior depends on the label (a conditional model's VampPrior)."""
        return bool(self.top.label_conditional)

    def forward(self, c: torch.Tensor | None = None) -> HierarchicalPriorDistribution:
        top = self.top(c) if self.top.label_conditional else self.top()
        return HierarchicalPriorDistribution(top, self.conditionals, self.layers)

    def init_from_data(self, x: torch.Tensor, generator: torch.Generator | None = None,
                       labels: torch.Tensor | None = None) -> None:
        self.top.init_from_data(x, generator, labels)

    def marginal_kl_per_dim(self, qz: HierarchicalPosterior, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per example and dimension (B, D): one draw z ~ q(z|x) (from `generator`), then for every layer below
        the top log q(z_ld | x, z_{l+1}) - log p(z_ld | z_{l+1}), whose sum over a layer's dimensions is that
        layer's share of the KL; for the top layer the top prior's own per-dimension KL (closed form for
        factorised priors, else against its marginals)."""
        noise = torch.randn(qz.top.loc.shape[:-1] + (self.latent_dim,), generator=generator, device="cpu")
        z = qz.rsample(noise=noise.to(qz.top.loc))
        parts = list(z.split(self.layers, dim=-1))
        q_layers, p_layers = qz.layer_normals(z), self().layer_normals(z)
        below = [q.log_prob(part) - p.log_prob(part) for q, p, part in zip(q_layers[:-1], p_layers, parts[:-1])]
        top_q = D.Independent(q_layers[-1], 1, validate_args=False)
        return torch.cat(below + [self.top.marginal_kl_per_dim(top_q, generator)], -1)


class HierarchicalVAE(VAE):
    """A VAE with several stochastic layers (module docstring); `forward` returns distributions, never a loss."""

    def __init__(self, top_encoder: nn.Module, feature_encoders: Sequence[nn.Module], decoder: nn.Module,
                 likelihood, top_prior: Prior, layers: Sequence[int], event_shape: tuple[int, ...],
                 num_classes: int = 0, hidden: int = 300) -> None:
        layers = list(layers)
        prior = HierarchicalPrior(top_prior, layers, hidden)
        # The VAE base attaches `prior`; the top prior is attached to the top layer's view of this model below.
        super().__init__(top_encoder, decoder, likelihood, prior, sum(layers), event_shape, num_classes)
        self.layers = layers
        self.feature_encoders = nn.ModuleList(feature_encoders)
        # q(z_l | x, z_{l+1}): [f_l(x) (2 D_l), z_{l+1}] -> gated hidden -> [mean, pre-scale] of z_l
        self.combiners = nn.ModuleList(
            _gated([2 * layers[level] + layers[level + 1], hidden, 2 * layers[level]]) for level in range(len(layers) - 1))
        top_prior.attach(_TopLayer(self))

    @property
    def latent_layers(self) -> list[int]:
        """The size of each stochastic layer, bottom first."""
        return list(self.layers)

    @property
    def capabilities(self) -> Capabilities:
        """Several layers: a Monte Carlo KL (no closed form per dimension across layers, but its per-dimension
        estimate, `HierarchicalPrior.marginal_kl_per_dim`), and no bits-back coding of the joint code."""
        return Capabilities(layers=tuple(self.layers), entropy_coding=False)

    def encode_top(self, x: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None
                   ) -> D.Independent:
        """q(z_L | x): a diagonal Gaussian over the top layer (what a VampPrior encodes its pseudo-inputs with)."""
        c = self.condition(y, x.shape[0])
        h = self.encoder(x, c) if mask is None else self.encoder(x * mask, c, mask)
        return D.Independent(softplus_normal(h), 1, validate_args=False)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None
               ) -> HierarchicalPosterior:
        """q(z|x) over the joint code (module docstring)."""
        c = self.condition(y, x.shape[0])
        xin = x if mask is None else x * mask
        args = (xin, c) if mask is None else (xin, c, mask)
        top = softplus_normal(self.encoder(*args))  # (B, D_L)
        features = [net(*args) for net in self.feature_encoders]  # (B, 2 D_l) each, l < L
        return HierarchicalPosterior(top, features, self.combiners, self.layers)

    def _prior_sample_bytes(self) -> int:
        """Bytes per prior draw beyond z: the top prior's components and the layers' hidden activations."""
        return (self.prior.n_components * self.layers[-1] + 4 * self.prior.hidden * len(self.layers)) * 4


class _TopLayer:
    """What a top prior that encodes (the VampPrior) sees of the model: the top layer's q(z_L | x)."""

    def __init__(self, model: HierarchicalVAE) -> None:
        self.conditional = model.conditional
        self.event_shape = model.event_shape
        self.encode = model.encode_top


@MODEL_KINDS.register("hierarchical")
def hierarchical(parts: ModelParts, layers: list[int] | None = None, hidden: int = 300) -> HierarchicalVAE:
    """Several stochastic layers z_1..z_L, each conditioned on the one above (Tomczak & Welling 2018).

    `layers`: their sizes, bottom first, summing to model.latent_dim (None: two halves); `hidden`: the width of
    the networks between the layers."""
    layers = check_layers(layers, parts.latent_dim)
    if not 1 <= hidden <= MAX_HIDDEN:
        raise ConfigError(f"model.kind.hidden must be in [1, {MAX_HIDDEN}], got {hidden}")
    if parts.sequence_data:
        raise ConfigError("model.kind 'hierarchical' applies to fixed-size data (images, tables), not to sentences")
    if parts.posterior_name != "gaussian":
        raise ConfigError(f"model.posterior {parts.posterior_name!r} applies to one stochastic layer; "
                          "model.kind 'hierarchical' has Gaussian layers")
    # The network registry's encoder gives q(z_L|x) and the x-features of each lower layer; its decoder reads the
    # whole code. The prior registry's entry is p(z_L).
    top_encoder = parts.networks(layers[-1]).encoder
    feature_encoders = [parts.networks(size).encoder for size in layers[:-1]]
    decoder = parts.networks(parts.latent_dim).decoder
    return HierarchicalVAE(top_encoder, feature_encoders, decoder, parts.likelihood, parts.prior(layers[-1]),
                           layers, parts.event_shape, parts.num_classes, hidden=hidden)


__all__ = ["HierarchicalVAE", "HierarchicalPosterior", "HierarchicalPrior", "HierarchicalPriorDistribution",
           "check_layers", "layer_slices", "split_per_layer", "MAX_LAYERS"]
