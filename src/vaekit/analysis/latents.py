"""Embedding a data set: the amortised posterior q(z|x) = N(mu(x), diag sigma^2(x)) of every example.

The posterior means are the usual "latent codes" (Kingma & Welling 2014); their per-dimension KL to the prior
says how much information each dimension carries, and dimensions with (almost) no KL are collapsed
(Burda et al. 2016 call the others "active units").

    KL_d = mean over x of KL(q(z_d|x) || p(z_d))   (nats; closed form for factorised priors such as the normal
                                                    prior, Monte Carlo for mixtures: `vaekit.evaluate.KLPerDim`)

An `Embedding` is saved (`vaekit.commands.outputs.save_embedding`) to / read from `.npz` with the keys
    mean (N, D), var (N, D), index (N,), [labels (N,)], [samples (S, N, D)], [kl_per_dim (D,)]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.progress import progress as progress_bar
from ..data.common import load_npy, load_npz, open_image
from ..errors import DataError
from ..evaluate import ACTIVE_UNIT_THRESHOLD, KLPerDim
from ..models.vae import VAE

log = logging.getLogger(__name__)

# A dimension is active when its posterior mean varies across the data, Cov_x(E_q[z_d]) > ACTIVE_UNIT_THRESHOLD
# (Burda et al. 2016): the one definition of eval, metrics.jsonl, `latent embed`, traversals and the explorer.
# A dimension that is not active is collapsed. (COLLAPSED_KL: the name earlier versions exported.)
COLLAPSED_KL = ACTIVE_UNIT_THRESHOLD


@dataclass(frozen=True)
class Embedding:
    """Posterior parameters of N examples: `mean`/`var` (N, D), optional `samples` (S, N, D) and `labels` (N,).

    `index` (N,) gives each row's position in the split it came from (it differs from 0..N-1 after subsampling);
    `kl_per_dim` (D,) is the mean KL of each dimension to the prior (None only in files written without it).
    """

    mean: np.ndarray
    var: np.ndarray
    index: np.ndarray
    labels: np.ndarray | None = None
    samples: np.ndarray | None = None
    kl_per_dim: np.ndarray | None = None

    def __len__(self) -> int:
        return self.mean.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.mean.shape[1]

    def informativeness(self) -> np.ndarray:
        """Per-dimension score used to rank dimensions: the KL when known, else the variance of the means (D,)."""
        if self.kl_per_dim is not None:
            return self.kl_per_dim
        return self.mean.var(0) if len(self) > 1 else np.zeros(self.latent_dim)

    def active(self, threshold: float = ACTIVE_UNIT_THRESHOLD) -> np.ndarray:
        """(D,) bool: the active units of these examples, Cov_x(E_q[z_d]) > `threshold` (as `vaekit eval` counts
        them, `vaekit.evaluate.active_units`); none for fewer than 2 examples."""
        if len(self) < 2:
            return np.zeros(self.latent_dim, dtype=bool)
        return self.mean.astype(np.float64).var(0, ddof=1) > threshold

    def collapsed(self, threshold: float = ACTIVE_UNIT_THRESHOLD) -> np.ndarray:
        """(D,) bool: the dimensions that are not active units."""
        return ~self.active(threshold)

    def subset(self, rows: np.ndarray) -> "Embedding":
        """The embedding of the given rows (a new object; this one is unchanged)."""
        return Embedding(
            mean=self.mean[rows], var=self.var[rows], index=self.index[rows],
            labels=None if self.labels is None else self.labels[rows],
            samples=None if self.samples is None else self.samples[:, rows],
            kl_per_dim=self.kl_per_dim,
        )


def subsample_indices(n: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    """All of 0..n-1 when n <= max_points, else `max_points` of them drawn without replacement, sorted."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 1:
        raise DataError(f"max_points must be at least 1, got {max_points}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


@torch.no_grad()
def encode_dataset(
    model: VAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    n_samples: int = 0,
    batch_size: int = 512,
    seed: int = 0,
    progress: bool = False,
) -> Embedding:
    """q(z|x) of every example of `x` (N, *event): means, variances, `n_samples` draws, and the KL per dimension.

    `y` (N,) is kept as the embedding's labels; conditional models also see it when encoding. `x` is read in
    slices of `batch_size` rows, so it may be a streamed split's rows (`vaekit.data.streaming.Rows`): memory is
    then one slice plus the (N, D) results.
    """

    if x.ndim < 2 or x.shape[0] == 0:
        raise DataError(f"nothing to encode: expected examples of shape (N, *event), got {tuple(x.shape)}")
    if n_samples < 0:
        raise DataError(f"n_samples must be >= 0, got {n_samples}")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    means, variances, draws = [], [], []
    kl = KLPerDim(model)
    device = next(model.parameters()).device
    starts = range(0, x.shape[0], batch_size)
    for start in progress_bar(starts, disable=not progress, desc="encoding", unit="batch", leave=False):
        xb = x[start : start + batch_size].to(device)
        yb = None if (y is None or not model.conditional) else y[start : start + batch_size].to(device)
        qz = model.encode(xb, yb)
        mu, sigma = qz.mean, qz.base_dist.scale  # (B, D) each
        means.append(mu.cpu())
        variances.append(sigma.pow(2).cpu())
        if n_samples:
            eps = torch.randn((n_samples, *mu.shape), generator=generator).to(mu)  # (S, B, D)
            draws.append((mu + sigma * eps).cpu())  # z = mu + sigma * eps
        kl.add(qz)
    n = x.shape[0]
    return Embedding(
        mean=torch.cat(means).numpy(),
        var=torch.cat(variances).numpy(),
        index=np.arange(n),
        labels=None if y is None else y.cpu().numpy().astype(np.int64),
        samples=torch.cat(draws, 1).numpy() if n_samples else None,
        # none for a model without a per-dimension KL (a VQ-VAE's codes): the variance of the means ranks them
        kl_per_dim=kl.mean().numpy().astype(np.float32) if model.capabilities.kl_per_dimension else None,
    )


def embedding_arrays(embedding: Embedding) -> dict[str, np.ndarray]:
    """The arrays of an embedding file (keys in the module docstring), as `vaekit.commands.outputs.save_embedding`
    writes them."""
    arrays = {"mean": embedding.mean, "var": embedding.var, "index": embedding.index}
    for key in ("labels", "samples", "kl_per_dim"):
        value = getattr(embedding, key)
        if value is not None:
            arrays[key] = value
    return arrays


def load_embedding(path: str | Path) -> Embedding:
    """Reads what `vaekit.commands.outputs.save_embedding` wrote."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not an embedding file; write one with `vaekit latent embed`")
    try:
        arrays = load_npz(path)  # a .npy, text or any other non-zip file is a DataError
    except DataError as error:
        raise DataError(f"{error}; write an embedding with `vaekit latent embed`") from None
    missing = [key for key in ("mean", "var") if key not in arrays]
    if missing:
        raise DataError(f"{path}: not an embedding file (missing {', '.join(missing)}); write one with "
                        f"`vaekit latent embed`")
    n = arrays["mean"].shape[0]
    return Embedding(
        mean=arrays["mean"], var=arrays["var"], index=arrays.get("index", np.arange(n)),
        labels=arrays.get("labels"), samples=arrays.get("samples"), kl_per_dim=arrays.get("kl_per_dim"),
    )


def read_example(path: str | Path, event_shape: tuple[int, ...]) -> torch.Tensor:
    """One example (*event_shape) from a `.npy` array or an image file (PNG/JPEG, grey levels scaled to [0, 1]);
    a DataError when it does not have the model's shape."""
    path = Path(path)
    shape = tuple(event_shape)
    if path.suffix.lower() == ".npy":
        array = load_npy(path)  # its header checked against the file and the memory budget first
        if array.dtype.kind not in "biuf":
            raise DataError(f"{path} holds {array.dtype} values; give numbers")
        array = array.astype(np.float32)
    else:
        from PIL import UnidentifiedImageError

        if len(shape) != 3:
            raise DataError(f"{path}: this model's data are not images (shape {shape}); give a .npy array")
        try:
            with open_image(path) as image:  # its size checked from the header before anything is decoded
                image = image.convert("L" if shape[0] == 1 else "RGB")
                array = np.asarray(image, dtype=np.float32) / 255.0  # grey levels 0..255 -> [0, 1]
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"{path}: cannot read the image ({error})") from None
        if array.shape[:2] != shape[1:]:
            raise DataError(f"{path} is {array.shape[1]}x{array.shape[0]} pixels but the model expects "
                            f"{shape[2]}x{shape[1]}: resize it first")
        array = array.reshape(shape[1], shape[2], -1).transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    if array.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {array.size} values but the model's examples have shape {shape}")
    return torch.from_numpy(np.ascontiguousarray(array).reshape(shape))
