"""The variational autoencoder (Kingma & Welling 2014; Rezende et al. 2014).

The model only composes: an encoder network gives q(z|x), a decoder network and a likelihood give p(x|z), a
prior gives p(z). Losses live in `vaekit.objectives`. With `num_classes > 0` the encoder and the decoder both see
a one-hot label c, which makes it a conditional VAE: q(z|x, c), p(x|z, c) (Sohn et al. 2015).

Shapes: x (B, *event); z (S, B, D); log_prob of px returns (S, B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from ..core import limits
from ..core.distributions import Masked
from ..errors import ConfigError
from ..likelihoods import Likelihood
from ..posteriors import MIN_POSTERIOR_SCALE, GaussianPosterior, reparameterise  # noqa: F401 (MIN_POSTERIOR_SCALE: re-exported)
from ..priors import Prior
from .base import MODEL_KINDS, Capabilities, ModelParts

# `sample` draws z from the prior in blocks of this many (fixed, so that a seed gives the same samples whatever
# the memory budget; n up to this size draws z in one call, as it always did).
PRIOR_BLOCK = 4096


@dataclass
class Batch:
    """A mini-batch: data (B, *event), optional labels (B,) and observation mask (B, *event) with 1 = observed.

    `noise` (S, B, D), when given, holds the standard normal draws of the reparameterisation z = mu + sigma * eps
    (the training loop draws them for the whole global batch from a per-step seed and gives each process its
    rows, so that training computes the same whatever the number of processes); None: drawn by q(z|x) itself."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    noise: torch.Tensor | None = None


@dataclass
class VAEOutput:
    """Everything one forward pass produced: q(z|x), the samples z (S, B, D), p(x|z) and p(z), and a model kind's
    training penalty outside the bound, per example (B,) (the VQ-VAE's commitment loss; None: none)."""

    qz: D.Independent
    z: torch.Tensor
    px: D.Distribution
    pz: D.Distribution
    penalty: torch.Tensor | None = None


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
        posterior: nn.Module | None = None,
        adversary: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        # q(z|x) from the encoder's output (vaekit.posteriors): a diagonal Gaussian unless a flow is configured
        self.posterior = GaussianPosterior(latent_dim) if posterior is None else posterior
        self.likelihood, self.prior = likelihood, prior
        self.latent_dim = latent_dim
        self.event_shape = tuple(event_shape)
        self.num_classes = num_classes
        # a conditional model's label adversary (vaekit.models.label_adversary), None: none
        self.adversary = adversary
        prior.attach(self)  # a prior defined through the encoder (VampPrior) keeps a reference to it

    @property
    def capabilities(self) -> Capabilities:
        """What this model can be asked (`vaekit.models.base.Capabilities`): one Gaussian layer can be
        entropy-coded; a flow posterior cannot (its density is not a product of per-dimension Gaussians)."""
        return Capabilities(entropy_coding=isinstance(self.posterior, GaussianPosterior))

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The point in latent space that stands for each input (B, D): the mean of q(z|x) (for several layers,
        the code along the layers' means)."""
        return self.encode(x, y, mask).mean

    def _repr_html_(self) -> str:
        """A short summary for Jupyter (the module tree stays available as `print(model)`)."""
        from ..core.html_summary import html_table

        names = getattr(self, "plugins", {})
        parameters = sum(p.numel() for p in self.parameters())
        first = next(self.parameters(), None)
        rows = [("kind", names.get("kind", type(self).__name__)), ("data shape", self.event_shape),
                ("latent dimensions", self.latent_dim),
                ("classes", self.num_classes if self.conditional else None),
                ("label adversary", None if self.adversary is None else f"weight {self.adversary.weight:g}"),
                ("network", names.get("network", type(self.encoder).__name__)),
                ("likelihood", names.get("likelihood", type(self.likelihood).__name__)),
                ("prior", names.get("prior", type(self.prior).__name__)),
                ("posterior", names.get("posterior", type(self.posterior).__name__)),
                ("parameters", parameters),
                ("device", None if first is None else f"{first.device} ({str(first.dtype).removeprefix('torch.')})"),
                ("mode", "training" if self.training else "eval")]
        return html_table("vaekit model", rows, note="print(model) shows its layers")

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

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> D.Distribution:
        """q(z|x) with batch shape (B,) and event shape (D,): a diagonal Gaussian, or what `model.posterior` makes
        of the encoder's output (an inverse autoregressive flow).

        `mask` (B, *event), 1 = observed, reaches encoders that read it; missing entries are zero-filled here.
        """
        c = self.condition(y, x.shape[0])
        # (B, 2D); an encoder of one's own that knows nothing of masks keeps working on complete data
        h = self.encoder(x, c) if mask is None else self.encoder(x * mask, c, mask)
        return self.posterior(h)

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
        self, x: torch.Tensor, y: torch.Tensor | None = None, n_samples: int = 1, mask: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> VAEOutput:
        """Encode, draw `n_samples` reparameterised z ~ q(z|x) (z = mu + sigma * eps), decode. `noise` (S, B, D)
        gives eps (standard normal draws) instead of drawing them."""
        qz = self.encode(x, y, mask)
        if noise is not None:
            expected = (n_samples, x.shape[0], self.latent_dim)
            if tuple(noise.shape) != expected:
                raise ConfigError(f"noise must have shape {expected} (samples, batch, latent), got {tuple(noise.shape)}")
        z = reparameterise(qz, n_samples, noise)  # (S, B, D)
        px = self.decode(z, y)
        if mask is not None:
            px = Masked(px, mask)
        penalty = None
        if self.adversary is not None and self.training:
            penalty = self.adversary.penalty(z, self.condition(y, x.shape[0]).argmax(-1))  # (B,)
        return VAEOutput(qz=qz, z=z, px=px, pz=self.prior_for(y, x.shape[0]), penalty=penalty)

    def prior_for(self, y: torch.Tensor | None, batch_size: int) -> D.Distribution:
        """p(z); for a prior that depends on the label (`Prior.label_conditional`), p(z|y) of each of the
        `batch_size` examples (batch shape (B,))."""
        if getattr(self.prior, "label_conditional", False):
            return self.prior(self.condition(y, batch_size))
        return self.prior()

    def prior_codes(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """n codes z ~ p(z) (n, D), or z ~ p(z|y) of the given labels (n,) for a label-conditional prior."""
        if labels is not None and getattr(self.prior, "label_conditional", False):
            return self.prior_for(labels, n).sample()
        return self.prior().sample((n,))


    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | int | None = None, mean: bool = True):
        """n new data points (n, *event) from z ~ p(z): the likelihood's mean, or a draw when `mean=False`.
        (A model of another kind of value, such as sentences, returns those: vaekit.text.model.SentenceVAE.)

        The memory it needs is checked first (a ResourceError beyond the budget of `vaekit.core.limits`); z is drawn
        in blocks of PRIOR_BLOCK and decoded in chunks that fit the budget, so that a large n has no activation
        spike. The result of one chunk stays on the model's device; more are gathered on the CPU."""
        if y is not None and not self.conditional:
            raise ConfigError("this model is not conditional, so it cannot sample a given class; train one with "
                              "model.conditional=true")
        n = int(n)
        self.check_generate(n, f"sampling {n:,} examples of {limits.describe_shape(self.event_shape)}",
                            extra_per_row=self._prior_sample_bytes())
        labels = None if y is None else torch.as_tensor(y).reshape(-1)
        if labels is not None and labels.numel() == 1:
            labels = labels.expand(n)  # one label for the whole batch
        if labels is not None and labels.numel() != n:
            raise ConfigError(f"got {labels.numel()} labels for {n} samples")
        if n <= PRIOR_BLOCK:
            return self.generate(self.prior_codes(n, labels), labels, mean=mean, check=False)
        out = None
        for start in range(0, n, PRIOR_BLOCK):
            stop = min(n, start + PRIOR_BLOCK)
            part = None if labels is None else labels[start:stop]
            x = self.generate(self.prior_codes(stop - start, part), part, mean=mean, check=False)
            if out is None:
                out = torch.empty((n, *x.shape[1:]), dtype=x.dtype)
            out[start:stop] = x.cpu()
        return out

    def decode_bytes_per_example(self) -> int:
        """Estimated bytes one example takes while it is decoded to the likelihood's mean: every decoder
        module's output (measured once on one code) plus the likelihood's parameters and mean."""
        cached = self.__dict__.get("_decode_bytes")
        if cached is not None:
            return cached
        values = 0

        def count(module, inputs, output) -> None:
            nonlocal values
            if torch.is_tensor(output):
                values += output.numel()

        event = math.prod(self.event_shape)
        params = getattr(self.likelihood, "params_per_entry", 1)
        modules = list(self.decoder.modules())
        modes = [m.training for m in modules]  # measured in eval mode: no dropout draws, no batch-norm updates
        handles = [m.register_forward_hook(count) for m in modules]
        try:
            for m in modules:
                m.training = False
            with torch.no_grad():
                z = torch.zeros(1, self.latent_dim, device=self._device(), dtype=self._dtype())
                c = None
                if self.conditional:
                    c = torch.zeros(1, self.num_classes, device=z.device, dtype=z.dtype)
                    c[:, 0] = 1
                self.decoder(z, c)
        except Exception:  # a decoder that will not run on one zero code: estimate from its output alone
            values = 4 * params * event
        finally:
            for handle in handles:
                handle.remove()
            for m, mode in zip(modules, modes):
                m.training = mode
        cost = (values + 3 * params * event + self.latent_dim) * limits.FLOAT_BYTES
        self.__dict__["_decode_bytes"] = cost
        return cost

    def _prior_sample_bytes(self) -> int:
        """Bytes per draw of z ~ p(z) beyond z itself: a mixture prior draws every component (K, D)."""
        k = int(getattr(self.prior, "n_components", 0) or 0)
        return k * self.latent_dim * limits.FLOAT_BYTES

    def check_generate(self, n: int, what: str, extra_per_row: int = 0, extra_bytes: int = 0) -> int:
        """A ResourceError unless decoding n codes fits the memory budget: the codes (n, D) and outputs
        (n, *event) at once, plus one chunk of decoder activations. Returns the bytes it counted."""
        n = int(n)
        event = math.prod(self.event_shape)
        per_row = self.decode_bytes_per_example() + int(extra_per_row)
        rows = limits.chunk_rows(n, per_row) if n > 0 else 0
        need = n * (self.latent_dim + event) * limits.FLOAT_BYTES + rows * per_row + int(extra_bytes)
        return limits.check_allocation(need, what)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None, mean: bool = True,
                 check: bool = True, what: str | None = None) -> torch.Tensor:
        """Decodes codes z (N, D) to (N, *event), the likelihood's mean (or a draw when `mean=False`), in chunks
        that fit the memory budget; labels `y` (N,) or one label for conditional models. The result of one chunk
        stays on the model's device; more are gathered on the CPU."""
        z = z.reshape(-1, self.latent_dim)
        n = z.shape[0]
        if check:
            self.check_generate(n, what or f"decoding {n:,} codes to {limits.describe_shape(self.event_shape)}")
        labels = None if y is None else torch.as_tensor(y).reshape(-1)
        if labels is not None and labels.numel() == 1 and n != 1:
            labels = labels.expand(n)
        rows = limits.chunk_rows(n, self.decode_bytes_per_example()) if n > 0 else 1
        if n <= rows:
            px = self.decode(z, labels)
            return px.mean if mean else px.sample()
        out = None
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            part = None if labels is None or labels.numel() != n else labels[start:stop]
            px = self.decode(z[start:stop], part if part is not None else labels)
            x = px.mean if mean else px.sample()
            if out is None:
                out = torch.empty((n, *x.shape[1:]), dtype=x.dtype)
            out[start:stop] = x.cpu()
        return out

    @torch.no_grad()
    def reconstruct(self, x, y: torch.Tensor | None = None):
        """Decode the posterior mean of each x: the likelihood's mean, (B, *event)."""
        return self.decode(self.embed(x, y), y).mean

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


@MODEL_KINDS.register("vae")
def vae(parts: ModelParts, label_adversary: float = 0.0) -> VAE:
    """One stochastic layer: q(z|x) from the encoder (a diagonal Gaussian, or a flow on it), p(z) any prior.

    `label_adversary` > 0 (conditional models): the weight of a classifier that learns the label from z while the
    encoder learns to defeat it, so that the decoder reads the label (vaekit.models.label_adversary)."""
    from .label_adversary import LabelAdversary

    nets = parts.networks(parts.latent_dim)
    model_class = parts.model_class or VAE
    adversary = None
    if label_adversary != 0:
        adversary = LabelAdversary(parts.latent_dim, parts.num_classes, label_adversary)
    return model_class(nets.encoder, nets.decoder, parts.likelihood, parts.prior(parts.latent_dim), parts.latent_dim,
                       parts.event_shape, parts.num_classes, posterior=parts.posterior(parts.latent_dim),
                       adversary=adversary)
