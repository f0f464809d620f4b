"""Mode coverage of generated 2-D samples, for data whose modes are known: how many samples land near some mode,
and how many modes get their share.

A sample is *near* mode k when its standardised distance to k is at most `threshold` (3: "within 3 standard
deviations"). The standardised distance is the Mahalanobis distance for a Gaussian component; for an arm of the
pinwheel (Johnson et al. 2016) it is the same distance measured in the arm's unwarped coordinates, where the arm is
the Gaussian N([1, 0], diag(radial_std^2, tangential_std^2)) before the rotation by angle rads_k + rate * exp(r):
the warp is inverted numerically (a grid over r, then the closest consistent point).

A mode is *covered* when at least `min_share` of its fair share (N / K samples) lands near it.

    spec = bundle.meta["modes"]                # the data set says where its modes are (ring8, pinwheel)
    report = mode_report(samples, spec)        # {"near_fraction": 0.97, "modes_covered": 8, "modes": 8, ...}
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

THRESHOLD = 3.0
MIN_SHARE = 0.1
GRID = 801  # radial grid of the pinwheel's inversion, over +- GRID_SPAN standard deviations
GRID_SPAN = 6.0


def _check_samples(samples) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        raise ConfigError(f"mode coverage needs 2-D samples of shape (N, 2), got {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError("the samples hold NaN or infinite values")
    return x


def gaussian_distances(x: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """(N, K) Mahalanobis distances of points (N, 2) to K axis-aligned Gaussians (means, stds: (K, 2))."""
    z = (x[:, None, :] - means[None]) / stds[None]  # (N, K, 2)
    return np.sqrt((z**2).sum(-1))


def pinwheel_distances(x: np.ndarray, arms: int, radial_std: float, tangential_std: float,
                       rate: float) -> np.ndarray:
    """(N, K) standardised distances of points (N, 2) to the K arms of a pinwheel (see the module docstring)."""
    r = 1.0 + radial_std * np.linspace(-GRID_SPAN, GRID_SPAN, GRID)  # (G,) candidate radial coordinates
    radius = np.linalg.norm(x, axis=1)  # (N,): a rotation keeps the norm, |f| = |x|
    angle = np.arctan2(x[:, 1], x[:, 0])  # (N,)
    out = np.empty((x.shape[0], arms))
    for k in range(arms):
        theta = 2 * np.pi * k / arms + rate * np.exp(r)  # (G,) the rotation that point f = (r, t) gets
        # unrotate x by each candidate angle: f = R(-theta) x, (N, G, 2)
        c, s = np.cos(angle[:, None] - theta[None]), np.sin(angle[:, None] - theta[None])
        f0, f1 = radius[:, None] * c, radius[:, None] * s
        consistent = np.argmin(np.abs(f0 - r[None]), axis=1)  # the grid point whose rotation maps back to x
        rows = np.arange(x.shape[0])
        u = (f0[rows, consistent] - 1.0) / radial_std
        v = f1[rows, consistent] / tangential_std
        out[:, k] = np.sqrt(u**2 + v**2)
    return out


def mode_distances(samples, spec: dict) -> np.ndarray:
    """(N, K) standardised distances of samples (N, 2) to the K modes a data set's `spec` describes."""
    x = _check_samples(samples)
    kind = spec.get("kind")
    if kind == "gaussians":
        return gaussian_distances(x, np.asarray(spec["means"], float), np.asarray(spec["stds"], float))
    if kind == "pinwheel":
        return pinwheel_distances(x, int(spec["arms"]), float(spec["radial_std"]), float(spec["tangential_std"]),
                                  float(spec["rate"]))
    raise ConfigError(f"unknown mode description {kind!r} (expected 'gaussians' or 'pinwheel')")


def mode_report(samples, spec: dict, threshold: float = THRESHOLD, min_share: float = MIN_SHARE) -> dict:
    """Share of samples near some mode, the modes covered, and each mode's count (see the module docstring)."""
    if not (math.isfinite(threshold) and threshold > 0) or not 0 < min_share <= 1:
        raise ConfigError(f"threshold must be > 0 and min_share in (0, 1], got {threshold}, {min_share}")
    d = mode_distances(samples, spec)
    nearest = d.argmin(1)
    near = d[np.arange(d.shape[0]), nearest] <= threshold
    k = d.shape[1]
    counts = np.bincount(nearest[near], minlength=k)
    fair = d.shape[0] / k
    return {"samples": int(d.shape[0]), "near_fraction": round(float(near.mean()), 4),
            "modes": k, "modes_covered": int((counts >= min_share * fair).sum()),
            "counts": counts.tolist(), "threshold": threshold, "min_share": min_share}
