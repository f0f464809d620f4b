"""Atomic file writes: a temporary file beside the target, renamed into place (atomic on POSIX), so that a crash
mid-write leaves the previous file intact. The lowest layer of vaekit's file handling (`vaekit.io` re-exports it),
so that any module may write files without importing the model code."""

from __future__ import annotations

import contextvars
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Paths that the writes of the current `all_or_nothing` block created (None outside one).
_CREATED: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("vaekit_created", default=None)


@contextmanager
def all_or_nothing() -> Iterator[None]:
    """A command's outputs as one: files the atomic writes inside the block create are removed again when the
    block raises, so that a command failing half-way through a multi-file output leaves none of it behind.
    Files that existed before (replaced with --force) stay as written."""
    created: list[Path] = []
    token = _CREATED.set(created)
    try:
        yield
    except BaseException:
        for path in reversed(created):
            path.unlink(missing_ok=True)
        raise
    finally:
        _CREATED.reset(token)


def _will_create(path: Path) -> None:
    """Notes `path` as created by the current `all_or_nothing` block, when there is one and it is new."""
    created = _CREATED.get()
    if created is not None and not path.exists():
        created.append(path)

_UMASK = os.umask(0)
os.umask(_UMASK)  # reading the umask means setting it; put it straight back


def new_path_mode(base: int = 0o666) -> int:
    """The mode a newly created path gets: `base` (0o666 for files, 0o777 for folders) less the umask. Temporary
    files and folders (0600 / 0700) are given it before they are renamed into place."""
    return base & ~_UMASK


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, new_path_mode())  # mkstemp makes 0600 files; give the usual permissions of a new file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _will_create(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of `atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode())


def atomic_append_text(path: str | Path, text: str) -> None:
    """Appends `text` to a (small) text file by rewriting it atomically: the file holds the old lines or the old
    lines and the new one, never a line cut short. A last line already cut short (by an older vaekit) is kept."""
    path = Path(path)
    old = path.read_bytes() if path.is_file() else b""
    atomic_write_bytes(path, old + text.encode())


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` for a writer that takes a file name (matplotlib, NumPy); renamed onto `path`
    when the block ends without an error, removed when it raises (or the process dies before the rename, the
    final name never holds a partial file).

    The temporary name is `.NAME.XXXXXXXX.tmp.SUFFIX`, hidden and ending in the real suffix (lower case) because
    writers pick the format from it (and `np.save` appends `.npy` to a name that does not end in it); the file
    gets the usual permissions of a new file rather than mkstemp's 0600.

        with atomic_output("grid.png") as tmp:
            fig.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix.lower()}")
    tmp = Path(name)
    try:
        os.fchmod(fd, new_path_mode())
        os.close(fd)
        yield tmp
        if not tmp.is_file():
            raise OSError(f"the writer of {path} did not write its temporary file {tmp.name}")
        with open(tmp, "rb+") as handle:  # on disk before the rename, so a crash cannot leave an empty file
            os.fsync(handle.fileno())
        _will_create(path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
