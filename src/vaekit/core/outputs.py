"""The rules for outputs: never write into a folder that already holds something, and write only the file types
a command can make (checked before any work, by `check_output_suffix`).

Used by the library (training writes a run folder) and by the CLI (`vaekit.commands.common` re-exports it), so it
imports nothing but the errors.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, ConfigError


def refuse_nonempty(path: str | Path, hint: str = "choose another --out") -> None:
    """A CheckpointError when `path` exists and is a file or a folder holding anything: nothing the user has is
    ever written over. `hint` says what to do instead."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CheckpointError(f"{str(path)!r} already exists and is not empty; {hint}")


def check_output_suffix(path: str | Path, supported: tuple[str, ...], flag: str = "--out") -> str:
    """The lower-case suffix of `path` when it is one of `supported` (e.g. ('.png', '.npy', '.csv'); compared
    case-insensitively, so x.NPY is a NumPy file), else a one-line ConfigError naming the supported types."""
    suffix = Path(path).suffix
    if suffix.lower() in supported:
        return suffix.lower()
    choices = ", ".join(supported[:-1]) + f" or {supported[-1]}" if len(supported) > 1 else supported[0]
    shown = f"{suffix!r}" if suffix else "(no suffix)"
    raise ConfigError(f"unsupported output type {shown} for {flag}; use {choices}")
