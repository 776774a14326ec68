"""fmadm: the fault manager's administration, as illumos' fmadm.

    fmadm faulty [-a] [-u UUID] [-s] [--json] [--fleet]
    fmadm repair | acquit | replaced UUID|FMRI
    fmadm config [--json]

``faulty`` lists the solved cases in fmd's layout (time, event id, message id,
severity, then host, fault class, affects, problem in, and the knowledge article's
description, response, impact and action); ``-a`` adds open and closed cases, ``-u``
shows one case, ``-s`` one line per case, ``--fleet`` every node's cases (through the
fleet view, where this build has it). ``repair`` (the fault is fixed), ``acquit``
(the diagnosis was wrong) and ``replaced`` (the part was replaced) close a case, or
every case naming an FMRI as a suspect; what the case's response did (a service
marked degraded or in maintenance) is undone, so the service and its dependents
come back. ``config`` lists the rules. Reading is open to everyone; closing needs
root or the service's action authorization.

Socket requests: ``fm.faulty``, ``fm.verdict`` (``{"target", "verdict"}``), ``fm.rules``.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import time
from typing import Any

from svcmgr.cli.common import Parser, add_root, print_json, run
from svcmgr.client import Client

RULE = "--------------- ------------------------------------  -------------- ---------"
WIDTH = 78
INDENT = " " * 14


def parser() -> Parser:
    p = Parser(prog="fmadm", description="Fault manager administration: list and close fault cases.")
    add_root(p)
    sub = p.add_subparsers(dest="cmd", metavar="SUBCOMMAND", parser_class=Parser)
    sub.required = True
    f = sub.add_parser("faulty", help="list the diagnosed faults (solved cases)")
    f.add_argument("-a", action="store_true", help="all cases: open ones, and repaired or resolved ones too")
    f.add_argument("-u", metavar="UUID", help="only this case")
    f.add_argument("-s", action="store_true", help="one line per case")
    f.add_argument("--json", action="store_true", help="print a JSON array")
    f.add_argument("--fleet", action="store_true", help="every node's cases (needs the fleet view)")
    f.add_argument("--mqtt", metavar="URL", help="with --fleet: the broker (default: the one in --config, "
                   "or the local daemon's)")
    f.add_argument("--config", metavar="FILE", help="with --fleet: read the broker settings from this "
                   "node configuration")
    for name, text in (("repair", "the fault was fixed: close the case and undo its response"),
                       ("acquit", "the diagnosis was wrong: close the case and undo its response"),
                       ("replaced", "the faulty part was replaced: close the case and undo its response")):
        s = sub.add_parser(name, help=text)
        s.add_argument("target", metavar="UUID|FMRI")
    c = sub.add_parser("config", help="list the diagnosis rules")
    c.add_argument("--json", action="store_true")
    return p


def _wrap(label: str, text: str) -> str:
    lines = textwrap.wrap(text, WIDTH - len(INDENT)) or ["-"]
    out = [f"{label:<12}: {lines[0]}"]
    out.extend(INDENT + line for line in lines[1:])
    return "\n".join(out)


def _time(epoch: float) -> str:
    return time.strftime("%b %d %H:%M:%S", time.localtime(epoch))


def render(case: dict[str, Any]) -> str:
    """One case in fmd's layout."""
    out = [RULE, "TIME            EVENT-ID                              MSG-ID         SEVERITY", RULE,
           f"{_time(case['time_epoch'])} {case['uuid']:<36}  {case['msgid']:<14} {case['severity']}", "",
           f"{'Host':<12}: {case['host']}"]
    if case["state"] != "solved":
        out.append(f"{'State':<12}: {case['state']}")
    classes = case.get("classes") or [case["class"]]
    out.append(f"{'Fault class':<12}: {classes[0]}")
    out.extend(f"{INDENT}{c} (folded into this case)" for c in classes[1:])
    first = True
    for a in case["affected"]:
        label = "Affects" if first else ""
        first = False
        role = "" if a["role"] == "suspect" else " (impacted)"
        out.append(f"{label:<12}{':' if label else ' '} {a['fmri']}{role}")
        out.append(f"{INDENT}    {a['now']}")
    if not case["affected"]:
        out.append(f"{'Affects':<12}: -")
    suspects = case["suspects"]
    for i, s in enumerate(suspects):
        label = "Problem in" if i == 0 else ""
        cert = f" ({s['certainty']}% certainty)" if len(suspects) > 1 or s["certainty"] < 100 else ""
        out.append(f"{label:<12}{':' if label else ' '} {s['resource'] or case['host']}{cert}")
    out.append("")
    out.append(_wrap("Description", case["description"]))
    out.append("")
    out.append(_wrap("Response", case["response"]))
    out.append("")
    out.append(_wrap("Impact", case["impact"]))
    out.append("")
    out.append(_wrap("Action", case["action"].replace("UUID", case["uuid"])))
    return "\n".join(out)


def faulty(c: Client, args: Any) -> int:
    if args.fleet:
        try:
            fleet = importlib.import_module("svcmgr.cli.fleet")  # asyncio and aiomqtt: only for --fleet
            fn = fleet.fmadm_fleet
        except (ImportError, AttributeError):
            print("fmadm: --fleet needs the fleet view (svcmgr.cli.fleet), which this build does not have",
                  file=sys.stderr)
            return 1
        return int(fn(args))
    cases = c.call("fm.faulty", all=args.a, **({"uuid": args.u} if args.u else {}))
    if args.u and not cases:
        print(f"fmadm: {args.u}: no such case{'' if args.a else ' among the solved ones (try -a)'}", file=sys.stderr)
        return 1
    if args.json:
        print_json(cases)
        return 0
    if args.s:
        rows = [f"{'TIME':<15} {'EVENT-ID':<36}  {'MSG-ID':<14} {'SEVERITY':<9} {'STATE':<9} CLASS"]
        rows.extend(f"{_time(x['time_epoch'])} {x['uuid']:<36}  {x['msgid']:<14} {x['severity']:<9} "
                    f"{x['state']:<9} {x['class']}" for x in cases)
        print("\n".join(rows) if cases else "", end="\n" if cases else "")
        return 0
    print("\n\n".join(render(x) for x in cases), end="\n" if cases else "")
    return 0


_PAST = {"repair": "repair", "acquit": "acquittal", "replaced": "replacement"}


def verdict(c: Client, args: Any) -> int:
    v = {"replaced": "replace"}.get(args.cmd, args.cmd)
    res = c.call("fm.verdict", target=args.target, verdict=v)
    word = _PAST[args.cmd]
    for case in res["cases"]:
        if args.target in (case["uuid"],) or case["uuid"].startswith(args.target):
            print(f"fmadm: recorded {word} of case {case['uuid']} (now {case['state']})")
        else:
            print(f"fmadm: recorded {word} to {', '.join(res['fmris'])} in case {case['uuid']} (now {case['state']})")
    return 0


def config(c: Client, args: Any) -> int:
    res = c.call("fm.rules")
    if args.json:
        print_json(res)
        return 0
    rows = [("RULE", "ENGINE", "FAULT", "SEVERITY", "MSG-ID", "RESPONSE")]
    rows.extend((r["name"], r["detail"], r["fault"], r["severity"], r["msgid"], r["response"]) for r in res["rules"])
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(" ".join(x.ljust(w[i]) for i, x in enumerate(r)).rstrip())
    for e in res.get("errors") or []:
        print(f"fmadm: refused: {e}", file=sys.stderr)
    return 1 if res.get("errors") else 0


def execute(args: Any) -> int:
    c = Client(args.root)
    if args.cmd == "faulty":
        return faulty(c, args)
    if args.cmd == "config":
        return config(c, args)
    return verdict(c, args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run("fmadm", lambda: execute(args))


if __name__ == "__main__":
    sys.exit(main())
