"""The dependency graph as Graphviz DOT: nodes coloured by state, edges styled by grouping.

Input: the ``graph`` operation's reply (``svcmgr.observe``). An edge runs from a dependent to
what it depends on, labelled with its ``restart_on``; its line says the grouping (solid
``require_all``, dashed ``require_any``, dotted ``optional_all``, a bar-headed purple line
for ``exclude_all``). An edge that cannot be met without an operator is red and bold, an
edge on a dependency cycle orange and bold. A node shows its FMRI, its state (with the next
state while it moves) and the last start's time; an absent target is a dashed red box.
Dependencies are drawn left of their dependents (``rankdir=RL``): start order reads left to
right. ``svcs -G | dot -Tsvg > graph.svg`` draws it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from svcmgr.draw.style import CYCLE, EDGE, FONT, GROUPING, STATE_FILL, STATE_TEXT, seconds

__all__ = ["node_label", "quote", "to_dot"]


def quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, line breaks removed."""
    clean = "".join(c if c.isprintable() else " " for c in str(text))
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_label(node: dict[str, Any]) -> list[str]:
    """The lines written in a node: FMRI, state (-> next state), last start (+wait)."""
    lines = [str(node["fmri"])]
    state = str(node.get("state") or "?")
    if node.get("nstate"):
        state += f" \u2192 {node['nstate']}"
    lines.append(state)
    if node.get("start") is not None:
        times = f"start {seconds(node['start'])}"
        if node.get("wait"):
            times += f", waited {seconds(node['wait'])}"
        lines.append(times)
    return lines


def _attrs(**kw: object) -> str:
    return "[" + ", ".join(f"{k}={quote(str(v))}" for k, v in kw.items() if v is not None) + "]"


def _node(n: dict[str, Any]) -> str:
    state = str(n.get("state") or "")
    kind = n.get("kind")
    style = ["filled", "rounded"]
    if kind in ("absent", "path") or state == "absent":
        style = ["dashed", "rounded"] + (["filled"] if state == "present" else [])
    if n.get("nstate"):
        style.append("bold")
    shape = "box" if kind != "milestone" else "box3d"
    label = "\\n".join(quote(line)[1:-1] for line in node_label(n))
    return (f"  {quote(n['fmri'])} [label=\"{label}\", shape={shape}, style={quote(','.join(style))}, "
            f"fillcolor={quote(STATE_FILL.get(state, '#ffffff'))}, "
            f"fontcolor={quote(STATE_TEXT.get(state, '#000000'))}"
            f"{', color=' + quote(STATE_TEXT['absent']) if state == 'absent' else ''}];")


def _edge(e: dict[str, Any]) -> str:
    grouping = str(e.get("grouping") or "require_all")
    value = str(e.get("value") or "notyet")
    colour = EDGE["exclude_all"] if grouping == "exclude_all" else EDGE.get(value, EDGE["notyet"])
    width = 1.2
    label = str(e.get("restart_on") or "none")
    if value == "never":
        colour, width, label = EDGE["never"], 2.5, label + " (never met)"
    if e.get("cycle"):
        colour, width, label = CYCLE, 3.0, label + " (cycle)"
    attrs = _attrs(label=label, style=GROUPING.get(grouping, "solid"), color=colour, fontcolor=colour,
                   penwidth=width, arrowhead="tee" if grouping == "exclude_all" else "normal",
                   tooltip=f"{e['from']} {grouping} {e['to']} (dependency {e.get('name', '')})")
    return f"  {quote(e['from'])} -> {quote(e['to'])} {attrs};"


def to_dot(model: dict[str, Any], *, name: str = "svcmgr") -> str:
    """DOT text for a ``graph`` reply."""
    nodes: Iterable[dict[str, Any]] = model.get("nodes", [])
    edges: Iterable[dict[str, Any]] = model.get("edges", [])
    out = [f"digraph {quote(name)} {{",
           f"  graph [rankdir=RL, fontname={quote(FONT)}, nodesep=0.3, ranksep=0.8];",
           f"  node [fontname={quote(FONT)}, fontsize=10];",
           f"  edge [fontname={quote(FONT)}, fontsize=9];"]
    out += [_node(n) for n in nodes]
    out += [_edge(e) for e in edges]
    out.append("}")
    return "\n".join(out) + "\n"
