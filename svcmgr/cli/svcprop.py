"""svcprop: print the properties of a service or instance (its running snapshot), as SMF's svcprop does.

    svcprop [-q] [-t] [--json] [-p PG[/NAME]] ... FMRI

Without ``-p``: every property as ``pg/name type value...``. With one ``-p pg/name``:
only its values (``-t`` adds name and type). Exit 1 when a named property does not exist.
Socket request: ``props``.
"""

from __future__ import annotations

import sys
from typing import Any

from svcmgr.cli.common import Parser, add_root, note_protected, print_json, run
from svcmgr.client import Client


def parser() -> Parser:
    p = Parser(prog="svcprop", description="Print the properties of a service or instance.")
    add_root(p)
    p.add_argument("-p", metavar="PG[/NAME]", action="append", default=[], help="a property group or property")
    p.add_argument("-q", action="store_true", help="print nothing; the exit status says whether it exists")
    p.add_argument("-t", action="store_true", help="print names and types with the values")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("fmri", metavar="FMRI")
    return p


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v)
    out = []
    for ch in s:
        if ch in " \t\\\"'":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
    return "".join(out) if s else '""'


def execute(args: Any) -> int:
    res = Client(args.root).call("props", fmri=args.fmri)
    note_protected("svcprop", res)
    pgs: dict[str, dict[str, Any]] = res["pgs"]
    selected: list[tuple[str, str, dict[str, Any]]] = []
    missing = []
    if not args.p:
        for pg, props in pgs.items():
            for name, p in props.items():
                selected.append((pg, name, p))
    for want in args.p:
        pg, _, name = want.partition("/")
        if pg not in pgs or (name and name not in pgs[pg]):
            missing.append(want)
            continue
        for n, p in pgs[pg].items():
            if not name or n == name:
                selected.append((pg, n, p))
    if args.q:
        return 1 if missing else 0
    for m in missing:
        print(f"svcprop: {res['fmri']}: no property {m}", file=sys.stderr)
    if args.json:
        print_json({f"{pg}/{n}": p for pg, n, p in selected})
        return 1 if missing else 0
    single = len(args.p) == 1 and "/" in args.p[0] and not args.t
    for pg, n, p in selected:
        vals = " ".join(_value(v) for v in p["values"])
        if single:
            print(vals)
        else:
            print(f"{pg}/{n} {p['type']} {vals}".rstrip())
    return 1 if missing else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run("svcprop", lambda: execute(args))


if __name__ == "__main__":
    sys.exit(main())
