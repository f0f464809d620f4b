"""Saving and loading runs: `config.json` + safetensors weights; nothing is ever unpickled.

A run folder holds
    config.json                 the resolved RunConfig (enough to rebuild the architecture)
    model.safetensors           the best weights (lowest validation loss)
    checkpoints/last.safetensors  last weights + optimiser state + RNG state, with the trainer state as JSON
                                  in the safetensors metadata, so one atomic file is one consistent checkpoint
    metrics.jsonl               one JSON line per epoch
    ...                         what the data's modality keeps (vocab.json: a text run's vocabulary)
Every file is written to a temporary name in the same folder and renamed into place (atomic on POSIX), so a
crash mid-save leaves the previous file intact (`atomic_output` does this for any writer that takes a path).

Every safetensors file carries a SHA-256 checksum in its own metadata (`CHECKSUM_KEY`): a hash over the header
(tensor names, dtypes, shapes, offsets and the other metadata) and all the tensor bytes, so a file is checked on
its own, with no second file that could be out of step with it. `load_tensors` refuses a file whose checksum does
not match; files written before checksums existed load without the check. Loaded weights must be finite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .build import build_model
from .config import RunConfig, from_dict, to_dict, upgrade_legacy
from .core.atomic import (atomic_append_text, atomic_output, atomic_write_bytes, atomic_write_text,  # noqa: F401
                          new_path_mode)  # (re-exported: io is where the run's files are written)
from .core.jsonfile import read_json
from .errors import CheckpointError, ConfigError, VaekitError
from .modalities import modality_of
from .models.vae import VAE

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
LAST_CHECKPOINT = "checkpoints/last.safetensors"
METRICS_FILE = "metrics.jsonl"
CHECKSUM_KEY = "vaekit.sha256"  # in the safetensors `__metadata__`: see `tensor_checksum`
# The only metadata keys of files written before checksums existed (training checkpoints; weights had none). A file
# without a checksum but with another key is not an old file but a damaged one (e.g. a flipped bit in the key name).
LEGACY_METADATA_KEYS = frozenset({"trainer", "param_groups", "optim_scalars", "format"})

log = logging.getLogger(__name__)


# --- tensor files ---------------------------------------------------------------------------------------------


def _split_safetensors(data: bytes) -> tuple[dict, bytes]:
    """(header dict, tensor bytes) of a serialised safetensors file; ValueError when the header is unreadable."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, too short for a safetensors header")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise ValueError(f"the header claims {header_len} bytes but the file has {len(data) - 8} after its length")
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except RecursionError:
        raise ValueError("the header is JSON nested too deeply") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header, data[8 + header_len :]


def tensor_checksum(header: dict, body: bytes) -> str:
    """SHA-256 (hex) over the header, without the checksum itself, in a canonical JSON form, and the tensor bytes:
    a changed dtype, shape, offset, name or metadata value changes it as much as a changed weight does."""
    header = dict(header)
    metadata = {k: v for k, v in (header.pop("__metadata__", None) or {}).items() if k != CHECKSUM_KEY}
    canonical = json.dumps({"tensors": header, "metadata": metadata}, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode())
    digest.update(body)
    return digest.hexdigest()


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically saves tensors (made contiguous, on the CPU) as safetensors."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata = {k: v for k, v in (metadata or {}).items() if k != CHECKSUM_KEY}
    data = st_save(tensors, metadata=metadata or None)
    header, body = _split_safetensors(data)  # the checksum covers the header, so it goes in a second pass
    metadata[CHECKSUM_KEY] = tensor_checksum(header, body)
    data = st_save(tensors, metadata=metadata)
    atomic_write_bytes(path, data)


def verify_tensor_file(path: str | Path, data: bytes) -> dict[str, str]:
    """Checks the bytes of a safetensors file against the checksum in its metadata; returns the metadata.

    A CheckpointError (one line, naming the file) when the header is unreadable or the checksum does not match;
    files written before checksums existed (none in the metadata) pass with a log message."""
    try:
        header, body = _split_safetensors(data)
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("its metadata is not a JSON object")
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable or truncated ({error})") from None
    ends = [e["data_offsets"][1] for k, e in header.items() if k != "__metadata__" and isinstance(e, dict)
            and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2
            and isinstance(e["data_offsets"][1], int)]
    if ends and max(ends) > len(body):
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable or truncated (it holds {len(body)} of its "
                              f"{max(ends)} tensor bytes)")
    expected = metadata.get(CHECKSUM_KEY)
    if expected is None and not set(metadata) <= LEGACY_METADATA_KEYS:
        unknown = ", ".join(sorted(repr(k) for k in set(metadata) - LEGACY_METADATA_KEYS))
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or was modified: it has no checksum and "
                              f"metadata vaekit never writes ({unknown[:80]})")
    if expected is None:
        log.info("%s has no checksum (written by an older vaekit); it is loaded without verification", path)
    elif tensor_checksum(header, body) != expected:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or was modified after it was written "
                              f"(its SHA-256 checksum does not match); restore it or train again")
    return {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Reads a safetensors file and its metadata, verified against its checksum; a clear CheckpointError when
    missing, corrupt or modified."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    data = path.read_bytes()
    metadata = verify_tensor_file(path, data)
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, Exception) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable or truncated ({first})") from None
    return tensors, metadata


def check_finite(tensors: dict[str, torch.Tensor], source: str) -> None:
    """A CheckpointError naming the first floating-point tensor that holds NaN or infinite values."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(f"weights in {source} are not finite: {name!r} holds {bad} NaN or infinite "
                                      f"value(s) of {tensor.numel()}; the model cannot be used")


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
    values = read_json(path, CheckpointError)  # any bytes: one line naming the file
    try:
        return from_dict(RunConfig, upgrade_legacy(values))  # runs of earlier versions have flat sections
    except ConfigError as error:
        raise CheckpointError(f"{path} is invalid: {error}") from None


def save_model(path: str | Path, model: VAE) -> None:
    """Saves the model's weights (its state dict) as safetensors."""
    save_tensors(path, model.state_dict())


def load_weights(model: VAE, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copies `tensors` into `model`, failing clearly when names or shapes do not match or a weight is not finite."""
    check_finite(tensors, source)
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
        model = build_model(config.model, training=False)  # inference: weights only
    except VaekitError as error:
        raise CheckpointError(f"{run_dir / CONFIG_FILE}: {error}") from None
    tensors, _ = load_tensors(run_dir / weights)
    model_tensors = {k.removeprefix("model."): v for k, v in tensors.items() if not k.startswith(("optim.", "rng."))}
    load_weights(model, model_tensors, str(run_dir / weights))
    model.to(device).eval()
    modality_of(model).load_state(model, run_dir, config)  # e.g. the vocabulary of a text run
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


# The trainer state of a checkpoint: key -> (types allowed, smallest value).
TRAINER_STATE = {"epoch": ((int,), 0), "step": ((int,), 0), "best_valid": ((int, float, type(None)), None),
                 "best_epoch": ((int, type(None)), 1), "bad_epochs": ((int,), 0)}


def _check_trainer_state(trainer: Any, path: str | Path) -> None:
    """A CheckpointError unless the trainer state holds every key, of the right type and range."""
    if not isinstance(trainer, dict):
        raise CheckpointError(f"checkpoint {str(path)!r}: its trainer state is not a JSON object")
    for key, (types, low) in TRAINER_STATE.items():
        value = trainer.get(key, "missing")
        bad = isinstance(value, bool) or not isinstance(value, types) or (
            low is not None and isinstance(value, int) and value < low)
        if isinstance(value, float) and not math.isfinite(value):
            bad = True
        if bad:
            raise CheckpointError(f"checkpoint {str(path)!r}: trainer state {key} = {value!r} is invalid")


def load_training_state(path: str | Path, model: VAE, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restores what `save_training_state` wrote; returns the trainer state."""
    tensors, metadata = load_tensors(path)
    try:
        trainer = json.loads(metadata["trainer"])
        param_groups = json.loads(metadata["param_groups"])
        scalars = json.loads(metadata.get("optim_scalars", "{}"))
    except (KeyError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise CheckpointError(f"checkpoint {str(path)!r} has no trainer state; it cannot be resumed") from None
    _check_trainer_state(trainer, path)
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
