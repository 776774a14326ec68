"""A boot chart of start timings as SVG: one row per instance, bars for waiting, starting, running.

Input: the ``timings`` operation's reply (``svcmgr.observe``) for a window. Each start of an
instance in the window is drawn in its row: waiting for dependencies (pale blue), starting
(orange; red for a start that failed), running (green) and stopping (lilac), with the start's
own time written after it. Rows are ordered by when each instance was first queued; the axis
counts seconds from the start of the window (the daemon's start, for a boot). Every row is a
``<g class="row" data-fmri="...">`` and every bar carries a ``<title>`` (shown on hover).
Unlike systemd-analyze's plot, the time spent waiting for dependencies is drawn, instances
that are up at once (milestones) have their row, and a window may hold several boots.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from svcmgr.draw.style import BAR, FONT, seconds
from svcmgr.draw.svg import Svg

__all__ = ["bars", "boot_chart", "nice_step"]

PLOT_WIDTH = 1000.0
ROW = 22.0
BAR_HEIGHT = 14.0
CHAR = 7.4  # px per character of a 12px monospace label (DejaVu Sans Mono: 7.2)
TOP = 58.0
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"


def nice_step(span: float, ticks: int = 10) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    base = 10 ** math.floor(math.log10(raw))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw)


def _tick(v: float) -> str:
    return f"{v:g}s" if v < 120 else f"{v / 60:g}min"


def bars(start: dict[str, Any], now: float) -> list[tuple[str, float, float]]:
    """(kind, from, to) in wall clock seconds for one record; a phase still going ends ``now``."""
    base = start.get("boot_started") or 0.0
    at = {k: base + v / 1e9 for k, v in (start.get("at") or {}).items() if v is not None}

    def span(kind: str, first: str, *ends: str) -> list[tuple[str, float, float]]:
        if first not in at:
            return []
        return [(kind, at[first], next((at[e] for e in ends if e in at), now))]

    starting = "failed" if start.get("status") == "failed" else "starting"
    return [*span("waiting", "queued", "deps_met", "stop", "end"),
            *span(starting, "deps_met", "online", "stop", "end"),
            *span("running", "online", "stop", "end"),
            *span("stopping", "stop", "end")]


def _events(start: dict[str, Any]) -> list[float]:
    base = start.get("boot_started") or 0.0
    return [base + v / 1e9 for v in (start.get("at") or {}).values() if v is not None]


def boot_chart(reply: dict[str, Any], *, title: str = "svcmgr boot chart") -> str:
    """The SVG text of a boot chart for a ``timings`` reply."""
    now = float(reply.get("now") or 0.0)
    starts = [s for s in reply.get("starts", []) if _events(s)]
    window = reply.get("window") or [None, None]
    events = [t for s in starts for t in _events(s)]
    busy = any(s.get("status") in ("waiting", "starting", "stopping") for s in starts)
    lo = window[0] if window[0] is not None and math.isfinite(window[0]) else min(events, default=now)
    hi_limit = window[1] if window[1] is not None else now
    hi = min(hi_limit, max([*events, now] if busy else events, default=lo + 1.0))
    span = max(hi - lo, 0.001) * 1.05
    scale = PLOT_WIDTH / span

    rows: dict[str, list[dict[str, Any]]] = {}
    for s in sorted(starts, key=lambda s: min(_events(s))):
        rows.setdefault(str(s["fmri"]), []).append(s)
    label_w = max([len(f) for f in rows] + [20]) * CHAR + 16
    width = label_w + PLOT_WIDTH + 90
    height = TOP + ROW * max(len(rows), 1) + 70

    svg = Svg(width, height, font_family=FONT, font_size=12)
    svg.add("rect", x=0, y=0, width=width, height=height, fill="#ffffff")
    when = dt.datetime.fromtimestamp(lo).astimezone().isoformat(timespec="seconds") if lo > 0 else "?"
    svg.add("text", title, x=10, y=20, font_size=16, font_weight="bold")
    svg.add("text", f"from {when}, {len(rows)} instances, {sum(len(v) for v in rows.values())} starts",
            x=10, y=38, fill="#555555")

    def x(t: float) -> float:
        return label_w + (min(max(t, lo), lo + span) - lo) * scale

    step = nice_step(span)
    svg.open("g", class_="axis")
    n = 0
    while n * step <= span + 1e-9:
        tx = label_w + n * step * scale
        svg.add("line", x1=tx, y1=TOP - 6, x2=tx, y2=TOP + ROW * len(rows), stroke="#e5e5e5")
        svg.add("text", _tick(n * step) if n else "0", x=tx, y=TOP - 9, font_size=10, fill="#555555",
                text_anchor="middle")
        n += 1
    svg.close()

    for i, (fmri, recs) in enumerate(rows.items()):
        y = TOP + i * ROW
        svg.open("g", class_="row", data_fmri=fmri)
        if i % 2:
            svg.add("rect", x=0, y=y, width=width, height=ROW, fill="#f7f9fb")
        svg.add("text", fmri, x=label_w - 8, y=y + ROW / 2 + 4, text_anchor="end", font_family=MONO, font_size=12)
        for s in recs:
            for kind, a, b in bars(s, now):
                if b < lo or a > lo + span:
                    continue
                w = max(x(b) - x(a), 1.0)
                svg.open("rect", class_=f"bar {kind}", x=x(a), y=y + (ROW - BAR_HEIGHT) / 2, width=w,
                         height=BAR_HEIGHT, fill=BAR[kind], rx=2)
                svg.add("title", f"{fmri}: {kind} {seconds(max(b - a, 0.0))}")
                svg.close()
            if s.get("start") is not None:
                end = next((b for k, _, b in bars(s, now) if k in ("starting", "failed")), None)
                if end is not None and lo <= end <= lo + span:
                    svg.add("text", seconds(float(s["start"])), x=x(end) + 4, y=y + ROW / 2 + 4,
                            font_size=10, fill="#333333")
        svg.close()

    ly = TOP + ROW * len(rows) + 28
    lx = 10.0
    svg.open("g", class_="legend")
    for kind in ("waiting", "starting", "failed", "running", "stopping"):
        svg.add("rect", x=lx, y=ly - 10, width=14, height=12, fill=BAR[kind], rx=2)
        label = {"waiting": "waiting for dependencies", "failed": "start failed"}.get(kind, kind)
        svg.add("text", label, x=lx + 20, y=ly, font_size=11)
        lx += 20 + len(label) * 6.5 + 24
    svg.close()
    return str(svg)
