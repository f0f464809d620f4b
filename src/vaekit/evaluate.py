"""Evaluation of a trained VAE on a data split.

    negative ELBO      -E_q[log p(x|z)] + KL(q(z|x) || p(z)), one sample of z per example
    NLL (IWAE bound)   -log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x)   (Burda et al. 2016); K = 5000 is
                       the usual choice for MNIST likelihoods in nats. It upper-bounds the true NLL and tightens
                       as K grows.
    bits/dim           NLL / (number of data entries * ln 2)
    active units       dimension d is active when Cov_x(E_q[z_d]) > 0.01 (Burda et al. 2016)
    KL per dimension   mean over x of KL(q(z_d|x) || p(z_d)), for factorised priors
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from .distributions import log_mean_exp
from .models.vae import VAE, Batch
from .objectives import ELBO

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


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, iw_samples: int = 1000,
             batch_size: int = 100, progress: bool = False) -> EvalResult:
    """All metrics of the module docstring over the examples `x` (labels `y` for conditional models)."""
    from tqdm.auto import tqdm

    model.eval()
    y = y if model.conditional else None
    elbo = ELBO()
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "nll": 0.0}
    kl_dims = torch.zeros(model.latent_dim)
    has_kl_dims = True
    for start in tqdm(range(0, x.shape[0], batch_size), disable=not progress, desc="evaluating", unit="batch"):
        xb = x[start : start + batch_size]
        yb = None if y is None else y[start : start + batch_size]
        terms = elbo(model, Batch(xb, yb)).terms
        for key in ("loss", "recon", "kl"):
            sums[key] += float(terms[key].sum())
        sums["nll"] += float(importance_sampled_nll(model, xb, yb, iw_samples).sum())
        if has_kl_dims:
            try:
                kl_dims += model.prior.kl_per_dim(model.encode(xb, yb)).sum(0).cpu()
            except NotImplementedError:
                has_kl_dims = False
    n = x.shape[0]
    count, _ = active_units(posterior_means(model, x, y))
    nll = sums["nll"] / n
    return EvalResult(
        n=n,
        neg_elbo=sums["loss"] / n,
        recon=sums["recon"] / n,
        kl=sums["kl"] / n,
        nll=nll,
        iw_samples=iw_samples,
        bits_per_dim=nll / (math.prod(model.event_shape) * math.log(2)),
        active_units=count,
        latent_dim=model.latent_dim,
        kl_per_dim=(kl_dims / n).tolist() if has_kl_dims else None,
    )
