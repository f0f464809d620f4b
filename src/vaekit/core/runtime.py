"""Where and how a model runs: its device, precision, torch threads and the memory limit of its data.

Every command that runs a model (train, and eval, sample, latent ... with `--device`) reads these through a
`Runtime`, so a device string is checked by one function and a memory limit is parsed by one function:

    Runtime.from_config(config)              train.device / precision / threads, data.memory_limit of a run
    Runtime.from_flags(device="cuda:1")      a command-line --device (and --threads)

Device strings are `auto | cpu | cuda | cuda:N | mps`; "auto" is cuda when this machine has it, else cpu. A
device this machine does not have is a one-line ConfigError.

This module sits at the bottom of the package: it imports torch, vaekit.errors, vaekit.core.limits and
vaekit.core.typecheck only (the config imports it, not the other way round).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from . import limits
from .typecheck import shown

DEVICE_TYPES = ("cpu", "cuda", "mps")
AUTO_DEVICE = "auto"  # cuda when this machine has it, else cpu
PRECISIONS = ("float32", "bfloat16", "float16")


def parse_memory_limit(value: str | None, path: str = "data.memory_limit") -> int:
    """`value` ("2G", "512M", "2.5GiB", "1000000" bytes) in bytes, or vaekit's memory budget
    (`vaekit.core.limits.memory_budget`) when it is None; a ConfigError naming `path` for anything else."""
    if value is None:
        return limits.memory_budget()
    try:
        return limits.parse_size(value)
    except ConfigError:
        raise ConfigError(f"{path} must be a size such as 2G, 512M or 1000000 (bytes), got {shown(value)}") from None


def check_device(value: str, path: str = "train.device", available: bool = True) -> str:
    """`value` if torch reads it as a device of a type vaekit runs on, or "auto", and (when `available`) one this
    machine has; a one-line ConfigError naming `path` otherwise."""
    if value == AUTO_DEVICE:
        return value
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise ConfigError(f"{path} must be auto or a torch device: cpu, cuda, cuda:N or mps, got {shown(value)}")
    if available:
        check_device_available(value, path)
    return value


def check_device_available(value: str, path: str = "train.device") -> None:
    """A ConfigError unless this machine has device `value` (cuda needs torch.cuda.is_available(), mps likewise;
    "auto" is always available)."""
    if value == AUTO_DEVICE:
        return
    device = torch.device(value)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{path} {value!r} is not available on this machine (torch.cuda.is_available() is False)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{path} {value!r} is not available on this machine: it has {count} CUDA device(s), "
                              f"cuda:0..cuda:{count - 1}")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"{path} {value!r} is not available on this machine "
                              "(torch.backends.mps.is_available() is False)")


def resolve_device(value: str) -> str:
    """The device `value` names on this machine: "auto" is cuda when available, else cpu."""
    if value == AUTO_DEVICE:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


@dataclass(frozen=True)
class Runtime:
    """Where a model runs (`device`, resolved: never "auto"), the autocast dtype of training (`precision`), torch
    intra-op threads (`threads`, None: torch's choice) and the bytes data may take in memory before they are
    streamed from disk (`memory_limit_bytes`)."""

    device: torch.device
    precision: str = "float32"
    threads: int | None = None
    memory_limit_bytes: int = field(default_factory=limits.memory_budget)

    @classmethod
    def from_flags(cls, device: str = "cpu", threads: int | None = None, memory_limit: str | None = None,
                   path: str = "--device") -> "Runtime":
        """The runtime of command-line flags: --device (checked: a ConfigError naming `path` when this machine
        does not have it), --threads, and a memory limit ("2G"; None: vaekit's memory budget)."""
        check_device(device, path)
        return cls(torch.device(resolve_device(device)), "float32", threads,
                   parse_memory_limit(memory_limit, "memory limit"))

    @classmethod
    def from_config(cls, config: Any, device: str | None = None) -> "Runtime":
        """The runtime of a RunConfig: train.device (or `device`, a --device given on the command line, which
        takes its place), train.precision, train.threads and data.memory_limit."""
        t = config.train
        path = "train.device" if device is None else "--device"
        device = t.device if device is None else device
        check_device(device, path)
        return cls(torch.device(resolve_device(device)), t.precision, t.threads,
                   parse_memory_limit(config.data.memory_limit))

    def apply_threads(self) -> None:
        """Sets torch's intra-op thread count to `threads` for the rest of the process; None leaves torch's."""
        if self.threads is not None:
            torch.set_num_threads(self.threads)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {shown(self.precision)}")


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def to_model(model: torch.nn.Module, tensor: torch.Tensor | None) -> torch.Tensor | None:
    """`tensor` on the device of `model` (None stays None): data read on the CPU meets a model on a GPU."""
    return None if tensor is None else torch.as_tensor(tensor).to(device_of(model))


__all__ = ["AUTO_DEVICE", "DEVICE_TYPES", "PRECISIONS", "Runtime", "check_device",
           "check_device_available", "device_of", "parse_memory_limit", "resolve_device", "to_model"]
