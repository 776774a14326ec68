"""fmdump: the fault log and the error log, as illumos' fmdump.

    fmdump [-v] [-u UUID] [-c CLASS] [-t SINCE] [-n N] [--json]
    fmdump -e [-v] [-u UUID] [-c CLASS] [-t SINCE] [-n N] [--json]

Without ``-e``: one line per event in each case's life (``Diagnosed``, ``Updated``,
``Isolated``, ``Repaired``, ``Acquitted``, ``Replaced``, ``Resolved``); ``-v`` adds
the suspects with their certainty, the impacted resources and what happened.
With ``-e``: the error log, one ereport a line (``-v``: its resource, source and
payload); with ``-u`` the ereports that convicted that case. ``-c`` takes a class or
a glob (``ereport.svc.*``); ``-t`` a time: ``10m``/``2h``/``1d`` ago, ``HH:MM[:SS]``
today, ``YYYY-MM-DD[THH:MM[:SS]]``, or seconds since the epoch.

Socket request: ``fm.dump`` (``{"errlog", "since", "class", "uuid", "limit"}``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from typing import Any

from svcmgr.cli.common import EXIT_USAGE, Parser, add_root, die, print_json, run
from svcmgr.client import Client

_REL = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """Seconds since the epoch from fmdump's -t forms; ValueError naming the text otherwise."""
    now = time.time() if now is None else now
    m = _REL.match(text.strip())
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    if re.match(r"^\d+(\.\d+)?$", text) and float(text) > 1e8:
        return float(text)
    if re.match(r"^\d{1,2}:\d{2}(:\d{2})?$", text):
        parts = [int(x) for x in text.split(":")]
        if parts[0] > 23 or parts[1] > 59 or (len(parts) == 3 and parts[2] > 59):
            raise ValueError(f"{text!r} is not a time of day")
        today = dt.datetime.fromtimestamp(now).replace(hour=parts[0], minute=parts[1],
                                                        second=parts[2] if len(parts) == 3 else 0, microsecond=0)
        return today.timestamp()
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is not a time (use 10m, 2h, 1d, HH:MM, YYYY-MM-DD[THH:MM] or epoch "
                         "seconds)") from None


def parser() -> Parser:
    p = Parser(prog="fmdump", description="Show the fault log (cases) or, with -e, the error log (ereports).")
    add_root(p)
    p.add_argument("-e", action="store_true", help="the error log instead of the fault log")
    p.add_argument("-v", action="store_true", help="more detail for each record")
    p.add_argument("-u", metavar="UUID", help="only this case (with -e: the ereports that convicted it)")
    p.add_argument("-c", metavar="CLASS", help="only this class (a glob such as ereport.svc.* is accepted)")
    p.add_argument("-t", metavar="SINCE", help="only records since this time (10m, 2h, HH:MM, YYYY-MM-DD, ...)")
    p.add_argument("-n", metavar="N", type=int, default=1000, help="at most the last N records (default 1000)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    return p


def _t(epoch: float) -> str:
    frac = f"{epoch % 1:.4f}"[1:]
    return time.strftime("%b %d %H:%M:%S", time.localtime(epoch)) + frac


def execute(args: Any) -> int:
    req: dict[str, Any] = {"errlog": args.e, "limit": args.n}
    if args.n < 1:
        die("fmdump", f"-n {args.n}: expected a positive count", EXIT_USAGE)
    if args.t:
        try:
            req["since"] = parse_since(args.t)
        except ValueError as e:
            die("fmdump", f"-t {e}", EXIT_USAGE)
    if args.c:
        req["class"] = args.c
    if args.u:
        req["uuid"] = args.u
    res = Client(args.root).call("fm.dump", **req)
    if args.e:
        entries = res["entries"]
        if args.json:
            print_json(entries)
            return 0
        if not entries:
            return 0
        print(f"{'TIME':<20} {'CLASS':<32} RESOURCE" if args.v else f"{'TIME':<20} CLASS")
        for x in entries:
            if args.v:
                print(f"{_t(x['time']):<20} {x['class']:<32} {x.get('resource') or '-'}")
                print(f"        id = {x['id']}  node = {x.get('node', '-')}  source = {x.get('source', '-')}"
                      + ("  (no longer in the error log)" if x.get("expired") else ""))
                for k, v in (x.get("payload") or {}).items():
                    text = v if isinstance(v, str) else json.dumps(v)
                    print(f"        {k} = {text}")
                print()
            else:
                print(f"{_t(x['time']):<20} {x['class']}")
        return 0
    records = res["records"]
    if args.json:
        print_json(records)
        return 0
    if not records:
        return 0
    print(f"{'TIME':<20} {'UUID':<36} {'MSG-ID':<14} EVENT")
    for r in records:
        print(f"{_t(r['time']):<20} {r['uuid']:<36} {r['msgid']:<14} {r['event']}")
        if args.v:
            for s in r["suspects"]:
                print(f"  {s['certainty']:>3}%  {s['fault']}")
            print()
            for s in r["suspects"]:
                print(f"        Problem in: {s['resource']}  ({s['status']})")
            if r["impacted"]:
                print(f"          Impacted: {', '.join(r['impacted'])}")
            print(f"              What: {r['text']}")
            print()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run("fmdump", lambda: execute(args))


if __name__ == "__main__":
    sys.exit(main())
