"""The README's demo on an idle and on a busy machine under OpenMP settings (VARIANTS): vaekit's own choice
(`vaekit.core.openmp`: threads that sleep while they wait when other work keeps the CPUs busy), libgomp's
default, PASSIVE, ACTIVE, shorter spins, one thread; as whole processes, interleaved. "Busy" is one CPU-bound
process beside it (a pure-Python loop, as a browser tab or a second job would be), started before and stopped
after each timed run.

    python benchmarks/busy_machine.py --rounds 2 --variants default,vaekit

Prints the median wall time of each case and the ratios busy / idle and against the first variant.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIN = "while True: pass"
# The OpenMP settings compared (libgomp, which the PyTorch wheels use): "default" is libgomp's own (an empty
# OMP_WAIT_POLICY, which vaekit keeps and libgomp ignores: spin about 300,000 times, then sleep), what every run got
# before vaekit set a policy.
VARIANTS = {
    "vaekit": {},  # no policy in the environment: vaekit's own choice (vaekit.core.openmp)
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "default": {"OMP_WAIT_POLICY": ""},
    "spin10k": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "10000"},
    "spin1k": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "1000"},
    "threads1": {"OMP_WAIT_POLICY": "", "OMP_NUM_THREADS": "1"},
}


def demo(policy: str) -> float:
    """Seconds of `vaekit train --config configs/digits.toml` into a new folder, under the VARIANTS entry."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
           **VARIANTS[policy]}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vaekit", "train", "--config", str(ROOT / "configs/digits.toml"),
                        "--out", str(Path(tmp) / "run"), "--no-progress"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="PASSIVE,ACTIVE", help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = parser.parse_args()
    variants = args.variants.split(",")
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for load in ("idle", "busy"):
            for policy in variants:
                spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if load == "busy" else None
                try:
                    times.setdefault((load, policy), []).append(demo(policy))
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
    med = {key: statistics.median(values) for key, values in times.items()}
    for (load, policy), value in med.items():
        print(f"{load:<5} {policy:<8} median {value:6.1f} s   runs {', '.join(f'{v:.1f}' for v in times[(load, policy)])}")
    for policy in variants:
        print(f"busy / idle with {policy}: {med[('busy', policy)] / med[('idle', policy)]:.2f}x")
    for load in ("idle", "busy"):
        base = variants[0]
        print(f"{load}: " + ", ".join(f"{p} / {base} {med[(load, p)] / med[(load, base)]:.2f}x" for p in variants[1:]))


if __name__ == "__main__":
    main()
