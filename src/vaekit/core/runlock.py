"""An exclusive lock on a run folder, held for the whole of training, so that two processes never write the
same run (a second one is refused at once with a clear message, it does not wait)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError

try:  # POSIX; elsewhere training runs unlocked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

LOCK_FILE = ".lock"


class RunLock:
    """`flock` on RUN/.lock; `acquire` raises a CheckpointError when another process holds it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None or fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointError(f"another vaekit process is training in {str(self.path.parent)!r}; wait for it "
                                  "to finish or choose another --out") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still holding it: a waiting opener then gets a fresh file
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
