"""The variational autoencoder (Kingma & Welling 2014; Rezende et al. 2014).

The model only composes: an encoder network gives q(z|x), a decoder network and a likelihood give p(x|z), a
prior gives p(z). Losses live in `vaekit.objectives`. With `num_classes > 0` the encoder and the decoder both see
a one-hot label c, which makes it a conditional VAE: q(z|x, c), p(x|z, c) (Sohn et al. 2015).

Shapes: x (B, *event); z (S, B, D); log_prob of px returns (S, B).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from ..distributions import Masked, diagonal_normal
from ..errors import ConfigError
from ..likelihoods import Likelihood
from ..priors import Prior

# Smallest posterior standard deviation: keeps log q(z|x) finite.
MIN_POSTERIOR_SCALE = 1e-5


@dataclass
class Batch:
    """A mini-batch: data (B, *event), optional labels (B,) and observation mask (B, *event) with 1 = observed."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    mask: torch.Tensor | None = None


@dataclass
class VAEOutput:
    """Everything one forward pass produced: q(z|x), the samples z (S, B, D), p(x|z) and p(z)."""

    qz: D.Independent
    z: torch.Tensor
    px: D.Distribution
    pz: D.Distribution


class VAE(nn.Module):
    """Encoder, decoder, likelihood and prior; `forward` returns distributions, never a loss."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        prior: Prior,
        latent_dim: int,
        event_shape: tuple[int, ...],
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.likelihood, self.prior = likelihood, prior
        self.latent_dim = latent_dim
        self.event_shape = tuple(event_shape)
        self.num_classes = num_classes
        prior.attach(self)  # a prior defined through the encoder (VampPrior) keeps a reference to it

    @property
    def conditional(self) -> bool:
        """True when encoder and decoder are conditioned on a class label."""
        return self.num_classes > 0

    def condition(self, y: torch.Tensor | None, batch_size: int) -> torch.Tensor | None:
        """One-hot conditioning vector (B, K) for a conditional model, None otherwise."""
        if not self.conditional:
            return None
        if y is None:
            raise ConfigError("this model is conditional: give a class label (e.g. --label 3)")
        y = torch.as_tensor(y, device=self._device()).long().reshape(-1)
        if y.numel() == 1 and batch_size > 1:
            y = y.expand(batch_size)
        if y.numel() != batch_size:
            raise ConfigError(f"got {y.numel()} labels for {batch_size} examples")
        if y.min() < 0 or y.max() >= self.num_classes:
            raise ConfigError(f"label {int(y.max() if y.max() >= self.num_classes else y.min())} is outside the "
                              f"trained classes 0..{self.num_classes - 1}")
        return F.one_hot(y, self.num_classes).to(self._dtype())

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> D.Independent:
        """q(z|x): a diagonal Gaussian with batch shape (B,) and event shape (D,).

        `mask` (B, *event), 1 = observed, reaches encoders that read it; missing entries are zero-filled here.
        """
        c = self.condition(y, x.shape[0])
        # (B, 2D); an encoder of one's own that knows nothing of masks keeps working on complete data
        h = self.encoder(x, c) if mask is None else self.encoder(x * mask, c, mask)
        loc, raw_scale = h.chunk(2, dim=-1)
        return diagonal_normal(loc, F.softplus(raw_scale) + MIN_POSTERIOR_SCALE)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> D.Independent:
        """p(x|z) for z of shape (..., D): a distribution with batch shape (...) over x's event shape."""
        lead = z.shape[:-1]
        flat = z.reshape(-1, self.latent_dim)  # (N, D), N = prod(lead)
        c = None
        if self.conditional:
            # Labels are per example (the last lead dimension); repeat them over the sample dimension.
            c = self.condition(y, lead[-1] if lead else 1)
            c = c.expand(*lead, self.num_classes).reshape(-1, self.num_classes)
        params = self.decoder(flat, c)  # (N, P, *event)
        return self.likelihood(params.view(*lead, *params.shape[1:]))

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, n_samples: int = 1, mask: torch.Tensor | None = None
    ) -> VAEOutput:
        """Encode, draw `n_samples` reparameterised z ~ q(z|x) (z = mu + sigma * eps), decode."""
        qz = self.encode(x, y, mask)
        z = qz.rsample((n_samples,))  # (S, B, D)
        px = self.decode(z, y)
        if mask is not None:
            px = Masked(px, mask)
        return VAEOutput(qz=qz, z=z, px=px, pz=self.prior())

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | int | None = None, mean: bool = True) -> torch.Tensor:
        """n new data points (n, *event) from z ~ p(z): the likelihood's mean, or a draw when `mean=False`."""
        if y is not None and not self.conditional:
            raise ConfigError("this model is not conditional, so it cannot sample a given class; train one with "
                              "model.conditional=true")
        z = self.prior().sample((n,))  # (n, D)
        labels = None if y is None else torch.as_tensor(y).reshape(-1)
        if labels is not None and labels.numel() == 1:
            labels = labels.expand(n)  # one label for the whole batch
        px = self.decode(z, labels)
        return px.mean if mean else px.sample()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the posterior mean of each x: the likelihood's mean, (B, *event)."""
        return self.decode(self.encode(x, y).mean, y).mean

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype
