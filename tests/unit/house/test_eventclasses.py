"""Every event class is named once, in svcmgr.eventclasses, and every class waited for is published."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from svcmgr import eventclasses as ec

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("svcmgr", "fault", "vrrp", "lb")
#: Families whose classes their publishers name themselves (rules, log patterns, sources own them).
OPEN = ("ereport.", "fault.")


def literal_classes() -> list[tuple[str, int, str]]:
    """(file, line, class) of each string literal given as the class to emit, publish or subscribe to."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path.name == "eventclasses.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                if node.func.attr not in ("emit", "subscribe") or not node.args:
                    continue
                for arg in node.args if node.func.attr == "subscribe" else node.args[:1]:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        out.append((str(path.relative_to(ROOT)), node.lineno, arg.value))
                    elif isinstance(arg, ast.JoinedStr):
                        head = arg.values[0]
                        text = head.value if isinstance(head, ast.Constant) else ""
                        out.append((str(path.relative_to(ROOT)), node.lineno, text + "*"))
    return out


def test_only_open_families_are_spelled_where_they_are_published() -> None:
    bad = [f"{f}:{n}: {c!r}" for f, n, c in literal_classes() if not c.startswith(OPEN)]
    assert not bad, "name these classes through svcmgr.eventclasses: " + ", ".join(bad)


def test_the_scan_finds_the_restarters_ereports() -> None:
    assert any(c == "ereport.svc.exit.code" for _, _, c in literal_classes())


@pytest.mark.parametrize("name", [n for n in ec.__all__ if n.isupper() and not n.endswith("_STATES")])
def test_every_constant_names_a_published_class(name: str) -> None:
    value = getattr(ec, name)
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, str):
            continue
        published = ec.known(v) or any(c.name.startswith(v + ".") for c in ec.CLASSES)
        assert published, f"{name} = {v!r}: published by nothing"


def test_families_and_the_helpers_agree() -> None:
    assert ec.known(ec.state_class("online")) and ec.state_of("svc.state.online") == "online"
    assert ec.state_of("svc.stopping") is None
    assert ec.known(ec.vrrp_state_class("master")) and ec.known(ec.lb_server_class("drain"))
    assert not ec.known("list.acquitted") and not ec.known("list.replaced"), "nothing publishes these"
    assert ec.known("fault.svc.flapping") and ec.known("ereport.svc.exit.code")
