"""The one rule for output folders: never write into a folder that already holds something.

Used by the library (training writes a run folder) and by the CLI (`vaekit.commands.common` re-exports it), so it
imports nothing but the errors.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError


def refuse_nonempty(path: str | Path, hint: str = "choose another --out") -> None:
    """A CheckpointError when `path` exists and is a file or a folder holding anything: nothing the user has is
    ever written over. `hint` says what to do instead."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CheckpointError(f"{str(path)!r} already exists and is not empty; {hint}")
