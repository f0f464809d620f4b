"""The sections of a run report that ask the model: what it generates and reconstructs (as its modality shows a
run: image grids, table rows, a 2-D scatter, sentences), the latent map of the test split, and the KL per dimension.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import numpy as np
import torch

from ..core.rng import seeded
from ..core.runtime import to_model
from ..evaluate import ACTIVE_UNIT_THRESHOLD, posterior_diagnostics
from ..io import Run
from ..modalities import modality_of
from .figures import kl_per_dim_figure
from .page import Section, data_table, figure_image, paragraph, text_block

TABLE_ROWS = 8  # rows of a table-valued output (samples, reconstructions) shown on the page
TABLE_COLUMNS = 24  # columns shown; wider tables are cut with a note
# What each output of `Modality.run_outputs` is, by its file's stem; an output not named here keeps its stem.
CAPTIONS = {"samples": "Samples, z ~ p(z)", "reconstructions": "Reconstructions of test examples",
            "samples_2d": "Samples against the training data"}


def report_split(data: Any):
    """(name, split) of the data the report encodes and reconstructs: test, else validation, else training."""
    name = next(n for n in ("test", "valid", "train") if n in data.splits)
    return name, data.splits[name]


def output_sections(run: Run, data: Any, seed: int = 0) -> list[Section]:
    """Samples and reconstructions as the run's modality shows them (`Modality.run_outputs`): figures as images,
    text (sentences) as text, arrays (table rows) as the first rows of a table. Drawn under `seed`."""
    model = run.model
    samples, recons = [], []
    with seeded(seed):  # every draw (the 2-D scatter's too) is the same on every call
        for name, content in modality_of(model).run_outputs(model, data, []):
            stem = PurePath(name).stem
            html = _render(stem, content, data, stem.startswith("reconstructions"))
            (recons if stem.startswith("reconstructions") else samples).append(html)
    sections = []
    if samples:
        sections.append(Section("samples", "Samples", "".join(samples)))
    if recons:
        sections.append(Section("reconstructions", "Reconstructions", "".join(recons)))
    return sections


def _render(stem: str, content: Any, data: Any, reconstructions: bool) -> str:
    caption = CAPTIONS.get(stem, stem.replace("_", " "))
    if isinstance(content, str):
        return text_block(content.strip("\n"), caption)
    if isinstance(content, np.ndarray):
        return _array_table(content, data, caption, reconstructions)
    return figure_image(content, caption, caption)


def _array_table(rows: np.ndarray, data: Any, caption: str, reconstructions: bool) -> str:
    """Table rows (N, F) of an output as an HTML table; reconstructions interleaved with the test rows they
    reconstruct (the first rows of the split, as `run_outputs` takes them), in the data's own units."""
    rows = np.asarray(rows, dtype=np.float64).reshape(rows.shape[0], -1)[:TABLE_ROWS]
    standardizer = getattr(data, "standardizer", None)
    unscale = (lambda a: np.asarray(standardizer.inverse(a), dtype=np.float64)) if standardizer is not None \
        else (lambda a: a)
    shown = unscale(rows)
    labels = [f"sample {i}" for i in range(len(shown))]
    classes = [""] * len(shown)
    if reconstructions:
        _, split = report_split(data)
        originals = unscale(split.x[: len(shown)].reshape(len(shown), -1).double().numpy())
        shown = np.stack([originals, shown], 1).reshape(-1, shown.shape[1])  # data row, then its reconstruction
        labels = [f"{kind} {i}" for i in range(len(originals)) for kind in ("data", "recon")]
        classes = ["data", "recon"] * len(originals)
    cut = shown.shape[1] > TABLE_COLUMNS
    names = list(getattr(data, "meta", {}).get("feature_names") or [])  # a CSV file's header
    header = ["row"] + [names[j] if j < len(names) else f"x{j}" for j in range(min(shown.shape[1], TABLE_COLUMNS))]
    body = [[label, *(float(v) for v in row[:TABLE_COLUMNS])] for label, row in zip(labels, shown)]
    note = f" (the first {TABLE_COLUMNS} of {shown.shape[1]} columns)" if cut else ""
    return data_table(header, body, caption=caption + note, row_classes=classes)


@torch.no_grad()
def embed_split(run: Run, data: Any, max_points: int, seed: int = 0, batch_size: int = 512):
    """(codes (N, D), labels (N,) or None, split name): `model.embed` of up to `max_points` examples of the report
    split (a seeded subsample when it holds more)."""
    from ..analysis.latents import subsample_indices

    model = run.model
    name, split = report_split(data)
    rows = torch.as_tensor(subsample_indices(len(split), max_points, seed))
    codes = []
    for start in range(0, len(rows), batch_size):
        index = rows[start : start + batch_size]
        y = None if split.y is None or not model.conditional else to_model(model, split.y[index])
        mask = None if split.mask is None else to_model(model, split.mask[index])
        codes.append(model.embed(to_model(model, split.x[index]), y, mask).float().cpu())
    labels = None if split.y is None else split.y[rows].cpu().numpy().astype(np.int64)
    return torch.cat(codes).numpy(), labels, name


def latent_map_section(run: Run, data: Any, max_points: int = 2000, seed: int = 0) -> Section:
    """The codes of the test split projected to 2-D (PCA beyond two dimensions), coloured by label."""
    from ..analysis.figures import scatter_figure
    from ..analysis.projection import project

    codes, labels, split = embed_split(run, data, max_points, seed)
    projection = project(codes, dims=2, method="auto", seed=seed)
    names = list(data.class_names) if data.class_names else None
    how = {"none": "the codes themselves", "pca": "the first two principal components"}.get(projection.method,
                                                                                         projection.method)
    title = f"{split} split: posterior means, {how}"
    caption = (f"{len(codes):,} {split} examples, {codes.shape[1]}-D codes (model.embed), {how}; "
               + ("coloured by label." if labels is not None else "the data have no labels."))
    body = figure_image(scatter_figure(projection.coords, labels, names, projection.axis_names, title),
                        "latent map", caption)
    return Section("latent-map", "Latent map", body)


def kl_section(run: Run, data: Any | None, history: list[dict]) -> Section | None:
    """The KL of each latent dimension on the report split (the saved weights), active units in colour; from the
    last validation record of metrics.jsonl when the data are not at hand. None for a model kind without a
    per-dimension KL (a VQ-VAE)."""
    model = run.model
    if not model.capabilities.kl_per_dimension:
        return None
    if data is not None:
        name, split = report_split(data)
        diagnostics = posterior_diagnostics(model, split.x, split.y, mask=split.mask)
        kl = diagnostics.kl_per_dim
        active = [v > ACTIVE_UNIT_THRESHOLD for v in diagnostics.variances]
        source = (f"{name} split, {len(split):,} examples; a dimension is active when its posterior mean varies "
                  f"across the data (variance > {ACTIVE_UNIT_THRESHOLD}).")
    else:
        last = next((r for r in reversed(history) if isinstance(r.get("valid_kl_per_dim"), list)), None)
        if last is None:
            return None
        kl = last["valid_kl_per_dim"]
        active = [v > ACTIVE_UNIT_THRESHOLD for v in kl]  # no means at hand: a dimension with KL is taken as active
        source = f"validation split at epoch {last.get('epoch')} (metrics.jsonl); active: KL > {ACTIVE_UNIT_THRESHOLD}."
    fig = kl_per_dim_figure(kl, active, model.capabilities.layers)
    total = f"Total {sum(kl):.3g} nats over {len(kl)} dimensions, {sum(active)} active. "
    return Section("kl", "KL per dimension", figure_image(fig, "KL per dimension", total + source))


def unavailable(reason: str) -> Section:
    """The note shown in place of the sections that need the run's data when they cannot be read."""
    text = (f"The run's data could not be read ({reason}); samples, reconstructions and the latent map are left "
            "out. Pass --data-root to point at the data.")
    return Section("data", "Data not available", paragraph(text, "warn"))
