"""Projecting latent codes to 2 or 3 dimensions for plotting.

    none   the codes themselves, when the latent space already has the plotted number of dimensions
    pca    principal component analysis (scikit-learn), linear, fast, keeps global distances
    tsne   t-SNE (van der Maaten & Hinton 2008): openTSNE (Policar et al. 2019) when installed and 2-D,
           else scikit-learn's Barnes-Hut implementation; keeps neighbourhoods, not global distances
    umap   UMAP (McInnes et al. 2018) from umap-learn (optional: `pip install umap-learn`)
    auto   `none` when the latent space has exactly `dims` dimensions, else `pca`
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

log = logging.getLogger(__name__)
# Non-empty once UMAP has run in this process (its compile is then done): the notice is given once.
_umap_ran: list[bool] = []

METHODS = ("auto", "none", "pca", "tsne", "umap")
DEFAULT_PERPLEXITY = 30.0


@dataclass(frozen=True)
class Projection:
    """`coords` (N, dims) of the projected codes, the method used, axis names, and how long it took (seconds)."""

    coords: np.ndarray
    method: str
    axis_names: tuple[str, ...]
    seconds: float
    explained_variance: np.ndarray | None = None  # PCA: fraction of variance per component


def check_dims(latent_dim: int, dims: int) -> None:
    """A ConfigError unless a `dims`-D plot of a `latent_dim`-D space makes sense (1-D spaces plot in 2-D only)."""
    if dims not in (2, 3):
        raise ConfigError(f"plots have 2 or 3 dimensions, got --dims {dims}")
    if latent_dim < dims and not (latent_dim == 1 and dims == 2):
        raise ConfigError(f"a {dims}D plot needs at least {dims} latent dimensions but this model has {latent_dim}; "
                          f"use --dims 2")


def resolve_method(method: str, latent_dim: int, dims: int) -> str:
    """The concrete method `auto` stands for, checked against the dimensions."""
    if method not in METHODS:
        raise ConfigError(f"unknown projection method {method!r}; choose one of {', '.join(METHODS)}")
    if latent_dim == 1:
        return "none"  # nothing to project: z against the example's position
    if method == "auto":
        return "none" if latent_dim == dims else "pca"
    if method == "none" and latent_dim != dims:
        raise ConfigError(f"method 'none' plots the codes themselves, which needs a {dims}-D latent space; this "
                          f"one has {latent_dim} dimensions: use --method pca, tsne or umap")
    return method


def project(z: np.ndarray, dims: int = 2, method: str = "auto", *, seed: int = 0, n_jobs: int | None = None,
            perplexity: float = DEFAULT_PERPLEXITY, neighbors: int = 15) -> Projection:
    """Projects codes `z` (N, D) to (N, dims) with `method` (see the module docstring); `z` is not modified."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or z.shape[0] == 0:
        raise ConfigError(f"expected codes of shape (N, D), got {z.shape}")
    check_dims(z.shape[1], dims)
    method = resolve_method(method, z.shape[1], dims)
    started = time.perf_counter()
    explained = None
    if method == "none" and z.shape[1] == 1:
        coords = np.stack([z[:, 0], np.arange(z.shape[0], dtype=np.float32)], 1)  # (N, 2): z0 against position
        names = ("z0", "example")
    elif method == "none":
        coords = z.copy()
        names = tuple(f"z{i}" for i in range(dims))
    elif method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=dims, random_state=seed)
        coords = pca.fit_transform(z)
        explained = pca.explained_variance_ratio_
        names = tuple(f"PC{i + 1} ({100 * v:.0f}% of variance)" for i, v in enumerate(explained))
    elif method == "tsne":
        coords = _tsne(z, dims, seed, n_jobs, perplexity)
        names = tuple(f"t-SNE {i + 1}" for i in range(dims))
    else:
        coords = _umap(z, dims, seed, n_jobs, neighbors)
        names = tuple(f"UMAP {i + 1}" for i in range(dims))
    seconds = time.perf_counter() - started
    log.info("%s of %d codes to %dD took %.1f s", method, z.shape[0], dims, seconds)
    return Projection(coords=np.asarray(coords, dtype=np.float32), method=method, axis_names=names,
                      seconds=seconds, explained_variance=explained)


def _tsne(z: np.ndarray, dims: int, seed: int, n_jobs: int | None, perplexity: float) -> np.ndarray:
    n = z.shape[0]
    if n < 4:
        raise ConfigError(f"t-SNE needs at least 4 points, got {n}; use --method pca")
    # Perplexity must stay below the number of neighbours available: (n - 1) / 3 is openTSNE's rule.
    perplexity = float(min(perplexity, (n - 1) / 3))
    if dims == 2:
        try:
            from openTSNE import TSNE as OpenTSNE

            log.info("t-SNE with openTSNE (perplexity %.1f)", perplexity)
            return np.asarray(OpenTSNE(n_components=2, perplexity=perplexity, random_state=seed,
                                       n_jobs=n_jobs or 1).fit(z))
        except ImportError:
            pass
    from sklearn.manifold import TSNE

    log.info("t-SNE with scikit-learn (perplexity %.1f)", perplexity)
    return TSNE(n_components=dims, perplexity=perplexity, init="pca", random_state=seed,
                n_jobs=n_jobs).fit_transform(z)


def require_backend(method: str) -> None:
    """A ConfigError saying how to install the package `method` needs, when it is missing (UMAP only)."""
    if method == "umap":
        try:
            import umap  # noqa: F401
        except ImportError:
            raise ConfigError("UMAP needs the package umap-learn, which is not installed: run `pip install "
                              "umap-learn` (or `pip install vaekit[umap]`), or use --method tsne or pca") from None
        except Exception as error:  # noqa: BLE001 - e.g. umap-learn's numba code failing to compile with this numba
            first = str(error).splitlines()[0] if str(error) else ""
            raise ConfigError(f"umap-learn is installed but cannot be loaded here ({type(error).__name__}: "
                              f"{first[:120]}); upgrade umap-learn and numba together, or use --method tsne or "
                              "pca") from None


def _umap(z: np.ndarray, dims: int, seed: int, n_jobs: int | None, neighbors: int) -> np.ndarray:
    require_backend("umap")
    if not _umap_ran:
        # umap-learn's numba code compiles on its first use in a process: say so, rather than sit silent
        log.warning("UMAP: compiling its numerical code on first use in this process (up to half a minute) ...")
    import umap
    n = z.shape[0]
    if n < 4:
        raise ConfigError(f"UMAP needs at least 4 points, got {n}; use --method pca")
    import warnings

    with warnings.catch_warnings():
        # umap-learn warns that a fixed random_state disables its parallelism; that is the point of seeding.
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        reducer = umap.UMAP(n_components=dims, n_neighbors=min(neighbors, n - 1), random_state=seed,
                            n_jobs=n_jobs or 1)
        coords = reducer.fit_transform(z)
    _umap_ran.append(True)
    return coords
