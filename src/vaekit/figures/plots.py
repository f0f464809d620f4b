"""Figures: image grids (samples, reconstructions) and training curves as matplotlib figures, and the edge
helpers that write them (`save_figure`) and the .npy / .csv arrays written instead of a grid for data that are
not images (`save_array`); and one example or a strip of several as PNG bytes for the browser (`to_png`,
`strip_png`)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.atomic import atomic_output, atomic_write_text
from ..errors import DataError

ARRAY_SUFFIXES = (".npy", ".csv")  # arrays: NumPy binary or comma-separated text


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def to_nchw(x: torch.Tensor, event_shape: tuple[int, ...]) -> torch.Tensor:
    """Examples (N, *event) as images (N, C, H, W) for an image grid; a DataError for data that are not images."""
    if len(event_shape) == 3:
        return x
    if len(event_shape) == 2:
        return x.unsqueeze(1)
    raise DataError(f"data of shape {tuple(event_shape)} are not images; write them as .csv or .npy instead")


# How a figure is written belongs to how it was drawn (an image grid is cropped to its tiles): the figure functions
# keep their `savefig` options on the figure, so that whoever writes it gets the same file.
_SAVE_OPTIONS = "_vaekit_savefig_options"


def _saved_with(fig, **options):
    """`fig`, remembering the `savefig` options it is to be written with."""
    setattr(fig, _SAVE_OPTIONS, options)
    return fig


def save_figure(fig, path: str | Path, close: bool = False, **kwargs) -> Path:
    """`fig.savefig` through a temporary file renamed into place: `path` is whole or absent, never truncated.
    The format is the suffix's (PNG when there is none), with the options the figure was drawn for unless
    `kwargs` give others; the figure stays open unless `close`."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lower().lstrip(".") or "png")
    for key, value in getattr(fig, _SAVE_OPTIONS, {}).items():
        kwargs.setdefault(key, value)
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, **kwargs)
    finally:
        if close:
            _pyplot().close(fig)
    return path


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """`np.save` through a temporary file renamed into place, under exactly the name given (np.save itself would
    append .npy to a name that does not end in it)."""
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:  # a file object: NumPy adds no suffix
        np.save(handle, np.asarray(array), allow_pickle=False)
    return path


def save_array(array: np.ndarray, path: str | Path) -> Path:
    """Saves a 2-D array as .npy or .csv (chosen by the suffix, in any case), atomically."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return save_npy(path, array)
    with atomic_output(path) as tmp:
        np.savetxt(tmp, array, delimiter=",", fmt="%.6g")
    return path


def tile_images(images: torch.Tensor | np.ndarray, ncol: int, pad: int = 1) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one (rows*(H+pad)+pad, ncol*(W+pad)+pad, C) array with light grey gutters."""
    images = np.asarray(images.detach().cpu() if torch.is_tensor(images) else images, dtype=np.float32)
    if images.ndim != 4:
        raise DataError(f"an image grid needs (N, C, H, W) images, got shape {images.shape}")
    n, c, h, w = images.shape
    rows = math.ceil(n / ncol)
    canvas = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), 0.8, dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[top : top + h, left : left + w] = images[i].transpose(1, 2, 0)
    return np.clip(canvas, 0.0, 1.0)


# The most tiles one PNG grid shows (100 x 100): beyond that a figure is too large to open, let alone read.
MAX_GRID_IMAGES = 10_000


def check_grid_size(n: int) -> None:
    """A ResourceError for a grid of more than MAX_GRID_IMAGES images (write an array instead)."""
    from ..errors import ResourceError

    if n > MAX_GRID_IMAGES:
        raise ResourceError(f"a PNG grid of {n:,} images is too large to view (at most {MAX_GRID_IMAGES:,}); "
                            "write them as .npy or .csv instead")


def image_grid_figure(
    images: torch.Tensor | np.ndarray,
    ncol: int | None = None,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
):
    """(N, C, H, W) images in [0, 1] as a grid figure with optional row/column labels; the figure is wide enough
    for its labels and a long title wraps instead of being cut off. Write it with `save_figure`."""
    import textwrap

    n, _, h, w = images.shape
    check_grid_size(n)
    plt = _pyplot()
    ncol = ncol or math.ceil(math.sqrt(n))
    rows = math.ceil(n / ncol)
    canvas = tile_images(images, ncol)
    cell = 0.5 if max(h, w) <= 16 else 0.75 if max(h, w) <= 32 else 1.1  # inches per tile
    label_width = 0.075 * max((len(t) for t in row_labels or []), default=0)  # ~0.075 in per character
    fig_w = max(4.0, ncol * cell + label_width + 0.4)
    wrapped = textwrap.fill(title or "", max(30, int(fig_w * 12)))  # about 12 characters per inch at 10 pt
    fig_h = rows * cell + 0.5 + 0.2 * (wrapped.count("\n") + 1) + (0.25 if col_labels else 0)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=120)
    if canvas.shape[2] == 1:
        ax.imshow(canvas[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(canvas[:, :, :3], interpolation="nearest")
    ax.set_xticks([] if col_labels is None else [1 + (w + 1) * j + w / 2 for j in range(len(col_labels))])
    ax.set_yticks([] if row_labels is None else [1 + (h + 1) * i + h / 2 for i in range(len(row_labels))])
    if col_labels is not None:
        ax.set_xticklabels(col_labels, fontsize=8)
        ax.xaxis.tick_top()
    if row_labels is not None:
        ax.set_yticklabels(row_labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if wrapped:
        ax.set_title(wrapped, fontsize=10)
    fig.tight_layout()
    return _saved_with(fig, bbox_inches="tight")


def save_image_grid(
    images: torch.Tensor | np.ndarray,
    path: str | Path,
    ncol: int | None = None,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
) -> Path:
    """Writes `image_grid_figure(...)` to `path` as a PNG (the figure closed after)."""
    return save_figure(image_grid_figure(images, ncol, title, row_labels, col_labels), path, close=True)


def reconstruction_grid_figure(originals: torch.Tensor, reconstructions: torch.Tensor,
                               title: str = "Reconstructions"):
    """Pairs of rows: originals above, their reconstructions below, up to 16 per row."""
    n = originals.shape[0]
    ncol = min(16, n)
    rows = []
    labels = []
    for start in range(0, n, ncol):
        rows += [originals[start : start + ncol], reconstructions[start : start + ncol]]
        labels += ["data", "recon"]
    stacked = torch.cat([_pad_row(r, ncol) for r in rows])
    return image_grid_figure(stacked, ncol=ncol, title=title, row_labels=labels)


def _pad_row(row: torch.Tensor, ncol: int) -> torch.Tensor:
    if row.shape[0] == ncol:
        return row
    filler = torch.full((ncol - row.shape[0], *row.shape[1:]), 0.8)
    return torch.cat([row, filler])


def training_curves_figure(history: list[dict]):
    """Train and validation loss (negative ELBO) and KL per epoch, with the validation split's mutual information
    I(x; z) beside the KL when it was logged (how much of the KL the code really carries)."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    codebook = bool(history) and all("codebook_usage" in r for r in history)  # a VQ-VAE: its codebook's use
    fig, axes = plt.subplots(1, 3 if codebook else 2, figsize=(13.5 if codebook else 9, 3.2), dpi=120)
    marker = "o" if len(history) <= 20 else None  # points are easier to read than lines for short runs
    for split, style in (("train", "-"), ("valid", "--")):
        axes[0].plot(epochs, [r[f"{split}_loss"] for r in history], style, marker=marker, label=split)
        axes[1].plot(epochs, [r[f"{split}_kl"] for r in history], style, marker=marker, label=split)
    if all("valid_mutual_info" in r for r in history):
        axes[1].plot(epochs, [r["valid_mutual_info"] for r in history], ":", marker=marker, label="valid I(x; z)")
    axes[0].set(xlabel="epoch", ylabel="negative ELBO (nats)", title="Loss")
    axes[1].set(xlabel="epoch", ylabel="KL (nats)", title="KL(q(z|x) || p(z))")
    if codebook:  # share of the codes used on the validation split, and the perplexity of their use / K
        size = history[-1]["codes_used"] / max(history[-1]["codebook_usage"], 1e-12)
        axes[2].plot(epochs, [100 * r["codebook_usage"] for r in history], "-", marker=marker, label="codes used")
        axes[2].plot(epochs, [100 * r["codebook_perplexity"] / size for r in history], "--", marker=marker,
                     label="perplexity / K")
        axes[2].set(xlabel="epoch", ylabel="% of the codebook", title=f"Codebook (K = {size:,.0f})", ylim=(0, 105))
        axes[1].set(title="KL = -log p(codes) (rate)")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# Points drawn from the model for the 2-D scatter of a run on 2-D data.
SCATTER_SAMPLES = 3000


def samples_2d_figure(data: np.ndarray, samples: np.ndarray, title: str = ""):
    """Training points and model samples of 2-D data, side by side on the same axes."""
    plt = _pyplot()
    both = np.concatenate([data, samples])
    lo, hi = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
    pad = 0.1 * (hi - lo)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True, constrained_layout=True)
    for ax, points, name, colour in ((axes[0], data, "training data", "C0"), (axes[1], samples, "samples", "C3")):
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.3, color=colour)
        ax.set_title(f"{name} ({len(points):,})", fontsize=10)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal", adjustable="box")
    if title:
        fig.suptitle(title, fontsize=10)
    return _saved_with(fig, dpi=100)


def write_output(content: Any, path: str | Path) -> Path:
    """Writes what a report or analysis function returned, atomically: a matplotlib figure (closed after), an array
    (.npy or .csv by the suffix) or text."""
    path = Path(path)
    if isinstance(content, str):
        atomic_write_text(path, content)
        return path
    if isinstance(content, np.ndarray):
        return save_array(content, path)
    return save_figure(content, path, close=True)


# --- PNG bytes for the browser (vaekit.serve): one example, or a strip of several side by side ----------------
# Images (C, H, W) in [0, 1] are clamped, scaled to 8 bits and enlarged by a whole factor (nearest neighbour) so
# that an 8 x 8 digit is not a speck; a tabular example (D,) is drawn as a one-row grey strip, each value min-max
# scaled over the strip.

# Enlarge small images to at least this many pixels on their longer side (whole factors only).
MIN_SIDE = 112
GAP = 8  # pixels between the images of a strip (enough to stay visible when the page shrinks the strip)
TABLE_HEIGHT = 40  # pixels of a tabular example's row of cells


def _as_array(x: torch.Tensor, event_shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 of one example of `event_shape`."""
    x = x.detach().float().cpu().reshape(event_shape)
    if len(event_shape) == 3:
        image = x.clamp(0, 1).permute(1, 2, 0).numpy()  # (H, W, C)
        image = image[..., 0] if image.shape[2] == 1 else image[..., :3]
    else:  # tabular: one row of grey cells
        flat = x.reshape(1, -1).numpy()
        lo, hi = float(flat.min()), float(flat.max())
        image = (flat - lo) / (hi - lo) if hi > lo else np.full_like(flat, 0.5)
    return np.round(255 * image).astype(np.uint8)


def _enlarge(image: np.ndarray) -> np.ndarray:
    factor = max(1, math.ceil(MIN_SIDE / max(image.shape[:2])))
    if image.shape[0] == 1:  # a tabular strip: cells TABLE_HEIGHT tall, together at least 2 * MIN_SIDE wide
        width = max(4, math.ceil(2 * MIN_SIDE / image.shape[1]))
        return np.repeat(np.repeat(image, TABLE_HEIGHT, 0), width, 1)
    return np.repeat(np.repeat(image, factor, 0), factor, 1)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def to_png(x: torch.Tensor, event_shape: tuple[int, ...]) -> bytes:
    """One example (*event) as PNG bytes."""
    return _png(_enlarge(_as_array(x, event_shape)))


def strip_png(xs: torch.Tensor, event_shape: tuple[int, ...]) -> bytes:
    """Examples (N, *event) side by side, as PNG bytes."""
    tiles = [_enlarge(_as_array(x, event_shape)) for x in xs]
    height = max(t.shape[0] for t in tiles)
    colour = tiles[0].ndim == 3
    width = sum(t.shape[1] for t in tiles) + GAP * (len(tiles) - 1)
    canvas = np.full((height, width, 3) if colour else (height, width), 200, dtype=np.uint8)
    left = 0
    for tile in tiles:
        canvas[: tile.shape[0], left : left + tile.shape[1]] = tile
        left += tile.shape[1] + GAP
    return _png(canvas)
