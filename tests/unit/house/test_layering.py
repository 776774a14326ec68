"""The import rule of docs/architecture.md, checked on the source: components see the core only
through its narrow interfaces.

The components (``fault/``, ``vrrp/``, ``lb/``, the web dashboard, metrics and the MQTT
bridge) never import the engine or its parts, the restarter, the reaper or the repository
(not even for type hints, not even inside a function): they get the
services' view and commands (``svcmgr.services``), the event classes
(``svcmgr.eventclasses``), a command runner (``svcmgr.process``) and a database
connection (``svcmgr.db``). Nor do they reach the core through another module: what a component
imports, and what that imports in turn, never includes the core. The leaves import (almost) nothing
of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest
from codegraph import import_graph, module_name

ROOT = Path(__file__).resolve().parents[3]
COMPONENT_PACKAGES = ("fault", "vrrp", "lb", "svcmgr/web")
COMPONENT_MODULES = ("svcmgr/metrics.py", "svcmgr/metrics_http.py", "svcmgr/mqtt.py", "svcmgr/mqtt_topics.py",
                     "svcmgr/outbox.py", "svcmgr/mqtt_component.py", "svcmgr/mqtt_pipeline.py")
CORE = ("svcmgr.engine", "svcmgr.adoption", "svcmgr.catalog", "svcmgr.dependencies", "svcmgr.verbs",
        "svcmgr.facade", "svcmgr.control", "svcmgr.configure", "svcmgr.restarter", "svcmgr.reaper",
        "svcmgr.repository", "svcmgr.monitor", "svcmgr.forkserver", "svcmgr.subtree", "svcmgr.repofile",
        "svcmgr.snapshots")


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, wherever the import statement stands."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", sources(*COMPONENT_PACKAGES) + [ROOT / m for m in COMPONENT_MODULES],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_components_never_import_the_core(path: Path) -> None:
    bad = [f"line {n}: {m}" for n, m in imports(path) if m in CORE or m.startswith(tuple(c + "." for c in CORE))]
    assert not bad, f"{path.relative_to(ROOT)} imports the core: {bad}"


def test_the_rule_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from svcmgr.engine import Engine\n    return Engine\n")
    assert (2, "svcmgr.engine") in imports(f)


def components() -> list[Path]:
    return sources(*COMPONENT_PACKAGES) + [ROOT / m for m in COMPONENT_MODULES]


def test_components_never_reach_the_core_through_another_module() -> None:
    g = import_graph()
    reached = {}
    for path in components():
        mod = module_name(path)
        core = sorted(nx.descendants(g, mod) & set(CORE))
        if core:
            reached[mod] = " -> ".join(nx.shortest_path(g, mod, core[0]))
    assert not reached, f"components that load the core at run time: {reached}"


#: docs/architecture.md's leaves, with the project modules each may import (its own package aside).
LEAVES = {
    "svcmgr.states": set(), "svcmgr.events": set(), "svcmgr.eventclasses": set(), "svcmgr.units": set(),
    "svcmgr.db": set(), "svcmgr.policy": set(), "svcmgr.fmri": set(), "svcmgr.procfs": set(),
    "svcmgr.hostport": set(), "svcmgr.polling": set(), "svcmgr.proptypes": set(),
    "svcmgr.schema": {"svcmgr.units"}, "svcmgr.process": {"svcmgr.policy"},
}


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_a_leaf_imports_nothing_of_the_project(leaf: str) -> None:
    g = import_graph()
    assert set(g.successors(leaf)) - {"svcmgr"} <= LEAVES[leaf]
