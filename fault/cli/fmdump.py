"""fmdump: the fault log and the error log, as illumos' fmdump prints them.

    fmdump [-efmvV] [-c class] [-t time] [-T time] [-u uuid] [-n name[.name]*[=value]] [--last N] [--json]

Without ``-e``: the fault log, one record per event in each case's life (``Diagnosed``, ``Updated``,
``Isolated``, ``Repaired``, ``Resolved``; an acquittal or a replacement is a ``Repaired`` whose
suspects say which); ``-v`` adds each suspect (certainty, class, status, the resource), ``-V``
the whole list event as an nvlist with the ereports that convicted the case, ``-m`` the
diagnosis message. With ``-e``: the error log (``-v``: with each ereport's ENA, ``-V``: the
whole ereport); with ``-u`` the ereports that convicted that case. ``-c`` (a glob), ``-t``/``-T``
(at or after / at or before: ``mm/dd/yy [hh:mm[:ss]]``, ``ddMonyy [hh:mm[:ss]]``,
``Mon dd hh:mm:ss``, ``yyyy-mm-dd[Thh:mm[:ss]]``, ``hh:mm[:ss]``, or ``T`` ns/us/ms/s/m/h/d ago,
each with an optional ``.fraction``), ``-u`` and ``-n`` select: the same option given twice
selects either, different options both. ``-f`` follows the log. The daemon sends the last
``--last`` records (10000) that ``-c``, ``-t``, ``-T`` and ``-u`` select; ``-n`` is applied here.

Socket request: ``fm.dump`` (``{"errlog", "since", "until", "class", "uuids", "limit", "xrefs"}``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from fault.cli import nvlist
from fault.cli.withheld import because, quotes_of
from svcmgr import __version__
from svcmgr.cli.common import EXIT_USAGE, Parser, add_root, die, print_json, run
from svcmgr.client import Client
from svcmgr.terminal import visible

#: fmdump's -t suffixes -> seconds
_SUFFIX = {"ns": 1e-9, "nsec": 1e-9, "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1, "sec": 1,
           "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
#: the strptime forms fmdump tries, in its order (no year: this year; no date: today)
_FORMS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%y %H:%M", "%m/%d/%Y", "%m/%d/%y",
          "%Y-%m-%dT%H:%M:%S", "%y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%y-%m-%dT%H:%M", "%Y-%m-%d", "%y-%m-%d",
          "%d%b%Y %H:%M:%S", "%d%b%y %H:%M:%S", "%d%b%Y %H:%M", "%d%b%y %H:%M", "%d%b%Y", "%d%b%y",
          "%b %d %H:%M:%S", "%H:%M:%S", "%H:%M")
HALF_YEAR = 6 * 30 * 86400
FLT_HEADER = "TIME                 UUID                                 SUNW-MSG-ID EVENT"
FLT_V_HEADER = "TIME                           UUID                                 SUNW-MSG-ID"
ERR_HEADERS = ("TIME                 CLASS", "TIME                 CLASS                                 ENA",
               "TIME                           CLASS")
_TAGS = {"list.repaired": "Repaired", "list.resolved": "Resolved", "list.updated": "Updated"}
_STATUS = ((0x1, ""), (0x4, "\tRemoved"), (0x20, "\tReplaced"), (0x10, "\tRepair Attempted"), (0x40, "\tAcquitted"))
LAST = 10_000


def _strptime(text: str, now: float) -> float | None:
    today = dt.datetime.fromtimestamp(now)
    for form in _FORMS:
        try:
            t = dt.datetime.strptime(text, form)
        except ValueError:
            continue
        if "%b %d" in form:  # no year: this year's
            t = t.replace(year=today.year)
        elif not form.startswith(("%m", "%Y", "%y", "%d")):  # a time of day: today's
            t = t.replace(year=today.year, month=today.month, day=today.day)
        return t.timestamp()
    return None


def parse_time(text: str, now: float | None = None) -> float:
    """Seconds since the epoch from one of fmdump's -t/-T forms; ValueError with fmdump's words otherwise."""
    now = time.time() if now is None else now
    arg = text.strip()
    t = _strptime(arg, now)
    if t is None and "." in arg:
        base, frac = arg.rsplit(".", 1)
        t = _strptime(base, now) if frac.isdigit() else None
        if t is not None:
            t += float("0." + frac)
    if t is not None:
        return t
    m = re.fullmatch(r"(\d+)([A-Za-z]+)", arg)
    unit = _SUFFIX.get(m.group(2).lower()) if m else None
    if m is None or unit is None or int(m.group(1)) == 0:
        raise ValueError(f"illegal time format -- {text}")
    delta = int(m.group(1)) * unit
    if delta > now:
        raise ValueError(f"time delta precedes UTC time origin -- {text}")
    return now - delta


def date_of(t: float, now: float) -> str:
    """fmdump's TIME: ``Mon dd hh:mm:ss.ffff``, with the year instead of the fraction beyond half a year away."""
    if t > now + 60 or t < now - HALF_YEAR:
        return time.strftime("%b %d %Y %H:%M:%S", time.localtime(t))
    return time.strftime("%b %d %H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 10000):04d}"


def year_of(t: float) -> str:
    """-V's TIME: the date with the year, then the nanoseconds."""
    return f"{time.strftime('%b %d %Y %H:%M:%S', time.localtime(t)):<20}.{round(t % 1 * 1e9) % 10**9:09d}"


def parser() -> Parser:
    p = Parser(prog="fmdump", description="Show the fault log (cases) or, with -e, the error log (ereports).")
    add_root(p)
    p.add_argument("-R", dest="root", metavar="DIR", help="the same as --root")
    p.add_argument("-e", action="store_true", help="the error log instead of the fault log")
    p.add_argument("-v", action="store_true", help="more detail for each record")
    p.add_argument("-V", action="store_true", help="every member of each record (fault log: and its ereports)")
    p.add_argument("-m", action="store_true", help="the diagnosis message of each fault log record")
    p.add_argument("-p", action="store_true", help="with -V: accepted (the output is already readable)")
    p.add_argument("-j", action="store_true", help="with -V: each record as one line of JSON")
    p.add_argument("-a", action="store_true", help="accepted: every record is shown")
    p.add_argument("-f", action="store_true", help="follow the log: print new records as they come")
    p.add_argument("-c", action="append", metavar="CLASS", help="only this class (a glob: 'ereport.svc.*')")
    p.add_argument("-t", action="append", metavar="TIME", help="only records at or after this time")
    p.add_argument("-T", action="append", metavar="TIME", help="only records at or before this time")
    p.add_argument("-u", action="append", metavar="UUID", help="only this case (with -e: the ereports that "
                   "convicted it)")
    p.add_argument("-n", action="append", metavar="NAME[.NAME]*[=VALUE]",
                   help="only records with this member (whose value matches: a regular expression for strings)")
    p.add_argument("--last", type=int, default=LAST, metavar="N", help=f"at most the last N records ({LAST})")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("-i", "-I", dest="info", action="store_true", help="refused: svcmgr keeps no info log")
    p.add_argument("file", nargs="?", help="refused: svcmgr keeps its logs in its repository, not in files")
    return p


def _request(args: Any) -> dict[str, Any]:
    now = time.time()
    req: dict[str, Any] = {"errlog": args.e, "limit": args.last, "xrefs": args.V and not args.e}
    try:
        if args.t:
            req["since"] = min(parse_time(x, now) for x in args.t)
        if args.T:
            req["until"] = max(parse_time(x, now) for x in args.T)
    except ValueError as e:
        die("fmdump", str(e), EXIT_USAGE)
    if args.c:
        req["class"] = args.c
    if args.u:
        req["uuids"] = args.u
    return req


def _check(p: Parser, args: Any) -> list[nvlist.Selector]:
    if args.info:
        die("fmdump", "-i, -I: svcmgr keeps no info log (informational events are ereports in the error log)")
    if args.file:
        die("fmdump", f"{args.file}: svcmgr keeps its logs in its repository, not in files; give --root (or -R) "
            "to read another daemon's")
    if args.p and args.j:
        p.error("-p and -j exclude each other")
    if args.m and args.e:
        die("fmdump", "-m mode is not supported for log of type error: the error log", EXIT_USAGE)
    if args.last < 1:
        p.error(f"--last {args.last}: expected a positive count")
    try:
        return [nvlist.Selector(x) for x in args.n or []]
    except ValueError as e:
        die("fmdump", str(e), EXIT_USAGE)


def _suspects(rec: dict[str, Any]) -> Iterator[str]:
    for s in rec["suspects"]:
        bits = nvlist.suspect_bits(rec, s)
        word = next((w for bit, w in _STATUS if bits & bit), "")
        yield f"  {s['certainty']:>3}%  {s['fault']}{word}"
        yield ""
        yield f"        Problem in: {s['resource']}"
        yield f"           Affects: {s['resource']}"
        yield "               FRU: -"
        yield "          Location: -"
        yield ""


def _message(rec: dict[str, Any], case: dict[str, Any] | None) -> Iterator[str]:
    """The diagnosis message fmd writes for a list event (the syslog-msgs template)."""
    c = case or {}
    kind = rec["class"].split(".")[0].capitalize()
    when = time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(rec["time"]))
    yield f"SUNW-MSG-ID: {rec['msgid']}, TYPE: {kind}, VER: 1, SEVERITY: {rec['severity'].capitalize()}"
    yield f"EVENT-TIME: {when}"
    yield f"PLATFORM: {c.get('platform', '-')}, CSN: -, HOSTNAME: {rec.get('node', '-')}"
    yield f"SOURCE: {rec.get('rule', '-')}, REV: {__version__}"
    yield f"EVENT-ID: {rec['uuid']}"
    for label, key in (("DESC", "description"), ("AUTO-RESPONSE", "response"), ("IMPACT", "impact"),
                       ("REC-ACTION", "action")):
        yield f"{label}: {visible(str(c.get(key, '-'))).replace('UUID', rec['uuid'])}"
    yield ""


def _err_line(e: dict[str, Any], level: int, now: float) -> str:
    if level == 0:
        return f"{date_of(e['time'], now):<20} {e['class']:<32}"
    return f"{date_of(e['time'], now):<20} {e['class']:<37} 0x{int(e.get('id') or 0):016x}"


class Printer:
    """Prints records in the format the options chose; ``selected`` applies -n."""

    def __init__(self, args: Any, selectors: list[nvlist.Selector], cases: Callable[[list[str]], dict]) -> None:
        self.args = args
        self.selectors = selectors
        self.cases = cases
        self.count = 0
        self.withheld: set[Any] = set()  # the events (ids) or cases (UUIDs) shown with fields withheld
        self.quotes: set[str] = set()  # whose text they may hold (fault.cli.withheld)
        self._said = False

    def header(self) -> None:
        a = self.args
        if a.json or a.m or (a.V and a.j) or (a.V and not a.e):
            return
        print(ERR_HEADERS[2 if a.V else 1 if a.v else 0] if a.e else FLT_HEADER)

    def selected(self, nvl: dict[str, Any]) -> bool:
        return not self.selectors or any(s(nvl) for s in self.selectors)

    def entries(self, entries: list[dict[str, Any]]) -> None:
        a, now = self.args, time.time()
        for e in entries:
            nvl = nvlist.ereport(e)
            if not self.selected(nvl):
                continue
            self.count += 1
            self.note(e)
            if a.json:
                print(json.dumps(e))
            elif a.V and a.j:
                print(json.dumps(nvlist.to_json(nvl)))
            elif a.V:
                print(f"{year_of(e['time'])} {e['class']}")
                print("\n".join(nvlist.render(nvl)))
                print()
            else:
                print(_err_line(e, 1 if a.v else 0, now))

    def records(self, records: list[dict[str, Any]]) -> None:
        a, now = self.args, time.time()
        chosen = [(r, nvlist.fault_event(r, __version__)) for r in records]
        chosen = [(r, nvl) for r, nvl in chosen if self.selected(nvl)]
        views = self.cases(sorted({r["uuid"] for r, _ in chosen})) if a.m and chosen else {}
        for r, nvl in chosen:
            self.count += 1
            self.note(r)
            if a.json:
                print(json.dumps(r))
            elif a.V and a.j:
                print(json.dumps(nvlist.to_json(nvl)))
            elif a.V:
                self._very_verbose(r, nvl, now)
            elif a.m:
                print("\n".join(_message(r, views.get(r["uuid"]))))
            else:
                print(f"{date_of(r['time'], now):<20} {r['uuid']:<32} {r['msgid']} {r['event']}")
                if a.v:
                    print("\n".join(_suspects(r)))

    def note(self, row: dict[str, Any]) -> None:
        """Remember a row shown with fields withheld (``fault.disclosure``): its event or its case."""
        if row.get("withheld"):
            self.withheld.add(row.get("id") if self.args.e else row.get("uuid"))
            self.quotes |= quotes_of(row)

    def say_withheld(self) -> None:
        """Say once, on stderr, that records were shown with fields withheld, which and why."""
        n = len(self.withheld)
        if n and not self._said:
            self._said = True
            what = ("events' payloads are" if n > 1 else "event's payload is") if self.args.e else \
                ("cases' texts are" if n > 1 else "case's text is")
            why = ("they hold" if n > 1 else "it holds") if self.args.e else ("they" if n > 1 else "it") + " may quote"
            print(f"fmdump: {n} {what} withheld: {why} {because(self.quotes)}", file=sys.stderr)

    def _very_verbose(self, r: dict[str, Any], nvl: dict[str, Any], now: float) -> None:
        tag = _TAGS.get(r["list_class"])
        print(FLT_V_HEADER)
        print(f"{year_of(r['time'])} {r['uuid']:<32} {r['msgid']}{' ' + tag if tag else ''}")
        xrefs = r.get("ereports") or []
        if xrefs:
            print()
            print("  " + ERR_HEADERS[1])
            for e in xrefs:
                print("  " + _err_line(e, 1, now))
        print()
        print("\n".join(nvlist.render(nvl)))
        print()


def execute(p: Parser, args: Any) -> int:
    selectors = _check(p, args)
    req = _request(args)
    c = Client(args.root)

    def cases(uuids: list[str]) -> dict[str, dict[str, Any]]:
        return {v["uuid"]: v for v in c.call("fm.faulty", all=True, uuids=uuids)}

    out = Printer(args, selectors, cases)
    res = c.call("fm.dump", **req)
    rows = res["entries"] if args.e else res["records"]
    if args.json and not args.f:
        rows = [r for r in rows if out.selected(nvlist.ereport(r) if args.e else nvlist.fault_event(r))]
        print_json(rows)
        for r in rows:
            out.note(r)
        out.say_withheld()
        return 0
    out.header()
    (out.entries if args.e else out.records)(rows)
    out.say_withheld()
    if res.get("more"):
        print(f"fmdump: warning: {only_last(args.last, res.get('limit', args.last))}", file=sys.stderr)
    if args.f:
        return follow(c, req, rows, out, res.get("last", 0))
    if out.count == 0 and sys.stdout.isatty():
        print(f"fmdump: warning: the {'error' if args.e else 'fault'} log is empty", file=sys.stderr)
    return 0


def only_last(asked: int, given: int) -> str:
    """What the warning says when the log holds more records than the reply: how many it shows and how to see
    more (a user other than root gets at most ``fault.operations.MAX_DUMP_USER`` a request: -t/-T reach older ones)."""
    shown = "the last record is" if given == 1 else f"the last {given} records are"
    if given < asked:
        return f"only {shown} shown (at most {given} a request for a user other than root: -t/-T for older ones)"
    return f"only {shown} shown (--last N for more)"


def follow(c: Client, req: dict[str, Any], rows: list[dict[str, Any]], out: Printer, last: int) -> int:
    """-f: ask again every second for what was logged since, until interrupted: the error log's entries after the
    last one read (``last``, an id: an ereport its detector dated earlier is new all the same), the fault log's
    records at or after the newest shown that were not shown."""
    if req["errlog"]:
        while True:
            sys.stdout.flush()
            time.sleep(1)
            res = c.call("fm.dump", **{**req, "after": last})
            out.entries(res["entries"])
            out.say_withheld()
            last = max(last, res.get("last", last), *(r["id"] for r in res["entries"]))
    seen = {(r["uuid"], r["time"], r["event"]) for r in rows}
    since = max((r["time"] for r in rows), default=req.get("since", time.time() - 1))
    while True:
        sys.stdout.flush()
        time.sleep(1)
        res = c.call("fm.dump", **{**req, "since": since})
        fresh = [r for r in res["records"] if (r["uuid"], r["time"], r["event"]) not in seen]
        if fresh:
            out.records(fresh)
            out.say_withheld()
            since = max(since, *(r["time"] for r in fresh))
            keys = {(r["uuid"], r["time"], r["event"]) for r in fresh}
            seen = keys if len(seen) > 100_000 else seen | keys


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    return run("fmdump", lambda: execute(p, args))


if __name__ == "__main__":
    sys.exit(main())
