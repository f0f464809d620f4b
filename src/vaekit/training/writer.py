"""`RunWriter`: everything training writes, in one place.

    start    refuses a folder that holds anything, locks it, then writes config.json (and standardizer.json
             for standardised data)
    reopen   (resuming) locks the folder, removes temporary files of killed writes, and says whether there is
             a checkpoint (a run killed before its first one starts again from the beginning)
    epoch    appends a line to metrics.jsonl, saves the best weights and a resumable checkpoint
    restore  (resuming) loads the last checkpoint and cuts metrics.jsonl back to it (a line cut short by a
             crash is dropped)
    finish   puts the best weights back into the model; writes figures when asked
    close    releases the lock (always: `fit` calls it in a `finally`)
Without a run folder it writes nothing and keeps the best weights in memory, so that `fit` returns the same
model either way.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import torch

from .. import io
from ..config import RunConfig
from ..core.outputs import refuse_nonempty
from ..core.runlock import LOCK_FILE, RunLock
from ..data import DataBundle
from ..errors import CheckpointError
from ..figures.plots import write_output  # noqa: F401 (re-exported: the writer of every figure and array)
from ..models.vae import VAE

log = logging.getLogger(__name__)

STANDARDIZER_FILE = "standardizer.json"


class RunWriter:
    """Writes a run folder during training (or nothing, with `run_dir=None`)."""

    def __init__(self, run_dir: str | Path | None, figures: bool = False) -> None:
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.figures = figures
        self._best_state: dict[str, torch.Tensor] | None = None
        self._run_lock = None if self.run_dir is None else RunLock(self.run_dir)

    def reopen(self) -> tuple[RunConfig, bool]:
        """Locks the run folder to resume it; returns its saved config and whether it has a checkpoint."""
        if self.run_dir is None:
            raise CheckpointError("resuming needs the run folder to continue")
        if not (self.run_dir / io.CONFIG_FILE).is_file():
            raise CheckpointError(f"cannot resume {str(self.run_dir)!r}: it has no {io.CONFIG_FILE} (start a new "
                                  "run there without --resume)")
        self._run_lock.acquire()
        config = io.load_config(self.run_dir)
        remove_orphans(self.run_dir)
        has_checkpoint = (self.run_dir / io.LAST_CHECKPOINT).is_file()
        if not has_checkpoint and (self.run_dir / io.MODEL_FILE).is_file():
            # A trained model with nothing to continue from (a finished run whose checkpoint was deleted, a run
            # trained by another command): resuming would train a new model from scratch over it.
            self._run_lock.release()
            raise CheckpointError(f"cannot resume {str(self.run_dir)!r}: it holds a trained {io.MODEL_FILE} but no "
                                  f"{io.LAST_CHECKPOINT} to continue from, and resuming would replace the model with "
                                  "a new one; train into another --out (or delete the model file to start over)")
        if not has_checkpoint:  # killed before the first checkpoint: what was written is of no epoch
            log.warning("%s has no checkpoint yet: training starts from the beginning", self.run_dir)
            for name in (io.METRICS_FILE, io.MODEL_FILE):
                (self.run_dir / name).unlink(missing_ok=True)
        return config, has_checkpoint

    def save_config(self, config: RunConfig) -> None:
        """Writes config.json again (a resumed run that was extended)."""
        if self.run_dir is not None:
            io.save_config(self.run_dir, config)

    def start(self, config: RunConfig, bundle: DataBundle | None = None) -> None:
        """A new run: the folder must be new or empty; locks it, writes config.json (and the data's
        standardisation, and what its modality keeps)."""
        if self.run_dir is None:
            return
        # A folder holding only a lock file and temporary files is a run killed before it wrote anything: free.
        if not _holds_only_leftovers(self.run_dir):
            refuse_nonempty(self.run_dir, "choose another --out or continue it with --resume")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._run_lock.acquire()
        remove_orphans(self.run_dir)
        if not _holds_only_leftovers(self.run_dir):  # another process got here first
            raise CheckpointError(f"{str(self.run_dir)!r} is being written by another process; choose another --out")
        io.save_config(self.run_dir, config)
        if bundle is not None and bundle.standardizer is not None:
            io.atomic_write_text(self.run_dir / STANDARDIZER_FILE, json.dumps(bundle.standardizer.to_dict()) + "\n")
        if bundle is not None:  # what the data's modality keeps (the vocabulary of text)
            from ..modalities import MODALITIES

            for name, text in MODALITIES.get(bundle.modality)().state_files(bundle).items():
                io.atomic_write_text(self.run_dir / name, text)

    def close(self) -> None:
        """Releases the run folder's lock."""
        if self._run_lock is not None:
            self._run_lock.release()

    def restore(self, model: VAE, optimizer: torch.optim.Optimizer) -> tuple[dict, list[dict]]:
        """Loads the last checkpoint into model and optimiser; returns the trainer state and the metrics up to
        it (lines written after the checkpoint, before a crash, are dropped so the log matches the state)."""
        state = io.load_training_state(self.run_dir / io.LAST_CHECKPOINT, model, optimizer)
        history = read_history(self.run_dir)[: state["epoch"]]
        io.atomic_write_text(self.run_dir / io.METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))
        log.info("resuming %s at epoch %d", self.run_dir, state["epoch"])
        return state, history

    def epoch(self, record: dict, model: VAE, optimizer: torch.optim.Optimizer, state: dict, improved: bool) -> None:
        """After each epoch: the metrics line, the best weights when they improved, the checkpoint."""
        if self.run_dir is None:
            if improved and "valid_loss" in record:  # without validation the last weights are the result
                self._best_state = copy.deepcopy(model.state_dict())
            return
        io.atomic_append_text(self.run_dir / io.METRICS_FILE, json.dumps(record) + "\n")
        if improved:
            io.save_model(self.run_dir / io.MODEL_FILE, model)
        io.save_training_state(self.run_dir / io.LAST_CHECKPOINT, model, optimizer, state)

    def finish(self, model: VAE, bundle: DataBundle, history: list[dict]) -> list[Path]:
        """Loads the best weights into `model`; with figures, writes samples, reconstructions and curves."""
        if self.run_dir is None:
            if self._best_state is not None:
                model.load_state_dict(self._best_state)
            return []
        if (self.run_dir / io.MODEL_FILE).is_file():
            tensors, _ = io.load_tensors(self.run_dir / io.MODEL_FILE)
            io.load_weights(model, tensors, str(self.run_dir / io.MODEL_FILE))
        if not self.figures:
            return []
        from ..modalities import modality_of

        model.eval()
        return [write_output(content, self.run_dir / name) for name, content in
                modality_of(model).run_outputs(model, bundle, history)]


def read_history(run_dir: Path) -> list[dict]:
    """The records of metrics.jsonl; a last line cut short by a crash mid-append is dropped, a bad line
    before it is a CheckpointError."""
    path = run_dir / io.METRICS_FILE
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError):
            if number == len(lines):
                log.warning("%s: dropping its last line, cut short by an interrupted write", path)
                break
            raise CheckpointError(f"{path} line {number} is not a JSON record; the metrics log is damaged") from None
        records.append(record)
    return records


def _is_orphan(path: Path) -> bool:
    return path.name.startswith(".") and ".tmp" in path.name and path.is_file()


def _holds_only_leftovers(run_dir: Path) -> bool:
    """True for an existing folder holding nothing but a lock file and temporary files of killed writes."""
    if not run_dir.is_dir():
        return False
    return all(p.name == LOCK_FILE or _is_orphan(p) for p in run_dir.iterdir())


def remove_orphans(run_dir: Path) -> None:
    """Deletes temporary files of writes that a crash interrupted (".NAME.XXXX.tmp", see io.atomic_write_bytes)."""
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            for path in folder.iterdir():
                if _is_orphan(path):
                    path.unlink(missing_ok=True)
