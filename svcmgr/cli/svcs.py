"""svcs: report service status, as SMF's svcs does.

    svcs [-aHpv] [-o COL[,COL]...] [-R FMRI-instance]... [-sS COL]... [FMRI|pattern ...]
    svcs -d | -D [-Hpv] [-o COL[,COL]...] FMRI|pattern ...   what instances depend on / what depends on them
    svcs -l [-pv] FMRI|pattern ...       everything about instances (-v: their application properties)
    svcs -L [FMRI|pattern ...]           the log file of each instance
    svcs -x [-v] [FMRI|pattern ...]      why instances are not running, and what that keeps from running
    svcs -t [FMRI ...]                   start timings, longest first (svcmgr.cli.observe)
    svcs -c [FMRI]                       the critical chain (default: the milestone)
    svcs -G [FMRI ...]                   the dependency graph as Graphviz DOT
    svcs --plot                          an SVG boot chart (--boot N, --since T, --until T)

Columns have svcs.c's fixed widths (``svcmgr.cli.columns``); the default is ``-o
state,stime,fmri`` sorted by state, time and FMRI, and without operands only enabled
instances (even if temporarily disabled) are listed. An operand is an FMRI, an
abbreviation (``sendmail``, ``:default``, ``smtp:sendmail``, ``network/smtp``) or a
glob; one that names nothing is reported (``Pattern 'x' doesn't match any
instances``), the others are listed, and the exit status is 1. Options that do not go
together are refused as svcs.c refuses them (exit 2). ``-Z`` and ``-z`` are refused:
svcmgr manages one system, without zones. ``--json`` prints the same fields in lower
case (``stime`` in ISO 8601, ``pids`` with ``-p``).

Socket requests: ``match``, ``list``, ``show``, ``props``, ``explain``, ``deps``, ``log``;
``timings``, ``chain``, ``graph``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from svcmgr.cli.columns import COLUMNS, Column, header, lines, process_line, sort
from svcmgr.cli.common import Parser, add_root, client, die, print_json, run, select, usage
from svcmgr.terminal import visible

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2-4 ms of each command's start)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_COLUMNS = "state,stime,fmri"
VERBOSE_COLUMNS = "state,nstate,stime,ctid,fmri"
DEFAULT_SORT = [("STATE", False), ("STIME", False), ("FMRI", False)]
DETAILED = 13  # svcs -l: the longest label ("description") and two spaces


class _SortAction(argparse.Action):
    """-s and -S keep their order among each other: (column, descending)."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any,
                 option: str | None = None) -> None:
        ns.sort = [*(ns.sort or []), (value, option == "-S")]


def parser() -> Parser:
    columns = "\n".join(f"  {c.name:<6}  {c.help}" for c in COLUMNS.values())
    p = Parser(prog="svcs", description="Report the status of service instances.",
               epilog=f"Columns for -o, -s and -S (case does not matter):\n{columns}",
               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_root(p)
    p.add_argument("-?", action="help", help="this help, with the columns")
    p.add_argument("-a", action="store_true", help="list all instances, disabled ones too")
    p.add_argument("-H", action="store_true", help="omit the header line")
    p.add_argument("-o", metavar="COL[,COL]", help="the columns to print")
    p.add_argument("-s", metavar="COL", action=_SortAction, dest="sort", help="sort by column (ascending)")
    p.add_argument("-S", metavar="COL", action=_SortAction, dest="sort", help="sort by column (descending)")
    p.add_argument("-R", metavar="FMRI-instance", action="append", default=[],
                   help="only the instances with this restarter")
    p.add_argument("-p", action="store_true", help="list the processes of each instance")
    p.add_argument("-l", action="store_true", help="everything about the named instances")
    p.add_argument("-L", action="store_true", help="the log file of each instance")
    p.add_argument("-x", action="store_true", help="explain why instances are not running")
    p.add_argument("-v", action="store_true", help="verbose: with -x the dependency paths and the impacted "
                   "instances; with -l the application properties; else the columns " + VERBOSE_COLUMNS)
    p.add_argument("-d", action="store_true", help="list the instances the named ones depend on")
    p.add_argument("-D", action="store_true", help="list the instances that depend on the named ones")
    p.add_argument("-Z", action="store_true", help="all zones (refused: svcmgr has no zones)")
    p.add_argument("-z", metavar="ZONE", help="one zone (refused: svcmgr has no zones)")
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


def clash(args: argparse.Namespace) -> str | None:
    """Why these options do not go together (svcs.c's rules, and the same for svcmgr's own modes)."""
    modes = [m for m, on in (("-l", args.l), ("-L", args.L), ("-x", args.x), ("-d", args.d), ("-D", args.D),
                             ("-t", args.t), ("-c", args.c), ("-G", args.G), ("--plot", args.plot),
                             ("--fleet", args.fleet)) if on]
    if len(modes) > 1:
        return f"{modes[0]} and {modes[1]} exclude one another"
    mode = modes[0] if modes else None
    own = mode in ("-t", "-c", "-G", "--plot", "--fleet")
    for flag, on, refused in (("-a", args.a, mode is not None and mode != "--fleet"),
                              ("-H", args.H, mode in ("-l", "-x") or (own and mode != "--fleet")),
                              ("-p", args.p, mode == "-x" or own),
                              ("-o", args.o is not None, mode in ("-l", "-x") or (own and mode != "--fleet")),
                              ("-R", args.R, mode is not None),
                              ("-s/-S", args.sort, mode is not None and mode != "--fleet")):
        if on and refused:
            return f"{flag} does not go with {mode}"
    if (args.boot is not None or args.since or args.until) and not args.plot:
        return "--boot, --since and --until go with --plot"
    if (args.mqtt or args.config) and not args.fleet:
        return "--mqtt and --config go with --fleet"
    if mode in ("-l", "-d", "-D") and not args.fmris:
        return f"{mode} needs at least one FMRI or pattern"
    return None


def _columns(spec: str) -> list[Column]:
    cols = []
    for name in spec.split(","):
        col = COLUMNS.get(name.strip().upper())
        if col is None:
            die("svcs", f'Unknown column "{name}".')
        cols.append(col)
    return cols


def _fields(args: Any) -> dict[str, list[str]]:
    """``fields`` of the ``list`` request: what the columns, the sort keys, the enabled filter (without ``-a``,
    ``-R`` or operands) and ``-p`` read (none with ``--json``, which prints every field; none for a column name
    that is wrong, which is refused later)."""
    if args.json:
        return {}
    wanted = {"fmri"} if args.a or args.R or args.fmris else {"fmri", "enabled", "enabled_persistent"}
    names = (args.o or (VERBOSE_COLUMNS if args.v else DEFAULT_COLUMNS)).split(",")
    names += [name for name, _ in args.sort or ([] if args.o else DEFAULT_SORT)]
    for name in names:
        col = COLUMNS.get(name.strip().upper())
        if col is None:
            return {}
        wanted.update(col.reads)
    if args.p:
        wanted.add("pids")
    return {"fields": sorted(wanted)}


def _sort_keys(pairs: list[tuple[str, bool]]) -> list[tuple[Column, bool]]:
    out = []
    for name, descending in pairs:
        col = COLUMNS.get(name.upper())
        if col is None:
            die("svcs", f'Unrecognized sort column "{name}".')
        out.append((col, descending))
    return out


def _restarted_by(names: list[str]) -> bool:
    """Whether ``-R``'s restarters (each checked) hold svcmgr's one restarter, that of every instance."""
    from svcmgr.fmri import RESTARTER, FmriError, parse  # only -R parses an FMRI: svcs -a starts without it

    out = set()
    for r in names:
        try:
            f = parse(r)
        except FmriError:
            die("svcs", f'Restarter FMRI "{r}" is invalid.')
        if f.instance is None:
            die("svcs", f'Restarter FMRI "{r}" does not designate an instance.')
        out.add(str(f))
    return RESTARTER in out


def _proc(pid: int) -> tuple[float | None, str, str]:
    """A process's start time, command name and command line (from /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read(4096).rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        ticks = int(data[data.rfind(b")") + 2:].split()[19])
        start = btime + ticks / os.sysconf("SC_CLK_TCK")
        comm = data[data.find(b"(") + 1:data.rfind(b")")].decode(errors="replace")
        return start, comm, argv[:80]
    except (OSError, ValueError, StopIteration, IndexError):
        return None, "?", "?"


def _operands(c: Any, patterns: list[str]) -> tuple[list[str], int]:
    """The instances the operands name, and 1 when one named nothing (already said)."""
    res = select("svcs", c, patterns)
    return res["fmris"], 1 if res["unmatched"] else 0


def listing(args: Any) -> int:
    c = client(args)
    status = 0
    if args.a and args.fmris:
        print("svcs: -a ignored when used with arguments.", file=sys.stderr)
    if args.fmris:
        fmris, status = _operands(c, args.fmris)
    if args.d or args.D:
        items = c.call("deps", fmris=fmris, direction="down" if args.d else "up") if fmris else []
    elif args.fmris:
        items = c.call("list", fmris=fmris, pids=args.p, **_fields(args)) if fmris else []
    else:
        items = c.call("list", pids=args.p, **_fields(args))
        if not (args.a or args.R):  # enabled, even if only persistently or only temporarily
            items = [i for i in items if i["enabled"] or i.get("enabled_persistent")]
    if args.R and not _restarted_by(args.R):
        items = []
    cols = _columns(args.o or (VERBOSE_COLUMNS if args.v else DEFAULT_COLUMNS))
    keys = _sort_keys(args.sort or ([] if args.o else DEFAULT_SORT))
    items = sort(sorted(items, key=lambda i: i["fmri"]), keys)
    if args.json:
        out = []
        for i in items:
            row = {col.name.lower(): i.get(col.name.lower()) for col in cols}
            if "sta" in row:
                row["sta"] = COLUMNS["STA"].cell(i, False)
            if "stime" in row:
                row["stime"] = i.get("stime")
            if args.p:
                row["pids"] = i.get("pids", [])
            out.append(row)
        print_json(out)
        return status
    out = [] if args.H else [header(cols)]
    now = time.time()
    for i, text in zip(items, lines(cols, items), strict=True):
        out.append(text)
        for pid in i.get("pids", []) if args.p else ():
            started, comm, _argv = _proc(pid)
            if started is not None:
                out.append(process_line(started, pid, comm, now))
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return status


def _application_properties(c: Any, fmri: str) -> list[str]:
    """``svcs -lv``: the application property groups, as svcs.c prints them (protected values hidden)."""
    res = c.call("props", fmri=fmri)
    out = []
    for pg, props in res["pgs"].items():
        if res.get("pg_types", {}).get(pg) != "application":
            continue
        out.append(f"{pg} (application)")
        for name, p in props.items():
            values = " ".join(visible(_app_value(v)) for v in p["values"])  # a delegated user's, perhaps
            out.append(f"{pg}/{name} ({p['type']}) = {values}".rstrip())
    return out


def _app_value(v: Any) -> str:
    text = ("true" if v else "false") if isinstance(v, bool) else str(v)
    if any(ch in text for ch in ' \t\n"()'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def long_listing(args: Any) -> int:
    from svcmgr.cli import credview  # only -l shows the method context: the privilege tables stay out of svcs -a

    c = client(args)
    fmris, status = _operands(c, args.fmris)
    shown = [c.call("show", fmri=f) for f in fmris]
    if args.json:
        print_json(shown if len(shown) != 1 else shown[0])
        return status
    for n, s in enumerate(shown):
        if n:
            print()
        rows = [("fmri", s["fmri"])]
        if s.get("name"):
            rows.append(("name", s["name"]))
        if s.get("desc"):
            rows.append(("description", s["desc"]))
        rows.append(("enabled", ("true" if s["enabled"] else "false")
                     + (" (temporary)" if s["enabled"] != s.get("enabled_persistent", s["enabled"]) else "")))
        if s.get("comment"):
            rows.append(("comment", s["comment"]))
        rows.append(("state", s["state"]))
        rows.append(("next_state", s.get("nstate") or "none"))
        rows.append(("state_time", time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(s["stime_epoch"]))))
        if s.get("reason") and s["state"] not in ("online",):
            rows.append(("reason", s["reason"]))
        if s.get("logfile"):
            rows.append(("logfile", s["logfile"]))
        rows.append(("restarter", s["restarter"]))
        rows.append(("contract_id", str(s["ctid"]) if s.get("ctid") is not None else ""))
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
        rows += credview.context_rows(s.get("context"))
        for pid in s.get("pids", []) if args.p else ():
            rows.append(("process", f"{pid} {_proc(pid)[2]}"))
        for k, v in rows:  # a reason may quote a service (its probe's output), a status is what it sent
            print(f"{k:<{DETAILED - 1}} {visible(str(v))}".rstrip())
        if args.v:
            for text in _application_properties(c, s["fmri"]):
                print(text)
    return status


def _reason_lines(r: dict[str, Any], verbose: bool) -> list[str]:
    """A reason's lines (``visible``: a health probe's output, which the service may write, may be its text)."""
    out = []
    if r.get("cause") and len(f"Reason: Service {r['cause']} {r['summary']}") > 80:
        out += [f"Reason: Service {r['cause']}", f"        {visible(r['summary'])}"]
    else:
        out.append(f"Reason: {visible(r['text'])}")
    path = r.get("path") or []
    if verbose and path:
        out.append(f"  Path: {path[0]}")
        out += [f"{'':6}  {'  ' * n}{hop}" for n, hop in enumerate(path[1:], 1)]
    return out


def explain(args: Any) -> int:
    c = client(args)
    status = 0
    if args.fmris:
        fmris, status = _operands(c, args.fmris)
        items = c.call("explain", fmris=fmris, verbose=args.v) if fmris else []
    else:
        items = c.call("explain", verbose=args.v)
    if args.json:
        print_json(items)
        return status
    for n, e in enumerate(items):
        if n:
            print()
        print(f"{e['fmri']} ({e.get('desc') or '?'})")
        print(f" State: {e['state']} since {time.strftime('%a %b %d %H:%M:%S %Y', time.localtime(e['stime_epoch']))}")
        for r in e.get("reasons", []):
            for text in _reason_lines(r, args.v):
                print(text)
        for case in e.get("cases") or []:
            print(f"  Case: {case} (see: fmadm faulty -u {case})")
        if e.get("log"):
            print(f"   See: {e['log']}")
        impact = e.get("impact") or []
        if not impact:
            print("Impact: None." if e["state"] in ("online", "degraded") else "Impact: This service is not running.")
        else:
            what = f"{len(impact)} dependent service{'s are' if len(impact) != 1 else ' is'} not running"
            print(f"Impact: {what}:" if args.v else f"Impact: {what}.  (Use -v for list.)")
            for f in impact if args.v else ():
                print(f"        {f}")
        tail = e.get("log_tail") or []
        if tail:
            print("   Log:")
            for text in tail:  # what the service wrote: its escape sequences shown, not sent to the terminal
                print(f"        {visible(text)}")
    return status


def logs(args: Any) -> int:
    c = client(args)
    status = 0
    if args.fmris:
        fmris, status = _operands(c, args.fmris)
    else:
        fmris = sorted(i["fmri"] for i in c.call("list"))
    out = [c.call("log", fmri=f) for f in fmris]
    if args.json:
        print_json(out if len(out) != 1 else out[0])
        return status
    for o in out:
        if o["path"]:
            print(o["path"])
    return status


def fleet(args: Any) -> int:
    try:
        from svcmgr.cli.fleet import svcs_fleet  # asyncio and aiomqtt only for --fleet: svcs stays fast
    except ImportError:
        print("svcs: --fleet needs the MQTT bridge, which this build lacks", file=sys.stderr)
        return 1
    return svcs_fleet(args)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.Z or args.z is not None:
        die("svcs", f"{'-Z' if args.Z else '-z'}: svcmgr has no zones: one daemon manages one system "
            "(choose another daemon with --root)")
    why = clash(args)
    if why:
        usage(p, why)
    if args.o == "":
        die("svcs", "No columns specified.")  # as svcs.c: an empty -o names no columns, not the default ones
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
