"""The README's demo on an idle and on a busy machine, with vaekit's default OpenMP wait policy (PASSIVE, set at
`import vaekit`) and with the spinning policy it replaced (OMP_WAIT_POLICY=ACTIVE), as whole processes,
interleaved. "Busy" is one CPU-bound process beside it (a pure-Python loop, as a browser tab or a second job would
be), started before and stopped after each timed run.

    python benchmarks/busy_machine.py --rounds 3

Prints the median wall time of each of the four cases and the ratios busy / idle and PASSIVE / ACTIVE.
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


def demo(policy: str) -> float:
    """Seconds of `vaekit train --config configs/digits.toml` into a new folder, under `policy`."""
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vaekit", "train", "--config", str(ROOT / "configs/digits.toml"),
                        "--out", str(Path(tmp) / "run"), "--no-progress"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for load in ("idle", "busy"):
            for policy in ("PASSIVE", "ACTIVE"):
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
    for policy in ("PASSIVE", "ACTIVE"):
        print(f"busy / idle with {policy}: {med[('busy', policy)] / med[('idle', policy)]:.2f}x")
    for load in ("idle", "busy"):
        print(f"{load}: PASSIVE / ACTIVE {med[(load, 'PASSIVE')] / med[(load, 'ACTIVE')]:.2f}x")


if __name__ == "__main__":
    main()
