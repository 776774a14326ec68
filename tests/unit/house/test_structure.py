"""The shape of the code (docs/architecture.md): no import cycle, modules of a readable size."""

from __future__ import annotations

import ast

import networkx as nx
from codegraph import ROOT, import_graph, sources

LIMIT = 500


def test_no_import_cycle() -> None:
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:10])


def test_modules_stay_under_about_500_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in sources()}
    over = {f: n for f, n in sizes.items() if n > LIMIT}
    assert not over, f"modules over {LIMIT} lines: split them along their jobs: {over}"


#: The engine's parts, mixed into one object: each may use only its own private members.
ENGINE_PARTS = ("engine", "dependencies", "catalog", "adoption", "verbs", "subtree")


def test_the_engine_parts_keep_to_their_own_private_members() -> None:
    """A part uses what the others give through the public names it declares at the top of its class,
    never another part's ``self._x``."""
    trespass = {}
    for part in ENGINE_PARTS:
        tree = ast.parse((ROOT / "svcmgr" / f"{part}.py").read_text())
        own = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        own |= {t.attr for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign)
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                and n.value.id == "self" and n.attr.startswith("_") and not n.attr.startswith("__")}
        if used - own:
            trespass[part] = sorted(used - own)
    assert not trespass, f"engine parts using another part's private members: {trespass}"


def test_every_function_level_import_says_why() -> None:
    """An import inside a function (to keep a command or the daemon's start fast) carries its reason: a
    comment on its line, or on the line before the block of imports it starts."""
    silent = []
    for path in sources():
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                first = node.lineno - 1
                while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
                    first -= 1
                if "#" not in lines[node.lineno - 1] and "#" not in lines[first] and \
                        (first == 0 or "#" not in lines[first - 1]):
                    silent.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not silent, f"function-level imports without a reason: {sorted(set(silent))}"
