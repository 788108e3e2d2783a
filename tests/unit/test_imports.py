"""The layering of the library, read from its source with ``ast`` (function-local imports included).

- Nothing below the faces imports the ``AGI`` facade (``switchyard.agi``): the faces
  (the facade itself, the CLI and its command modules, the HTTP API, the Streamlit
  widgets and the package root's lazy ``AGI`` attribute) call the engine, and lower
  packages (runs, cluster, service, pipeline, schedule, ...) call the engine too.
- No cycle between packages: ``switchyard.<name>`` (a subpackage or a top-level module)
  is a node, an import from one into another an edge.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "switchyard"
FACES = {"switchyard", "switchyard.agi", "switchyard.cli", "switchyard.commands", "switchyard.api",
         "switchyard.ui"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import in the file, nested ones included."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
            # ``from switchyard import agi`` imports the module switchyard.agi
            out += [(f"{mod}.{a.name}", node.lineno) for a in node.names
                    if (ROOT.parent / f"{mod}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                    or (ROOT.parent / f"{mod}.{a.name}".replace(".", "/")).is_dir()]
    return [(m, line) for m, line in out if m == "switchyard" or m.startswith("switchyard.")]


def node_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def is_face(module: str) -> bool:
    return module in FACES or node_of(module) in FACES - {"switchyard"}


def graph() -> dict[str, dict[str, list[str]]]:
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(ROOT.rglob("*.py")):
        src = module_name(path)
        for mod, line in imported(path):
            a, b = node_of(src), node_of(mod)
            if a != b and b != "switchyard":
                edges[a][b].append(f"{path.relative_to(SRC)}:{line}")
    return edges


def cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_function_local_imports():
    # runs/submit.py imports the launcher inside a function: the walk must see it.
    mods = [m for m, _ in imported(ROOT / "runs" / "submit.py")]
    assert "switchyard.runs.launcher" in mods
    assert "switchyard.runs" in graph()["switchyard.cluster"] or "switchyard.cluster" in graph()["switchyard.runs"]


def test_nothing_below_the_faces_imports_the_facade():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        src = module_name(path)
        if is_face(src):
            continue
        offenders += [f"{path.relative_to(SRC)}:{line}" for mod, line in imported(path)
                      if mod == "switchyard.agi" or mod.startswith("switchyard.agi.")]
    assert offenders == [], f"imports of switchyard.agi below the faces: {offenders}"


def test_no_import_cycle_between_packages():
    edges = graph()
    found = cycles(edges)
    detail = ["; ".join(f"{a} -> {b} ({edges[a][b][0]})" for a in comp for b in comp if b in edges[a])
              for comp in found]
    assert found == [], f"import cycles between packages: {detail}"


def test_a_cycle_is_detected_by_the_check():
    assert cycles({"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": ["x"]}, "b": {}}) == []
