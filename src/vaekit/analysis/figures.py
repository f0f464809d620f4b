"""Figures of the latent analysis (matplotlib, Agg): scatter plots coloured by label, image grids for traversals /
interpolations / latent arithmetic, and the confusion matrix of a clustering. Each function returns the figure (or
an array); the commands write it (`vaekit.figures.plots.write_output`).

Colours come from `palette`, shared with the interactive HTML plots so that both show a class in one colour.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..figures import plots
from ..figures.plots import to_nchw

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNLABELLED_COLOUR = "#1f77b4"


def palette(k: int) -> list[str]:
    """`k` distinct hex colours: tab10 up to 10 classes, tab20 up to 20, else evenly spaced on `turbo`."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if k <= 10:
        cmap = colormaps["tab10"]
        return [to_hex(cmap(i)) for i in range(k)]
    if k <= 20:
        cmap = colormaps["tab20"]
        return [to_hex(cmap(i)) for i in range(k)]
    cmap = colormaps["turbo"]
    return [to_hex(cmap(i / max(1, k - 1))) for i in range(k)]


def class_names_for(labels: np.ndarray | None, class_names: Sequence[str] | None) -> list[str]:
    """A name for every label value 0..max(labels)."""
    if labels is None:
        return []
    k = int(labels.max()) + 1 if labels.size else 0
    names = list(class_names or [])
    return [names[i] if i < len(names) else str(i) for i in range(k)]


def _point_size(n: int) -> float:
    # ~30 pt^2 for a few hundred points down to 2 pt^2 at 10,000+, so dense plots stay readable.
    return float(np.clip(12000 / max(n, 1), 2.0, 30.0))


def scatter_figure(coords: np.ndarray, labels: np.ndarray | None = None, class_names: Sequence[str] | None = None,
                   axis_names: Sequence[str] = ("", "", ""), title: str = "Latent space") -> Figure:
    """A 2-D or 3-D scatter plot of `coords` (N, 2|3), coloured by `labels` (N,) with a legend of class names."""
    plt = plots._pyplot()
    dims = coords.shape[1]
    three_d = dims == 3
    fig = plt.figure(figsize=(8.0, 6.5) if three_d else (7.5, 6.0), dpi=120)
    ax = fig.add_subplot(projection="3d" if three_d else None)
    size = _point_size(coords.shape[0])
    names = class_names_for(labels, class_names)
    columns = [coords[:, i] for i in range(dims)]
    if labels is None:
        ax.scatter(*columns, s=size, c=UNLABELLED_COLOUR, alpha=0.7, linewidths=0)
    else:
        colours = palette(len(names))
        for k, name in enumerate(names):
            rows = labels == k
            if rows.any():
                ax.scatter(*(c[rows] for c in columns), s=size, c=colours[k], alpha=0.7, linewidths=0, label=name)
        if len(names) <= 20:
            ax.legend(title="label", loc="upper left", bbox_to_anchor=(1.02 if not three_d else 1.08, 1.0),
                      markerscale=max(1.0, 6 / math.sqrt(size)), fontsize=8, title_fontsize=9, frameon=False)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    if three_d:
        ax.set_zlabel(axis_names[2])
    else:
        ax.grid(alpha=0.25)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return plots._saved_with(fig, bbox_inches="tight")  # the legend sits outside the axes: crop to what is drawn


def confusion_figure(matrix: np.ndarray, row_names: Sequence[str], title: str,
                     col_names: Sequence[str] | None = None) -> Figure:
    """A confusion matrix (true label x matched cluster) with the counts written in the cells."""
    plt = plots._pyplot()
    n_rows, n_cols = matrix.shape
    side = max(4.5, 0.45 * max(n_rows, n_cols) + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side), dpi=120)
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="examples")
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(col_names if col_names is not None else [str(i) for i in range(n_cols)], fontsize=8)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(row_names, fontsize=8)
    ax.set_xlabel("cluster (matched to a label)")
    ax.set_ylabel("true label")
    if n_rows * n_cols <= 400:  # counts are legible up to 20 x 20
        high = matrix.max() / 2 if matrix.size else 0
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(int(value)), ha="center", va="center", fontsize=7,
                    color="white" if value > high else "black")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return plots._saved_with(fig, bbox_inches="tight")


# Files decoded outputs can be written to: an image grid, or the array of any data shape.
DECODED_SUFFIXES = (".png", ".npy")


def decoded_figure(images: torch.Tensor, event_shape: tuple[int, ...], ncol: int, title: str,
                   row_labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None) -> Figure:
    """Decoded images (..., *event) as a labelled image grid figure, `ncol` per row; a DataError for data that are
    not images."""
    flat = images.detach().cpu().reshape(-1, *event_shape)  # (N, *event)
    pictures = to_nchw(flat, event_shape).clamp(0, 1)
    return plots.image_grid_figure(pictures, ncol, title, row_labels, col_labels)


def decoded_output(images: torch.Tensor, event_shape: tuple[int, ...], suffix: str, ncol: int, title: str,
                   row_labels: Sequence[str] | None = None,
                   col_labels: Sequence[str] | None = None) -> Figure | np.ndarray:
    """Decoded outputs as what a file of this suffix holds: a labelled image grid figure (.png, `ncol` per row), or
    the array (.npy) of any data shape, keeping the leading dimensions (e.g. rows x steps)."""
    if suffix.lower() == ".npy":
        return images.detach().cpu().numpy()
    if suffix.lower() not in DECODED_SUFFIXES:
        raise DataError(f"cannot write a {suffix or 'suffix-less'} file: decoded outputs are saved as .png (images) "
                        "or .npy (arrays)")
    return decoded_figure(images, event_shape, ncol, title, row_labels, col_labels)
