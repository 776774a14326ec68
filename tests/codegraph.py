"""The product's modules and what imports what, read from the source (for the tests of the code's shape,
tests/unit/house/: docs/architecture.md's rules)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("svcmgr", "fault", "vrrp", "lb", "bench")


def sources() -> list[Path]:
    """The product's modules (not what a tool keeps in a hidden folder, such as the bench's venv)."""
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                  if not any(part.startswith(".") for part in p.relative_to(ROOT).parts))


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports, at run time (imports under ``if TYPE_CHECKING:`` do not count)."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n:
                out.add(n)
    return out


@functools.cache
def import_graph() -> nx.DiGraph:
    """Module -> the project modules it imports at run time, wherever the import stands (a function-level
    import counts). A module's use of its own package's ``__init__`` is left out: it is loaded first anyway."""
    files = {module_name(p): p for p in sources()}
    g = nx.DiGraph()
    for mod, path in files.items():
        g.add_node(mod)
        parent = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for dep in imported(path, set(files)):
            if dep != mod and dep != parent:
                g.add_edge(mod, dep)
    return g
