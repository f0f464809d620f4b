"""Surface inspection: a synthetic data set of textured surfaces with defects, and per-pixel anomaly maps.

The data (made in code, seeded): grey-level images of a machined surface, i.e. a few oriented sinusoidal
grains of random direction, frequency and phase over a smooth shading, plus sensor noise. A defective image
carries one of
    scratch  a thin straight line, brighter or darker than the surface
    spot     a small round stain (Gaussian blob)
    dent     a shallow pit, lit from one side (dark rim on one side, bright on the other)
with the ground-truth defect mask (pixels where the defect changed the image by more than a small amount).

Anomaly map (the manufacturing-defect use of a VAE): each pixel's negative log-likelihood under the
reconstruction, -log p(x_ij | z) at z = E_q[z|x] (averaged over `k` draws z ~ q(z|x) when k > 1). Its sum over
pixels is -log p(x | z), so the map splits the image's score among its pixels. Image-level ROC-AUC scores each
image by its (importance-sampled) NLL; pixel-level ROC-AUC scores each pixel by its map value against the mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.rng import seeded
from ..core.runtime import to_model
from ..models.vae import VAE

DEFECTS = ("scratch", "spot", "dent")
# A pixel belongs to the defect mask when the defect changed it by more than this (grey levels in [0, 1]).
MASK_THRESHOLD = 0.04


@dataclass(frozen=True)
class SurfaceSet:
    """Images (N, 1, S, S) in [0, 1], labels (N,) 1 = defective, masks (N, S, S) bool, kinds (N,) names."""

    x: np.ndarray
    y: np.ndarray
    masks: np.ndarray
    kinds: np.ndarray


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A defect-free surface (S, S) in about [0.15, 0.85]: shading + 2 oriented grains + noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size  # (S, S) coordinates in [0, 1)
    base = 0.5 + 0.08 * rng.uniform(-1, 1) + 0.06 * (rng.uniform(-1, 1) * (xx - 0.5) + rng.uniform(-1, 1) * (yy - 0.5))
    angle = rng.uniform(0, math.pi)
    image = base.copy()
    for spread, amplitude in ((0.0, 0.12), (0.3, 0.05)):  # the main grain and a weaker cross grain
        theta = angle + spread * rng.uniform(-1, 1) + (math.pi / 2 if spread else 0.0)
        freq = rng.uniform(3, 6)  # cycles per image
        phase = rng.uniform(0, 2 * math.pi)
        image += amplitude * np.sin(2 * math.pi * freq * (xx * math.cos(theta) + yy * math.sin(theta)) + phase)
    return image + rng.normal(0.0, 0.015, (size, size))


def _defect(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """The additive change (S, S) that a defect of `kind` makes to a surface."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = rng.uniform(0.2 * size, 0.8 * size, 2)
    sign = rng.choice([-1.0, 1.0])
    if kind == "scratch":
        theta = rng.uniform(0, math.pi)
        half = rng.uniform(0.15, 0.35) * size
        # distance to the segment centre +- half * (cos, sin), anti-aliased with a 0.7-pixel half-width
        t = np.clip((xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta), -half, half)
        dist = np.hypot(xx - cx - t * math.cos(theta), yy - cy - t * math.sin(theta))
        return sign * rng.uniform(0.25, 0.4) * np.clip(1.2 - dist / 0.7, 0, 1).clip(max=1.0)
    if kind == "spot":
        radius = rng.uniform(1.2, 2.5)
        return sign * rng.uniform(0.25, 0.4) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
    if kind == "dent":
        radius = rng.uniform(2.5, 4.5)
        light = rng.uniform(0, 2 * math.pi)
        r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / radius**2
        # a Gaussian pit seen under light from direction `light`: the shading is its directional derivative
        slope = ((xx - cx) * math.cos(light) + (yy - cy) * math.sin(light)) / radius
        return rng.uniform(0.4, 0.6) * slope * np.exp(-r2)
    raise ValueError(f"unknown defect {kind!r}; choose one of: {', '.join(DEFECTS)}")


def make_surfaces(n: int, size: int = 32, defect_fraction: float = 0.5, seed: int = 0) -> SurfaceSet:
    """`n` surface images of `size` x `size` pixels; a `defect_fraction` of them carry one defect each
    (scratch, spot and dent in turn), with ground-truth masks."""
    if n < 1 or size < 8 or not 0.0 <= defect_fraction <= 1.0:
        raise ValueError("need n >= 1, size >= 8 and defect_fraction in [0, 1]")
    rng = np.random.default_rng(seed)
    n_bad = int(round(n * defect_fraction))
    labels = np.zeros(n, dtype=np.int64)
    labels[rng.permutation(n)[:n_bad]] = 1
    x = np.empty((n, 1, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    kinds = np.full(n, "none", dtype=object)
    for i in range(n):
        image = _texture(rng, size)
        if labels[i]:
            kind = DEFECTS[int(labels[: i + 1].sum() - 1) % len(DEFECTS)]
            change = _defect(rng, size, kind)
            image = image + change
            masks[i] = np.abs(change) > MASK_THRESHOLD
            kinds[i] = kind
        x[i, 0] = np.clip(image, 0.0, 1.0)
    return SurfaceSet(x=x, y=labels, masks=masks, kinds=kinds.astype(str))


@torch.no_grad()
def anomaly_maps(model: VAE, x: torch.Tensor, k: int = 1, batch_size: int = 256, seed: int = 0) -> np.ndarray:
    """Per-entry negative log-likelihood -log p(x_ij | z) (N, *event): at z = E_q[z|x] when k = 1, else
    averaged over k draws z ~ q(z|x). Summed over entries it gives -log p(x | z)."""
    model.eval()
    out = []
    with seeded(seed):
        for start in range(0, x.shape[0], batch_size):
            xb = to_model(model, x[start : start + batch_size])  # a batch at a time on the model's device
            qz = model.encode(xb)
            z = qz.mean[None] if k == 1 else qz.sample((k,))  # (S, B, D)
            px = model.decode(z)
            elementwise = px.base_dist.log_prob(xb.expand(z.shape[0], *xb.shape))  # (S, B, *event)
            out.append(-elementwise.mean(0).double().cpu())
    return torch.cat(out).numpy()


def pixel_scores(maps: np.ndarray) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) maps -> (N, H, W): channels summed (a pixel's score)."""
    return maps.sum(1) if maps.ndim == 4 else maps


def save_anomaly_figure(images: np.ndarray, maps: np.ndarray, path: str | Path, masks: np.ndarray | None = None,
                        titles: list[str] | None = None, title: str = "Anomaly maps") -> Path:
    """Rows: the images, their anomaly heat maps over the image, and (when given) the true defect masks.

    `images` (N, 1, H, W) or (N, H, W) in [0, 1]; `maps` (N, H, W) pixel scores. Up to 8 columns."""
    from ..figures.plots import _pyplot

    plt = _pyplot()
    images = images[:, 0] if images.ndim == 4 else images
    n = min(8, images.shape[0])
    rows = 3 if masks is not None else 2
    fig, axes = plt.subplots(rows, n, figsize=(1.6 * n + 1.2, 1.7 * rows + 0.6), squeeze=False, dpi=120)
    vmax = float(np.quantile(maps[:n], 0.995))
    vmin = float(np.quantile(maps[:n], 0.01))
    heat = None
    for j in range(n):
        axes[0, j].imshow(images[j], cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(images[j], cmap="gray", vmin=0, vmax=1)
        heat = axes[1, j].imshow(maps[j], cmap="inferno", vmin=vmin, vmax=vmax, alpha=0.75)
        if masks is not None:
            axes[2, j].imshow(masks[j], cmap="gray", vmin=0, vmax=1)
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=8)
    labels = ["image", "anomaly map", "true defect"][:rows]
    for i, label in enumerate(labels):
        axes[i, 0].set_ylabel(label, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    cax = fig.add_axes((0.93, 0.15, 0.015, 0.7))
    fig.colorbar(heat, cax=cax).set_label("pixel NLL (nats)", fontsize=8)
    path = Path(path)
    from ..figures.plots import save_figure

    save_figure(fig, path)  # atomic: whole or absent
    plt.close(fig)
    return path


def surface_report(model: VAE, data: SurfaceSet, k: int = 100, seed: int = 0) -> dict:
    """Image-level ROC-AUC (importance-sampled NLL per image), pixel-level ROC-AUC (anomaly map vs defect
    masks over all test pixels) and the per-defect image-level ROC-AUC (each defect kind vs the normal images)."""
    from sklearn.metrics import roc_auc_score

    from .anomaly import anomaly_scores

    x = torch.from_numpy(data.x)
    scores = anomaly_scores(model, x, "nll", k, seed=seed)
    maps = pixel_scores(anomaly_maps(model, x, seed=seed))
    report = {"n_images": int(len(data.y)), "n_defective": int(data.y.sum()),
              "image_roc_auc": float(roc_auc_score(data.y, scores)),
              "pixel_roc_auc": float(roc_auc_score(data.masks.ravel(), maps.ravel()))}
    for kind in DEFECTS:
        chosen = (data.kinds == kind) | (data.y == 0)
        if (data.kinds == kind).any():
            report[f"image_roc_auc_{kind}"] = float(roc_auc_score(data.y[chosen], scores[chosen]))
    return report, scores, maps


def run_surface_demo(out: str | Path, n_train: int = 2000, n_test: int = 400, size: int = 32, epochs: int = 30,
                     seed: int = 0, progress: bool = True, device: str = "cpu") -> dict:
    """The surface-inspection demo: train a detector on defect-free surfaces (on `device`), score a test set that
    is half defective, write the run folder, `surfaces.png` (heat maps) and `surfaces.json` (the metrics) into
    `out`."""
    import json

    from ..io import atomic_write_text
    from .anomaly import VAEAnomalyDetector

    train = make_surfaces(n_train, size, defect_fraction=0.0, seed=seed)
    test = make_surfaces(n_test, size, defect_fraction=0.5, seed=seed + 1)
    detector = VAEAnomalyDetector(likelihood="gaussian-learned", latent_dim=16, hidden=(256, 128), epochs=epochs,
                                  contamination=0.01, random_state=seed, verbose=progress, device=device)
    detector.fit(train.x)
    out = Path(out)
    detector.save(out)
    report, scores, maps = surface_report(detector.model_, test, seed=seed)
    report.update(n_train=n_train, size=size, epochs=epochs, seed=seed)
    atomic_write_text(out / "surfaces.json", json.dumps(report, indent=2) + "\n")
    # Show the defective images of each kind first (up to two: a small test set may lack a kind), then two normal
    # ones.
    order = [int(i) for j in range(2) for kind in DEFECTS for i in np.flatnonzero(test.kinds == kind)[j:j + 1]]
    order += [int(i) for i in np.flatnonzero(test.y == 0)[:2]]
    order = order or list(range(len(test.x)))
    save_anomaly_figure(test.x[order], maps[order], out / "surfaces.png", masks=test.masks[order],
                        titles=[f"{test.kinds[i]} {scores[i]:.0f}" for i in order],
                        title=f"Surface inspection: image ROC-AUC {report['image_roc_auc']:.3f}, "
                              f"pixel ROC-AUC {report['pixel_roc_auc']:.3f}")
    return report


__all__ = ["surface_report", "run_surface_demo", "SurfaceSet", "make_surfaces", "anomaly_maps", "pixel_scores", "save_anomaly_figure", "DEFECTS"]
