"""Evaluation of a trained VAE on a data split.

    negative ELBO      -E_q[log p(x|z)] + KL(q(z|x) || p(z)), one sample of z per example
    NLL (IWAE bound)   -log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x)   (Burda et al. 2016); K = 5000 is
                       the usual choice for MNIST likelihoods in nats. It upper-bounds the true NLL and tightens
                       as K grows. The samples are decoded in cache-sized passes and scored with fused log
                       densities (`summed_log_prob`); benchmarks/iw_nll_speed.py measures it against matmul speed.
    bits/dim           NLL / (number of data entries * ln 2); for text, per predicted token (words and <eos>)
    perplexity         text: exp(total NLL / words), per word as Bowman et al. 2016 report it, and per token
    active units       dimension d is active when Cov_x(E_q[z_d]) > 0.01 (Burda et al. 2016)
    mutual information I(x; z) under q(x, z) = p_data(x) q(z|x) (Hoffman & Johnson 2016), estimated as in He et
                       al. 2019: E_x[-H(q(z|x))] - E_x E_q(z|x)[log q(z)], the aggregate posterior q(z) the mean
                       of the N examples' q(z|x_j), one z per example; it is at most log N (N <= MI_EXAMPLES)
    KL per dimension   mean over x of KL(q(z_d|x) || p(z_d)): closed form for factorised priors, a Monte Carlo
                       estimate against the prior's 1-D marginals for mixture priors
    sharpness          mean gradient magnitude of images, sqrt(dx^2 + dy^2) of neighbouring-pixel differences,
                       for reconstructions and data; their ratio (< 1: blurrier than the data) measures blur
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import torch

from .core.distributions import log_mean_exp, summed_log_prob
from .core.limits import FLOAT_BYTES
from .core.progress import progress as progress_bar
from .core.runtime import to_model
from .modalities import modality_of
from .models.base import split_per_layer
from .models.vae import VAE, Batch
from .objectives import ELBO
from .posteriors import is_diagonal_normal
from .priors import DIAGNOSTIC_SEED

ACTIVE_UNIT_THRESHOLD = 0.01
# Examples of a split the mutual-information estimate uses (the first ones), and its z draws' seed.
MI_EXAMPLES = 2000
# Rows (samples x examples) decoded at once by the importance-sampled estimate: bounds memory. A modality whose
# rows cost more (a sentence row holds every step's recurrent state) divides it (`Modality.decode_rows_divisor`).
IW_ROWS_PER_CHUNK = 16384
# Bytes of likelihood parameters (decoder output) per thread that the importance-sampled estimate decodes in one
# pass: small enough that scoring them reads the CPU's cache rather than memory, large enough for efficient matrix
# products (about 1,000 MNIST rows a thread; benchmarks/iw_nll_speed.py measures it).
IW_PASS_BYTES = 3 * 2**20


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
    active_units: int | None  # None: a model with no per-dimension KL (a VQ-VAE's discrete codes)
    latent_dim: int
    kl_per_dim: list[float] | None
    # Hierarchical models only (None otherwise): each stochastic layer's size, KL share and active units, bottom first.
    latent_layers: list[int] | None = None
    kl_per_layer: list[float] | None = None
    active_units_per_layer: list[int] | None = None
    # Image data only (None otherwise): mean gradient magnitude of the data, of the reconstructions, and their ratio.
    sharpness_data: float | None = None
    sharpness_recon: float | None = None
    sharpness_ratio: float | None = None
    # Text only (None otherwise): words and tokens (words + <eos>) predicted, and the perplexities exp(NLL / count)
    # per word (the convention of Bowman et al. 2016) and per token.
    mutual_information: float | None = None  # I(x; z) in nats (see `mutual_information`)
    words: int | None = None
    tokens: int | None = None
    perplexity_word: float | None = None
    perplexity_token: float | None = None
    # A model kind's own diagnostics (`model.diagnostics(x, y)`: a VQ-VAE's codebook usage and perplexity).
    model_diagnostics: dict | None = None
    # True when q(z|x) is a point mass (a VQ-VAE): the importance-sampled NLL then equals the negative ELBO.
    point_mass: bool = False

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)

    def _repr_html_(self) -> str:
        """A short table for Jupyter: the losses, the likelihood, the use of the latent space."""
        from .core.html_summary import html_table

        units = None if self.active_units is None else f"{self.active_units} of {self.latent_dim}"
        rows = [("examples", self.n), ("negative ELBO (nats)", self.neg_elbo), ("reconstruction (nats)", self.recon),
                ("KL (nats)", self.kl),
                (f"NLL, {self.iw_samples:,} importance samples (nats)", None if self.point_mass else self.nll),
                ("bits per dimension", self.bits_per_dim), ("active units", units),
                ("mutual information I(x; z) (nats)", self.mutual_information),
                ("KL per layer, bottom first", None if self.kl_per_layer is None
                 else ", ".join(f"{v:.2f}" for v in self.kl_per_layer)),
                ("perplexity per word", self.perplexity_word), ("sharpness of reconstructions / data",
                                                                self.sharpness_ratio)]
        return html_table("vaekit evaluation", rows, note="lower is better for every loss; .to_dict() has them all")


@torch.no_grad()
def importance_sampled_nll(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1000,
                           chunk_rows: int = IW_ROWS_PER_CHUNK, pass_rows: int | None = None) -> torch.Tensor:
    """-log p(x) estimated with `k` importance samples from q(z|x); returns (B,) in nats.

        log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x),   z_k ~ q(z|x),   -log p(x) ~= -log mean_k w_k

    The encoder runs once per call. z is drawn `chunk_rows` rows (samples x examples) at a time, which fixes the
    random draws, and decoded and scored `pass_rows` rows at a time (None: `iw_pass_rows(model)`, what keeps a
    pass's likelihood parameters in the CPU's cache); the pass size changes no draw, only the speed. The log
    densities go through `summed_log_prob` (a few fused passes for Bernoulli and Gaussian densities), and for a
    diagonal Gaussian q(z|x), log q is computed from the standard normal draws themselves (`_draw`).
    """
    batch = x.shape[0]
    qz = model.encode(x, y)
    pz = model.prior_for(y, batch)
    if getattr(qz, "deterministic", False):  # a point-mass q (VQ-VAE): every draw is the same, one is exact
        k = 1
    per_chunk = max(1, chunk_rows // batch)  # samples drawn at once
    rows = iw_pass_rows(model) if pass_rows is None else pass_rows
    per_pass = max(1, min(per_chunk, rows // batch))  # samples decoded at once
    log_w = []
    for start in range(0, k, per_chunk):
        z, log_q = _draw(qz, min(per_chunk, k - start))  # (s, B, D), (s, B)
        for first in range(0, z.shape[0], per_pass):
            part = slice(first, first + per_pass)
            log_px = summed_log_prob(model.decode(z[part], y), x, consume=True)  # (p, B)
            log_w.append(log_px + summed_log_prob(pz, z[part]) - log_q[part])
    return -log_mean_exp(torch.cat(log_w, 0), 0)


def iw_pass_rows(model: VAE) -> int:
    """Rows (samples x examples) that the importance-sampled estimate decodes in one pass: as many as keep the
    likelihood's parameters within IW_PASS_BYTES per thread (each core has a cache of its own), at least one.

    Where OpenMP threads sleep between operations (OMP_WAIT_POLICY=PASSIVE, vaekit's choice on a busy machine,
    vaekit.core.openmp) and there are several, every parallel operation waits for the sleeping ones to wake and
    get a core back, so fewer, larger operations win: a pass then takes whole chunks (IW_ROWS_PER_CHUNK rows;
    on 2 busy cores 1.4x faster than cache-sized passes, which were slower there than the old estimator)."""
    threads = torch.get_num_threads()
    if threads > 1 and os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        return IW_ROWS_PER_CHUNK
    per_row = math.prod(model.event_shape) * getattr(model.likelihood, "params_per_entry", 1) * FLOAT_BYTES
    return max(1, IW_PASS_BYTES * threads // per_row)


def _draw(qz, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws z ~ q(z|x) (n, B, D) and log q(z|x) at them (n, B).

    For a diagonal Gaussian, z = mu + sigma * eps from the same standard normal draws eps as `qz.sample` takes
    (torch.normal computes eps * sigma + mu), and log q(z|x) = -sum_d [log sigma_d + eps_d^2 / 2 + log(2 pi) / 2]
    needs no division by sigma. Other posteriors (flows, hierarchies) sample and score themselves."""
    if not is_diagonal_normal(qz):
        z = qz.sample((n,))
        return z, qz.log_prob(z)
    normal = qz.base_dist  # loc, scale (B, D)
    eps = torch.randn((n, *normal.loc.shape), dtype=normal.loc.dtype, device=normal.loc.device)
    z = (eps * normal.scale).add_(normal.loc)
    log_norm = normal.scale.log().sum(-1) + 0.5 * normal.loc.shape[-1] * math.log(2 * math.pi)  # (B,)
    return z, eps.square_().sum(-1).mul_(-0.5).sub_(log_norm)


@torch.no_grad()
def posterior_means(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    """E_q[z|x] for every example, (N, D)."""
    return torch.cat([
        model.embed(x[i : i + batch_size], None if y is None else y[i : i + batch_size])
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
    mutual_information: float | None = None  # I(x; z) in nats (`mutual_information`)
    # Hierarchical models (None otherwise): the KL and the active units of each stochastic layer, bottom first.
    kl_per_layer: list[float] | None = None
    active_units_per_layer: list[int] | None = None


def per_layer(model: VAE, kl_per_dim: list[float], variances: list[float],
              threshold: float = ACTIVE_UNIT_THRESHOLD) -> tuple[list[float] | None, list[int] | None]:
    """A hierarchical model's KL (nats) and active units of each stochastic layer, bottom first; (None, None) for
    a model with one stochastic layer."""
    layers = model.capabilities.layers
    if not layers:
        return None, None
    kl = [sum(part) for part in split_per_layer(kl_per_dim, layers)]
    units = [sum(v > threshold for v in part) for part in split_per_layer(variances, layers)]
    return kl, units


def mutual_information(loc: torch.Tensor, scale: torch.Tensor, generator: torch.Generator | None = None,
                       chunk: int = 1024) -> float:
    """I(x; z) in nats of diagonal Gaussian posteriors with means `loc` and scales `scale` (N, D), one per
    example: E_i[log q(z_i|x_i)] - E_i[log (1/N) sum_j q(z_i|x_j)], z_i ~ q(z|x_i) (He et al. 2019).

    The pairwise log densities are matrix products, `chunk` rows at a time ((chunk, N) values), expanding the
    square: with precisions P = 1/sigma^2 (N, D),
        log q(z_i|x_j) = -sum_d log sigma_jd - D log(2 pi)/2
                         - (z_i^2 . P_j - 2 z_i . (mu_j P_j) + mu_j^2 . P_j) / 2.
    The estimate lies in [0, log N] up to sampling noise: N examples cannot show more information than that."""
    loc, scale = loc.double(), scale.double()
    n, d = loc.shape
    eps = torch.randn(loc.shape, generator=generator, dtype=torch.float64).to(loc.device)
    z = loc + scale * eps  # (N, D): one draw from each posterior
    # log q(z_i | x_i): the Gaussian at its own draw, -sum_d [log sigma_d + log(2 pi) / 2 + eps_d^2 / 2]
    own = -(scale.log() + 0.5 * math.log(2 * math.pi) + 0.5 * eps ** 2).sum(-1)
    precision = scale.pow(-2)  # (N, D)
    weighted = loc * precision  # (N, D)
    # the terms of log q(z_i|x_j) that depend on j alone (N,)
    per_j = scale.log().sum(-1) + 0.5 * d * math.log(2 * math.pi) + 0.5 * (loc * weighted).sum(-1)
    aggregate = []
    for start in range(0, n, chunk):
        zi = z[start : start + chunk]  # (c, D)
        logq = -0.5 * (zi * zi) @ precision.T + zi @ weighted.T - per_j  # (c, N)
        aggregate.append(torch.logsumexp(logq, dim=1) - math.log(n))
    return float((own - torch.cat(aggregate)).mean())


@torch.no_grad()
def posterior_diagnostics(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None,
                          batch_size: int = 1024, mask: torch.Tensor | None = None) -> PosteriorDiagnostics:
    """KL(q(z_d|x) || p(z_d)) averaged over `x` and the active-unit count, in one pass of the encoder
    (`mask`: 1 = observed, for data with missing entries). `x` is read in slices of `batch_size` rows, so a
    streamed split (`vaekit.data.streaming.Rows`) needs memory for one slice and the (N, D) posterior means."""
    was_training = model.training
    model.eval()
    y = y if model.conditional else None
    kl = KLPerDim(model)
    means, scales = [], []
    for start in range(0, x.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        qz = model.encode(to_model(model, x[rows]), None if y is None else to_model(model, y[rows]),
                          None if mask is None else to_model(model, mask[rows]))
        kl.add(qz)
        means.append(qz.mean)
        scales.append(qz.base_dist.scale[: max(0, MI_EXAMPLES - start)])
    model.train(was_training)
    count, variances = active_units(torch.cat(means))
    loc = torch.cat(means)[:MI_EXAMPLES]
    mi = mutual_information(loc, torch.cat(scales), torch.Generator().manual_seed(DIAGNOSTIC_SEED)) \
        if loc.shape[0] > 1 else None
    kl_per_dim = kl.mean().tolist()
    kl_layers, units_layers = per_layer(model, kl_per_dim, variances.tolist())
    return PosteriorDiagnostics(kl_per_dim=kl_per_dim, active_units=count, variances=variances.tolist(),
                                mutual_information=mi, kl_per_layer=kl_layers, active_units_per_layer=units_layers)


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
    """All metrics of the module docstring over the examples `x` (labels `y` for conditional models). `x` may be
    a streamed split's rows (`vaekit.data.streaming.Rows`): it is read `batch_size` rows at a time."""

    model.eval()
    y = y if model.conditional else None
    modality = modality_of(model)
    # in the given order (the MI estimate takes the first ones); a model kind without a per-dimension KL (a VQ-VAE)
    # reports its own diagnostics instead
    per_dimension = model.capabilities.kl_per_dimension
    diagnostics = posterior_diagnostics(model, x, y) if per_dimension else None
    own = getattr(model, "diagnostics", None)
    own = own(x, y) if own is not None else None
    order = modality.evaluation_order(x)
    if order is not None:  # e.g. sentences of similar length together (the means do not depend on order)
        x, y = x[order], None if y is None else y[order]
    chunk_rows = IW_ROWS_PER_CHUNK // modality.decode_rows_divisor
    elbo = ELBO()
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "nll": 0.0}
    image = is_image_shape(model.event_shape)
    sharp = {"data": 0.0, "recon": 0.0}
    for start in progress_bar(range(0, x.shape[0], batch_size), disable=not progress, desc="evaluating", unit="batch"):
        xb = to_model(model, x[start : start + batch_size])  # the data stay on the CPU, a batch at a time
        yb = None if y is None else to_model(model, y[start : start + batch_size])
        terms = elbo(model, Batch(xb, yb)).terms
        for key in ("loss", "recon", "kl"):
            sums[key] += float(terms[key].sum())
        sums["nll"] += float(importance_sampled_nll(model, xb, yb, iw_samples, chunk_rows).sum())
        if image:
            sharp["data"] += float(sharpness(xb).sum())
            sharp["recon"] += float(sharpness(model.reconstruct(xb, yb)).sum())
    n = x.shape[0]
    nll = sums["nll"] / n
    sharp = {key: value / n for key, value in sharp.items()}
    counts = modality.evaluation_counts(x, sums["nll"])  # e.g. words, tokens and perplexities of sentences
    return EvalResult(
        n=n,
        neg_elbo=sums["loss"] / n,
        recon=sums["recon"] / n,
        kl=sums["kl"] / n,
        nll=nll,
        iw_samples=iw_samples,
        # per value of an example: a pixel, a column, a predicted token of a sentence (not the padding)
        bits_per_dim=nll / (modality.units(x, model.event_shape) * math.log(2)),
        active_units=diagnostics.active_units if diagnostics else None,
        latent_dim=model.latent_dim,
        kl_per_dim=diagnostics.kl_per_dim if diagnostics else None,
        latent_layers=None if model.capabilities.layers is None else list(model.capabilities.layers),
        kl_per_layer=diagnostics.kl_per_layer if diagnostics else None,
        active_units_per_layer=diagnostics.active_units_per_layer if diagnostics else None,
        mutual_information=diagnostics.mutual_information if diagnostics else None,
        model_diagnostics=own,
        point_mass=not per_dimension and getattr(model.encode(to_model(model, x[:1]), None if y is None else
                                                              to_model(model, y[:1])), "deterministic", False),
        sharpness_data=sharp["data"] if image else None,
        sharpness_recon=sharp["recon"] if image else None,
        sharpness_ratio=sharp["recon"] / sharp["data"] if image and sharp["data"] > 0 else None,
        **counts,
    )
