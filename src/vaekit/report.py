"""What a run shows a person: sample and reconstruction grids, training curves, and images vs. tables.

Plain functions over a loaded model; the CLI calls these after training and for `sample` / `reconstruct`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import plots
from .data import DataBundle
from .errors import DataError
from .models.vae import VAE


def as_images(x: torch.Tensor, event_shape: tuple[int, ...]) -> torch.Tensor:
    """(N, *event) -> (N, C, H, W) for plotting; a clear error for data that are not images."""
    if len(event_shape) == 3:
        return x
    if len(event_shape) == 2:
        return x.unsqueeze(1)
    raise DataError(f"data of shape {tuple(event_shape)} are not images; write them as .csv or .npy instead")


@torch.no_grad()
def draw_samples(model: VAE, n: int, label: int | None = None, seed: int = 0, mean: bool = True) -> torch.Tensor:
    """n samples (n, *event) from the prior, with a fixed seed so that the same call gives the same grid."""
    torch.manual_seed(seed)
    return model.sample(n, y=label, mean=mean)


def save_samples(samples: torch.Tensor, model: VAE, path: str | Path, title: str = "Samples") -> Path:
    """Writes samples as an image grid (.png) or as an array (.npy / .csv) depending on the suffix."""
    path = Path(path)
    if path.suffix in (".npy", ".csv"):
        return save_array(samples.flatten(1).cpu().numpy(), path)
    return plots.save_image_grid(as_images(samples, model.event_shape), path, title=title)


def save_array(array: np.ndarray, path: Path) -> Path:
    """Saves a 2-D array as .npy or .csv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        np.savetxt(path, array, delimiter=",", fmt="%.6g")
    return path


@torch.no_grad()
def save_reconstructions(model: VAE, x: torch.Tensor, y: torch.Tensor | None, path: str | Path) -> Path:
    """Originals and their reconstructions (from the posterior mean), as a grid PNG or an array file."""
    recon = model.reconstruct(x, y if model.conditional else None)
    path = Path(path)
    if path.suffix in (".npy", ".csv"):
        return save_array(recon.flatten(1).cpu().numpy(), path)
    return plots.save_reconstruction_grid(as_images(x, model.event_shape), as_images(recon, model.event_shape), path)


def write_run_figures(model: VAE, data: DataBundle, history: list[dict], run_dir: str | Path, n: int = 64) -> list[Path]:
    """samples.png, reconstructions.png (test split) and curves.png in the run folder; arrays for tabular data."""
    run_dir = Path(run_dir)
    written = []
    suffix = ".png" if len(model.event_shape) in (2, 3) else ".csv"
    if model.conditional:
        from .apps.style import samples_per_class, save_class_rows  # apps build on this module

        per_class = samples_per_class(model, max(1, n // model.num_classes))
        written.append(save_class_rows(per_class, run_dir / f"samples{suffix}", data.class_names))
    else:
        written.append(save_samples(draw_samples(model, n), model, run_dir / f"samples{suffix}"))
    test = data.split("test")
    written.append(save_reconstructions(model, test.x[:32], None if test.y is None else test.y[:32],
                                        run_dir / f"reconstructions{suffix}"))
    if history:
        written.append(plots.save_training_curves(history, run_dir / "curves.png"))
    return written
