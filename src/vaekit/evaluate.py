"""Evaluation of a trained VAE on a data split.

    negative ELBO      -E_q[log p(x|z)] + KL(q(z|x) || p(z)), one sample of z per example
    NLL (IWAE bound)   -log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x)   (Burda et al. 2016); K = 5000 is
                       the usual choice for MNIST likelihoods in nats. It upper-bounds the true NLL and tightens
                       as K grows.
    bits/dim           NLL / (number of data entries * ln 2)
    active units       dimension d is active when Cov_x(E_q[z_d]) > 0.01 (Burda et al. 2016)
    KL per dimension   mean over x of KL(q(z_d|x) || p(z_d)): closed form for factorised priors, a Monte Carlo
                       estimate against the prior's 1-D marginals for mixture priors
    sharpness          mean gradient magnitude of images, sqrt(dx^2 + dy^2) of neighbouring-pixel differences,
                       for reconstructions and data; their ratio (< 1: blurrier than the data) measures blur
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from .distributions import log_mean_exp
from .models.vae import VAE, Batch
from .objectives import ELBO
from .priors import DIAGNOSTIC_SEED

ACTIVE_UNIT_THRESHOLD = 0.01
# Rows (samples x examples) decoded at once by the importance-sampled estimate: bounds memory.
IW_ROWS_PER_CHUNK = 16384


@dataclass(frozen=True)
class EvalResult:
    """Test-set metrics in nats per example (lower is better for all losses)."""

    n: int
    neg_elbo: float
    recon: float
    kl: float
    nll: float
    iw_samples: int
    bits_per_dim: float
    active_units: int
    latent_dim: int
    kl_per_dim: list[float] | None
    # Image data only (None otherwise): mean gradient magnitude of the data, of the reconstructions, and their ratio.
    sharpness_data: float | None = None
    sharpness_recon: float | None = None
    sharpness_ratio: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


@torch.no_grad()
def importance_sampled_nll(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1000,
                           chunk_rows: int = IW_ROWS_PER_CHUNK) -> torch.Tensor:
    """-log p(x) estimated with `k` importance samples from q(z|x); returns (B,) in nats."""
    qz = model.encode(x, y)
    pz = model.prior()
    per_chunk = max(1, chunk_rows // x.shape[0])
    log_w = []
    for start in range(0, k, per_chunk):
        z = qz.sample((min(per_chunk, k - start),))  # (s, B, D)
        px = model.decode(z, y)
        log_w.append(px.log_prob(x) + pz.log_prob(z) - qz.log_prob(z))  # (s, B)
    return -log_mean_exp(torch.cat(log_w, 0), 0)


@torch.no_grad()
def posterior_means(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    """E_q[z|x] for every example, (N, D)."""
    return torch.cat([
        model.encode(x[i : i + batch_size], None if y is None else y[i : i + batch_size]).mean
        for i in range(0, x.shape[0], batch_size)
    ])


def active_units(means: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> tuple[int, torch.Tensor]:
    """Number of dimensions whose posterior mean varies across data by more than `threshold`, and the variances."""
    variances = means.var(0) if means.shape[0] > 1 else torch.zeros(means.shape[1])
    return int((variances > threshold).sum()), variances


class KLPerDim:
    """Running mean over examples of KL(q(z_d|x) || p(z_d)) per latent dimension (nats), batch by batch.

    The prior's `marginal_kl_per_dim`: closed form for factorised priors, a one-sample Monte Carlo estimate for
    the others, drawn from a generator of its own (seed `DIAGNOSTIC_SEED`), so that the same data give the same
    values and torch's global RNG is never touched.
    """

    def __init__(self, model: VAE) -> None:
        self.prior = model.prior
        self.generator = torch.Generator().manual_seed(DIAGNOSTIC_SEED)
        self.total = torch.zeros(model.latent_dim, dtype=torch.float64)
        self.count = 0

    def add(self, qz) -> None:
        """Adds a batch of posteriors q(z|x) (batch shape (B,), event shape (D,))."""
        kl = self.prior.marginal_kl_per_dim(qz, self.generator)  # (B, D)
        self.total += kl.sum(0).double().cpu()
        self.count += kl.shape[0]

    def mean(self) -> torch.Tensor:
        """(D,) float64: the mean over the examples added so far (zeros before any)."""
        return self.total / max(1, self.count)


@dataclass(frozen=True)
class PosteriorDiagnostics:
    """Posterior-collapse diagnostics of a split: mean KL per latent dimension (nats) and active units."""

    kl_per_dim: list[float]
    active_units: int
    variances: list[float] = field(default_factory=list)  # Cov_x(E_q[z_d]) per dimension


@torch.no_grad()
def posterior_diagnostics(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None,
                          batch_size: int = 1024, mask: torch.Tensor | None = None) -> PosteriorDiagnostics:
    """KL(q(z_d|x) || p(z_d)) averaged over `x` and the active-unit count, in one pass of the encoder
    (`mask`: 1 = observed, for data with missing entries)."""
    was_training = model.training
    model.eval()
    y = y if model.conditional else None
    kl = KLPerDim(model)
    means = []
    for start in range(0, x.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        qz = model.encode(x[rows], None if y is None else y[rows], None if mask is None else mask[rows])
        kl.add(qz)
        means.append(qz.mean)
    model.train(was_training)
    count, variances = active_units(torch.cat(means))
    return PosteriorDiagnostics(kl_per_dim=kl.mean().tolist(), active_units=count, variances=variances.tolist())


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude of each image (N, C, H, W) or (N, H, W) -> (N,); higher is sharper.

    Forward differences dx = x[i, j+1] - x[i, j], dy = x[i+1, j] - x[i, j] on the common (H-1, W-1) grid,
    magnitude sqrt(dx^2 + dy^2), averaged over pixels and channels.
    """
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[-1] < 2 or images.shape[-2] < 2:
        raise ValueError(f"sharpness needs images (N, C, H, W) of at least 2x2 pixels, got {tuple(images.shape)}")
    dx = images[..., :-1, 1:] - images[..., :-1, :-1]
    dy = images[..., 1:, :-1] - images[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2)).sqrt().flatten(1).mean(1)


def is_image_shape(event_shape: tuple[int, ...]) -> bool:
    """True for (C, H, W) or (H, W) data with at least 2x2 pixels."""
    return len(event_shape) in (2, 3) and min(event_shape[-2:]) >= 2


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, iw_samples: int = 1000,
             batch_size: int = 100, progress: bool = False) -> EvalResult:
    """All metrics of the module docstring over the examples `x` (labels `y` for conditional models)."""
    from tqdm.auto import tqdm

    model.eval()
    y = y if model.conditional else None
    elbo = ELBO()
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "nll": 0.0}
    image = is_image_shape(model.event_shape)
    sharp = {"data": 0.0, "recon": 0.0}
    for start in tqdm(range(0, x.shape[0], batch_size), disable=not progress, desc="evaluating", unit="batch"):
        xb = x[start : start + batch_size]
        yb = None if y is None else y[start : start + batch_size]
        terms = elbo(model, Batch(xb, yb)).terms
        for key in ("loss", "recon", "kl"):
            sums[key] += float(terms[key].sum())
        sums["nll"] += float(importance_sampled_nll(model, xb, yb, iw_samples).sum())
        if image:
            sharp["data"] += float(sharpness(xb).sum())
            sharp["recon"] += float(sharpness(model.reconstruct(xb, yb)).sum())
    n = x.shape[0]
    diagnostics = posterior_diagnostics(model, x, y)
    nll = sums["nll"] / n
    sharp = {key: value / n for key, value in sharp.items()}
    return EvalResult(
        n=n,
        neg_elbo=sums["loss"] / n,
        recon=sums["recon"] / n,
        kl=sums["kl"] / n,
        nll=nll,
        iw_samples=iw_samples,
        bits_per_dim=nll / (math.prod(model.event_shape) * math.log(2)),
        active_units=diagnostics.active_units,
        latent_dim=model.latent_dim,
        kl_per_dim=diagnostics.kl_per_dim,
        sharpness_data=sharp["data"] if image else None,
        sharpness_recon=sharp["recon"] if image else None,
        sharpness_ratio=sharp["recon"] / sharp["data"] if image and sharp["data"] > 0 else None,
    )
