"""The drawings from fixed replies: DOT text, the built-in graph layout and the boot chart (valid XML,
one row per instance, one node per FMRI), with hostile names escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from svcmgr.draw.bootchart import bars, boot_chart, nice_step
from svcmgr.draw.dot import quote, to_dot
from svcmgr.draw.layout import graph_svg, layered
from svcmgr.draw.style import EDGE, STATE_FILL

SVG = "{http://www.w3.org/2000/svg}"


def edge(a: str, b: str, **kw: object) -> dict[str, object]:
    return {"from": a, "to": b, "name": "d", "grouping": "require_all", "restart_on": "none", "value": "met",
            "cycle": False, **kw}


MODEL = {
    "nodes": [
        {"fmri": "svc:/a:default", "state": "online", "nstate": None, "kind": "service", "start": 1.2, "wait": 0.5},
        {"fmri": "svc:/b:default", "state": "maintenance", "nstate": None, "kind": "service"},
        {"fmri": "svc:/c:default", "state": "offline", "nstate": "online", "kind": "service"},
        {"fmri": "svc:/m:default", "state": "offline", "kind": "milestone"},
        {"fmri": "svc:/gone", "state": "absent", "kind": "absent"},
        {"fmri": 'svc:/evil"]; x -> y; //:default', "state": "online", "kind": "service"},
    ],
    "edges": [
        edge("svc:/m:default", "svc:/a:default", restart_on="restart"),
        edge("svc:/m:default", "svc:/b:default", value="never"),
        edge("svc:/c:default", "svc:/gone", grouping="require_any", value="never"),
        edge("svc:/a:default", "svc:/c:default", grouping="optional_all", cycle=True),
        edge("svc:/c:default", "svc:/a:default", cycle=True),
        edge("svc:/m:default", 'svc:/evil"]; x -> y; //:default', grouping="exclude_all"),
    ],
    "cycles": [["svc:/a:default", "svc:/c:default", "svc:/a:default"]],
}


def test_dot_colours_states_styles_groupings_and_marks_never_and_cycles():
    text = to_dot(MODEL)
    assert text.startswith('digraph "svcmgr" {') and text.rstrip().endswith("}")
    a = next(line for line in text.splitlines() if line.startswith('  "svc:/a:default" ['))
    assert f'fillcolor="{STATE_FILL["online"]}"' in a and "start 1.200s, waited 500.0ms" in a
    never = next(line for line in text.splitlines() if '"svc:/m:default" -> "svc:/b:default"' in line)
    assert f'color="{EDGE["never"]}"' in never and "never met" in never
    assert 'style="dashed"' in next(line for line in text.splitlines() if '-> "svc:/gone"' in line)
    assert text.count("(cycle)") == 2 and 'arrowhead="tee"' in text
    assert 'label="restart"' in text and "box3d" in text  # restart_on label, milestone shape
    assert '"svc:/evil\\"]; x -> y; //:default"' in text  # quoted: no injection


def test_quote_escapes_and_strips_control_characters():
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c d"'


def test_builtin_layout_puts_dependencies_left_and_draws_every_node_and_edge():
    cols = layered(["top", "mid", "db", "side"], [("top", "mid"), ("mid", "db"), ("top", "side")])
    assert cols[0] == ["db", "side"] or cols[0] == ["side", "db"]
    assert cols[1] == ["mid"] and cols[2] == ["top"]
    assert layered(["x", "y"], [("x", "y"), ("y", "x")])  # a cycle does not hang it
    root = ET.fromstring(graph_svg(MODEL, graphviz=False))
    nodes = {g.get("data-fmri") for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    assert nodes == {n["fmri"] for n in MODEL["nodes"]}
    assert sum(1 for g in root.iter(f"{SVG}g") if g.get("class") == "edge") == len(MODEL["edges"])


def timings_reply() -> dict[str, object]:
    def start(fmri: str, at: dict[str, float | None], status: str, start: float | None) -> dict[str, object]:
        return {"fmri": fmri, "status": status, "boot_started": 1000.0, "start": start,
                "at": {k: (None if v is None else int(v * 1e9)) for k, v in at.items()}}

    return {"now": 1010.0, "window": [1000.0, 1010.0], "boot": 1, "starts": [
        start("svc:/slow:default", {"queued": 0.1, "deps_met": 0.1, "online": 1.1}, "online", 1.0),
        start("svc:/dep:default", {"queued": 0.1, "deps_met": 1.1, "online": 1.2}, "online", 0.1),
        start("svc:/bad:default", {"queued": 0.1, "deps_met": 0.1, "stop": 0.3, "end": 0.4}, "failed", 0.2),
        start("svc:/bad:default", {"queued": 0.4, "deps_met": 0.4}, "starting", 9.6),
        start("svc:/<script>:default", {"queued": 0.2}, "waiting", None),
    ]}


def test_boot_chart_is_svg_with_one_row_per_instance_and_a_bar_per_phase():
    text = boot_chart(timings_reply())
    root = ET.fromstring(text)
    rows = [g for g in root.iter(f"{SVG}g") if g.get("class") == "row"]
    assert [g.get("data-fmri") for g in rows] == ["svc:/slow:default", "svc:/dep:default", "svc:/bad:default",
                                                   "svc:/<script>:default"]
    kinds = [r.get("class") for r in rows[2].iter(f"{SVG}rect") if (r.get("class") or "").startswith("bar")]
    assert kinds == ["bar waiting", "bar failed", "bar stopping", "bar waiting", "bar starting"]
    assert "<script>" not in text


def test_bars_end_where_the_next_point_is_or_now():
    (waiting, starting) = bars({"boot_started": 10.0, "status": "starting",
                                "at": {"queued": 0, "deps_met": 2_000_000_000}}, now=15.0)
    assert waiting == ("waiting", 10.0, 12.0) and starting == ("starting", 12.0, 15.0)
    assert nice_step(10) == 1 and nice_step(1.3) == 0.2 and nice_step(700) == 100
