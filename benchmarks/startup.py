"""Start-up time of the command line: how long `vaekit --help` and a command's argument parsing take, against
`python -c "import torch"` (the floor every command pays), as whole processes, interleaved, medians of N rounds.

    python benchmarks/startup.py --rounds 7

Prints the median wall time of each and its excess over importing torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "vaekit --help": [sys.executable, "-m", "vaekit", "--help"],
    "vaekit sample --help": [sys.executable, "-m", "vaekit", "sample", "--help"],
    "vaekit anomaly fit --help": [sys.executable, "-m", "vaekit", "anomaly", "fit", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    floor = statistics.median(times["import torch"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<28} {median:6.2f} s   +{median - floor:5.2f} s over import torch")


if __name__ == "__main__":
    main()
