"""Colours and line styles shared by every drawing, so a state looks the same in each. A leaf module."""

from __future__ import annotations

__all__ = ["BAR", "CYCLE", "EDGE", "FONT", "GROUPING", "STATE_FILL", "STATE_TEXT", "dasharray", "seconds"]

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"

#: Node fill by state (and for dependency targets the daemon does not run: absent, or a file).
STATE_FILL = {
    "online": "#a8dba8",
    "degraded": "#f7dc6f",
    "offline": "#d5d8dc",
    "maintenance": "#f1948a",
    "disabled": "#ffffff",
    "uninitialized": "#eeeeee",
    "absent": "#ffffff",
    "present": "#e8f0fe",
}
STATE_TEXT = {"disabled": "#777777", "absent": "#c0392b"}

#: Edge line style by grouping (Graphviz names; ``dasharray`` gives the SVG form).
GROUPING = {"require_all": "solid", "require_any": "dashed", "optional_all": "dotted", "exclude_all": "solid"}
#: Edge colour by whether the dependency is met now; ``never``: it cannot be met without an operator.
EDGE = {"met": "#404040", "notyet": "#8c8c8c", "never": "#c0392b", "exclude_all": "#8e44ad"}
CYCLE = "#e67e22"

#: Boot chart bars.
BAR = {
    "waiting": "#d6e4f0",
    "starting": "#f5b041",
    "failed": "#e74c3c",
    "running": "#82c785",
    "stopping": "#b39ddb",
}

_DASH = {"solid": None, "dashed": "6,4", "dotted": "2,3"}


def dasharray(grouping: str) -> str | None:
    """The SVG ``stroke-dasharray`` of a grouping's line (None: solid)."""
    return _DASH[GROUPING.get(grouping, "solid")]


def seconds(v: float | None) -> str:
    """A duration as people read it: 3.9ms, 1.088s, 2.5min; '-' for none."""
    if v is None:
        return "-"
    if v >= 120:
        return f"{v / 60:.1f}min"
    return f"{v:.3f}s" if v >= 1 else f"{v * 1000:.1f}ms"
