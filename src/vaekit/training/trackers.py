"""Experiment trackers: the tools `train.log` names, fed the records of metrics.jsonl.

    train.log = ["tensorboard"]   event files in RUN/tensorboard/, so that `tensorboard --logdir runs` shows every
                                  run under runs/ side by side
    train.log = ["mlflow"]        an MLflow run in the tracking store MLflow is set to (MLFLOW_TRACKING_URI, or
                                  its default), named after the run folder, with the config as parameters

metrics.jsonl stays the source of truth. A tracker receives an epoch's record only after the run folder has it
(the line appended and the checkpoint saved), so it never holds an epoch that the folder lost; on resume it
continues the same curves without a duplicate (`Tracker.resume`). What each epoch logs:
    every number of the record at step = epoch: "train_loss" as "train/loss", "valid_kl_per_dim" (a list) as
    "valid/kl_per_dim/0", ... ; "active_units" as "valid/active_units"; "seconds", "samples_per_s" under "run/";
    the learning rate as "train/lr"
    every `train.log_images_every` epochs (by default: every 30 s of training) and after the last epoch: what the
    run folder shows at the end (the modality's run outputs): sample and reconstruction grids as images, a text
    run's sentences as text
Trackers run on rank 0 only (the process that writes the run folder). A tracker is one class registered in
TRACKERS; its package is imported when the run starts, and a missing one is a one-line error naming the extra.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from ..core.dotted import dotted_items
from ..core.registry import Registry
from ..errors import ConfigError, TrainingError

log = logging.getLogger(__name__)

class TrackerError(TrainingError):
    """A tracker that cannot start or continue its run (an unreachable server, a store it cannot write)."""


TRACKERS: Registry = Registry("tracker", context=("run_dir", "run_name", "params"))
TENSORBOARD_DIR = "tensorboard"
MLFLOW_FILE = "mlflow.json"  # the MLflow run id of this run folder, so that a resumed run continues it
# Record keys that are not metrics, and keys shown under "run/" rather than under a split.
NOT_LOGGED = ("epoch", "step")
SPLITS = ("train", "valid")
# train.log_images_every = null (the default): images once this many seconds of training have passed since the
# last ones, and after the last epoch. Each costs ~0.15 s (drawing the grids, rendering them to PNG), a few digits
# epochs' worth: a fixed interval in epochs would cost short-epoch runs much and long-epoch runs nothing.
AUTO_IMAGE_SECONDS = 30.0
clock = time.perf_counter  # a module attribute, so that tests can stand in for it
VALID_DIAGNOSTICS = ("active_units", "active_units_per_layer", "codebook_usage", "codebook_perplexity")


def tracker_names() -> list[str]:
    """The names train.log accepts."""
    return sorted(TRACKERS)


def check_trackers(value: list[str], path: str = "train.log") -> list[str]:
    """`value` if it names each known tracker at most once; a one-line ConfigError otherwise."""
    for name in value:
        if name not in TRACKERS:
            raise ConfigError(f"{path}: unknown tracker {name!r}; choose from {', '.join(tracker_names())}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{path} names a tracker twice: {value}")
    return value


def scalars(record: dict) -> dict[str, float]:
    """The numbers of one metrics.jsonl record under tracker tags: "train_loss" -> "train/loss", a list such as
    "valid_kl_per_dim" -> "valid/kl_per_dim/0", ..., anything else (seconds, active units) -> "run/<key>"."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in NOT_LOGGED:
            continue
        split, _, rest = key.partition("_")
        if key in VALID_DIAGNOSTICS:  # measured on the validation split, though not named after it
            split, rest = "valid", key
        tag = f"{split}/{rest}" if split in SPLITS and rest else f"run/{key}"
        if isinstance(value, (list, tuple)):
            out.update({f"{tag}/{i}": float(v) for i, v in enumerate(value) if _is_number(v)})
        elif _is_number(value):
            out[tag] = float(value)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def flat_params(config: dict) -> dict[str, str]:
    """A nested config dict as flat "data.name" -> "digits" strings (what trackers show as hyperparameters)."""
    return {key: json.dumps(value) if isinstance(value, (list, dict)) or value is None else str(value)
            for key, value in dotted_items(config)}


class Tracker:
    """What every tracker does. `start` (a new run) or `resume` comes first, before training; `epoch` and `outputs`
    are called after the run folder holds the epoch; `close` last, `failed` when training stopped on an error."""

    def start(self) -> None:
        """A new run, before its folder is written: connect, so that a tracker that cannot work fails first."""

    def resume(self, history: list[dict]) -> None:
        """A resumed run: `history` is metrics.jsonl up to the checkpoint the run continues from."""

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        """Logs one epoch's numbers at step `epoch` (1-based)."""
        raise NotImplementedError

    def outputs(self, epoch: int, items: list[tuple[str, Any]]) -> None:
        """Logs what the run shows (figures, text) at step `epoch`."""

    def close(self, failed: bool = False) -> None:
        """Flushes and releases what the tracker holds."""


def _missing(package: str, extra: str) -> ConfigError:
    return ConfigError(f"train.log names {extra!r}, which needs the package {package!r}: "
                       f"pip install \"vaekit[{extra}]\"")


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """TensorBoard event files in RUN/tensorboard/ (torch.utils.tensorboard)."""

    def __init__(self, run_dir: Path, run_name: str, params: dict[str, str]) -> None:
        try:
            import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it; checked here for a clear message)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboard") from None
        self._writer_class, self.log_dir = SummaryWriter, Path(run_dir) / TENSORBOARD_DIR
        self.writer = None
        self.params = params
        self.purge_step: int | None = None

    def start(self) -> None:
        # A run started over in its folder (resumed before its first checkpoint) hides the events it had written.
        if any(self.log_dir.glob("events.*")):
            self.purge_step = 1

    def _open(self, purge_step: int | None = None):
        if self.writer is None:
            purge_step = purge_step or self.purge_step
            self.writer = self._writer_class(str(self.log_dir), purge_step=purge_step, flush_secs=30)
            if purge_step in (None, 1):  # a new run: its settings, once (shown in TensorBoard's text tab)
                self.writer.add_text("config", _markdown_table(self.params), 0)
        return self.writer

    def resume(self, history: list[dict]) -> None:
        # Events of epochs past the checkpoint (logged before a crash) are hidden from the curves: TensorBoard's
        # purge_step drops every event at or after it. The checkpoint's own epoch is written again, in case the
        # crash came between the checkpoint and its events.
        last = history[-1]["epoch"] if history else 0
        writer = self._open(purge_step=last if last else None)
        if history:
            self._scalars(writer, last, scalars(history[-1]))

    def _scalars(self, writer, epoch: int, values: dict[str, float]) -> None:
        # One summary holding every value (what add_scalar writes one event each for): a tenth of the time, about
        # 0.3 ms an epoch for 30 numbers instead of 3 ms, which matters beside 50 ms digits epochs.
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])
        writer._get_file_writer().add_summary(summary, epoch)

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        writer = self._open()
        self._scalars(writer, epoch, values)
        writer.flush()  # a crash loses no epoch that the run folder holds

    def outputs(self, epoch: int, items: list[tuple[str, Any]]) -> None:
        writer = self._open()
        for name, content in items:
            tag = Path(name).stem
            if isinstance(content, str):
                writer.add_text(tag, _preformatted(content), epoch)
            elif hasattr(content, "savefig"):  # a matplotlib figure (closed by add_figure)
                writer.add_figure(tag, content, epoch, close=True)
        writer.flush()

    def close(self, failed: bool = False) -> None:
        if self.writer is not None:
            self.writer.close()


@TRACKERS.register("mlflow")
class MLflowTracker(Tracker):
    """An MLflow run (mlflow or mlflow-skinny) in the tracking store and experiment MLflow is set to
    (MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_NAME, or mlflow.set_experiment), named after the run folder; started
    inside an active MLflow run (a notebook's), it is that run's child. RUN/mlflow.json keeps its id."""

    def __init__(self, run_dir: Path, run_name: str, params: dict[str, str]) -> None:
        try:
            import mlflow
        except ImportError:
            raise _missing("mlflow", "mlflow") from None
        self.mlflow, self.file, self.run_name, self.params = mlflow, Path(run_dir) / MLFLOW_FILE, run_name, params
        self.run = None
        self.recorded = False  # whether RUN/mlflow.json names the run (written once the folder exists)
        self.logged_up_to = 0  # the last epoch the MLflow run already holds (on resume)

    def start(self) -> None:
        mlflow = self.mlflow
        self.run = mlflow.start_run(run_name=self.run_name, nested=mlflow.active_run() is not None)
        items = sorted(self.params.items())
        for first in range(0, len(items), 100):  # MLflow takes at most 100 parameters per call
            mlflow.log_params({k: v[:6000] for k, v in items[first:first + 100]})

    def resume(self, history: list[dict]) -> None:
        saved = json.loads(self.file.read_text()) if self.file.is_file() else {}
        if not saved.get("run_id"):  # the run was not tracked before: a new MLflow run, with the epochs so far
            self.start()
        else:
            self.run = self.mlflow.start_run(run_id=saved["run_id"], nested=self.mlflow.active_run() is not None)
            self.recorded = True
            # MLflow keeps every value logged, so a step logged twice would show twice: the epochs the run holds
            # are not logged again (it holds none past the checkpoint: they are logged after it is saved), and
            # those it lacks (a crash between the checkpoint and the tracker) are logged now.
            logged = self.mlflow.MlflowClient().get_metric_history(self.run.info.run_id, "train/loss")
            self.logged_up_to = max((m.step for m in logged), default=0)
        for record in history:
            if record["epoch"] > self.logged_up_to:
                self.epoch(record["epoch"], scalars(record))

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        if not self.recorded:
            from ..core.atomic import atomic_write_text

            atomic_write_text(self.file, json.dumps({"run_id": self.run.info.run_id,
                                                     "experiment_id": self.run.info.experiment_id,
                                                     "tracking_uri": self.mlflow.get_tracking_uri()}) + "\n")
            self.recorded = True
        if epoch <= self.logged_up_to:
            return
        items = sorted(values.items())
        for first in range(0, len(items), 1000):  # MLflow takes at most 1000 metrics per call
            self.mlflow.log_metrics(dict(items[first:first + 1000]), step=epoch)

    def outputs(self, epoch: int, items: list[tuple[str, Any]]) -> None:
        for name, content in items:
            path = Path(name)
            if isinstance(content, str):
                self.mlflow.log_text(content, f"epoch_{epoch:04d}/{path.name}")
            elif hasattr(content, "savefig"):
                self.mlflow.log_figure(content, f"epoch_{epoch:04d}/{path.stem}.png")

    def close(self, failed: bool = False) -> None:
        active = self.mlflow.active_run()
        if self.run is not None and active is not None and active.info.run_id == self.run.info.run_id:
            self.mlflow.end_run(status="FAILED" if failed else "FINISHED")


def _close(figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def _markdown_table(params: dict[str, str]) -> str:
    rows = "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in sorted(params.items()))
    return "| setting | value |\n|---|---|\n" + rows


def _preformatted(text: str) -> str:
    """Text shown as it is in TensorBoard's markdown view (each line indented: a code block)."""
    return "\n".join("    " + line for line in text.splitlines())


class RunTrackers:
    """The trackers of one run: every epoch's numbers and, every few epochs, what the run shows. A tracker that
    fails before training is an error (nothing trained yet); one that fails during training is dropped with a
    warning, and training goes on (metrics.jsonl holds every epoch)."""

    def __init__(self, trackers: dict[str, Tracker], images_every: int | None, epochs: int) -> None:
        self.trackers, self.images_every, self.epochs = dict(trackers), images_every, epochs
        self._images_at, self._images_epoch = clock(), None  # when and at which epoch images were last logged

    def _before_training(self, action: str, call) -> None:
        for name, tracker in self.trackers.items():
            try:
                call(tracker)
            except ConfigError:
                raise
            except Exception as error:  # noqa: BLE001 - each tool has its own errors; one line names the tracker
                self.close(failed=True)
                raise TrackerError(f"train.log: {name} could not {action}: {_first_line(error)}") from None

    def start(self) -> None:
        """A new run: each tracker connects (before the run folder is written)."""
        self._before_training("start", lambda tracker: tracker.start())

    def resume(self, history: list[dict]) -> None:
        """A resumed run: each tracker continues its curves from `history`."""
        self._before_training("continue the run", lambda tracker: tracker.resume(history))

    def _each(self, epoch: int, call) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                call(tracker)
            except Exception as error:  # noqa: BLE001 - a tracker's failure must not stop (or lose) the training
                log.warning("train.log: %s failed at epoch %d and is left out from now on (metrics.jsonl goes on): "
                            "%s", name, epoch, _first_line(error))
                del self.trackers[name]
                _quietly_close(tracker)

    def epoch(self, record: dict, lr: float, shows: Callable[[], list]) -> None:
        """Logs `record` (one metrics.jsonl line), and the run outputs `shows()` gives when images are due."""
        epoch = record["epoch"]
        values = {**scalars(record), "train/lr": float(lr)}
        self._each(epoch, lambda tracker: tracker.epoch(epoch, values))
        if self.images_every is not None:
            due = epoch % self.images_every == 0 or epoch == self.epochs
        else:  # automatic: drawing and encoding the grids (~0.15 s) costs at most ~1% of the training time
            due = epoch == self.epochs or clock() - self._images_at >= AUTO_IMAGE_SECONDS
        if due:
            self._images(epoch, shows)

    def finish(self, record: dict, shows: Callable[[], list]) -> None:
        """After the last epoch trained (early stopping or a time limit may end the run before train.epochs): its
        images, unless they were logged already."""
        if record["epoch"] != self._images_epoch:
            self._images(record["epoch"], shows)

    def _images(self, epoch: int, shows: Callable[[], list]) -> None:
        if not self.trackers:
            return
        items = [item for item in shows() if not item[0].startswith("curves")]  # the curves are the scalars
        self._each(epoch, lambda tracker: tracker.outputs(epoch, items))
        for _, content in items:  # the figures, once every tracker has them
            if hasattr(content, "savefig"):
                _close(content)
        self._images_at, self._images_epoch = clock(), epoch

    def close(self, failed: bool = False) -> None:
        """Ends every tracker's run (as failed when training stopped on an error)."""
        for tracker in self.trackers.values():
            _quietly_close(tracker, failed)


def _quietly_close(tracker: Tracker, failed: bool = True) -> None:
    try:
        tracker.close(failed)
    except Exception as error:  # noqa: BLE001 - a tracker failing to close must not hide the run's own outcome
        log.warning("could not close the %s tracker: %s", type(tracker).__name__, _first_line(error))


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def open_trackers(names: Iterable[str], run_dir: str | Path | None, config_dict: dict, images_every: int | None,
                  epochs: int) -> RunTrackers | None:
    """The trackers `names` (train.log) for the run folder `run_dir`; None when there are none. Trackers need a
    run folder (a run without one has nothing to resume and no name): a ConfigError otherwise."""
    names = list(names)
    if not names:
        return None
    if run_dir is None:
        raise ConfigError(f"train.log = {names} needs a run folder to log from (fit(..., run_dir=...) or --out)")
    run_dir = Path(run_dir)
    params = flat_params(config_dict)
    trackers = {name: TRACKERS.get(name)(run_dir=run_dir, run_name=run_dir.resolve().name, params=params)
                for name in names}
    return RunTrackers(trackers, images_every, epochs)


__all__ = ["TRACKERS", "TrackerError", "RunTrackers", "open_trackers", "check_trackers", "scalars", "flat_params",
           "Tracker"]
