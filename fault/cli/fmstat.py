"""fmstat: what the fault manager has done, per rule and per source.

    fmstat [-s] [--json]

Per rule: its engine, ereports received and accepted, failures attributed to a
dependency (cascade rules), cases opened, solved, folded into another case and
discarded, and the time spent (total, and the mean per ereport received). Per
source: ereports received and refused as malformed. Then the error log (stored,
dropped to stay within its bound, refused), the cases by state and the bus
subscription's losses. ``-s`` lists each SERD and threshold engine, as
``fmstat -s`` does.

Socket request: ``fm.stat`` (``{"engines": bool}``).
"""

from __future__ import annotations

import sys
from typing import Any

from svcmgr.cli.common import Parser, add_root, print_json, run
from svcmgr.client import Client


def parser() -> Parser:
    p = Parser(prog="fmstat", description="Fault manager statistics per rule, source and engine.")
    add_root(p)
    p.add_argument("-s", action="store_true", help="list the SERD and threshold engines")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    return p


def _table(rows: list[tuple[str, ...]], right: set[int]) -> str:
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(" ".join(x.rjust(w[i]) if i in right else x.ljust(w[i]) for i, x in enumerate(r)).rstrip()
                     for r in rows)


def _dur(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _us(seconds: float, n: int) -> str:
    return f"{seconds / n * 1e6:.1f}us" if n else "-"


def execute(args: Any) -> int:
    st = Client(args.root).call("fm.stat", engines=args.s)
    if args.json:
        print_json(st)
        return 0
    if args.s:
        rows = [("RULE", "RESOURCE", "ENGINE", "COUNT", "FIRED", "CASE")]
        for e in st.get("engines", []):
            eng = f"SERD N={e['n']} T={_dur(e['t'])}" if "n" in e else e.get("bound", "")
            rows.append((e["rule"], e["resource"] or "-", eng, str(e["count"]), "yes" if e["fired"] else "no",
                         e.get("case") or "-"))
        print(_table(rows, {3}))
        return 0
    rows = [("RULE", "ENGINE", "EV_RECV", "EV_ACPT", "ATTRIB", "OPEN", "SOLVED", "FOLDED", "DISCARD", "TIME",
             "SVC_T")]
    for r in st["rules"]:
        rows.append((r["rule"], r["engine"], str(r["received"]), str(r["accepted"]), str(r["attributed"]),
                     str(r["open"]), str(r["solved"]), str(r["folded"]), str(r["discarded"]),
                     f"{r['time']:.3f}s", _us(r["time"], r["received"])))
    print(_table(rows, set(range(2, 11))))
    print()
    srows = [("SOURCE", "RECEIVED", "REJECTED")]
    for name, s in sorted(st["sources"].items()):
        srows.append((name, str(s.get("received", 0)), str(s.get("rejected", 0))))
    print(_table(srows, {1, 2}))
    e = st["errlog"]
    d = st["diagnosis"]
    print()
    print(f"error log: {e['stored'] + e['pending']} received into the log, {e['dropped']} dropped (oldest first, "
          f"bound {e['max_entries']}), {e['rejected']} malformed refused")
    print(f"diagnosis: {d['processed']} ereports diagnosed, {d['unmatched']} matched no rule, "
          f"{d['engines']} engines, {d['overflow']} cases not opened (too many open), {d['errors']} errors")
    cases = ", ".join(f"{n} {k}" for k, n in sorted(st["cases"].items())) or "none"
    print(f"cases: {cases}")
    print(f"bus: {st['bus']['dropped']} ereports lost by a full queue, {st['bus']['queued']} queued, "
          f"{st['hold']} waiting for correlation")
    for name, err in st.get("source_errors", {}).items():
        print(f"fmstat: source {name} stopped: {err}", file=sys.stderr)
    for err in st.get("load_errors", []):
        print(f"fmstat: rules refused: {err}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run("fmstat", lambda: execute(args))


if __name__ == "__main__":
    sys.exit(main())
