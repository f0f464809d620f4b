"""One row per class: samples of a conditional VAE and their labelled grid, and the label checks they need.

`samples_per_class` decodes the same z ~ p(z) in every class (z shared down each column, one row per class).
Below `report` (which draws it after training) and `apps.style` (which builds style transfer on it).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..core.rng import seeded
from ..errors import ConfigError
from ..models.vae import VAE
from . import plots

# What a user sees when a command needs a conditional model and got another.
NOT_CONDITIONAL = "needs a conditional model; train one with --set model.conditional=true"


def require_conditional(model: VAE, what: str = "style transfer", reads_label: bool = True) -> None:
    """A one-line ConfigError unless `model` is a conditional VAE (whose decoder reads the label, unless
    `reads_label` is False)."""
    if not model.conditional:
        raise ConfigError(f"{what} {NOT_CONDITIONAL}")
    if reads_label and getattr(model, "label_in_prior_only", False):  # a conditional VQ-VAE: the label picks codes
        raise ConfigError(f"{what} needs a decoder that reads the label; a conditional VQ-VAE's label only "
                          "selects the codes its prior draws (use vaekit sample --label)")


def check_labels(model: VAE, labels: torch.Tensor) -> torch.Tensor:
    """`labels` as int64 (N,), with a ConfigError naming the first one outside the trained classes."""
    labels = torch.as_tensor(labels).long().reshape(-1)
    bad = labels[(labels < 0) | (labels >= model.num_classes)]
    if bad.numel():
        raise ConfigError(f"label {int(bad[0])} is outside the trained classes 0..{model.num_classes - 1}")
    return labels


@torch.no_grad()
def samples_per_class(model: VAE, per_class: int, seed: int = 0, mean: bool = True,
                      classes: Sequence[int] | None = None) -> torch.Tensor:
    """(K, per_class, *event): row k holds class k; column j decodes the same z_j ~ p(z) in every class."""
    require_conditional(model, "a grid with one row per class", reads_label=False)
    classes = check_labels(model, torch.arange(model.num_classes) if classes is None else classes)
    if per_class < 1:
        raise ConfigError(f"samples per class must be >= 1, got {per_class}")
    k = classes.numel()
    with seeded(seed):  # without touching the caller's random state
        model.check_generate(k * per_class, f"sampling {per_class:,} examples for each of {k} classes")
        labels = classes.repeat_interleave(per_class)  # batch (K*M,), class-major
        if getattr(model, "label_in_prior_only", False):  # the label selects codes: each class draws its own
            z = model.prior_codes(k * per_class, labels)
        else:
            z = model.prior().sample((per_class,)).repeat(k, 1)  # (K*M, D): the same M codes in every class
        x = model.generate(z, labels, mean=mean, check=False)  # decoded in chunks that fit the memory budget
    return x.view(k, per_class, *model.event_shape).cpu()


def names_of(classes: torch.Tensor, class_names: Sequence[str] | None, wrap: bool = False) -> list[str]:
    """The names (or numbers) of `classes`; `wrap` breaks long names at spaces and slashes for column labels."""
    names = [class_names[int(c)] if class_names is not None and int(c) < len(class_names) else str(int(c))
             for c in classes]
    if wrap:  # 'T-shirt/top' -> 'T-shirt/\ntop', 'Ankle boot' -> 'Ankle\nboot': columns are narrow
        names = [n.replace("/", "/\n").replace(" ", "\n") if len(n) > 7 else n for n in names]
    return names


def class_rows_output(images: torch.Tensor, suffix: str = ".png", class_names: Sequence[str] | None = None,
                      classes: Sequence[int] | None = None, title: str = "Samples, one row per class"):
    """`samples_per_class` output (K, M, *event) as what a file of this suffix holds: a grid figure with class
    names as row labels (.png), or the (K*M, features) array (.npy / .csv)."""
    k, m = images.shape[:2]
    flat = images.reshape(k * m, *images.shape[2:])
    if suffix.lower() in (".npy", ".csv"):
        return flat.flatten(1).cpu().numpy()
    rows = names_of(torch.arange(k) if classes is None else torch.as_tensor(classes), class_names)
    return plots.image_grid_figure(plots.to_nchw(flat, tuple(images.shape[2:])).clamp(0, 1), ncol=m, title=title,
                                   row_labels=rows)
