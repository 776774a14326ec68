"""fmstat: what the fault manager's modules have done, as illumos' fmstat prints it.

    fmstat [-az] [-m module] [-s] [-d d|u] [--json] [interval [count]]

The modules are the diagnosis rules and the ereport sources. Per module: ereports received
(``ev_recv``) and accepted (``ev_acpt``: fed to an engine, or not refused by a source), the
mean service time in milliseconds (``svc_t``), the share of the time busy (``%b``), the cases
open and solved; ``wait`` and ``%w`` are 0 (ereports do not queue per module) and ``memsz``
``bufsz`` ``-`` (no per-module accounting). With an interval the counts are those of each
interval (the first: since the fault manager started). ``-m module`` lists a module's
statistics (``-a`` with those fmd keeps for every module, named ``fmd.*``); ``-a`` alone the
fault manager's own (error log, diagnosis, cases, bus); ``-z`` leaves out those that are zero;
``-s -m module`` the module's SERD and threshold engines; ``-d`` prints the time first.

Socket request: ``fm.stat`` (``{"engines": bool}``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from svcmgr.cli.common import EXIT_ERROR, EXIT_USAGE, Parser, add_root, die, print_json, run
from svcmgr.client import Client

NS = 1_000_000_000
_UNITS = (("d", 86400 * NS), ("h", 3600 * NS), ("m", 60 * NS), ("s", NS), ("ms", 1_000_000), ("us", 1000),
          ("ns", 1))


def time2str(ns: int) -> str:
    """A duration in the largest unit it is a whole multiple of (fmstat's time2str)."""
    if ns == 0:
        return "0ns"
    for unit, size in _UNITS:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"  # pragma: no cover - ns divides everything


def parser() -> Parser:
    p = Parser(prog="fmstat", description="Fault manager statistics per module (rule or ereport source).",
               usage="%(prog)s [-astTz] [-m module] [-d d|u] [interval [count]]")
    add_root(p)
    p.add_argument("-a", action="store_true", help="all statistics: with -m those fmd keeps too, alone the fault "
                   "manager's own")
    p.add_argument("-d", choices=("d", "u"), help="print the time first: as date(1) does (d), or in seconds (u)")
    p.add_argument("-m", metavar="MODULE", help="the statistics of one module (a rule or a source)")
    p.add_argument("-s", action="store_true", help="with -m: the module's SERD and threshold engines")
    p.add_argument("-t", action="store_true", help="refused: svcmgr has no fmd transports")
    p.add_argument("-T", action="store_true", help="refused: svcmgr has no fmd transports")
    p.add_argument("-z", action="store_true", help="leave out statistics that are zero")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("interval", nargs="?", help="seconds between reports")
    p.add_argument("count", nargs="?", help="how many reports (default: until interrupted)")
    return p


def _count(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        die("fmstat", f"invalid {name} argument -- {text}", EXIT_USAGE)
    return int(text)


def modules(st: dict[str, Any]) -> list[dict[str, Any]]:
    """Each module with fmd's counters (``received``, ``accepted``, ``open``, ``solved``, ``time`` in seconds) and
    its own statistics: ``(name, value, kind, description)``, kind ``n`` (a count), ``t`` (ns) or ``s``."""
    out = []
    for r in st["rules"]:
        own = [("attributed", r["attributed"], "n", "failures attributed to a dependency's fault"),
               ("opened", r["opened"], "n", "cases opened"), ("folded", r["folded"], "n", "cases folded into "
                                                                                           "another"),
               ("discarded", r["discarded"], "n", "open cases whose evidence aged out"),
               ("bad_value", r.get("bad_value", 0), "n", "ereports whose value could not be read"),
               ("engine", r["engine"], "s", "the engine")]
        out.append({"name": r["rule"], "received": r["received"], "accepted": r["accepted"], "open": r["open"],
                    "solved": r["solved"], "time": r["time"], "own": own})
    for name, s in sorted(st["sources"].items()):
        own = [(k, v, "n", k.replace("_", " ")) for k, v in s.items() if k not in ("received", "rejected")]
        own.insert(0, ("rejected", s.get("rejected", 0), "n", "ereports refused as malformed"))
        out.append({"name": name, "received": s.get("received", 0),
                    "accepted": s.get("received", 0) - s.get("rejected", 0), "open": 0, "solved": 0, "time": 0.0,
                    "own": own})
    return out


def fmd_stats(st: dict[str, Any]) -> list[tuple[str, Any, str, str]]:
    """The fault manager's own statistics (fmstat -a)."""
    e, d, bus = st["errlog"], st["diagnosis"], st["bus"]
    out = [("errlog.received", e["received"], "n", "ereports received into the error log"),
           ("errlog.stored", e["stored"], "n", "ereports written to the repository"),
           ("errlog.pending", e["pending"], "n", "ereports waiting to be written"),
           ("errlog.dropped", e["dropped"], "n", f"ereports dropped, oldest first (bound {e['max_entries']})"),
           ("errlog.rejected", e["rejected"], "n", "malformed ereports refused"),
           ("diag.processed", d["processed"], "n", "ereports diagnosed"),
           ("diag.unmatched", d["unmatched"], "n", "ereports no rule consumes"),
           ("diag.engines", d["engines"], "n", "SERD and threshold engines"),
           ("diag.overflow", d["overflow"], "n", "cases not opened (too many open)"),
           ("diag.errors", d["errors"], "n", "errors while diagnosing"),
           ("bus.dropped", bus["dropped"], "n", "ereports lost by a full queue"),
           ("bus.queued", bus["queued"], "n", "ereports queued"),
           ("hold", st["hold"], "n", "ereports waiting for correlation")]
    for k, n in sorted(st["cases"].items()):
        out.append((f"cases.{k}", n, "n", f"cases {k}"))
    for k, n in sorted(st.get("agents", {}).items()):
        out.append((f"agents.{k}", n, "n", f"services {k} by the response agents" if k != "published"
                    else "list events published"))
    return out


def _value(v: Any, kind: str) -> str:
    return time2str(int(v)) if kind == "t" else str(v)


def stat_list(rows: list[tuple[str, Any, str, str]], zeros: bool) -> list[str]:
    out = [f"{'NAME':>20} {'VALUE':<16} DESCRIPTION"]
    for name, v, kind, desc in rows:
        if not zeros and v in (0, "", None):
            continue
        out.append(f"{name:>20} {_value(v, kind):<16} {desc}")
    return out


class Report:
    """fmstat's reports: each prints the counts since the previous one (the first: since the start)."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.prev: dict[str, dict[str, Any]] = {}
        self.prev_time: float | None = None

    def table(self, st: dict[str, Any]) -> list[str]:
        out = [f"{'module':<18} {'ev_recv':>7} {'ev_acpt':>7} {'wait':>4} {'svc_t':>6} {'%w':>3} {'%b':>3} "
               f"{'open':>5} {'solve':>5} {'memsz':>6} {'bufsz':>6}"]
        elapsed = max(st["now"] - (self.prev_time if self.prev_time is not None else st["loaded"]), 1e-9)
        for m in modules(st):
            old = self.prev.get(m["name"], {"received": 0, "accepted": 0, "time": 0.0})
            recv, acpt = m["received"] - old["received"], m["accepted"] - old["accepted"]
            busy = max(m["time"] - old["time"], 0.0)
            svc = busy / recv * 1000 if recv else 0.0
            out.append(f"{m['name']:<18} {recv:>7} {acpt:>7} {0.0:>4.1f} {svc:>6.1f} {0:>3.0f} "
                       f"{min(busy / elapsed * 100, 100):>3.0f} {m['open']:>5} {m['solved']:>5} {'-':>6} {'-':>6}")
            self.prev[m["name"]] = m
        self.prev_time = st["now"]
        return out

    def module(self, st: dict[str, Any]) -> list[str]:
        a = self.args
        found = next((m for m in modules(st) if m["name"] == a.m), None)
        if found is None:
            die("fmstat", f"failed to retrieve statistics for {a.m}: no such module (a rule or a source: "
                f"fmstat lists them)")
        rows = list(found["own"])
        if a.a:
            rows = [("fmd.received", found["received"], "n", "ereports received"),
                    ("fmd.accepted", found["accepted"], "n", "ereports accepted"),
                    ("fmd.caseopen", found["open"], "n", "cases open"),
                    ("fmd.casesolved", found["solved"], "n", "cases solved"),
                    ("fmd.dtime", int(found["time"] * NS), "t", "time spent diagnosing"),
                    ("fmd.loadtime", int(st["loaded"]) * NS, "t", "when the module was loaded"),
                    ("fmd.snaptime", int(st["now"]) * NS, "t", "when these statistics were read"), *rows]
        return stat_list(rows, not a.z)

    def engines(self, st: dict[str, Any]) -> list[str]:
        out = [f"{'NAME':<36} {'>N':>3} {'T':>5} {'CNT':>3} {'DELTA':>24} STAT"]
        for e in st.get("engines", []):
            if e["rule"] != self.args.m:
                continue
            n = f">{e['n']}" if "n" in e else "-"
            t = time2str(int(e["t"] * NS)) if "t" in e else "-"
            oldest = e.get("oldest")
            delta = time2str(int(oldest * 1000) * 1_000_000) if oldest is not None else "0ns"
            out.append(f"{e['resource'] or '-':<36} {n:>3} {t:>5} {e['count']:>3} {delta:>24} "
                       f"{'fire' if e['fired'] else 'pend'}")
        return out

    def once(self, c: Client) -> list[str]:
        a = self.args
        st = c.call("fm.stat", engines=a.s)
        if a.json:
            print_json(st)
            return []
        if a.s:
            return self.engines(st)
        if a.m:
            return self.module(st)
        if a.a:
            return stat_list(fmd_stats(st), not a.z)
        out = self.table(st)
        for name, err in st.get("source_errors", {}).items():
            print(f"fmstat: source {name} stopped: {err}", file=sys.stderr)
        for err in st.get("load_errors", []):
            print(f"fmstat: rules refused: {err}", file=sys.stderr)
        return out


def execute(p: Parser, args: Any) -> int:
    if args.t or args.T:
        die("fmstat", "-t, -T: svcmgr has no fmd transports (its ereport sources are modules: fmstat lists them)",
            EXIT_ERROR)
    if args.s and not args.m:
        die("fmstat", "-s requires -m <module>", EXIT_USAGE)
    interval = _count("interval", args.interval)
    count = _count("count", args.count)
    iterations = count if count is not None else (1 if interval is None else -1)
    c = Client(args.root)
    report = Report(args)
    while iterations != 0:
        if args.d:
            print(int(time.time()) if args.d == "u" else time.strftime("%a %b %e %H:%M:%S %Z %Y"))
        for line in report.once(c):
            print(line)
        iterations -= 1
        if iterations != 0:
            sys.stdout.flush()
            time.sleep(interval or 0)
            print()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    return run("fmstat", lambda: execute(p, args))


if __name__ == "__main__":
    sys.exit(main())
