"""`fit`: the one training loop.

Plain PyTorch: the training split lives in memory as a tensor and is sliced with a fresh permutation each
epoch (cheaper than a DataLoader on small data); loss terms are accumulated on the device and read once per
epoch, not once per batch. Every epoch writes a line to metrics.jsonl, with the posterior-collapse diagnostics
of the validation split (`valid_kl_per_dim`, `active_units`), and a resumable checkpoint; the best weights by
validation loss go to model.safetensors. Each epoch's permutation is seeded by (seed, epoch), so a resumed run
sees the same batches and the same KL warm-up schedule as an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import io
from .build import build_model, resolve_model_config
from .config import RunConfig
from .data import DataBundle, load_data
from .errors import CheckpointError, TrainingError
from .evaluate import posterior_diagnostics
from .models.vae import VAE, Batch
from .objectives import Objective, build_objective

log = logging.getLogger(__name__)

# How often (in batches) the loop reads the loss back to check that it is finite.
FINITE_CHECK_EVERY = 25
# Epochs in a row with fewer than half the latent units active (past the KL warm-up) before a collapse warning.
COLLAPSE_PATIENCE = 3


@dataclass
class FitResult:
    """The trained model (best validation weights), its config, and one dict of metrics per epoch."""

    model: VAE
    config: RunConfig
    history: list[dict] = field(default_factory=list)
    run_dir: Path | None = None


def load_bundle(config: RunConfig) -> DataBundle:
    """Loads the data set a run config names."""
    d = config.data
    return load_data(
        d.name, d.root, binarize=d.binarize, valid_fraction=d.valid_fraction, test_fraction=d.test_fraction,
        limit=d.limit, seed=d.seed, label_column=d.label_column,
    )


def make_optimizer(model: VAE, config: RunConfig) -> torch.optim.Optimizer:
    """Adam; the fused kernel where this torch build has it for the model's device."""
    t = config.train
    try:
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


@torch.no_grad()
def average_terms(model: VAE, objective: Objective, x: torch.Tensor, y: torch.Tensor | None, step: int,
                  batch_size: int = 1024) -> dict[str, float]:
    """Per-example means of the objective's terms over a whole split (no gradients)."""
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, x.shape[0], batch_size):
        stop = start + batch_size
        loss = objective(model, Batch(x[start:stop], None if y is None else y[start:stop]), step)
        for key, value in loss.terms.items():
            sums[key] = sums.get(key, 0.0) + value.sum()
    model.train(was_training)
    return {key: float(value) / x.shape[0] for key, value in sums.items()}


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuses to write into a folder that holds anything unless resuming a run there."""
    if resume:
        if not (run_dir / io.LAST_CHECKPOINT).is_file():
            raise CheckpointError(f"cannot resume: {run_dir / io.LAST_CHECKPOINT} does not exist")
        return
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise CheckpointError(f"{str(run_dir)!r} already exists and is not empty; choose another --out or "
                              f"continue it with --resume")
    run_dir.mkdir(parents=True, exist_ok=True)


def fit(
    config: RunConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    data: DataBundle | None = None,
) -> FitResult:
    """Trains a VAE as `config` says; with `run_dir`, writes config, metrics and checkpoints there."""
    config = copy.deepcopy(config)  # resolved below; the caller's config stays as it was
    t = config.train
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(t.seed)
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None and resume:
        prepare_run_dir(run_dir, resume)
        # The data, model and objective of a resumed run are the saved ones; only train settings may change.
        saved = io.load_config(run_dir)
        config = RunConfig(data=saved.data, model=saved.model, objective=saved.objective, train=config.train)
    bundle = data if data is not None else load_bundle(config)
    config.model = resolve_model_config(config.model, bundle)
    device = torch.device(t.device)
    model = build_model(config.model).to(device)
    train_split, valid_split = bundle.split("train"), bundle.splits.get("valid") or bundle.split("test")
    x_train = train_split.x.to(device)
    y_train = train_split.y.to(device) if model.conditional else None
    x_valid = valid_split.x.to(device)
    y_valid = valid_split.y.to(device) if model.conditional else None
    if model.conditional and (y_train is None or y_valid is None):
        raise TrainingError(f"model.conditional needs labels on the train and validation splits of {bundle.name!r}")
    if t.batch_size < 1 or t.epochs < 0 or t.lr <= 0:
        raise TrainingError("train.batch_size and train.lr must be positive and train.epochs >= 0")

    steps_per_epoch = math.ceil(x_train.shape[0] / t.batch_size)
    o = config.objective
    capacity_epochs = t.epochs if o.capacity_epochs is None else o.capacity_epochs
    objective = build_objective(o.name, beta=o.beta, warmup_steps=int(o.warmup_epochs * steps_per_epoch),
                                free_bits=o.free_bits, n_samples=o.n_samples, k=o.k, kl_schedule=o.kl_schedule,
                                total_steps=steps_per_epoch * t.epochs, cycles=o.cycles, cycle_ratio=o.cycle_ratio,
                                gamma=o.gamma, capacity_max=o.capacity_max,
                                capacity_steps=int(capacity_epochs * steps_per_epoch))
    if hasattr(model.prior, "init_from_data"):  # VampPrior pseudo-inputs from training examples (seeded)
        model.prior.init_from_data(x_train, torch.Generator().manual_seed(t.seed))
    optimizer = make_optimizer(model, config)
    if t.lr_schedule not in ("constant", "cosine"):
        raise TrainingError(f"train.lr_schedule must be 'constant' or 'cosine', got {t.lr_schedule!r}")

    if run_dir is not None and not resume:
        prepare_run_dir(run_dir, resume)  # only once data, model and objective are valid: no empty folder on error

    state = {"epoch": 0, "step": 0, "best_valid": None, "best_epoch": None, "bad_epochs": 0}
    history: list[dict] = []
    if run_dir is not None:
        if resume:
            state = io.load_training_state(run_dir / io.LAST_CHECKPOINT, model, optimizer)
            # Drop metrics of epochs after the checkpoint (written before a crash), so the log matches the state.
            history = _read_history(run_dir)[: state["epoch"]]
            io.atomic_write_text(run_dir / io.METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))
            log.info("resuming %s at epoch %d", run_dir, state["epoch"])
        else:
            io.save_config(run_dir, config)

    from tqdm.auto import tqdm

    total_steps = steps_per_epoch * t.epochs
    bar = tqdm(total=total_steps, initial=state["step"], disable=not t.progress, unit="batch", dynamic_ncols=True)
    model.train()
    warned_collapse, collapsed_epochs = False, 0
    try:
        budget_start = time.perf_counter()
        for epoch in range(state["epoch"], t.epochs):
            bar.set_description(f"epoch {epoch + 1}/{t.epochs}")
            if t.lr_schedule == "cosine":
                # lr_e = lr / 2 * (1 + cos(pi * e / epochs)), set per epoch so that resuming needs no scheduler state
                for group in optimizer.param_groups:
                    group["lr"] = 0.5 * t.lr * (1 + math.cos(math.pi * epoch / t.epochs))
            started = time.perf_counter()
            train_terms, step = _train_epoch(model, objective, optimizer, x_train, y_train, bundle.dynamic_binarize,
                                             epoch, state["step"], config, bar)
            elapsed = time.perf_counter() - started
            valid_terms = average_terms(model, objective, x_valid, y_valid, step)
            # Posterior-collapse diagnostics on the validation split, once per epoch.
            collapse = posterior_diagnostics(model, x_valid, y_valid)
            record = {"epoch": epoch + 1, "step": step, "seconds": round(elapsed, 3),
                      "samples_per_s": round(x_train.shape[0] / elapsed, 1),
                      **{f"train_{k}": v for k, v in train_terms.items()},
                      **{f"valid_{k}": v for k, v in valid_terms.items()},
                      "valid_kl_per_dim": [round(v, 4) for v in collapse.kl_per_dim],
                      "active_units": collapse.active_units}
            # Collapse: fewer than half the units active after an epoch trained entirely past the KL warm-up. Units
            # often wake up a few epochs in, so warn after COLLAPSE_PATIENCE such epochs in a row, or at the end.
            collapsed = objective.warmed_up(state["step"]) and 2 * collapse.active_units < model.latent_dim
            collapsed_epochs = collapsed_epochs + 1 if collapsed else 0
            if collapsed_epochs >= COLLAPSE_PATIENCE:
                warned_collapse = warned_collapse or _warn_collapse(record, model.latent_dim)
            history.append(record)
            state["epoch"], state["step"] = epoch + 1, step
            improved = state["best_valid"] is None or valid_terms["loss"] < state["best_valid"]
            if improved:
                state["best_valid"], state["best_epoch"], state["bad_epochs"] = valid_terms["loss"], epoch + 1, 0
            else:
                state["bad_epochs"] += 1
            if run_dir is not None:
                with open(run_dir / io.METRICS_FILE, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
                if improved:
                    io.save_model(run_dir / io.MODEL_FILE, model)
                io.save_training_state(run_dir / io.LAST_CHECKPOINT, model, optimizer, state)
            bar.set_postfix(loss=f"{train_terms['loss']:.2f}", valid=f"{valid_terms['loss']:.2f}",
                            rate=f"{record['samples_per_s']:.0f}/s")
            log.info("epoch %d: %s", epoch + 1, record)
            if t.patience is not None and state["bad_epochs"] >= t.patience:
                log.info("no better validation loss for %d epochs: stopping early", t.patience)
                break
            if t.time_limit is not None and time.perf_counter() - budget_start > 60 * t.time_limit:
                log.info("time limit of %.1f minutes reached after epoch %d", t.time_limit, epoch + 1)
                break
    finally:
        bar.close()
    if collapsed_epochs and not warned_collapse:
        _warn_collapse(history[-1], model.latent_dim)

    if run_dir is not None and (run_dir / io.MODEL_FILE).is_file():
        tensors, _ = io.load_tensors(run_dir / io.MODEL_FILE)
        io.load_weights(model, tensors, str(run_dir / io.MODEL_FILE))
    model.eval()
    return FitResult(model=model, config=config, history=history, run_dir=run_dir)


def _warn_collapse(record: dict, latent_dim: int) -> bool:
    log.warning("posterior collapse: only %d of %d latent units are active after epoch %d (past the KL warm-up); "
                "try objective.free_bits, objective.kl_schedule='cyclical' or a smaller model.latent_dim "
                "(docs/failure_modes.md)", record["active_units"], latent_dim, record["epoch"])
    return True


def _train_epoch(model, objective, optimizer, x, y, dynamic_binarize, epoch, step, config, bar):
    """One pass over the shuffled training split; returns the per-example mean terms and the new step."""
    t = config.train
    generator = torch.Generator().manual_seed(t.seed * 1_000_003 + epoch)
    order = torch.randperm(x.shape[0], generator=generator).to(x.device)
    sums: dict[str, torch.Tensor] = {}
    for i, start in enumerate(range(0, x.shape[0], t.batch_size)):
        index = order[start : start + t.batch_size]
        xb = x[index]
        if dynamic_binarize:
            xb = torch.bernoulli(xb)
        loss = objective(model, Batch(xb, None if y is None else y[index]), step)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        step += 1
        for key, value in loss.terms.items():
            sums[key] = sums.get(key, 0.0) + value.detach().sum()
        if (i + 1) % FINITE_CHECK_EVERY == 0:
            if not torch.isfinite(loss.total):
                raise TrainingError(f"the loss became {float(loss.total)} at epoch {epoch + 1}, step {step}; the "
                                    f"last good checkpoint is kept (try a lower train.lr or train.grad_clip)")
            bar.update(FINITE_CHECK_EVERY)
    bar.update(step - bar.n)
    terms = {key: float(value) / x.shape[0] for key, value in sums.items()}
    if not all(math.isfinite(v) for v in terms.values()):
        raise TrainingError(f"the loss became non-finite during epoch {epoch + 1}; the last good checkpoint is "
                            f"kept (try a lower train.lr or train.grad_clip)")
    return terms, step


def _read_history(run_dir: Path) -> list[dict]:
    path = run_dir / io.METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
