"""Print a pip constraints file that pins every direct dependency of vaekit to the lowest version it allows.

Reads `pyproject.toml` (the dependencies and the optional groups named on the command line) and turns each
`name>=X` into `name==X`, so that `pip install -c THIS -e ".[test,umap]"` installs the oldest versions the
package claims to support; the dependencies of those dependencies resolve as usual. Requirements without a
lower bound are left out (pip takes their newest release), and so is torch, whose only wheel installable here
is the CPU build of 2.13.0 (PyPI carries no CPU builds of older releases).

    python .ci/lower_bounds.py test umap > constraints.txt
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# name, then a `>=` bound, then an optional environment marker; extras and other operators are not used here
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9A-Za-z.\-]*)\s*(;.*)?$")
NOT_PINNED = {"torch"}


def lower_bound_constraints(pyproject: Path, extras: list[str]) -> list[str]:
    """Return `name==lowest[; marker]` lines for the core dependencies and the named extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    requirements = list(project["dependencies"]) + [r for e in extras for r in optional[e]]
    lines: dict[str, str] = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement.split("#")[0])
        if not match or match.group(1).lower() in NOT_PINNED:
            continue
        name, version, marker = match.group(1).lower(), match.group(2), match.group(3) or ""
        lines[name] = f"{name}=={version}{marker}"
    return sorted(lines.values())


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(lower_bound_constraints(root / "pyproject.toml", sys.argv[1:])))
