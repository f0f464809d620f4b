"""The memory budget: estimate what a request needs before allocating it, and refuse what cannot fit.

The budget is read at call time (never cached at import): `VAEKIT_MAX_MEMORY` (e.g. "8G", "512M", "2.5GiB",
"1000000" bytes) when set, else half of the memory the machine (or its cgroup) has available now.
Estimates are Python ints, so that sizes such as 10^12 x 10^9 never overflow.

    check_allocation(n_bytes, what)   ResourceError when n_bytes > budget, with a one-line message
    chunk_rows(n, bytes_per_row)      rows per chunk so that one chunk uses a small part of the budget
"""

from __future__ import annotations

import math
import os
import re
from typing import Iterable

from ..errors import ConfigError, ResourceError

ENV_VAR = "VAEKIT_MAX_MEMORY"
# Share of the available memory one request may use when VAEKIT_MAX_MEMORY is not set.
AVAILABLE_FRACTION = 0.5
# Used when the available memory cannot be found out (an unknown platform).
FALLBACK_BUDGET_BYTES = 4 * 2**30
# Bytes of a float32 value: outputs and activations are estimated in float32.
FLOAT_BYTES = 4
# A chunk of a chunked computation may use this share of the budget.
CHUNK_FRACTION = 1 / 16
# Most rows of one chunk (sampling, decoding a grid): big enough to keep the decoder busy.
MAX_CHUNK_ROWS = 4096

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}


def parse_size(text: str) -> int:
    """'8G' (GiB), '512M', '2.5GiB', '1e9', '1000000' -> bytes; a ConfigError for anything else."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise ConfigError(f"{ENV_VAR}={text!r} is not a size; write it like 8G, 512M or 1000000 (bytes)")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise ConfigError(f"{ENV_VAR}={text!r} must be at least 1 byte")
    return value


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> int | None:
    """What a cgroup (container) memory limit leaves, when there is one."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                text = f.read().strip()
            if text == "max":
                return None
            limit = int(text)
            if limit >= 2**60:  # cgroup v1 "unlimited"
                return None
            with open(usage_file) as f:
                usage = int(f.read().strip())
            return max(0, limit - usage)
        except (OSError, ValueError):
            continue
    return None


def available_memory() -> int | None:
    """Bytes of memory available now (psutil if installed, else /proc/meminfo or sysconf), capped by a cgroup
    limit; None when unknown."""
    found: int | None = None
    try:
        import psutil  # optional

        found = int(psutil.virtual_memory().available)
    except Exception:  # not installed, or no answer on this platform
        found = _meminfo_available()
        if found is None:
            try:
                found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            except (ValueError, OSError, AttributeError):
                try:
                    found = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
                except (ValueError, OSError, AttributeError):
                    found = None
    cgroup = _cgroup_available()
    if cgroup is not None:
        found = cgroup if found is None else min(found, cgroup)
    return found


def memory_budget() -> int:
    """The most bytes one request may allocate: VAEKIT_MAX_MEMORY, else half the available memory."""
    text = os.environ.get(ENV_VAR, "").strip()
    if text:
        return parse_size(text)
    available = available_memory()
    if not available:
        return FALLBACK_BUDGET_BYTES
    return max(1, int(available * AVAILABLE_FRACTION))


def format_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'; exact ints of any size (no overflow)."""
    n = int(n)
    for unit, size in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20),
                       ("KiB", 2**10)):
        if n >= size:
            value = n / size if n < 2**1000 else float("inf")
            if unit == "EiB" and value >= 1e6:
                return f"{n / 2**60:.3g} EiB" if value != float("inf") else "more than 10^290 bytes"
            return f"{value:.1f} {unit}"
    return f"{n} bytes"


def check_allocation(n_bytes: int, what: str, error: type[Exception] = ResourceError) -> int:
    """`n_bytes` when it fits the budget, else a ResourceError (or `error`, e.g. DataError for a data file):
    'WHAT would need 2.4 GiB at once (budget 11.8 GiB; set VAEKIT_MAX_MEMORY to change it)'."""
    n_bytes = int(n_bytes)
    budget = memory_budget()
    if n_bytes > budget:
        raise error(f"{what} would need {format_bytes(n_bytes)} at once (budget {format_bytes(budget)}; "
                            f"set {ENV_VAR} to change it)")
    return n_bytes


def count(shape: Iterable[int]) -> int:
    """Number of values of an array of `shape` (exact Python int)."""
    return math.prod(int(s) for s in shape)


def nbytes(shape: Iterable[int], itemsize: int = FLOAT_BYTES) -> int:
    """Bytes of an array of `shape` with `itemsize`-byte values (exact Python int)."""
    return count(shape) * int(itemsize)


def describe_shape(shape: Iterable[int]) -> str:
    """(1, 8, 8) -> '1x8x8'."""
    return "x".join(str(int(s)) for s in shape) or "scalar"


def chunk_rows(n: int, bytes_per_row: int, max_rows: int = MAX_CHUNK_ROWS) -> int:
    """Rows per chunk (>= 1, <= n) so that one chunk takes at most CHUNK_FRACTION of the budget."""
    room = int(memory_budget() * CHUNK_FRACTION) // max(1, int(bytes_per_row))
    return max(1, min(int(n), int(max_rows), room))


__all__ = ["ENV_VAR", "check_allocation", "chunk_rows", "count", "describe_shape", "format_bytes",
           "memory_budget", "nbytes", "parse_size", "available_memory"]
