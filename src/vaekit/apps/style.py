"""Class-conditional generation and style transfer with a conditional VAE (Sohn et al. 2015; Kingma et al. 2014).

In a conditional VAE the label c carries the content (which digit, which garment) and z carries what the label
does not say: the style (slant, stroke width, size). Encoding an image with its own label gives its style
    z = E[q(z | x, c_x)]                      (posterior mean, (B, D))
and decoding that z with another label draws the same style in the other class:
    x' = E[p(x | z, c')]                      ((B, *event))
The analogy grid of Kingma et al. (2014, Fig. 1) does this for every class: one row per source image, one
column per class. `samples_per_class` (from `vaekit.figures.class_grid`) is the generative version: z ~ p(z)
shared along each column, one row per class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..core.outputs import check_output_suffix
from ..core.runtime import to_model
from ..errors import ConfigError
from ..figures import plots
from ..figures.class_grid import (
    NOT_CONDITIONAL,
    check_labels,
    class_rows_output,
    names_of,
    require_conditional,
    samples_per_class,
)
from ..models.vae import VAE

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class StyleTransfer:
    """Style codes of the source images and those styles rendered with the content labels."""

    z: torch.Tensor  # (B, D) posterior means of the style images
    style_labels: torch.Tensor  # (B,) the style images' own labels
    content_labels: torch.Tensor  # (B,) the labels the images were rendered with
    images: torch.Tensor  # (B, *event)


@torch.no_grad()
def transfer_style(model: VAE, style_x: torch.Tensor, style_y: torch.Tensor,
                   content_labels: torch.Tensor | int) -> StyleTransfer:
    """Encodes each style image with its own label and decodes its z with the content label (one, or one each)."""
    require_conditional(model)
    style_y = check_labels(model, style_y)
    content = check_labels(model, content_labels)
    if content.numel() == 1:
        content = content.expand(style_x.shape[0])
    if content.numel() != style_x.shape[0] or style_y.numel() != style_x.shape[0]:
        raise ConfigError(f"got {style_x.shape[0]} style images, {style_y.numel()} style labels and "
                          f"{content.numel()} content labels; give one label each (or one content label)")
    model.check_generate(style_x.shape[0], f"rendering {style_x.shape[0]:,} style transfers")
    z = model.embed(to_model(model, style_x), style_y)  # (B, D)
    images = model.generate(z, content, check=False)  # (B, *event), decoded in chunks
    return StyleTransfer(z=z.cpu(), style_labels=style_y, content_labels=content.clone(), images=images.cpu())


@dataclass(frozen=True)
class AnalogyGrid:
    """Rows = style sources, columns = content classes: images[r, k] is source r's style drawn as classes[k]."""

    sources: torch.Tensor  # (R, *event)
    source_labels: torch.Tensor  # (R,)
    classes: torch.Tensor  # (K,)
    z: torch.Tensor  # (R, D)
    images: torch.Tensor  # (R, K, *event)


@torch.no_grad()
def analogy_grid(model: VAE, style_x: torch.Tensor, style_y: torch.Tensor,
                 classes: Sequence[int] | torch.Tensor | None = None) -> AnalogyGrid:
    """Every style image rendered in every class of `classes` (default: all trained classes)."""
    require_conditional(model)
    classes = check_labels(model, torch.arange(model.num_classes) if classes is None else classes)
    r, k = style_x.shape[0], classes.numel()
    event = math.prod(model.event_shape)
    model.check_generate(r * k, f"an analogy grid of {r:,} sources x {k:,} classes",
                         extra_per_row=2 * event * 4)  # the repeated style images and their encoding
    # Each source repeated once per class: (R*K,) rows ordered source-major, so a view gives (R, K, *event).
    result = transfer_style(model, style_x.repeat_interleave(k, 0), check_labels(model, style_y).repeat_interleave(k),
                            classes.repeat(r))
    return AnalogyGrid(sources=style_x, source_labels=result.style_labels[::k].clone(), classes=classes,
                       z=result.z[::k].clone(), images=result.images.view(r, k, *model.event_shape))


# --- figures -------------------------------------------------------------------------------------------------


def analogy_figure(grid: AnalogyGrid, class_names: Sequence[str] | None = None,
                   row_labels: Sequence[str] | None = None, title: str = "Style transfer") -> Figure:
    """The grid as an image grid figure: first column the source image, then its style in each class."""
    event = tuple(grid.sources.shape[1:])
    r, k = grid.images.shape[:2]
    tiles = torch.cat([grid.sources.unsqueeze(1), grid.images], 1).reshape(r * (k + 1), *event)  # (R*(K+1), ...)
    cols = ["style"] + names_of(grid.classes, class_names, wrap=True)
    if max(len(line) for c in cols for line in c.split("\n")) > 5:
        # Long names: every other label one block higher (labels sit on their last line), so neighbours never touch.
        depth = max(c.count("\n") for c in cols) + 1
        cols = [c + "\n" * depth if i % 2 else c for i, c in enumerate(cols)]
    rows = list(row_labels) if row_labels is not None else [f"({n})" for n in names_of(grid.source_labels, class_names)]
    return plots.image_grid_figure(plots.to_nchw(tiles, event).clamp(0, 1), ncol=k + 1, title=title,
                                   row_labels=rows, col_labels=cols)


# Files an analogy grid can be written to: its figure, or the (R, K, *event) images.
ANALOGY_SUFFIXES = (".png", ".npy")


def analogy_output(grid: AnalogyGrid, suffix: str, class_names: Sequence[str] | None = None,
                   row_labels: Sequence[str] | None = None, title: str = "Style transfer") -> Figure | np.ndarray:
    """The grid as what a file of this suffix holds: `analogy_figure` (.png) or the (R, K, *event) images (.npy).
    Write it with `vaekit.figures.plots.write_output`."""
    check_output_suffix(f"analogies{suffix}", ANALOGY_SUFFIXES)
    if suffix.lower() == ".npy":
        return grid.images.cpu().numpy()
    return analogy_figure(grid, class_names, row_labels, title)


__all__ = ["AnalogyGrid", "NOT_CONDITIONAL", "StyleTransfer", "analogy_figure", "analogy_grid", "analogy_output",
           "check_labels", "class_rows_output", "require_conditional", "samples_per_class", "transfer_style"]
