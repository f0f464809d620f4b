"""No two modules of vaekit import each other.

Every `import` / `from ... import` under src/vaekit is read with `ast` (at module level, inside functions and
under `if TYPE_CHECKING:` alike) and resolved to the vaekit module it loads; a pair A -> B -> A is a cycle,
whether or not it happens to work at run time thanks to a function-local import.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "vaekit"

# Known pairs still to be untangled; each is removed from here in the change that removes the cycle.
ALLOWED_CYCLES: set[frozenset[str]] = set()  # none


def module_names(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file of every module of the package (`pkg/__init__.py` is `pkg`)."""
    names = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The vaekit modules that module `name` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: `.` is the package holding this module (the package itself in __init__)
                parts = name.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from X import n` loads module X.n when there is one, else X (n is an attribute of X).
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    names = module_names(src, package)
    return {name: imported_modules(name, path, set(names)) for name, path in names.items()}


def two_module_cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    return {frozenset({a, b}) for a, targets in graph.items() for b in targets if a in graph.get(b, ())}


def test_the_resolver_sees_relative_function_local_and_type_checking_imports(tmp_path):
    files = {
        "pkg/__init__.py": "from . import sub\nfrom .a import f\n",
        "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub.b import B\n",
        "pkg/sub/__init__.py": "from .. import a\n",
        "pkg/sub/b.py": "import pkg.a\n\ndef g():\n    from ..a import f\n    from . import c\n",
        "pkg/sub/c.py": "from pkg import errors_that_do_not_exist\nimport os\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, "pkg")
    assert graph == {
        "pkg": {"pkg.sub", "pkg.a"},
        "pkg.a": {"pkg.sub.b"},  # under `if TYPE_CHECKING:`
        "pkg.sub": {"pkg.a"},  # `..` from a package's __init__ is its parent
        "pkg.sub.b": {"pkg.a", "pkg.sub.c"},  # absolute, and function-local relative imports
        "pkg.sub.c": {"pkg"},  # a name that is not a module is an attribute of the package
    }
    assert two_module_cycles(graph) == {frozenset({"pkg.a", "pkg.sub.b"})}


def test_no_two_modules_import_each_other():
    cycles = two_module_cycles(import_graph())
    unexpected = sorted(" <-> ".join(sorted(pair)) for pair in cycles - ALLOWED_CYCLES)
    assert not unexpected, "modules that import each other: " + "; ".join(unexpected)
