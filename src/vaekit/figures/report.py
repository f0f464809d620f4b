"""What a run shows a person: sample and reconstruction grids, training curves, and images vs. tables.

Plain functions over a loaded model that return figures, arrays and text; the run writer (after training) and the
`sample` / `reconstruct` commands write them (`vaekit.training.writer.write_output`).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from ..core.outputs import check_output_suffix
from ..core.rng import seeded
from ..core.runtime import to_model
from ..data import DataBundle
from ..models.vae import VAE
from . import plots
from .class_grid import class_rows_output, samples_per_class
from .plots import to_nchw

OUTPUT_SUFFIXES = (".png", ".npy", ".csv")  # sample and reconstruction files: an image grid or an array


@torch.no_grad()
def draw_samples(model: VAE, n: int, label: int | None = None, seed: int = 0, mean: bool = True) -> torch.Tensor:
    """n samples (n, *event) from the prior, with a fixed seed so that the same call gives the same grid (the
    caller's random state is left as it was)."""
    with seeded(seed):
        samples = model.sample(n, y=label, mean=mean)
    return samples.cpu() if torch.is_tensor(samples) else samples  # a text model's are sentences


def sample_output(samples: torch.Tensor, model: VAE, suffix: str, title: str = "Samples"):
    """Samples as what a file of this suffix holds: an image grid figure (.png) or an array (.npy / .csv)."""
    check_output_suffix(f"samples{suffix}", OUTPUT_SUFFIXES)
    if suffix.lower() in plots.ARRAY_SUFFIXES:
        return samples.flatten(1).cpu().numpy()
    return plots.image_grid_figure(to_nchw(samples, model.event_shape), title=title)


@torch.no_grad()
def reconstruction_output(model: VAE, x: torch.Tensor, y: torch.Tensor | None, suffix: str):
    """Originals and their reconstructions (from the posterior mean), as a grid figure (.png) or an array (.npy /
    .csv)."""
    check_output_suffix(f"reconstructions{suffix}", OUTPUT_SUFFIXES)
    recon = model.reconstruct(to_model(model, x), to_model(model, y) if model.conditional else None).cpu()
    if suffix.lower() in plots.ARRAY_SUFFIXES:
        return recon.flatten(1).cpu().numpy()
    return plots.reconstruction_grid_figure(to_nchw(x, model.event_shape), to_nchw(recon, model.event_shape))


def samples_2d_output(model: VAE, data: DataBundle):
    """2-D data: a scatter of samples x ~ p(x|z), z ~ p(z), beside the training points (rather looked at than read
    as a table)."""
    train = data.split("train").x[: plots.SCATTER_SAMPLES]
    samples = model.sample(plots.SCATTER_SAMPLES, mean=False)
    return plots.samples_2d_figure(train.cpu().numpy(), samples.cpu().numpy(),
                                   f"{data.name}: samples x ~ p(x | z), z ~ p(z)")


def array_run_outputs(model: VAE, data: DataBundle, history: list[dict], n: int = 64) -> Iterator[tuple[str, Any]]:
    """(file name, content) of what a run of array data shows, one at a time: samples and reconstructions (test
    split) as grids (samples.png, reconstructions.png) for images or as CSV rows for tables, and curves.png.
    The run writer writes each; each modality picks what it shows (`vaekit.modalities`)."""
    suffix = ".png" if len(model.event_shape) in (2, 3) else ".csv"
    if model.conditional:
        per_class = samples_per_class(model, max(1, n // model.num_classes))
        yield f"samples{suffix}", class_rows_output(per_class, suffix, data.class_names)
    else:
        yield f"samples{suffix}", sample_output(draw_samples(model, n), model, suffix)
    test = data.split("test")
    yield f"reconstructions{suffix}", reconstruction_output(model, test.x[:32], None if test.y is None else test.y[:32],
                                                            suffix)
    if history:
        yield "curves.png", plots.training_curves_figure(history)
