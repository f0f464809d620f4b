"""The import graph of vaekit has no cycle.

Every `import` / `from ... import` under src/vaekit is read with `ast` (at module level, inside functions and
under `if TYPE_CHECKING:` alike) and resolved to the vaekit module it loads; any loop A -> B -> ... -> A is a
cycle, of two modules or of twenty, whether or not it happens to work at run time thanks to a function-local
import.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "vaekit"



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


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm): each is a set of modules
    that all reach each other through imports, sorted; a graph without cycles has none."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:  # `node` is the root of a component: pop it
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One loop through `component`, from its first module back to it: what a failure message shows."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:  # breadth first, inside the component, until an import leads back to `start`
        node = queue.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return paths[node] + [start]
            if target not in paths:
                paths[target] = paths[node] + [target]
                queue.append(target)
    return component


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
    assert cycles(graph) == [["pkg", "pkg.a", "pkg.sub", "pkg.sub.b", "pkg.sub.c"]]
    assert cycle_path(graph, ["pkg.a", "pkg.sub.b"]) == ["pkg.a", "pkg.sub.b", "pkg.a"]


def test_a_long_cycle_is_found_and_an_acyclic_graph_has_none():
    chain = {f"m{i}": {f"m{i + 1}"} for i in range(11)} | {"m11": set()}
    assert cycles(chain) == []
    chain["m11"] = {"m0"}  # eleven modules in a ring, as function-local imports once hid
    assert cycles(chain) == [sorted(chain)]
    assert cycle_path(chain, sorted(chain))[0] == cycle_path(chain, sorted(chain))[-1] == "m0"


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    loops = [" -> ".join(cycle_path(graph, component)) for component in cycles(graph)]
    assert not loops, "import cycles: " + "; ".join(loops)


# The floors of the package, bottom first: a module imports only from its own floor and those below it, so that
# each floor can be read, tested and replaced without the ones above. Each entry is a module or a package (all
# its modules); the longest matching entry decides. A new module must be placed here (the test says so).
FLOORS: list[tuple[str, list[str]]] = [
    ("foundation", ["vaekit.core", "vaekit.errors"]),
    ("plug-ins", ["vaekit.likelihoods", "vaekit.priors", "vaekit.posteriors", "vaekit.nets", "vaekit.data",
                  "vaekit.text", "vaekit.text.corpus", "vaekit.text.vocab", "vaekit.text.sequence",
                  "vaekit.text.encoder", "vaekit.text.batching", "vaekit.tabular.columns", "vaekit.tabular.likelihood",
                  "vaekit.tabular.schema", "vaekit.tabular.csvtext", "vaekit.tabular.frames"]),
    ("models", ["vaekit.models", "vaekit.objectives", "vaekit.text.generate", "vaekit.text.model"]),
    ("run assembly, training, evaluation", ["vaekit.config", "vaekit.build", "vaekit.evaluate", "vaekit.io",
                                            "vaekit.training", "vaekit.figures", "vaekit.modalities",
                                            "vaekit.text.modality"]),
    ("analysis, metrics, applications", ["vaekit.analysis", "vaekit.metrics", "vaekit.apps", "vaekit.export",
                                         "vaekit.text.quality", "vaekit.tabular", "vaekit.report"]),
    ("serve, commands", ["vaekit.serve", "vaekit.commands", "vaekit.cli", "vaekit.__main__", "vaekit"]),
]


def floor_of(module: str, floors: list[tuple[str, list[str]]] = FLOORS) -> int | None:
    """The index of the floor `module` belongs to (its longest matching entry), None when no entry matches."""
    best: tuple[int, int] | None = None
    for level, (_, entries) in enumerate(floors):
        for entry in entries:
            if (module == entry or module.startswith(entry + ".")) and (best is None or len(entry) > best[1]):
                best = (level, len(entry))
    return None if best is None else best[0]


def upward_imports(graph: dict[str, set[str]], floors: list[tuple[str, list[str]]] = FLOORS) -> list[str]:
    """'a (floor) -> b (higher floor)' for every import that climbs."""
    return [f"{a} ({floors[floor_of(a, floors)][0]}) -> {b} ({floors[floor_of(b, floors)][0]})"
            for a in sorted(graph) for b in sorted(graph[a]) if floor_of(b, floors) > floor_of(a, floors)]


def test_every_module_has_a_floor_and_no_import_climbs_one():
    graph = import_graph()
    homeless = sorted(m for m in graph if floor_of(m) is None)
    assert not homeless, f"modules without a floor (add them to FLOORS in {Path(__file__).name}): {homeless}"
    climbing = upward_imports(graph)
    assert not climbing, "imports that climb a floor: " + "; ".join(climbing)


def test_an_upward_import_is_reported():
    floors = [("low", ["p.low"]), ("high", ["p.high", "p.high.special"])]
    graph = {"p.low.a": {"p.high.b"}, "p.high.b": {"p.low.a"}, "p.high.special.c": set()}
    assert upward_imports(graph, floors) == ["p.low.a (low) -> p.high.b (high)"]
    assert floor_of("p.high.special.c", floors) == 1 and floor_of("q", floors) is None
