"""What the benchmark scripts end with: the report printed as JSON and, with --out, written there."""

from __future__ import annotations

import json


def emit(report: dict, out: str | None) -> None:
    """Prints `report` as indented JSON and writes the same text to `out` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
