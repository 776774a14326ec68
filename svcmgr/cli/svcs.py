"""svcs: report service status, as SMF's svcs does.

    svcs [-aH] [-o COLS] [-s COL] [-S COL] [-p] [--json] [FMRI ...]
    svcs -l FMRI ...          everything about instances
    svcs -x [-v] [FMRI ...]   why instances are not running, and what that affects
    svcs -d | -D FMRI ...     what instances depend on, or what depends on them
    svcs -L FMRI ...          the log file of each instance
    svcs -t [FMRI ...]        start timings, longest first (svcmgr.cli.observe)
    svcs -c [FMRI]            the critical chain (default: the milestone)
    svcs -G [FMRI ...]        the dependency graph as Graphviz DOT
    svcs --plot               an SVG boot chart (--boot N, --since T, --until T)

Default columns ``STATE STIME FMRI``, sorted by state then time; without ``-a``
or operands, disabled instances are left out. ``--json`` prints the same fields
in lower case (``stime`` in ISO 8601, ``pids`` with ``-p``).

Socket requests: ``list``, ``show``, ``explain``, ``deps``, ``log``; ``timings``, ``chain``, ``graph``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from svcmgr.cli.common import Parser, add_root, client, print_json, run, stime, table
from svcmgr.cli.credview import context_rows
from svcmgr.states import ORDER, STA

COLUMNS = {
    "state": "STATE", "sta": "STA", "nstate": "NSTATE", "nsta": "NSTA", "stime": "STIME", "fmri": "FMRI",
    "svc": "SVC", "inst": "INST", "desc": "DESC", "ctid": "CTID",
}


def parser() -> Parser:
    p = Parser(prog="svcs", description="Report the status of service instances.")
    add_root(p)
    p.add_argument("-a", action="store_true", help="list all instances, disabled ones too")
    p.add_argument("-H", action="store_true", help="omit the header line")
    p.add_argument("-o", metavar="COLS", help="columns, comma-separated: " + ",".join(COLUMNS))
    p.add_argument("-s", metavar="COL", action="append", default=[], help="sort by column (ascending)")
    p.add_argument("-S", metavar="COL", action="append", default=[], help="sort by column (descending)")
    p.add_argument("-p", action="store_true", help="list the processes of each instance")
    p.add_argument("-l", action="store_true", help="long listing of the named instances")
    p.add_argument("-x", action="store_true", help="explain why instances are not running")
    p.add_argument("-v", action="store_true", help="verbose: with -x the dependency paths and the impacted "
                   "instances; else the columns STATE NSTATE STIME CTID FMRI")
    p.add_argument("-d", action="store_true", help="list the instances the named ones depend on")
    p.add_argument("-D", action="store_true", help="list the instances that depend on the named ones")
    p.add_argument("-L", action="store_true", help="print the log file of each named instance")
    p.add_argument("-t", action="store_true", help="start timings: each instance's last start, longest first, "
                   "with the wait for dependencies apart")
    p.add_argument("-c", action="store_true", help="the critical chain of an instance (default: the milestone)")
    p.add_argument("-G", action="store_true", help="the dependency graph in Graphviz DOT "
                   "(svcs -G | dot -Tsvg > graph.svg)")
    p.add_argument("--plot", action="store_true", help="an SVG boot chart (svcs --plot > boot.svg)")
    p.add_argument("--boot", type=int, metavar="N", help="with --plot: the boot (daemon run) N")
    p.add_argument("--since", metavar="TIME", help="with --plot: from TIME (ISO 8601, @epoch, or a duration ago: 10m)")
    p.add_argument("--until", metavar="TIME", help="with --plot: until TIME")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--fleet", action="store_true", help="every node's instances, from the MQTT broker")
    p.add_argument("--mqtt", metavar="URL", help="with --fleet: the broker (default: the one in --config, "
                   "or the local daemon's)")
    p.add_argument("--config", metavar="FILE", help="with --fleet: read the broker settings from this "
                   "node configuration")
    p.add_argument("fmris", nargs="*", metavar="FMRI")
    return p


def _sta(state: str | None, nstate: str | None) -> str:
    code = STA.get(state, "?")
    return code + ("*" if nstate else "")


def _cell(item: dict[str, Any], col: str, now: float) -> str:
    if col == "state":
        return (item.get("state") or "-") + ("*" if item.get("nstate") else "")
    if col == "sta":
        return _sta(item.get("state"), item.get("nstate"))
    if col == "nstate":
        return item.get("nstate") or "-"
    if col == "nsta":
        return STA.get(item.get("nstate"), "-")
    if col == "stime":
        return stime(item.get("stime_epoch"), now)
    if col == "ctid":
        return str(item["ctid"]) if item.get("ctid") is not None else "-"
    if col == "desc":
        return item.get("desc") or "-"
    v = item.get(col)
    return "-" if v in (None, "") else str(v)


def _sort_key(col: str):
    if col == "state":
        return lambda i: (ORDER.get(i.get("state"), 9), i.get("stime_epoch") or 0)
    if col == "stime":
        return lambda i: i.get("stime_epoch") or 0
    if col == "ctid":
        return lambda i: i.get("ctid") or 0
    return lambda i: str(i.get(col) or "")


def _columns(spec: str | None) -> list[str]:
    if not spec:
        return ["state", "stime", "fmri"]
    cols = [c.strip().lower() for c in spec.split(",") if c.strip()]
    bad = [c for c in cols if c not in COLUMNS]
    if bad:
        print(f"svcs: unknown column {bad[0]!r} (known: {', '.join(COLUMNS)})", file=sys.stderr)
        raise SystemExit(2)
    return cols


def _proc(pid: int) -> tuple[float | None, str]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        ticks = int(data[data.rfind(b")") + 2:].split()[19])
        start = btime + ticks / os.sysconf("SC_CLK_TCK")
        comm = data[data.find(b"(") + 1:data.rfind(b")")].decode(errors="replace")
        return start, comm
    except (OSError, ValueError, StopIteration, IndexError):
        return None, "?"


def listing(args: Any) -> int:
    c = client(args)
    cols = _columns(args.o) if args.o or not args.v else ["state", "nstate", "stime", "ctid", "fmri"]
    if args.d or args.D:
        items = c.call("deps", fmris=args.fmris, direction="down" if args.d else "up")
    else:
        items = c.call("list", fmris=args.fmris, pids=args.p)
        if not args.a and not args.fmris:
            items = [i for i in items if i["state"] != "disabled" or i.get("enabled")]
    keys = [(k, False) for k in args.s] + [(k, True) for k in args.S]
    for k, _ in keys:
        _columns(k)
    if not keys:
        keys = [("state", False)]
    for k, rev in reversed(keys):
        items.sort(key=_sort_key(k.lower()), reverse=rev)
    if args.json:
        out = []
        for i in items:
            row = {col: i.get(col) for col in cols}
            if "sta" in cols:
                row["sta"] = _sta(i.get("state"), i.get("nstate"))
            if "stime" in cols:
                row["stime"] = i.get("stime")
            if args.p:
                row["pids"] = i.get("pids", [])
            out.append(row)
        print_json(out)
        return 0
    now = time.time()
    rows = []
    for i in items:
        rows.append([_cell(i, col, now) for col in cols])
        if args.p:
            for pid in i.get("pids", []):
                t, comm = _proc(pid)
                rows.append(["", stime(t, now), f"{pid:>8} {comm}"])
    headers = None if args.H else [COLUMNS[col] for col in cols]
    text = table(rows, headers, widths={0: 14} if cols[0] == "state" else None)
    if text:
        print(text)
    return 0


def long_listing(args: Any) -> int:
    if not args.fmris:
        print("svcs: -l needs at least one FMRI", file=sys.stderr)
        return 2
    c = client(args)
    names = [i["fmri"] for i in c.call("list", fmris=args.fmris)]
    shown = [c.call("show", fmri=f) for f in names]
    if args.json:
        print_json(shown if len(shown) != 1 else shown[0])
        return 0
    for n, s in enumerate(shown):
        if n:
            print()
        rows = [("fmri", s["fmri"])]
        if s.get("name"):
            rows.append(("name", s["name"]))
        if s.get("desc"):
            rows.append(("description", s["desc"]))
        rows.append(("enabled", ("true" if s["enabled"] else "false") + (" (temporary)" if s["temporary"] else "")))
        rows.append(("state", s["state"]))
        rows.append(("next_state", s.get("nstate") or "none"))
        rows.append(("state_time", time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(s["stime_epoch"]))))
        if s.get("reason") and s["state"] not in ("online",):
            rows.append(("reason", s["reason"]))
        if s.get("logfile"):
            rows.append(("logfile", s["logfile"]))
        rows.append(("restarter", s["restarter"]))
        rows.append(("contract_id", str(s["ctid"]) if s.get("ctid") is not None else "-"))
        if s.get("status"):
            rows.append(("status", s["status"]))
        if s.get("manifest"):
            rows.append(("manifest", s["manifest"]))
        for d in s.get("dependencies", []):
            states = d.get("states", {})
            members = " ".join(f"{f} ({states.get(f, '?')})" for f in d["fmris"])
            rows.append(("dependency", f"{d['grouping']}/{d['restart_on']} {members}"))
        for d in s.get("dependents", []):
            rows.append(("dependent", f"{d['grouping']} {d['fmri']}"))
        rows += context_rows(s.get("context"))
        for pid in s.get("pids", []):
            _, comm = _proc(pid)
            rows.append(("process", f"{pid} {comm}"))
        w = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k.ljust(w)} {v}")
    return 0


def explain(args: Any) -> int:
    c = client(args)
    items = c.call("explain", fmris=args.fmris, verbose=args.v)
    if args.json:
        print_json(items)
        return 0
    for n, e in enumerate(items):
        if n:
            print()
        desc = f" ({e['desc']})" if e.get("desc") else ""
        print(f"{e['fmri']}{desc}")
        since = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(e["stime_epoch"]))
        nxt = f", going {e['nstate']}" if e.get("nstate") else ""
        print(f" State: {e['state']}{nxt} since {since}")
        print(f"Reason: {e['reason']}")
        for case in e.get("cases") or []:
            print(f"  Case: {case} (see: fmadm faulty -u {case})")
        if e.get("log"):
            print(f"   See: {e['log']}")
        impact = e.get("impact") or []
        if e["state"] in ("online", "degraded") and not impact:
            print("Impact: None.")
        elif not impact:
            print("Impact: This service is not running.")
        elif args.v:
            print(f"Impact: {len(impact)} dependent service{'s are' if len(impact) != 1 else ' is'} not running:")
            for f in impact:
                print(f"        {f}")
        else:
            print(f"Impact: {len(impact)} dependent service{'s are' if len(impact) != 1 else ' is'} not running. "
                  "(Use -v for list.)")
        if args.v and e.get("paths"):
            print("  Path:")
            for path in e["paths"]:
                for depth, f in enumerate(path):
                    print(f"        {'  ' * depth}{f}")
        tail = e.get("log_tail") or []
        if tail:
            print("   Log:")
            for line in tail:
                print(f"        {line}")
    return 0


def logs(args: Any) -> int:
    if not args.fmris:
        print("svcs: -L needs at least one FMRI", file=sys.stderr)
        return 2
    c = client(args)
    out = []
    for i in c.call("list", fmris=args.fmris):
        out.append(c.call("log", fmri=i["fmri"]))
    if args.json:
        print_json(out if len(out) != 1 else out[0])
        return 0
    for o in out:
        print(o["path"])
    return 0


def fleet(args: Any) -> int:
    try:
        from svcmgr.cli.fleet import svcs_fleet  # asyncio and aiomqtt only for --fleet: svcs stays fast
    except ImportError:
        print("svcs: --fleet needs the MQTT bridge, which this build lacks", file=sys.stderr)
        return 1
    return svcs_fleet(args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    modes = sum(bool(x) for x in (args.l, args.x, args.d or args.D, args.L, args.fleet, args.t, args.c, args.G,
                                  args.plot))
    if modes > 1 or (args.d and args.D):
        print("svcs: -l, -x, -d, -D, -L, -t, -c, -G, --plot and --fleet exclude one another", file=sys.stderr)
        return 2
    if (args.boot is not None or args.since or args.until) and not args.plot:
        print("svcs: --boot, --since and --until go with --plot", file=sys.stderr)
        return 2
    if (args.d or args.D) and not args.fmris:
        print("svcs: -d and -D need at least one FMRI", file=sys.stderr)
        return 2
    if (args.mqtt or args.config) and not args.fleet:
        print("svcs: --mqtt and --config go with --fleet", file=sys.stderr)
        return 2
    if args.fleet:
        return run("svcs", lambda: fleet(args))
    if args.l:
        return run("svcs", lambda: long_listing(args))
    if args.x:
        return run("svcs", lambda: explain(args))
    if args.L:
        return run("svcs", lambda: logs(args))
    if args.t or args.c or args.G or args.plot:
        from svcmgr.cli import observe  # here: the observation views only for -t, -c, -G and --plot

        command = observe.timings if args.t else observe.chain if args.c else observe.graph if args.G else observe.plot
        return run("svcs", lambda: command(args))
    return run("svcs", lambda: listing(args))


if __name__ == "__main__":
    sys.exit(main())
