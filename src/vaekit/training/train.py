"""`fit`: the one training loop.

Plain PyTorch: the training split lives in memory as a tensor and is sliced with a fresh permutation each
epoch (cheaper than a DataLoader on small data); loss terms are accumulated on the device and read once per
epoch, not once per batch. Under `torchrun` the same loop trains data-parallel (`vaekit.training.distributed`): each
process takes its shard of every global batch, DDP averages the gradients, the epoch's terms and validation
losses are summed over processes, and only rank 0 writes. `fit` is three parts:
    setup      data, model, objective, optimiser and (when resuming) the saved state   -> `Training`
    the loop   epochs of shuffled mini-batches, an optional validation pass, early stopping
    RunWriter  everything that is written: metrics.jsonl, checkpoints, the best weights, figures
Each epoch's permutation is seeded by (seed, epoch), so a resumed run sees the same batches and the same KL
schedule as an uninterrupted one. With a validation split, every epoch also logs the posterior-collapse
diagnostics of that split (`valid_kl_per_dim`, `active_units`) and the best weights by validation loss are
kept; without one (in-memory training of the applications), the last weights are the result, unless the caller
scores the model itself (`fit(..., valid_score=...)`, e.g. the imputer's error on held-out entries): that score is
then the validation loss, for early stopping and the best weights alike.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from .. import io
from ..build import build_model, resolve_model_config
from ..config import RunConfig, TrainConfig, default_epochs, resolve_device, to_dict
from ..core.progress import above, announce_duration, bar_class, interactive
from ..core.rng import seeded
from ..core.runtime import Runtime
from ..data import DataBundle, Split, load_data
from ..data.streaming import batch_loader, check_batch_fits, is_streamed
from ..errors import DataError, TrainingError
from ..evaluate import posterior_diagnostics
from ..modalities import modality_of
from ..models.vae import VAE, Batch
from ..objectives import Objective, build_objective
from .distributed import Cluster, check_shareable, shard_rows
from .resume import check_resume
from .trackers import RunTrackers, open_trackers
from .train_step import StepNoise, TrainingStep, autocast, grad_scaler, samples_of, wrap_step
from .writer import RunWriter

log = logging.getLogger(__name__)

# Added to train.seed for the validation pass's z draws (fixed across epochs: epochs compare on the same noise).
VALID_NOISE_SEED = 7_777_777
# How often (in batches) the loop reads the loss back to check that it is finite.
FINITE_CHECK_EVERY = 25
# Epochs in a row with fewer than half the latent units active (past the KL warm-up) before a collapse warning:
# at least this many, and at least this fraction of the run (units of a short-epoch run wake up epochs in).
COLLAPSE_PATIENCE = 3
COLLAPSE_PATIENCE_FRACTION = 0.1


@dataclass
class FitResult:
    """The trained model (best validation weights), its config, and one dict of metrics per epoch."""

    model: VAE
    config: RunConfig
    history: list[dict] = field(default_factory=list)
    run_dir: Path | None = None
    figures: list[Path] = field(default_factory=list)  # the figures written with fit(..., figures=True)

    def _repr_html_(self) -> str:
        """A short summary for Jupyter: the run's length and its last losses."""
        from ..core.html_summary import html_table

        last = self.history[-1] if self.history else {}
        best = min((r for r in self.history if "valid_loss" in r), key=lambda r: r["valid_loss"], default=None)
        rows = [("run folder", None if self.run_dir is None else str(self.run_dir)),
                ("epochs trained", len(self.history) or None), ("train loss (last epoch)", last.get("train_loss")),
                ("validation loss (last epoch)", last.get("valid_loss")),
                ("best validation loss", None if best is None else f"{best['valid_loss']:.4g} (epoch {best['epoch']})"),
                ("active units", None if "active_units" not in last
                 else f"{last['active_units']} of {self.model.latent_dim}")]
        return html_table("vaekit training", rows, note="losses in nats per example; .model is the trained model")


@dataclass
class Training:
    """What the loop works on, made by `setup`: the resolved config, data on the device, model, objective,
    optimiser, the trainer state (epoch, step, best validation loss) and the metrics so far."""

    config: RunConfig
    bundle: DataBundle
    model: VAE
    objective: Objective
    optimizer: torch.optim.Optimizer
    train: Split
    valid: Split | None
    state: dict = field(default_factory=lambda: {"epoch": 0, "step": 0, "best_valid": None, "best_epoch": None,
                                                 "bad_epochs": 0})
    history: list[dict] = field(default_factory=list)
    cluster: Cluster = field(default_factory=Cluster)
    step_module: torch.nn.Module | None = None  # TrainingStep, in DDP and/or compiled (set by `setup`)
    noise: StepNoise | None = None
    scaler: object | None = None  # a GradScaler for float16
    valid_score: Callable[[VAE], float] | None = None  # the caller's validation loss (fit's `valid_score`)

    @property
    def device(self) -> torch.device:
        return self.train.x.device


def load_bundle(config: RunConfig) -> DataBundle:
    """Loads the data set a run config names."""
    d = config.data
    # every data.* key is an option of load_data, but `workers`, which is how the loop reads streamed data
    options = {f.name: getattr(d, f.name) for f in dataclasses.fields(d) if f.name not in ("name", "root", "workers")}
    return load_data(d.name, d.root, **options)


def load_run_bundle(config: RunConfig, model: VAE) -> DataBundle:
    """The data set of a trained run, checked against its model: a file replaced since training (other shapes,
    more classes) is a DataError naming both, not a shape error from deep inside the network."""
    bundle = load_bundle(config)
    data_shape, model_shape = tuple(bundle.event_shape), tuple(model.event_shape)
    if data_shape != model_shape:
        raise DataError(f"the data {config.data.name!r} now have examples of shape {data_shape}, but the run's model "
                        f"was trained on shape {model_shape}: the data changed since training (point --data-root "
                        "at the data it was trained on, or train a new run)")
    if model.conditional and bundle.num_classes > model.num_classes:
        raise DataError(f"the data {config.data.name!r} now have {bundle.num_classes} classes, but the run's model "
                        f"was trained on {model.num_classes}: the data changed since training")
    return bundle


def make_optimizer(model: VAE, config: RunConfig) -> torch.optim.Optimizer:
    """Adam; the fused kernel where this torch build has it for the model's device."""
    t = config.train
    try:
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Runs the block with `n` torch intra-op threads (None: leave the setting), then restores it."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def average_terms(model: VAE, objective: Objective, split: Split, step: int, batch_size: int = 1024,
                  cluster: Cluster | None = None, noise_seed: int | None = None) -> dict[str, float]:
    """Per-example means of the objective's terms over a whole split (no gradients); with several processes,
    each scores its contiguous share of the split and the sums are added up. With `noise_seed`, the
    objective's z draws are a fixed function of (seed, row): the same every epoch and for any number of
    processes (see `split_noise`)."""
    cluster = cluster or Cluster()
    was_training = model.training
    model.eval()
    lo, hi = shard_rows(len(split), cluster)
    samples = samples_of(objective) if noise_seed is not None else None
    sums: dict[str, torch.Tensor] = {}
    for start in range(lo, hi, batch_size):
        stop = min(hi, start + batch_size)
        batch = _batch(split, slice(start, stop), model.conditional)
        if samples is not None:
            batch.noise = split_noise(noise_seed, samples, model.latent_dim, start, stop, split.x.device)
        loss = objective(model, batch, step)
        for key, value in loss.terms.items():
            sums[key] = sums.get(key, 0.0) + value.sum()
    model.train(was_training)
    keys = sorted(sums) if cluster.is_main or sums else []
    keys = cluster.broadcast(keys)  # a process with no rows (more processes than examples) still adds its zeros
    totals = torch.stack([torch.as_tensor(sums.get(k, 0.0), dtype=torch.float64, device=split.x.device).reshape(())
                          for k in keys]) if keys else torch.zeros(0)
    totals = cluster.all_sum(totals.to(torch.float64))
    return {key: float(value) / len(split) for key, value in zip(keys, totals.tolist())}


# Rows per block of `split_noise`: each block's draws come from its own seed.
NOISE_BLOCK = 1024


def split_noise(seed: int, samples: int, latent_dim: int, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """Standard normal draws (samples, stop - start, latent_dim) for rows [start, stop) of a split, each row's
    a function of (seed, row) alone: drawn in blocks of NOISE_BLOCK rows, block b from seed (seed, b)."""
    noise = StepNoise(seed, device)
    parts = []
    for block in range(start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1):
        noise.start(block)
        first = block * NOISE_BLOCK
        lo, hi = max(start, first) - first, min(stop, first + NOISE_BLOCK) - first
        parts.append(noise.normal(samples, NOISE_BLOCK, latent_dim, lo, hi - lo))
    return torch.cat(parts, dim=1)


def _batch(split: Split, index, conditional: bool) -> Batch:
    """The rows `index` of a split as a Batch (labels only for a conditional model)."""
    return Batch(split.x[index], split.y[index] if conditional and split.y is not None else None,
                 None if split.mask is None else split.mask[index])


def setup(config: RunConfig, data: DataBundle | None = None, validate: bool = True,
          writer: RunWriter | None = None, resume: bool = False, cluster: Cluster | None = None,
          checkpoint: Path | None = None, valid_score: Callable[[VAE], float] | None = None) -> Training:
    """Data, model, objective and optimiser for `config` (resolved against the data); when resuming, the
    weights, optimiser and trainer state of the writer's last checkpoint (or of `checkpoint`, for the processes
    of a distributed run that do not write)."""
    cluster = cluster or Cluster()
    run = cluster.together(lambda: _prepare(config, data, validate, writer, resume, cluster, checkpoint,
                                            valid_score))
    t = run.config.train
    step = TrainingStep(run.model, run.objective)
    run.noise = StepNoise(t.seed, run.device)
    probe = _step_batch(run, torch.arange(min(len(run.train), t.batch_size)), step=0)[0] if cluster.distributed else None
    run.step_module = wrap_step(step, cluster, run.device, probe, modality_of(run.model).variable_length,
                                 t.compile)
    run.scaler = grad_scaler(run.device, t.precision)
    return run


def _prepare(config: RunConfig, data: DataBundle | None, validate: bool, writer: RunWriter | None, resume: bool,
             cluster: Cluster, checkpoint: Path | None, valid_score: Callable[[VAE], float] | None = None) -> Training:
    """`setup` up to the training step: the parts that every process does alone."""
    config = copy.deepcopy(config)  # resolved below; the caller's config stays as it was
    # Every train.* value was range-checked where it entered the config; the device is checked here too (by the
    # runtime), because a saved run (resumed) may name one this machine does not have.
    runtime = Runtime.from_config(config)
    t = config.train
    torch.manual_seed(t.seed)  # the same on every process: the same initial weights
    bundle = data if data is not None else load_bundle(config)
    config.model = resolve_model_config(config.model, bundle)
    device = cluster.device(str(runtime.device))
    model = build_model(config.model).to(device)
    modality_of(model).attach(model, bundle)  # the state its outputs need (the vocabulary of text)
    train = _to_device(bundle.split("train"), device)
    valid = None
    if validate and valid_score is None:
        valid = bundle.splits.get("valid") or bundle.splits.get("test")
        valid = None if valid is None else _to_device(valid, device)
    if t.patience is not None and valid is None and valid_score is None:
        raise TrainingError("train.patience needs a validation split, and this data has none")
    if model.conditional and (train.y is None or (valid is not None and valid.y is None)):
        raise TrainingError(f"model.conditional needs labels on the train and validation splits of {bundle.name!r}")
    steps_per_epoch = math.ceil(len(train) / t.batch_size)
    if t.epochs is None:
        t.epochs = default_epochs(steps_per_epoch)  # recorded in config.json
    config.objective = config.objective.resolved("objective")  # every option, defaults filled in, for config.json
    o = config.objective
    objective = build_objective(o.name, steps_per_epoch=steps_per_epoch, epochs=t.epochs, **o.options)
    # e.g. VampPrior pseudo-inputs (of each class, for a conditional model)
    model.prior.init_from_data(train.x, torch.Generator().manual_seed(t.seed), train.y if model.conditional else None)
    check_shareable(len(train), t.batch_size, cluster)
    if is_streamed(train.x):  # read from disk batch by batch: the batches in flight must fit the limit
        check_batch_fits(train, t.batch_size, runtime.memory_limit_bytes, workers=config.data.workers)
        log.info("the training split (%d examples) is streamed from disk by %d worker(s)", len(train),
                 config.data.workers)
    run = Training(config, bundle, model, objective, make_optimizer(model, config), train, valid, cluster=cluster,
                   valid_score=valid_score)
    if resume and writer is not None and writer.run_dir is not None:
        run.state, run.history = writer.restore(model, run.optimizer)
    elif resume and checkpoint is not None:
        run.state = io.load_training_state(checkpoint, model, run.optimizer)
    if cluster.distributed:
        torch.manual_seed(t.seed + 1 + cluster.rank)  # dropout and other draws of the model's own: per process
    return run


def _to_device(split: Split, device: torch.device) -> Split:
    move = (lambda t: None if t is None else t.to(device))
    return Split(move(split.x), move(split.y), move(split.mask))


def _shard(index: torch.Tensor, cluster: Cluster) -> tuple[torch.Tensor, int, float]:
    """This process's rows of the global batch `index`, where they start in it, and the loss weight
    world * n_r / n (0 for the one stand-in row of a process whose shard is empty)."""
    start, stop = shard_rows(index.shape[0], cluster)
    weight = cluster.world * (stop - start) / index.shape[0]
    if stop == start:  # more processes than rows in this batch: take part in the all-reduce with weight 0
        start, stop = 0, 1
    return index[start:stop], start, weight


def _step_batch(run: Training, index: torch.Tensor, step: int, read: Split | None = None) -> tuple[Batch, float]:
    """This process's shard of the global batch `index` (rows of the training split), with the step's random
    draws, and its loss weight (`_shard`); `read`: the shard's data, when already read (streamed data)."""
    part, start, weight = _shard(index, run.cluster)
    if read is None:
        batch = _batch(run.train, part, run.model.conditional)
    else:
        batch = Batch(read.x, read.y if run.model.conditional else None, read.mask)
    rows, stop = index.shape[0], start + part.shape[0]
    run.noise.start(step)
    if run.bundle.dynamic_binarize:
        batch.x = run.noise.binarize(batch.x, rows, start)
    samples = samples_of(run.objective)
    if samples is not None:
        batch.noise = run.noise.normal(samples, rows, run.model.latent_dim, start, stop - start)
    return batch, weight


def fit(
    config: RunConfig | None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    data: DataBundle | None = None,
    *,
    validate: bool = True,
    figures: bool = False,
    valid_score: Callable[[VAE], float] | None = None,
) -> FitResult:
    """Trains a VAE as `config` says, on `data` (e.g. `DataBundle.from_arrays(x)`) or the data set the config
    names. With `run_dir`, writes config, metrics and checkpoints there (and, with `figures`, samples,
    reconstructions and curves), holding a lock on the folder. `resume` continues the run in `run_dir` with
    its saved config (`config` None, or one that differs only as `vaekit.training.resume` allows, e.g. more epochs).
    `validate=False` skips the per-epoch validation pass (then the last weights are the result).
    `valid_score(model)`, called after every epoch with the model in eval mode and no gradients, replaces the
    validation pass: its value (lower is better) is the epoch's `valid_loss`, which train.patience and the best
    weights follow (the data then needs no validation split).

    Started by `torchrun`, every process calls `fit` alike: it trains data-parallel (`vaekit.training.distributed`),
    rank 0 writing the run folder and the others only reading it (to resume)."""
    cluster = Cluster.from_environment()
    device = torch.device("cpu")
    if cluster.distributed:  # the backend follows the device: gloo for CPU, NCCL for CUDA
        device = cluster.device(resolve_device(_train_setting(config, run_dir, "device")))
    with cluster.session(device, datetime.timedelta(minutes=_train_setting(config, run_dir, "peer_timeout"))):
        # Only rank 0 writes: the other processes keep their best weights in memory (identical, since DDP keeps
        # every process's weights equal) and read the folder's checkpoint when resuming.
        writer = RunWriter(run_dir if cluster.is_main else None, figures=figures)
        try:
            checkpoint = False
            if resume:
                if run_dir is None:
                    raise TrainingError("resuming needs the run folder to continue")
                saved, checkpoint = cluster.from_main(writer.reopen if cluster.is_main else lambda: None)
                config = saved if config is None else check_resume(saved, config)
            elif config is None:
                raise TrainingError("fit needs a config (None only when resuming a run)")
            with torch_threads(config.train.threads):
                last = None if cluster.is_main or not checkpoint else Path(run_dir) / io.LAST_CHECKPOINT
                run = setup(config, data, validate, writer, resume=checkpoint, cluster=cluster, checkpoint=last,
                            valid_score=valid_score)
                # Rank 0's trackers, opened before the folder is written (a missing package leaves nothing behind);
                # an error there reaches every process.
                opened: list[RunTrackers | None] = []
                cluster.from_main(lambda: opened.append(_open_trackers(run, run_dir, resumed=checkpoint)))
                trackers = opened[0] if opened else None
                failed = True
                try:
                    if resume:  # an extended run records its length
                        cluster.from_main(lambda: writer.save_config(run.config))
                    else:  # only once data, model, objective are valid: no empty folder
                        cluster.from_main(lambda: writer.start(run.config, run.bundle))
                    _loop(run, writer, trackers)
                    failed = False
                finally:
                    if trackers is not None:
                        trackers.close(failed)
                figures = cluster.from_main(lambda: writer.finish(run.model, run.bundle, run.history))
                if not cluster.is_main:
                    writer.finish(run.model, run.bundle, run.history)  # the best weights kept in memory
        finally:
            writer.close()
    run.model.eval()
    return FitResult(model=run.model, config=run.config, history=run.history,
                     run_dir=None if run_dir is None else Path(run_dir), figures=figures or [])


def _train_setting(config: RunConfig | None, run_dir: str | Path | None, name: str):
    """train.`name` of `config`, or (resuming) of the run folder's saved config; the default when it cannot be
    read (the error is then raised where the config is read)."""
    if config is not None:
        return getattr(config.train, name)
    try:
        return getattr(io.load_config(Path(run_dir)).train, name)
    except Exception:  # noqa: BLE001 - reported properly by `writer.reopen`
        return getattr(TrainConfig(), name)


def _open_trackers(run: Training, run_dir: str | Path | None, resumed: bool) -> RunTrackers | None:
    """The experiment trackers train.log names (rank 0), continuing their curves when the run resumes."""
    t = run.config.train
    trackers = open_trackers(t.log, run_dir, to_dict(run.config), t.log_images_every, t.epochs)
    if trackers is not None and resumed:
        trackers.resume(run.history)
    elif trackers is not None:
        trackers.start()
    return trackers


def _run_outputs(run: Training) -> list:
    """What the run folder shows at the end (samples, reconstructions), for the trackers: drawn in eval mode on
    fixed noise, the training's random state left as it was."""
    was_training = run.model.training
    run.model.eval()
    try:
        with torch.no_grad(), seeded(run.config.train.seed):
            return list(modality_of(run.model).run_outputs(run.model, run.bundle, []))
    finally:
        run.model.train(was_training)


def _loop(run: Training, writer: RunWriter, trackers: RunTrackers | None = None) -> None:
    """Epochs from the trainer state's to train.epochs, or until early stopping or the time limit; each epoch's
    record goes to metrics.jsonl, then to the `trackers` (rank 0's)."""
    tqdm = bar_class()  # a widget in a notebook, text elsewhere
    t, state = run.config.train, run.state
    main = run.cluster.is_main
    # On a terminal or in a notebook a bar; in a log file (or CI) one short line per epoch instead of its updates.
    lines = t.progress and main and not interactive()
    bar = tqdm(total=math.ceil(len(run.train) / t.batch_size) * t.epochs, initial=state["step"],
               disable=not (t.progress and main) or lines, unit="batch", dynamic_ncols=True)
    collapse = CollapseWatch(run.model.latent_dim, t.epochs) if main else None
    if main:
        warn_if_never_warm(run.objective, math.ceil(len(run.train) / t.batch_size), t.epochs)
    run.model.train()
    budget_start = time.perf_counter()
    first_epoch = state["epoch"]
    try:
        for epoch in range(first_epoch, t.epochs):
            bar.set_description(f"epoch {epoch + 1}/{t.epochs}")
            _set_learning_rate(run.optimizer, t.lr, t.lr_schedule, epoch, t.epochs)
            stage = getattr(run.model, "start_epoch", None)  # a model kind trained in stages (a VQ-VAE's prior)
            if stage is not None:
                stage(epoch, t.epochs)
            started = time.perf_counter()
            train_terms, step = _train_epoch(run, epoch, bar)
            record = _epoch_record(run, epoch, step, train_terms, time.perf_counter() - started)
            if collapse is not None:
                collapse.update(record, run.objective.warmed_up(state["step"]))
            improved = _update_state(state, record, epoch, step)
            run.history.append(record)
            writer.epoch(record, run.model, run.optimizer, state, improved)
            if trackers is not None:  # after the folder holds the epoch: a tracker never runs ahead of it
                trackers.epoch(record, run.optimizer.param_groups[0]["lr"], lambda: _run_outputs(run))
            if lines:
                print(epoch_line(record, t.epochs), file=sys.stderr, flush=True)
            if epoch == first_epoch and (lines or not bar.disable):  # a run of minutes says so after its first epoch
                announce_duration(above(bar), "training", time.perf_counter() - budget_start, 1,
                                  t.epochs - first_epoch, "epoch")
            bar.set_postfix(loss=f"{train_terms['loss']:.2f}", rate=f"{record['samples_per_s']:.0f}/s",
                            **({"valid": f"{record['valid_loss']:.2f}"} if "valid_loss" in record else {}))
            if main:
                log.info("epoch %d: %s", epoch + 1, record)
            # every process stops together (the time limit is read on each one's clock)
            if run.cluster.any(_should_stop(state, t, budget_start, epoch, main), run.device):
                break
    finally:
        bar.close()
    if collapse is not None:
        collapse.finish(run.history)
    if trackers is not None and run.history:
        trackers.finish(run.history[-1], lambda: _run_outputs(run))


def epoch_line(record: dict, epochs: int) -> str:
    """One epoch's summary, for logs: "epoch 3/50  loss 98.12  valid 99.01  12,345 samples/s  4.1 s"."""
    valid = f"  valid {record['valid_loss']:.2f}" if "valid_loss" in record else ""
    return (f"epoch {record['epoch']}/{epochs}  loss {record['train_loss']:.2f}{valid}  "
            f"{record['samples_per_s']:,.0f} samples/s  {record['seconds']:.1f} s")


def warn_if_never_warm(objective: Objective, steps_per_epoch: int, epochs: int) -> bool:
    """Warns (and returns True) when the run ends before the KL term reaches its full weight: its KL warm-up (or
    capacity ramp) is longer than the run, so the posterior is never pulled onto the prior and samples drawn from
    the prior come out as noise."""
    if objective.warmed_up(steps_per_epoch * epochs):
        return False
    log.warning("the KL warm-up is longer than the run (%d epoch%s): the KL term never reaches its full weight, so "
                "samples from the prior will be poor; train longer or shorten the warm-up "
                "(objective.warmup_epochs, or capacity_steps)", epochs, "" if epochs == 1 else "s")
    return True


def _set_learning_rate(optimizer: torch.optim.Optimizer, lr: float, schedule: str, epoch: int, epochs: int) -> None:
    if schedule == "cosine":
        # lr_e = lr / 2 * (1 + cos(pi * e / epochs)), set per epoch so that resuming needs no scheduler state
        for group in optimizer.param_groups:
            group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * epoch / epochs))


def _epoch_record(run: Training, epoch: int, step: int, train_terms: dict, elapsed: float) -> dict:
    """One line of metrics.jsonl: train terms, and validation terms with collapse diagnostics when validating."""
    record = {"epoch": epoch + 1, "step": step, "seconds": round(elapsed, 3),
              "samples_per_s": round(len(run.train) / elapsed, 1), **{f"train_{k}": v for k, v in train_terms.items()}}
    if run.cluster.distributed:
        record["processes"] = run.cluster.world
    if run.valid_score is not None:
        was_training = run.model.training
        run.model.eval()
        with torch.no_grad():
            record["valid_loss"] = float(run.valid_score(run.model))
        run.model.train(was_training)
    elif run.valid is not None:
        valid_terms = average_terms(run.model, run.objective, run.valid, step, cluster=run.cluster,
                                    noise_seed=run.config.train.seed + VALID_NOISE_SEED)
        record.update({f"valid_{k}": v for k, v in valid_terms.items()})
        if not run.cluster.is_main:  # the diagnostics are for the metrics, which rank 0 writes
            return record
        own = getattr(run.model, "diagnostics", None)  # a model kind's own (a VQ-VAE's codebook usage)
        if own is not None:
            record.update(own(run.valid.x, run.valid.y))
        if not run.model.capabilities.kl_per_dimension:  # no per-dimension KL, no active units to count
            return record
        diagnostics = posterior_diagnostics(run.model, run.valid.x, run.valid.y, mask=run.valid.mask)
        record.update(valid_kl_per_dim=[round(v, 4) for v in diagnostics.kl_per_dim],
                      active_units=diagnostics.active_units)
        if diagnostics.kl_per_layer is not None:  # a hierarchical model: each stochastic layer, bottom first
            record.update(valid_kl_per_layer=[round(v, 4) for v in diagnostics.kl_per_layer],
                          active_units_per_layer=diagnostics.active_units_per_layer)
        if diagnostics.mutual_information is not None:
            record["valid_mutual_info"] = round(diagnostics.mutual_information, 4)
    return record


def _update_state(state: dict, record: dict, epoch: int, step: int) -> bool:
    """Advances the trainer state past `epoch`; True when its validation loss is the best so far (always True
    without validation: the last weights are the best known)."""
    state["epoch"], state["step"] = epoch + 1, step
    loss = record.get("valid_loss")
    improved = loss is None or state["best_valid"] is None or loss < state["best_valid"]
    if improved:
        state["best_valid"], state["best_epoch"], state["bad_epochs"] = loss, epoch + 1, 0
    else:
        state["bad_epochs"] += 1
    return improved


def _should_stop(state: dict, t, budget_start: float, epoch: int, main: bool = True) -> bool:
    if t.patience is not None and state["bad_epochs"] >= t.patience:
        if main:
            log.info("no better validation loss for %d epochs: stopping early", t.patience)
        return True
    if t.time_limit is not None and time.perf_counter() - budget_start > 60 * t.time_limit:
        if main:
            log.info("time limit of %.1f minutes reached after epoch %d", t.time_limit, epoch + 1)
        return True
    return False


class CollapseWatch:
    """Warns of posterior collapse: fewer than half the units active after epochs trained entirely past the KL
    warm-up. Units often wake up some epochs in (on digits, 10 steps an epoch: at epoch 7), so it warns after
    max(COLLAPSE_PATIENCE, COLLAPSE_PATIENCE_FRACTION * epochs) such epochs in a row, or at the end of training."""

    def __init__(self, latent_dim: int, epochs: int) -> None:
        self.latent_dim, self.epochs_collapsed, self.warned = latent_dim, 0, False
        self.patience = max(COLLAPSE_PATIENCE, math.ceil(COLLAPSE_PATIENCE_FRACTION * epochs))

    def update(self, record: dict, warmed_up: bool) -> None:
        if "active_units" not in record:
            return
        collapsed = warmed_up and 2 * record["active_units"] < self.latent_dim
        self.epochs_collapsed = self.epochs_collapsed + 1 if collapsed else 0
        if self.epochs_collapsed >= self.patience and not self.warned:
            self._warn(record)

    def finish(self, history: list[dict]) -> None:
        if self.epochs_collapsed and not self.warned:
            self._warn(history[-1])

    def _warn(self, record: dict) -> None:
        self.warned = True
        log.warning("posterior collapse: only %d of %d latent units are active after epoch %d (past the KL warm-up); "
                    "try objective.free_bits, objective.kl_schedule='cyclical' or a smaller model.latent_dim "
                    "(docs/failure_modes.md)", record["active_units"], self.latent_dim, record["epoch"])


def _train_epoch(run: Training, epoch: int, bar) -> tuple[dict[str, float], int]:
    """One pass over the shuffled training split; returns the per-example mean terms and the new step."""
    t, x, step = run.config.train, run.train.x, run.state["step"]
    generator = torch.Generator().manual_seed(t.seed * 1_000_003 + epoch)
    order = torch.randperm(x.shape[0], generator=generator)
    order = modality_of(run.model).batch_order(order, x, t.batch_size, generator)  # text: similar lengths together
    device, precision = run.device, t.precision
    streamed = is_streamed(x)
    # The global batches, in order: on the data's device (moved once, not per batch, which would sync a GPU),
    # or on the CPU for streamed data, whose DataLoader workers read this process's shard of each batch ahead.
    batches = list(torch.split(order if streamed else order.to(x.device), t.batch_size))
    if streamed:
        reader = batch_loader(run.train, [_shard(b, run.cluster)[0] for b in batches], run.config.data.workers)
    sums: dict[str, torch.Tensor] = {}
    for i, index in enumerate(batches):
        batch, weight = _step_batch(run, index, step, next(reader) if streamed else None)
        with autocast(device, precision):
            total, terms = run.step_module(batch, *_step_inputs(step, weight, t.compile))
        run.optimizer.zero_grad(set_to_none=True)
        _backward_and_step(run, total, t.grad_clip)
        step += 1
        for key, value in terms.items():  # (a stand-in row of an empty shard adds nothing)
            sums[key] = sums.get(key, 0.0) + (value.detach().float().sum() if weight > 0 else 0.0)
        if (i + 1) % FINITE_CHECK_EVERY == 0:
            if not run.cluster.any(not bool(torch.isfinite(total)), device):
                bar.update(FINITE_CHECK_EVERY)
                continue
            run.cluster.fail(TrainingError(f"the loss became non-finite at epoch {epoch + 1}, step {step}; the last "
                                           f"good checkpoint is kept (try a lower train.lr or train.grad_clip)"))
    bar.update(step - bar.n)
    keys = list(sums)
    totals = run.cluster.all_sum(torch.stack([torch.as_tensor(sums[k], device=device).to(torch.float64)
                                              for k in keys]))  # the sums over every process's rows
    terms = {key: float(value) / x.shape[0] for key, value in zip(keys, totals.tolist())}
    if not all(math.isfinite(v) for v in terms.values()):  # (the same sums on every process)
        run.cluster.fail(TrainingError(f"the loss became non-finite during epoch {epoch + 1}; the last good "
                                       f"checkpoint is kept (try a lower train.lr or train.grad_clip)"))
    return terms, step


def _step_inputs(step: int, weight: float, compiled: bool) -> tuple:
    """(step, weight) as the training step takes them: 0-dim float64 tensors for a compiled step (new values of
    a Python number would each compile a new graph), plain numbers otherwise."""
    if not compiled:
        return step, weight
    return torch.tensor(float(step), dtype=torch.float64), torch.tensor(weight, dtype=torch.float64)


def _backward_and_step(run: Training, total: torch.Tensor, grad_clip: float | None) -> None:
    """Backward pass (DDP all-reduces the gradients during it), clipping, optimiser step; float16 through the
    gradient scaler."""
    scaler = run.scaler
    if scaler is None:
        total.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
        run.optimizer.step()
        return
    scaler.scale(total).backward()
    if grad_clip:
        scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
    scaler.step(run.optimizer)
    scaler.update()
