"""`RunWriter`: everything training writes, in one place.

    start    refuses a folder that holds anything, then writes config.json (and standardizer.json for
             standardised data)
    epoch    appends a line to metrics.jsonl, saves the best weights and a resumable checkpoint
    restore  (resuming) loads the last checkpoint and cuts metrics.jsonl back to it
    finish   puts the best weights back into the model; writes figures when asked
Without a run folder it writes nothing and keeps the best weights in memory, so that `fit` returns the same
model either way.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import torch

from . import io
from .config import RunConfig
from .data import DataBundle
from .errors import CheckpointError
from .models.vae import VAE
from .outputs import refuse_nonempty

log = logging.getLogger(__name__)

STANDARDIZER_FILE = "standardizer.json"


class RunWriter:
    """Writes a run folder during training (or nothing, with `run_dir=None`)."""

    def __init__(self, run_dir: str | Path | None, figures: bool = False) -> None:
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.figures = figures
        self._best_state: dict[str, torch.Tensor] | None = None

    def check_resumable(self) -> None:
        """A CheckpointError unless the folder holds a checkpoint to resume from."""
        if self.run_dir is None:
            raise CheckpointError("resuming needs the run folder to continue")
        if not (self.run_dir / io.LAST_CHECKPOINT).is_file():
            raise CheckpointError(f"cannot resume: {self.run_dir / io.LAST_CHECKPOINT} does not exist")

    def saved_config(self) -> RunConfig:
        """The config.json of the run being resumed."""
        return io.load_config(self.run_dir)

    def start(self, config: RunConfig, bundle: DataBundle | None = None) -> None:
        """A new run: the folder must be new or empty; writes config.json (and the data's standardisation)."""
        if self.run_dir is None:
            return
        refuse_nonempty(self.run_dir, "choose another --out or continue it with --resume")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        io.save_config(self.run_dir, config)
        if bundle is not None and bundle.standardizer is not None:
            io.atomic_write_text(self.run_dir / STANDARDIZER_FILE, json.dumps(bundle.standardizer.to_dict()) + "\n")

    def restore(self, model: VAE, optimizer: torch.optim.Optimizer) -> tuple[dict, list[dict]]:
        """Loads the last checkpoint into model and optimiser; returns the trainer state and the metrics up to
        it (lines written after the checkpoint, before a crash, are dropped so the log matches the state)."""
        state = io.load_training_state(self.run_dir / io.LAST_CHECKPOINT, model, optimizer)
        history = _read_history(self.run_dir)[: state["epoch"]]
        io.atomic_write_text(self.run_dir / io.METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))
        log.info("resuming %s at epoch %d", self.run_dir, state["epoch"])
        return state, history

    def epoch(self, record: dict, model: VAE, optimizer: torch.optim.Optimizer, state: dict, improved: bool) -> None:
        """After each epoch: the metrics line, the best weights when they improved, the checkpoint."""
        if self.run_dir is None:
            if improved and "valid_loss" in record:  # without validation the last weights are the result
                self._best_state = copy.deepcopy(model.state_dict())
            return
        with open(self.run_dir / io.METRICS_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")
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
        from .report import write_run_figures

        model.eval()
        return write_run_figures(model, bundle, history, self.run_dir)


def _read_history(run_dir: Path) -> list[dict]:
    path = run_dir / io.METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
