"""The dependency graph drawn as SVG: by Graphviz when it is installed, else by a layered layout here.

``graph_svg(model)`` takes the ``graph`` operation's reply (``svcmgr.observe``). The built-in
layout is a small Sugiyama: each instance sits one layer right of the deepest thing it depends
on (dependencies left, dependents right, as ``dot.to_dot`` draws them), and the order within a
layer is improved by a few barycentre sweeps to cut crossings. Edges are curves from a dependent
to its dependency, styled as in the DOT output (``svcmgr.draw.style``). Graphviz runs as a
subprocess with a time limit; callers on an event loop should run ``graph_svg`` in a thread.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from svcmgr.draw.dot import node_label, to_dot
from svcmgr.draw.style import CYCLE, EDGE, FONT, STATE_FILL, STATE_TEXT, dasharray
from svcmgr.draw.svg import Svg

__all__ = ["Box", "graph_svg", "layered", "render_with_graphviz"]

CHAR = 6.2  # px per character at 10px
LINE = 13.0
PAD = 8.0
GAP_X = 90.0
GAP_Y = 18.0
SWEEPS = 8
DOT_TIMEOUT = 10.0


@dataclass
class Box:
    """Where a node is drawn: top-left corner and size."""

    x: float
    y: float
    w: float
    h: float


def _layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Layer of each node: 0 for what depends on nothing, else one more than its deepest dependency.
    Edges closing a cycle are ignored."""
    deps: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a in deps and b in deps and a != b:
            deps[a].append(b)
    layer: dict[str, int] = {}
    visiting: set[str] = set()
    for root in nodes:
        if root in layer:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            n, i = stack.pop()
            if i == 0:
                if n in layer:
                    continue
                visiting.add(n)
            ds = deps[n]
            if i < len(ds):
                stack.append((n, i + 1))
                d = ds[i]
                if d not in layer and d not in visiting:
                    stack.append((d, 0))
                continue
            visiting.discard(n)
            layer[n] = 1 + max((layer[d] for d in ds if d in layer), default=-1)
    return layer


def layered(nodes: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Nodes in layers (left to right), each layer ordered to cut edge crossings."""
    layer = _layers(nodes, edges)
    cols: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for n in sorted(nodes):
        cols[layer[n]].append(n)
    nbrs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a in nbrs and b in nbrs and a != b:
            nbrs[a].append(b)
            nbrs[b].append(a)
    for sweep in range(SWEEPS):
        order = range(1, len(cols)) if sweep % 2 == 0 else range(len(cols) - 2, -1, -1)
        for c in order:
            ref = cols[c - 1] if sweep % 2 == 0 else cols[c + 1]
            pos = {n: i for i, n in enumerate(ref)}
            here = {n: float(i) for i, n in enumerate(cols[c])}

            def centre(n: str, pos: dict[str, int] = pos, here: dict[str, float] = here) -> float:
                ps = [pos[m] for m in nbrs[n] if m in pos]
                return sum(ps) / len(ps) if ps else here[n]

            cols[c].sort(key=centre)
    return cols


def _place(model: dict[str, Any]) -> tuple[dict[str, Box], float, float]:
    nodes = {str(n["fmri"]): n for n in model.get("nodes", [])}
    edges = [(str(e["from"]), str(e["to"])) for e in model.get("edges", [])]
    cols = layered(list(nodes), edges)
    boxes: dict[str, Box] = {}
    x = PAD * 2
    height = 0.0
    for col in cols:
        w = max(max(len(line) for line in node_label(nodes[n])) * CHAR + 2 * PAD for n in col)
        y = PAD * 2
        for n in col:
            h = len(node_label(nodes[n])) * LINE + PAD
            boxes[n] = Box(x, y, w, h)
            y += h + GAP_Y
        height = max(height, y)
        x += w + GAP_X
    return boxes, x - GAP_X + PAD * 2, height + PAD


def _lift(a: Box, b: Box) -> float:
    """How far above its ends an edge from ``a`` to ``b`` bends: edges that skip layers arc over the
    boxes between (what dummy nodes do in a full layered layout)."""
    dist = a.x - (b.x + b.w)
    if dist <= GAP_X * 1.5:
        return 0.0
    return -(max(a.h, b.h) / 2 + 20.0 + 0.04 * dist) / 0.75


def _builtin_svg(model: dict[str, Any]) -> str:
    boxes, width, height = _place(model)
    ends = [(boxes.get(str(e["from"])), boxes.get(str(e["to"]))) for e in model.get("edges", [])]
    top = min([0.0] + [min(a.y + a.h / 2, b.y + b.h / 2) + 0.75 * _lift(a, b) - 14 for a, b in ends if a and b])
    for box in boxes.values():
        box.y -= top
    height -= top
    svg = Svg(max(width, 200.0), max(height, 60.0), font_family=FONT, font_size=10)
    svg.open("defs")
    for name, colour in (("met", EDGE["met"]), ("notyet", EDGE["notyet"]), ("never", EDGE["never"]),
                         ("cycle", CYCLE), ("exclude", EDGE["exclude_all"])):
        svg.open("marker", id=f"arrow-{name}", viewBox="0 0 10 10", refX=10, refY=5, markerWidth=7,
                 markerHeight=7, orient="auto")
        path = "M0,0 L10,5 L0,10 z" if name != "exclude" else "M8,0 L10,0 L10,10 L8,10 z"
        svg.add("path", d=path, fill=colour)
        svg.close()
    svg.close()
    svg.add("rect", x=0, y=0, width=svg.width, height=svg.height, fill="#ffffff")
    for e in model.get("edges", []):
        a, b = boxes.get(str(e["from"])), boxes.get(str(e["to"]))
        if a is None or b is None:
            continue
        grouping = str(e.get("grouping"))
        value = str(e.get("value") or "notyet")
        kind = "exclude" if grouping == "exclude_all" else value if value in EDGE else "notyet"
        colour = EDGE["exclude_all"] if kind == "exclude" else EDGE[kind]
        width = 1.2
        if value == "never":
            kind, colour, width = "never", EDGE["never"], 2.5
        if e.get("cycle"):
            kind, colour, width = "cycle", CYCLE, 3.0
        x1, y1 = a.x, a.y + a.h / 2
        x2, y2 = b.x + b.w, b.y + b.h / 2
        bend = max(abs(x1 - x2) / 2, 30.0)
        lift = _lift(a, b)
        svg.open("g", class_="edge", data_from=e["from"], data_to=e["to"])
        svg.add("path", d=f"M{x1:.1f},{y1:.1f} C{x1 - bend:.1f},{y1 + lift:.1f} {x2 + bend:.1f},{y2 + lift:.1f} "
                          f"{x2:.1f},{y2:.1f}",
                fill="none", stroke=colour, stroke_width=width, stroke_dasharray=dasharray(grouping),
                marker_end=f"url(#arrow-{kind})")
        svg.add("text", str(e.get("restart_on") or "none"), x=(x1 + x2) / 2, y=(y1 + y2) / 2 + lift * 0.75 - 3,
                font_size=9,
                fill=colour, text_anchor="middle")
        svg.close()
    for n in model.get("nodes", []):
        box = boxes[str(n["fmri"])]
        state = str(n.get("state") or "")
        outside = n.get("kind") in ("absent", "path")
        svg.open("g", class_="node", data_fmri=n["fmri"], data_state=state)
        svg.add("rect", x=box.x, y=box.y, width=box.w, height=box.h, rx=6,
                fill=STATE_FILL.get(state, "#ffffff"), stroke=STATE_TEXT.get(state, "#333333"),
                stroke_width=2.2 if n.get("nstate") else 1.0, stroke_dasharray="4,3" if outside else None)
        for i, line in enumerate(node_label(n)):
            svg.add("text", line, x=box.x + box.w / 2, y=box.y + PAD / 2 + LINE * (i + 0.8),
                    text_anchor="middle", fill=STATE_TEXT.get(state, "#000000"),
                    font_weight="bold" if i == 0 else None)
        svg.close()
    return str(svg)


def render_with_graphviz(dot_text: str, fmt: str = "svg") -> str | None:
    """What Graphviz's ``dot`` makes of DOT text; None when it is not installed or fails."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        r = subprocess.run([exe, f"-T{fmt}"], input=dot_text, capture_output=True, text=True,
                           timeout=DOT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 and r.stdout else None


def graph_svg(model: dict[str, Any], *, graphviz: bool = True) -> str:
    """The graph as SVG text: Graphviz's drawing when asked for and installed, else the built-in one."""
    if graphviz:
        out = render_with_graphviz(to_dot(model))
        if out is not None:
            return out
    return _builtin_svg(model)
