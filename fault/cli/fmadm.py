"""fmadm: the fault manager's administration, as illumos' fmadm.

    fmadm [-q] [cmd [args ...]]
    fmadm faulty [-afgiprsv] [-u <uuid>] [-n <max_fault>] [--json] [--fleet]
    fmadm repair <fmri>|<uuid>       fmadm repaired <fmri>       fmadm replaced <fmri>
    fmadm acquit <fmri> [<uuid>] | <uuid>
    fmadm config [--json]

``faulty`` lists the diagnosed cases in fmd's layout (``fault.cli.faulty``): most severe and
newest first, each with its host, fault classes, what it affects and how that is doing, where
the problem is and the knowledge article; ``-a`` adds open and closed cases, ``-u`` names cases
(and implies ``-a``), ``-s`` one line each, ``-v`` every name, ``-n`` at most that many names
and grouped EVENT-IDs, ``-g`` groups cases alike, ``-f`` one entry per replaceable unit, ``-r``
one line per faulty resource, ``-i`` says CACHE-ID (a case is its own cache entry here), ``-p``
pipes the output through ``$PAGER``; ``--fleet`` every node's cases (through the fleet view).
``repair`` closes a case (a UUID) or records a resource repaired in every open case naming it
(an FMRI); ``repaired`` and ``replaced`` take a resource only; ``acquit`` a case, a resource, or
a resource in one case. What a case's response did (a service degraded or in maintenance) is
undone. ``config`` lists the rules. Reading is open to everyone; a verdict needs root or the
service's action authorization. Notes and errors are fmadm's to the letter.

Socket requests: ``fm.faulty``, ``fm.verdict`` (``{"target", "verdict", "case"?, "by"?}``), ``fm.rules``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from typing import Any

from fault.cli import faulty as cat
from fault.cli.withheld import because, quotes_of
from svcmgr.cli.common import EXIT_ERROR, EXIT_USAGE, Parser, add_root, print_json, run
from svcmgr.client import Client, ClientError

#: subcommand -> (its synopsis, fmadm's description); the usage lists those with a description
SYNOPSES = {"config": ("", "display fault manager configuration"),
            "faulty": ("[-afgiprsv] [-u <uuid>] [-n <max_fault>]", "display list of faulty resources"),
            "repair": ("<fmri>|label|<uuid>", ""),
            "repaired": ("<fmri>|label>", "notify fault manager that resource has been repaired"),
            "acquit": ("<fmri> [<uuid>] | label [<uuid>] | <uuid>", "acquit resource or acquit case"),
            "replaced": ("<fmri>|label", "notify fault manager that resource has been replaced")}
#: fmd's other subcommands, and why svcmgr has no use for them
UNSUPPORTED = {
    "flush": "svcmgr keeps no resource cache apart from the cases (fmadm acquit or repair closes them)",
    "gc": "svcmgr's rules keep no module buffers to collect",
    "load": "the rules are files read at start and on reload (svcadm refresh, SIGHUP), not loadable modules",
    "unload": "the rules are files read at start and on reload (svcadm refresh, SIGHUP), not loadable modules",
    "reset": "a rule's engines are reset by closing its cases (fmadm repair) or by reloading the rules",
    "rotate": "the logs are tables of the repository, bounded by [fault] errlog_max and cases_keep",
}


def parser() -> Parser:
    p = Parser(prog="fmadm", description="Fault manager administration: list and close fault cases.")
    add_root(p)
    p.add_argument("-q", action="store_true", help="quiet: no note of what was recorded")
    sub = p.add_subparsers(dest="cmd", metavar="SUBCOMMAND", parser_class=Parser)
    f = sub.add_parser("faulty", help=SYNOPSES["faulty"][1], usage=f"%(prog)s {SYNOPSES['faulty'][0]}")
    f.add_argument("-a", action="store_true", help="all cases: open ones, and repaired or resolved ones too")
    f.add_argument("-f", action="store_true", help="one entry per replaceable unit (a suspect that is not a service)")
    f.add_argument("-g", action="store_true", help="group cases of the same faults on the same resources")
    f.add_argument("-i", action="store_true", help="CACHE-ID instead of EVENT-ID (here the same: the case)")
    f.add_argument("-n", type=int, default=0, metavar="MAX_FAULT", help="at most this many names and grouped "
                   "EVENT-IDs (0: all)")
    f.add_argument("-p", action="store_true", help="through the pager ($PAGER, else more)")
    f.add_argument("-r", action="store_true", help="one line per faulty resource and how it is doing")
    f.add_argument("-s", action="store_true", help="one line per case")
    f.add_argument("-u", action="append", metavar="UUID", help="only this case (implies -a)")
    f.add_argument("-v", action="store_true", help="every name, and where the problem is")
    f.add_argument("--json", action="store_true", help="print a JSON array")
    f.add_argument("--fleet", action="store_true", help="every node's cases (needs the fleet view)")
    f.add_argument("--mqtt", metavar="URL", help="with --fleet: the broker (default: the one in --config, "
                   "or the local daemon's)")
    f.add_argument("--config", metavar="FILE", help="with --fleet: read the broker settings from this "
                   "node configuration")
    for name, text in (("repair", "record a case, or a resource in every case naming it, repaired"),
                       ("repaired", SYNOPSES["repaired"][1]), ("replaced", SYNOPSES["replaced"][1])):
        s = sub.add_parser(name, help=text, usage=f"%(prog)s {SYNOPSES[name][0]}")
        s.add_argument("target", metavar="FMRI" if name != "repair" else "FMRI|UUID")
    a = sub.add_parser("acquit", help=SYNOPSES["acquit"][1], usage=f"%(prog)s {SYNOPSES['acquit'][0]}")
    a.add_argument("target", metavar="FMRI|UUID")
    a.add_argument("case", metavar="UUID", nargs="?")
    c = sub.add_parser("config", help=SYNOPSES["config"][1])
    c.add_argument("--json", action="store_true")
    return p


def usage_text() -> str:
    """fmadm's usage: each subcommand that has a description, with its synopsis."""
    lines = ["Usage: fmadm [-q] [--root DIR] [cmd [args ... ]]", ""]
    for name, (synopsis, desc) in SYNOPSES.items():
        if desc:
            lines.append(f"\t{f'fmadm {name} {synopsis}'.rstrip():<30} - {desc}")
    return "\n".join(lines)


def _pager(text: str) -> int:
    """fmadm faulty -p: the text through $PAGER (else more); printed directly if the pager cannot start."""
    try:
        subprocess.run(["/bin/sh", "-c", os.environ.get("PAGER") or "more"], input=text, text=True, check=False)
    except OSError:
        sys.stdout.write(text)
        return EXIT_ERROR
    return 0


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
    uuids = args.u or []
    cases = c.call("fm.faulty", all=args.a or bool(uuids), **({"uuids": uuids} if uuids else {}))
    hidden = [x for x in cases if x.get("withheld")]
    if hidden:  # fault.disclosure: said once, before the report
        many = len(hidden) > 1
        why = because(set().union(*map(quotes_of, hidden)))
        print(f"fmadm: {len(hidden)} case{'s' if many else ''} shown with {'their' if many else 'its'} detail and "
              f"history withheld: {'they' if many else 'it'} may quote {why}", file=sys.stderr)
    if args.json:
        print_json(cases)
        return 0
    records = cat.catalog(cases, args.g)
    out: list[str] = []
    if args.f:
        out.extend(cat.fru_lines(records, args.s))
    if args.r:
        out.extend(cat.asru_lines(records))
    if not args.f and not args.r:
        for n, rec in enumerate(records):
            if not args.s or n == 0:
                out.extend(cat.summary_header(args.i))
            out.append(cat.event_line(rec))
            if not args.s:
                out.extend(cat.record_lines(rec, full=args.v, max_fault=args.n, cache_ids=args.i))
    text = "".join(line + "\n" for line in out)
    if args.p:
        return _pager(text)
    sys.stdout.write(text)
    return 0


#: verdict -> (what the request says, by: any target or a resource only, fmadm's noun)
_VERDICTS = {"repair": ("repair", "any", "repair to"), "repaired": ("repair", "resource", "repair to"),
             "replaced": ("replace", "resource", "replacement of"), "acquit": ("acquit", "any", "acquital of")}


def verdict(c: Client, args: Any) -> int:
    what, by, noun = _VERDICTS[args.cmd]
    try:
        if args.cmd == "acquit" and args.case:
            try:
                c.call("fm.verdict", target=args.target, verdict=what, case=args.case, by="resource")
            except ClientError:
                c.call("fm.verdict", target=args.case, verdict=what, case=args.target, by="resource")
        else:
            c.call("fm.verdict", target=args.target, verdict=what, by=by)
    except ClientError as e:
        if "not running" in str(e) or "connect" in str(e):
            raise
        print(f"fmadm: failed to record {noun} {args.target}: {e}", file=sys.stderr)
        return EXIT_ERROR
    if not args.q:
        print(f"fmadm: recorded {'repair to of' if args.cmd == 'repaired' else noun} {args.target}")
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


def _subcommand(argv: list[str]) -> str | None:
    """The first operand after fmadm's own options (``--root DIR``, ``-q``)."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--root", "-R"):
            skip = True
        elif not a.startswith("-"):
            return a
        elif a in ("-h", "--help"):
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd = _subcommand(argv)
    if cmd is None and not any(a in ("-h", "--help") for a in argv):
        print(usage_text())
        return EXIT_USAGE
    if cmd in UNSUPPORTED:
        print(f"fmadm: {cmd}: {UNSUPPORTED[cmd]}", file=sys.stderr)
        return EXIT_ERROR
    if cmd is not None and cmd not in SYNOPSES:
        print(f"fmadm: illegal subcommand -- {cmd}", file=sys.stderr)
        print(usage_text(), file=sys.stderr)
        return EXIT_USAGE
    args = parser().parse_args(argv)
    handler = {"faulty": faulty, "config": config}.get(args.cmd, verdict)
    return run("fmadm", lambda: handler(Client(args.root), args))


if __name__ == "__main__":
    sys.exit(main())
