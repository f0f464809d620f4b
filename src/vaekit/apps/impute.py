"""Missing-data imputation with a VAE: MIWAE training, importance-sampling and Gibbs-style imputation.

Training (MIWAE, Mattei & Frellsen 2019): missing entries are zero-filled, the encoder reads [x * m, m] so that
it knows which entries are missing (the `mlp` network with `mask_input`), and the likelihood counts observed
entries only (m = 1 observed); `VAEImputer` trains such a model with `vaekit.fit`:
    L_K(x_obs) = E[log (1/K) sum_k p(x_obs | z_k) p(z_k) / q(z_k | x_obs)],   z_k ~ q(z | x_obs)
Imputation given a trained model (any VAE: the MIWAE model here, or a run trained on complete images):
    importance sampling   w_k ∝ p(x_obs | z_k) p(z_k) / q(z_k | x_obs);  single imputation = sum_k w_k E[x_mis | z_k];
                          multiple imputation = sampling importance resampling: k ~ Cat(w), x_mis ~ p(x_mis | z_k)
    pseudo-Gibbs          z ~ q(z | x^), x^_mis ~ p(x_mis | z), repeated                    (Rezende et al. 2014)
    Metropolis-within-Gibbs  z' ~ q(z | x^) accepted with prob. min(1, [p(x^|z') p(z') q(z|x^)] /
                          [p(x^|z) p(z) q(z'|x^)]), then x^_mis ~ p(x_mis | z)               (Mattei & Frellsen 2018)
The Gibbs-style single imputation is the chain average of E[x_mis | z_t] after burn-in.
`VAEImputer` (module `vaekit.apps.imputer`) wraps this in scikit-learn's imputer API.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core import limits
from ..core.distributions import Masked
from ..core.progress import progress as progress_bar
from ..core.rng import seeded
from ..core.runtime import to_model
from ..errors import ConfigError, DataError
from ..models.vae import VAE

METHODS = ("importance", "pseudo-gibbs", "metropolis")
ROWS_BUDGET = 4_000_000


@torch.no_grad()
def impute_importance(model: VAE, x: torch.Tensor, mask: torch.Tensor, k: int = 1000,
                      draws: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Importance-sampling imputation of the entries where `mask` is 0.

    Returns the completed data (B, *event) with E[x_mis | x_obs] filled in, and with `draws` > 0 also
    `draws` resampled completions (draws, B, *event) (multiple imputation). Observed entries are kept.
    """
    rows = int(k) * int(x.shape[0])
    event = math.prod(model.event_shape)
    params = getattr(model.likelihood, "params_per_entry", 1)
    limits.check_allocation(rows * (3 * model.latent_dim + (params + 4) * event) * limits.FLOAT_BYTES,
                            f"importance sampling with {int(k):,} samples for {x.shape[0]:,} examples")
    mask = mask.to(x.dtype)
    x = x * mask
    qz = model.encode(x, mask=mask)
    z = qz.sample((k,))  # (K, B, D)
    px = model.decode(z)
    log_w = Masked(px, mask).log_prob(x) + model.prior().log_prob(z) - qz.log_prob(z)  # (K, B)
    w = torch.softmax(log_w, dim=0)  # normalised over K
    w_full = w.view(*w.shape, *([1] * (x.dim() - 1)))  # (K, B, 1, ...)
    mean = (w_full * px.mean).sum(0)  # (B, *event)
    filled = torch.where(mask.bool(), x, mean)
    if draws <= 0:
        return filled, None
    pick = torch.multinomial(w.T, draws, replacement=True).T  # (draws, B): resampled index of z per example
    chosen = z[pick, torch.arange(x.shape[0], device=z.device)]  # (draws, B, D)
    sampled = model.decode(chosen).sample()  # (draws, B, *event)
    return filled, torch.where(mask.bool(), x, sampled)


@torch.no_grad()
def impute_gibbs(model: VAE, x: torch.Tensor, mask: torch.Tensor, steps: int = 200, metropolis: bool = True,
                 burn_in: float = 0.5, init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-Gibbs (`metropolis=False`) or Metropolis-within-Gibbs imputation of the entries where `mask` is 0.

    Returns (completed data with the chain average of E[x_mis | z_t] after `burn_in` of the steps,
    the last draw of the chain); both (B, *event), observed entries kept. `init` fills the missing entries
    at the start (default: importance-sampling imputation with 100 samples).
    """
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    mask = mask.to(x.dtype)
    keep = mask.bool()
    x = x * mask
    current = init if init is not None else impute_importance(model, x, mask, k=100)[0]
    current = torch.where(keep, x, current)
    prior = model.prior()
    ones = torch.ones_like(mask)

    def log_joint_over_q(qz, z, xc):  # log p(x^|z) + log p(z) - log q(z|x^), (B,)
        return model.decode(z).log_prob(xc) + prior.log_prob(z) - qz.log_prob(z)

    qz = model.encode(current, mask=ones)
    z = qz.sample()  # (B, D)
    first_kept = int(steps * burn_in)
    total = torch.zeros_like(x)
    for step in range(steps):
        qz = model.encode(current, mask=ones)  # the proposal, built from the current completion
        proposal = qz.sample()
        if metropolis:
            log_alpha = log_joint_over_q(qz, proposal, current) - log_joint_over_q(qz, z, current)  # (B,)
            accept = torch.rand_like(log_alpha).log() < log_alpha
            z = torch.where(accept[:, None], proposal, z)
        else:
            z = proposal
        px = model.decode(z)
        current = torch.where(keep, x, px.sample())
        if step >= first_kept:
            total += px.mean
    mean = total / (steps - first_kept)
    return torch.where(keep, x, mean), current


def impute(model: VAE, x: torch.Tensor, mask: torch.Tensor, method: str = "importance", samples: int = 1000,
           batch_size: int = 256, seed: int = 0, progress: bool = False, out=None) -> torch.Tensor:
    """Single imputation of `x` (N, *event) where `mask` is 0 by `method` ("importance": `samples` importance
    samples; "pseudo-gibbs" / "metropolis": `samples` chain steps), in batches, seeded without touching the
    global RNG. Observed entries are returned unchanged.

    `x` and `mask` may be streamed rows (`vaekit.data.streaming.Rows`), read a batch at a time; `out` (an array
    or tensor (N, *event), e.g. `np.lib.format.open_memmap(path, "w+", "float32", x.shape)`) then receives the
    result batch by batch, and is returned, instead of one tensor in memory."""

    from ..data.streaming import is_streamed

    if method not in METHODS:
        raise ConfigError(f"unknown imputation method {method!r}; choose one of: {', '.join(METHODS)}")
    if samples < 1:
        raise ConfigError(f"the number of samples must be >= 1, got {samples}")
    # Bound the (samples, batch, *event) tensors that one step holds to about 4M numbers.
    batch_size = max(1, min(batch_size, ROWS_BUDGET // (samples * math.prod(x.shape[1:]))))
    if out is None and is_streamed(x):  # the completed copy would be as large as the streamed data
        limits.check_allocation(limits.nbytes(x.shape), f"imputing {x.shape[0]:,} streamed examples into memory "
                                "(pass out=, e.g. an np.lib.format.open_memmap)")
    parts = []
    with seeded(seed):
        for start in progress_bar(range(0, x.shape[0], batch_size), disable=not progress, desc="imputing",
                                  unit="batch"):
            # a batch at a time on the model's device; the results come back to the CPU
            xb, mb = to_model(model, x[start : start + batch_size]), to_model(model, mask[start : start + batch_size])
            if method == "importance":
                filled = impute_importance(model, xb, mb, k=samples)[0]
            else:
                filled = impute_gibbs(model, xb, mb, steps=samples, metropolis=method == "metropolis")[0]
            if not bool(torch.isfinite(filled).all()):  # never written as a result: say which rows
                raise DataError(f"the model's imputations of rows {start}..{start + len(filled) - 1} are not finite "
                                "(are their observed values far from the data it was trained on?)")
            if out is None:
                parts.append(filled.cpu())
            else:  # written as it is made: memory stays one batch
                filled = filled.cpu()
                out[start : start + filled.shape[0]] = filled.numpy() if isinstance(out, np.ndarray) else filled
    return torch.cat(parts) if out is None else out


__all__ = ["impute_importance", "impute_gibbs", "impute",
           "METHODS"]
