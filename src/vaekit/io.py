"""Saving and loading runs: `config.json` + safetensors weights; nothing is ever unpickled.

A run folder holds
    config.json                 the resolved RunConfig (enough to rebuild the architecture)
    model.safetensors           the best weights (lowest validation loss)
    checkpoints/last.safetensors  last weights + optimiser state + RNG state, with the trainer state as JSON
                                  in the safetensors metadata, so one atomic file is one consistent checkpoint
    metrics.jsonl               one JSON line per epoch
Every file is written to a temporary name in the same folder and renamed into place (atomic on POSIX), so a
crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .build import build_model
from .config import RunConfig, from_dict, to_dict, upgrade_legacy
from .errors import CheckpointError, ConfigError, VaekitError
from .models.vae import VAE

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
LAST_CHECKPOINT = "checkpoints/last.safetensors"
METRICS_FILE = "metrics.jsonl"

_UMASK = os.umask(0)
os.umask(_UMASK)  # reading the umask means setting it; put it straight back


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions of a new file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of `atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode())


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically saves tensors (made contiguous, on the CPU) as safetensors."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Reads a safetensors file and its metadata; a clear CheckpointError when missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, json.JSONDecodeError, Exception) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable or truncated ({error})") from None
    return tensors, metadata


def save_config(run_dir: str | Path, config: RunConfig) -> None:
    """Writes `config.json` into the run folder."""
    atomic_write_text(Path(run_dir) / CONFIG_FILE, json.dumps(to_dict(config), indent=2) + "\n")


def load_config(run_dir: str | Path) -> RunConfig:
    """Reads and checks a run's `config.json`."""
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run folder {str(run_dir)!r} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{str(run_dir)!r} is not a run folder: it has no {CONFIG_FILE}")
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ConfigError(f"expected a JSON object, got {type(values).__name__}")
        return from_dict(RunConfig, upgrade_legacy(values))  # runs of earlier versions have flat sections
    except (json.JSONDecodeError, ConfigError) as error:
        raise CheckpointError(f"{path} is invalid: {error}") from None


def save_model(path: str | Path, model: VAE) -> None:
    """Saves the model's weights (its state dict) as safetensors."""
    save_tensors(path, model.state_dict())


def load_weights(model: VAE, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copies `tensors` into `model`, failing clearly when names or shapes do not match."""
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0] if str(error) else "mismatch"
        raise CheckpointError(f"weights in {source} do not fit the architecture in config.json: {first}") from None


@dataclass
class Run:
    """A loaded run: its folder, configuration and model (in eval mode)."""

    path: Path
    config: RunConfig
    model: VAE


def load_run(run_dir: str | Path, weights: str = MODEL_FILE, device: str | torch.device = "cpu") -> Run:
    """Loads a run folder: rebuilds the architecture from config.json, then loads the weights."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    try:
        model = build_model(config.model)
    except VaekitError as error:
        raise CheckpointError(f"{run_dir / CONFIG_FILE}: {error}") from None
    tensors, _ = load_tensors(run_dir / weights)
    model_tensors = {k.removeprefix("model."): v for k, v in tensors.items() if not k.startswith(("optim.", "rng."))}
    load_weights(model, model_tensors, str(run_dir / weights))
    model.to(device).eval()
    return Run(path=run_dir, config=config, model=model)


def load(run_dir: str | Path, device: str | torch.device = "cpu") -> VAE:
    """The trained model of a run folder, ready for `encode`, `decode`, `sample` and `reconstruct`."""
    model = load_run(run_dir, device=device).model
    return model


# --- training checkpoints -----------------------------------------------------------------------------------


def save_training_state(
    path: str | Path, model: VAE, optimizer: torch.optim.Optimizer, trainer_state: dict[str, Any]
) -> None:
    """One file with model weights, optimiser tensors, RNG state and the trainer state (JSON metadata)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim_state = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, state in optim_state["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    metadata = {
        "trainer": json.dumps(trainer_state),
        "param_groups": json.dumps(optim_state["param_groups"]),
        "optim_scalars": json.dumps(scalars),
    }
    save_tensors(path, tensors, metadata)


def load_training_state(path: str | Path, model: VAE, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restores what `save_training_state` wrote; returns the trainer state."""
    tensors, metadata = load_tensors(path)
    try:
        trainer = json.loads(metadata["trainer"])
        param_groups = json.loads(metadata["param_groups"])
        scalars = json.loads(metadata.get("optim_scalars", "{}"))
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {str(path)!r} has no trainer state; it cannot be resumed") from None
    load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in scalars.items():
        state.setdefault(int(index), {}).update(values)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    except (ValueError, KeyError) as error:
        raise CheckpointError(f"optimiser state in {str(path)!r} does not fit: {error}") from None
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return trainer
