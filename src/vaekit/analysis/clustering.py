"""Clustering latent codes, scored against labels, next to the same clustering of the raw inputs and of a PCA.

Clusterers (scikit-learn): k-means (Lloyd, k-means++ seeding) and a Gaussian mixture fitted by EM (full
covariances up to `FULL_COVARIANCE_MAX_DIM` features, diagonal above, where full ones are slow and singular).
Scores, when labels exist:
    ARI       adjusted Rand index (Hubert & Arabie 1985): pair agreement corrected for chance, 0 random, 1 perfect
    NMI       normalised mutual information I(y; c) / mean(H(y), H(c)) (arithmetic mean, scikit-learn's default)
    accuracy  the best one-to-one matching of clusters to labels (Hungarian algorithm, Kuhn 1955), as in
              unsupervised-clustering papers (e.g. Xie et al. 2016, DEC; Jiang et al. 2017, VaDE)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ..core.progress import progress as progress_bar
from ..errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("kmeans", "gmm")
FULL_COVARIANCE_MAX_DIM = 64


@dataclass(frozen=True)
class ClusterScores:
    """Agreement of a clustering with the labels (see the module docstring)."""

    ari: float
    nmi: float
    accuracy: float


@dataclass(frozen=True)
class ClusteringResult:
    """One clustering: which features (`features`, of `dim` columns), which `method`, `k` clusters, the
    `assignments` (N,), the `scores` (None without labels) and the time it took (seconds)."""

    features: str
    dim: int
    method: str
    k: int
    assignments: np.ndarray
    scores: ClusterScores | None
    seconds: float

    def to_dict(self) -> dict:
        """JSON-ready summary (without the assignments)."""
        row = {"features": self.features, "dim": self.dim, "method": self.method, "k": self.k,
               "seconds": round(self.seconds, 3)}
        if self.scores is not None:
            row.update(ari=self.scores.ari, nmi=self.scores.nmi, accuracy=self.scores.accuracy)
        return row


def match_clusters(y_true: np.ndarray, y_pred: np.ndarray) -> dict[int, int]:
    """The one-to-one cluster -> label assignment with the most agreeing examples (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    counts = np.zeros((y_pred.max() + 1, y_true.max() + 1), dtype=np.int64)  # (clusters, labels)
    np.add.at(counts, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols)}


def clustering_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of examples whose cluster is matched to their label by the best one-to-one matching."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check_pair(y_true, y_pred)
    mapping = match_clusters(y_true, y_pred)
    matched = np.array([mapping.get(int(c), -1) for c in y_pred])
    return float((matched == y_true).mean())


def score_clustering(y_true: np.ndarray, y_pred: np.ndarray) -> ClusterScores:
    """ARI, NMI and Hungarian accuracy of cluster assignments `y_pred` against labels `y_true` (both (N,))."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    _check_pair(np.asarray(y_true), np.asarray(y_pred))
    return ClusterScores(ari=float(adjusted_rand_score(y_true, y_pred)),
                         nmi=float(normalized_mutual_info_score(y_true, y_pred)),
                         accuracy=clustering_accuracy(y_true, y_pred))


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise ConfigError(f"labels {y_true.shape} and cluster assignments {y_pred.shape} must be two equal (N,) arrays")
    if y_true.min() < 0 or y_pred.min() < 0:
        raise ConfigError("labels and cluster numbers must be non-negative integers")


def cluster(features: np.ndarray, k: int, method: str = "kmeans", seed: int = 0) -> np.ndarray:
    """Cluster assignments (N,) of `features` (N, F) into `k` clusters by `method` ("kmeans" or "gmm")."""
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if method not in METHODS:
        raise ConfigError(f"unknown clustering method {method!r}; choose one of {', '.join(METHODS)}")
    if not 1 <= k <= features.shape[0]:
        raise ConfigError(f"--k must be between 1 and the number of examples ({features.shape[0]}), got {k}")
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(features)
    from sklearn.mixture import GaussianMixture

    full = features.shape[1] <= FULL_COVARIANCE_MAX_DIM
    gmm = GaussianMixture(n_components=k, covariance_type="full" if full else "diag", n_init=3 if full else 1,
                          reg_covar=1e-4, max_iter=200, random_state=seed)
    return gmm.fit(features).predict(features)


def cluster_and_score(features: np.ndarray, k: int, method: str, labels: np.ndarray | None, name: str,
                      seed: int = 0) -> ClusteringResult:
    """`cluster`, timed and scored against `labels` when given."""
    started = time.perf_counter()
    assignments = cluster(features, k, method, seed)
    seconds = time.perf_counter() - started
    scores = None if labels is None else score_clustering(labels, assignments)
    log.info("%s on %s: %s (%.1f s)", method, name, scores, seconds)
    return ClusteringResult(features=name, dim=int(np.prod(features.shape[1:])), method=method, k=k,
                            assignments=assignments, scores=scores, seconds=seconds)


def compare_clusterings(latent: np.ndarray, inputs: np.ndarray | None, labels: np.ndarray | None, k: int,
                        methods: tuple[str, ...] = METHODS, seed: int = 0,
                        progress: bool = False) -> list[ClusteringResult]:
    """Each method on the latent means (N, D); with `inputs` (N, ...) also on the raw inputs and on their PCA
    with D components, so that the scores show what the latent space adds over the data itself."""

    latent = np.asarray(latent)
    feature_sets = [("latent means", latent)]
    if inputs is not None:
        raw = np.asarray(inputs, dtype=np.float32).reshape(len(inputs), -1)
        if raw.shape[0] != latent.shape[0]:
            raise ConfigError(f"{raw.shape[0]} inputs for {latent.shape[0]} latent codes")
        from sklearn.decomposition import PCA

        n_comp = min(latent.shape[1], *raw.shape)
        feature_sets += [("raw inputs", raw),
                         (f"PCA of inputs ({n_comp} dims)", PCA(n_comp, random_state=seed).fit_transform(raw))]
    jobs = [(name, features, method) for name, features in feature_sets for method in methods]
    results = []
    for name, features, method in progress_bar(jobs, disable=not progress, desc="clustering", unit="fit", leave=False):
        results.append(cluster_and_score(features, k, method, labels, name, seed))
    return results


def matched_confusion(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Confusion counts (labels, clusters) with the clusters' columns ordered by their matched label, so that the
    diagonal holds the matched pairs; returns the matrix and the cluster number of each column."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    mapping = match_clusters(y_true, y_pred)
    clusters = sorted(set(int(c) for c in np.unique(y_pred)),
                      key=lambda c: (mapping.get(c, 10**9), c))  # matched first, in label order
    matrix = np.zeros((int(y_true.max()) + 1, len(clusters)), dtype=np.int64)
    column = {c: j for j, c in enumerate(clusters)}
    np.add.at(matrix, (y_true, np.array([column[int(c)] for c in y_pred])), 1)
    return matrix, clusters
