"""The OpenMP wait policy of the process, chosen before torch loads its OpenMP runtime (at `import vaekit`).

PyTorch's OpenMP threads (libgomp) spin for a while when they wait for work. On an idle machine that is what makes
small operations fast; next to another busy process the spinning threads fight it for the cores and a 2-thread
run takes twice as long or more (docs/benchmarks.md). Letting them sleep instead (OMP_WAIT_POLICY=PASSIVE) removes
that, but costs an idle machine a quarter to a half of the speed of small models. So vaekit measures, once, how
busy the machine's CPUs are (/proc/stat over a few tens of milliseconds, while this process sleeps) and chooses
PASSIVE when other work keeps at least half a core busy; on an idle machine, or where the user set a policy, the
setting is left alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import MutableMapping

# Other processes keeping at least this many CPUs busy make a machine busy (one CPU-bound process is about 1).
BUSY_CPUS = 0.5
SAMPLE_SECONDS = 0.04
PROC_STAT = Path("/proc/stat")


def _cpu_times(stat: Path) -> tuple[int, int] | None:
    """(total, idle) jiffies of all CPUs from the first line of /proc/stat; None where it cannot be read."""
    try:
        fields = stat.read_text().split("\n", 1)[0].split()
        values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None
    if fields[0] != "cpu" or len(values) < 5:
        return None
    return sum(values), values[3] + values[4]


def busy_cpus(stat: Path = PROC_STAT, seconds: float = SAMPLE_SECONDS, cpus: int | None = None) -> float | None:
    """How many CPUs other processes kept busy over the next `seconds` (this one sleeps meanwhile); None where the
    system does not say (no /proc/stat)."""
    first = _cpu_times(stat)
    if first is None:
        return None
    time.sleep(seconds)
    second = _cpu_times(stat)
    if second is None or second[0] <= first[0]:
        return None
    busy_fraction = 1.0 - (second[1] - first[1]) / (second[0] - first[0])
    return max(0.0, busy_fraction) * (cpus or os.cpu_count() or 1)


def choose_wait_policy(environ: MutableMapping[str, str] = os.environ, stat: Path = PROC_STAT) -> str | None:
    """Sets OMP_WAIT_POLICY=PASSIVE in `environ` when other work keeps the CPUs busy and the user set no policy;
    returns the policy it set, or None when it left the setting alone."""
    if "OMP_WAIT_POLICY" in environ:
        return None
    busy = busy_cpus(stat)
    if busy is None or busy < BUSY_CPUS:
        return None
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"


__all__ = ["busy_cpus", "choose_wait_policy", "BUSY_CPUS"]
