"""The sections of a run report that read the run folder's files: the model summary and configuration
(config.json), the training curves (metrics.jsonl) and the evaluation table (eval.json, when `vaekit eval` wrote one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import to_dict
from ..core.dotted import dotted_items
from ..io import Run
from .page import Section, figure_image, key_value_table, paragraph

EVAL_FILE = "eval.json"  # what `vaekit eval RUN` writes by default
# Keys of eval.json that are shown elsewhere in the report (the KL chart) or say nothing once the others are read.
EVAL_SKIP = frozenset({"kl_per_dim"})
# How the table names the fields of `vaekit.evaluate.EvalResult`; other keys are shown with spaces for underscores.
EVAL_NAMES = {"n": "examples", "neg_elbo": "negative ELBO (nats)", "recon": "reconstruction (nats)", "kl": "KL (nats)",
              "nll": "NLL, importance sampled (nats)", "iw_samples": "importance samples", "bits_per_dim": "bits/dim",
              "mutual_information": "mutual information I(x; z) (nats)", "point_mass": "point-mass posterior"}


def best_epoch(history: list[dict]) -> dict | None:
    """The record of the epoch with the lowest validation loss (the weights in model.safetensors), or None."""
    scored = [r for r in history if isinstance(r.get("valid_loss"), (int, float))]
    return min(scored, key=lambda r: r["valid_loss"]) if scored else None


def summary_rows(run: Run, history: list[dict], data: Any | None) -> list[tuple[str, Any]]:
    """(name, value) rows that say what the run is: data, model kind and sizes, likelihood, training length."""
    from ..modalities import modality_of

    model, config = run.model, run.config
    rows: list[tuple[str, Any]] = [
        ("data set", config.data.name),
        ("modality", modality_of(model).name),
        ("example shape", "x".join(str(s) for s in model.event_shape)),
        ("model kind", config.model.kind.name),
        ("latent size", model.latent_dim),
        ("network", config.model.network.name),
        ("likelihood", config.model.likelihood.name),
        ("prior", config.model.prior.name),
        ("posterior", config.model.posterior.name),
        ("objective", config.objective.name),
        ("parameters", f"{sum(p.numel() for p in model.parameters()):,}"),
    ]
    layers = model.capabilities.layers
    if layers:
        rows.append(("stochastic layers", " + ".join(str(size) for size in layers) + " (bottom first)"))
    if model.conditional:
        rows.append(("conditional on", f"{model.num_classes} classes"))
    if data is not None:
        rows.append(("examples", ", ".join(f"{name} {len(split):,}" for name, split in data.splits.items())))
    if history:
        rows.append(("epochs trained", f"{history[-1].get('epoch', len(history))} of {config.train.epochs}"))
        best = best_epoch(history)
        if best is not None:
            loss = f"validation loss {best['valid_loss']:.4g} nats"
            rows.append(("best epoch (saved weights)", f"{best.get('epoch')} ({loss})"))
        seconds = sum(r.get("seconds", 0.0) for r in history if isinstance(r.get("seconds"), (int, float)))
        if seconds:
            rows.append(("training time", f"{seconds:.1f} s"))
    return rows


def configuration_section(run: Run, history: list[dict], data: Any | None) -> Section:
    """The model summary beside the run's whole configuration (config.json), one table per config section."""
    config = to_dict(run.config)
    tables = [key_value_table(summary_rows(run, history, data), caption="Summary")]
    for name, values in config.items():
        rows = dotted_items(values) if isinstance(values, dict) else [(name, values)]
        tables.append(key_value_table(rows, caption=f"[{name}]"))
    return Section("configuration", "Configuration", f'<div class="row">{"".join(tables)}</div>')


def curves_section(history: list[dict]) -> Section | None:
    """The training curves of metrics.jsonl (loss, KL, and a VQ-VAE's codebook use); None without records."""
    from ..figures.plots import training_curves_figure

    needed = ("epoch", "train_loss", "valid_loss", "train_kl", "valid_kl")
    records = [r for r in history if all(isinstance(r.get(k), (int, float)) for k in needed)]
    if not records:
        return None
    body = figure_image(training_curves_figure(records), "training curves",
                        f"{len(records)} epochs from metrics.jsonl; the validation loss is the negative ELBO on the "
                        "validation split.")
    return Section("curves", "Training curves", body)


def eval_section(run_dir: Path) -> Section | None:
    """The numbers of RUN/eval.json as a table; None when there is no such file."""
    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (ValueError, RecursionError) as error:
        return Section("evaluation", "Evaluation", paragraph(f"{EVAL_FILE} is not valid JSON ({error}); run "
                                                             "`vaekit eval RUN --force` again.", "warn"))
    if not isinstance(values, dict):
        return Section("evaluation", "Evaluation", paragraph(f"{EVAL_FILE} does not hold a JSON object.", "warn"))
    rows = [(EVAL_NAMES.get(name, name.replace("_", " ")), value) for name, value in dotted_items(values)
            if name not in EVAL_SKIP and value is not None]
    split = values.get("split")
    caption = f"From {EVAL_FILE}" + (f" ({split} split)" if isinstance(split, str) else "")
    note = paragraph("NLL and bits/dim of a continuous likelihood (a density) can be negative: they are not code "
                     "lengths.") if run_density_note(values) else ""
    return Section("evaluation", "Evaluation", key_value_table(rows, caption=caption) + note)


def run_density_note(values: dict) -> bool:
    """Whether the evaluation shows a negative NLL, which only a density over real values gives."""
    nll = values.get("nll")
    return isinstance(nll, (int, float)) and nll < 0
