"""``svcs -t``, ``svcs -c``, ``svcs -G`` and ``svcs --plot``: seeing where start-up time goes.

    svcs -t [FMRI ...]                    each instance's last start, longest first: START (its own
                                          time, dependencies met to online), WAIT (for dependencies),
                                          and when it came online (@, since svcmgrd started)
    svcs -c [FMRI]                        the critical chain (default: the milestone)
    svcs -G [FMRI ...]                    the dependency graph as Graphviz DOT
    svcs --plot [--boot N | --since T [--until T]]   an SVG boot chart (default: the last boot)

``--json`` prints the daemon's reply instead. Socket requests: ``timings``, ``chain``,
``graph`` (see ``svcmgr.observe``). The drawing modules are imported only by the command
that draws, and need no third-party package.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

from svcmgr.cli.common import client, die, print_json, table
from svcmgr.draw.style import seconds
from svcmgr.units import parse_duration

__all__ = ["chain", "graph", "parse_time", "plot", "timings"]


def parse_time(text: str, now: float | None = None) -> float:
    """Wall clock seconds from an ISO 8601 time, epoch seconds (``@1700000000``), or a duration ago
    (``90s``, ``10m``, ``2h``); ValueError names what is wrong."""
    now = time.time() if now is None else now
    if text.startswith("@"):
        try:
            return float(text[1:])
        except ValueError:
            raise ValueError(f"{text!r}: expected @ and epoch seconds") from None
    try:
        return now - float(parse_duration(text) or 0.0)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: expected a time (2024-05-01T10:00), @epoch, or a duration ago (10m)") from None
    try:
        return (t if t.tzinfo else t.astimezone()).timestamp()
    except (ValueError, OverflowError, OSError) as e:  # a time at the ends of the calendar
        raise ValueError(f"{text!r}: out of range for the clock ({e})") from None


def timings(args: Any) -> int:
    reply = client(args).call("timings", fmris=args.fmris, last=True)
    starts = sorted(reply["starts"], key=lambda s: (s.get("start") or 0.0), reverse=True)
    if args.json:
        print_json(starts)
        return 0
    rows = []
    for s in starts:
        online = s["at"].get("online")
        when = f"@{online / 1e9:.3f}s" if online is not None and s["status"] in ("online", "stopping",
                                                                                       "stopped") else s["status"]
        rows.append([seconds(s.get("start")), seconds(s.get("wait")), when, s["fmri"]])
    text = table(rows, None if args.H else ["START", "WAIT", "ONLINE", "FMRI"])
    if text:
        print(text)
    return 0


def chain(args: Any) -> int:
    if len(args.fmris) > 1:
        die("svcs", "-c takes at most one FMRI", 2)
    reply = client(args).call("chain", fmri=args.fmris[0] if args.fmris else None)
    if args.json:
        print_json(reply)
        return 0
    print('The time an instance came online follows "@" (since svcmgrd started), its own start time "+".')
    for depth, s in enumerate(reply["steps"]):
        lead = "  " * (depth - 1) + "\u2514\u2500" if depth else ""
        at = f" @{s['online_at']:.3f}s" if s.get("online_at") is not None else ""
        via = f' (dependency "{s["via"]}")' if s.get("via") else ""
        print(f"{lead}{s['fmri']}{at} +{seconds(s.get('start'))}{via}")
    return 0


def graph(args: Any) -> int:
    model = client(args).call("graph", fmris=args.fmris)
    if args.json:
        print_json(model)
        return 0
    from svcmgr.draw.dot import to_dot  # only this command draws

    sys.stdout.write(to_dot(model))
    return 0


def plot(args: Any) -> int:
    req: dict[str, Any] = {"fmris": args.fmris}
    try:
        if args.since:
            req["since"] = parse_time(args.since)
        if args.until:
            req["until"] = parse_time(args.until)
    except ValueError as e:
        die("svcs", str(e), 2)
    if args.boot is not None:
        if args.since or args.until:
            die("svcs", "--boot and --since/--until exclude one another", 2)
        req["boot"] = args.boot
    reply = client(args).call("timings", **req)
    if args.json:
        print_json(reply)
        return 0
    from svcmgr.draw.bootchart import boot_chart  # only this command draws

    title = f"svcmgr boot {reply['boot']}" if reply.get("boot") is not None else "svcmgr start timings"
    sys.stdout.write(boot_chart(reply, title=title))
    return 0
