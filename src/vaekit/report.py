"""What a run shows a person: sample and reconstruction grids, training curves, and images vs. tables.

Plain functions over a loaded model; the CLI calls these after training and for `sample` / `reconstruct`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import plots
from .class_grid import samples_per_class, save_class_rows
from .data import DataBundle
from .models.vae import VAE
from .outputs import check_output_suffix
from .plots import save_array, to_nchw
from .rng import seeded
from .runtime import to_model

OUTPUT_SUFFIXES = (".png", ".npy", ".csv")  # sample and reconstruction files: an image grid or an array


@torch.no_grad()
def draw_samples(model: VAE, n: int, label: int | None = None, seed: int = 0, mean: bool = True) -> torch.Tensor:
    """n samples (n, *event) from the prior, with a fixed seed so that the same call gives the same grid (the
    caller's random state is left as it was)."""
    with seeded(seed):
        samples = model.sample(n, y=label, mean=mean)
    return samples.cpu() if torch.is_tensor(samples) else samples  # a text model's are sentences


def save_samples(samples: torch.Tensor, model: VAE, path: str | Path, title: str = "Samples") -> Path:
    """Writes samples as an image grid (.png) or as an array (.npy / .csv) depending on the suffix."""
    path = Path(path)
    check_output_suffix(path, OUTPUT_SUFFIXES)
    if path.suffix.lower() in plots.ARRAY_SUFFIXES:
        return save_array(samples.flatten(1).cpu().numpy(), path)
    return plots.save_image_grid(to_nchw(samples, model.event_shape), path, title=title)


@torch.no_grad()
def save_reconstructions(model: VAE, x: torch.Tensor, y: torch.Tensor | None, path: str | Path) -> Path:
    """Originals and their reconstructions (from the posterior mean), as a grid PNG or an array file."""
    path = Path(path)
    check_output_suffix(path, OUTPUT_SUFFIXES)
    recon = model.reconstruct(to_model(model, x), to_model(model, y) if model.conditional else None).cpu()
    if path.suffix.lower() in plots.ARRAY_SUFFIXES:
        return save_array(recon.flatten(1).cpu().numpy(), path)
    return plots.save_reconstruction_grid(to_nchw(x, model.event_shape), to_nchw(recon, model.event_shape), path)


def write_run_figures(model: VAE, data: DataBundle, history: list[dict], run_dir: str | Path, n: int = 64) -> list[Path]:
    """samples.png, reconstructions.png (test split) and curves.png in the run folder; arrays for tabular data."""
    run_dir = Path(run_dir)
    if model.is_text:
        return write_text_outputs(model, data, history, run_dir)
    written = []
    suffix = ".png" if len(model.event_shape) in (2, 3) else ".csv"
    if model.conditional:
        per_class = samples_per_class(model, max(1, n // model.num_classes))
        written.append(save_class_rows(per_class, run_dir / f"samples{suffix}", data.class_names))
    else:
        written.append(save_samples(draw_samples(model, n), model, run_dir / f"samples{suffix}"))
    test = data.split("test")
    written.append(save_reconstructions(model, test.x[:32], None if test.y is None else test.y[:32],
                                        run_dir / f"reconstructions{suffix}"))
    if model.event_shape == (2,) and not model.conditional:  # 2-D data: rather look at a scatter than read a table
        train = data.split("train").x[: plots.SCATTER_SAMPLES]
        samples = model.sample(plots.SCATTER_SAMPLES, mean=False)
        written.append(plots.save_2d_samples(train.cpu().numpy(), samples.cpu().numpy(), run_dir / "samples_2d.png",
                                             f"{data.name}: samples x ~ p(x | z), z ~ p(z)"))
    if history:
        written.append(plots.save_training_curves(history, run_dir / "curves.png"))
    return written


# Sentences a text run writes at the end of training: samples of each kind and test reconstructions.
TEXT_SAMPLES, TEXT_RECONSTRUCTIONS = 10, 20


def write_text_outputs(model: VAE, data: DataBundle, history: list[dict], run_dir: Path, seed: int = 0) -> list[Path]:
    """samples.txt (prior samples decoded greedily and by sampling), reconstructions.txt (the first test
    sentences and their greedy reconstructions) and curves.png, in the run folder."""
    from .io import atomic_write_text
    from .text.generate import reconstruct_sentences, sample_sentences, to_text

    lines = ["# z ~ p(z), decoded greedily", *sample_sentences(model, TEXT_SAMPLES, "greedy", seed=seed), "",
             "# z ~ p(z), words sampled (temperature 1)",
             *sample_sentences(model, TEXT_SAMPLES, "sample", seed=seed)]
    samples = run_dir / "samples.txt"
    atomic_write_text(samples, "\n".join(lines) + "\n")
    split = next(data.splits[name] for name in ("test", "valid", "train") if name in data.splits)
    originals = to_text(model, split.x[:TEXT_RECONSTRUCTIONS])
    rebuilt = reconstruct_sentences(model, originals)
    recon = run_dir / "reconstructions.txt"
    atomic_write_text(recon, "".join(f"  {a}\n→ {b}\n\n" for a, b in zip(originals, rebuilt)))
    written = [samples, recon]
    if history:
        written.append(plots.save_training_curves(history, run_dir / "curves.png"))
    return written
