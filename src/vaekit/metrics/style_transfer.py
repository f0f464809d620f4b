"""How well a conditional VAE's label decides the class: the style-grid accuracy, measured with a classifier.

Each of R style images is encoded with its own label, z = E[q(z | x, c_x)], and decoded with every class c'
(the analogy grid of `vaekit.apps.style`). A classifier trained on the real data labels each of the R x K cells;

    cell accuracy = P(classifier(E[p(x | z, c')]) = c')   over all cells
    transfer      = the same over the cells with c' != c_x (the style moved to another class)

A decoder that reads the label scores near 1; one that ignores it (z carries the class, so every cell of a row
draws the row's own digit) scores near 1/K, plus the diagonal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..apps.style import analogy_grid
from ..core.rng import seeded
from ..errors import ConfigError, DataError
from ..models.vae import VAE
from .sample_quality import Classifier, classify


@dataclass(frozen=True)
class StyleGridAccuracy:
    """The classifier's verdict on an R x K style grid."""

    cell_accuracy: float  # all R*K cells
    transfer_accuracy: float  # the cells whose class differs from the style image's own
    per_class: list[float]  # per column c' (K,)
    n_styles: int
    n_classes: int

    def to_dict(self) -> dict:
        """The numbers as plain JSON values."""
        return asdict(self)


@torch.no_grad()
def style_grid_accuracy(model: VAE, classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                        n_styles: int = 1000, seed: int = 0, chunk: int = 200) -> StyleGridAccuracy:
    """Draws `n_styles` style images from (x, y) (seeded), renders each in every class and classifies the cells."""
    if not model.conditional:
        raise ConfigError("the style-grid accuracy needs a conditional model (model.conditional=true)")
    if classifier.num_classes != model.num_classes:
        raise DataError(f"the classifier knows {classifier.num_classes} classes, the model {model.num_classes}")
    if not 1 <= n_styles <= x.shape[0]:
        raise ConfigError(f"n_styles must be between 1 and the {x.shape[0]:,} images given, got {n_styles}")
    k = model.num_classes
    with seeded(seed):
        index = torch.randperm(x.shape[0])[:n_styles]
    model.eval()
    hits = np.zeros((n_styles, k), dtype=bool)
    for start in range(0, n_styles, chunk):  # one chunk of rows at a time keeps the grid's images small
        rows = index[start:start + chunk]
        grid = analogy_grid(model, x[rows], y[rows])
        _, predicted = classify(classifier, grid.images.flatten(0, 1))  # (r*K,), source-major
        hits[start:start + rows.numel()] = predicted.reshape(-1, k) == grid.classes.numpy()[None, :]
    own = torch.as_tensor(y)[index].numpy()[:, None] == np.arange(k)[None, :]  # (R, K) the diagonal cells
    return StyleGridAccuracy(cell_accuracy=float(hits.mean()), transfer_accuracy=float(hits[~own].mean()),
                             per_class=hits.mean(0).tolist(), n_styles=n_styles, n_classes=k)


__all__ = ["StyleGridAccuracy", "style_grid_accuracy"]
