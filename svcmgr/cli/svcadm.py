"""svcadm: change the state of service instances, as SMF's svcadm does.

    svcadm [-v] enable [-r] [-s] [-t] FMRI ...
    svcadm [-v] disable [-s] [-t] FMRI ...
    svcadm [-v] restart | refresh | clear FMRI ...
    svcadm [-v] mark [-I] [-t] maintenance | degraded FMRI ...
    svcadm [-v] milestone FMRI | all | none

``-t`` lasts until the daemon stops; ``-s`` waits until each instance gets there
and exits 3 when an instance cannot by itself, 4 when its dependencies cannot.
Socket requests: ``enable``, ``disable``, ``restart``, ``refresh``, ``clear``,
``mark``, ``milestone``, then ``wait`` for ``-s``.
"""

from __future__ import annotations

import sys
from typing import Any

from svcmgr.cli.common import Parser, add_root, run
from svcmgr.client import Client

EXIT_STATE = 3
EXIT_DEPS = 4


def parser() -> Parser:
    p = Parser(prog="svcadm", description="Manipulate service instances.")
    add_root(p)
    p.add_argument("-v", action="store_true", help="say what was done to each instance")
    sub = p.add_subparsers(dest="cmd", metavar="SUBCOMMAND", parser_class=Parser)
    sub.required = True
    e = sub.add_parser("enable", help="enable instances (and start them when their dependencies allow)")
    e.add_argument("-r", action="store_true", help="enable what they depend on too")
    e.add_argument("-s", action="store_true", help="wait until each instance is online")
    e.add_argument("-t", action="store_true", help="only until the daemon stops")
    e.add_argument("fmris", nargs="+", metavar="FMRI")
    d = sub.add_parser("disable", help="disable instances (stopping them)")
    d.add_argument("-s", action="store_true", help="wait until each instance is disabled")
    d.add_argument("-t", action="store_true", help="only until the daemon stops")
    d.add_argument("fmris", nargs="+", metavar="FMRI")
    for name, text in (("restart", "restart online or degraded instances"),
                       ("refresh", "apply edited configuration and run the refresh method"),
                       ("clear", "bring instances out of maintenance, or degraded ones back online")):
        s = sub.add_parser(name, help=text)
        s.add_argument("fmris", nargs="+", metavar="FMRI")
    m = sub.add_parser("mark", help="put instances in maintenance or mark them degraded")
    m.add_argument("-I", action="store_true", help="immediately: no stop method")
    m.add_argument("-t", action="store_true", help="only until the daemon stops")
    m.add_argument("state", choices=("maintenance", "degraded"))
    m.add_argument("fmris", nargs="+", metavar="FMRI")
    ms = sub.add_parser("milestone", help="run only a milestone and what it needs ('all' to undo)")
    ms.add_argument("-d", action="store_true", help="accepted for SMF compatibility; the milestone is not persistent")
    ms.add_argument("target", metavar="FMRI|all|none")
    return p


def _wait(c: Client, fmris: list[str], want: str) -> int:
    waiter = Client(c.paths.root, timeout=None)
    res = waiter.call("wait", fmris=fmris, want=want)
    code = res.get("code", 1)
    if code == EXIT_STATE:
        bad = [f for f, v in res.get("fmris", {}).items() if v == EXIT_STATE]
        print(f"svcadm: {', '.join(bad)}: cannot become {want} (see svcs -x)", file=sys.stderr)
    elif code == EXIT_DEPS:
        bad = [f for f, v in res.get("fmris", {}).items() if v == EXIT_DEPS]
        print(f"svcadm: {', '.join(bad)}: its dependencies cannot be met (see svcs -x)", file=sys.stderr)
    return code


def execute(args: Any) -> int:
    c = Client(args.root)
    verbose = args.v
    cmd = args.cmd
    if cmd == "enable":
        res = c.call("enable", fmris=args.fmris, temporary=args.t, recursive=args.r)
        if verbose:
            for f in res["fmris"]:
                print(f"{f} enabled{' temporarily' if args.t else ''}.")
        for t in res.get("absent", []):
            print(f"svcadm: warning: dependency {t} is not imported", file=sys.stderr)
        return _wait(c, res["fmris"] if args.r else args.fmris, "online") if args.s else 0
    if cmd == "disable":
        res = c.call("disable", fmris=args.fmris, temporary=args.t)
        if verbose:
            for f in res["fmris"]:
                print(f"{f} disabled{' temporarily' if args.t else ''}.")
        return _wait(c, res["fmris"], "disabled") if args.s else 0
    if cmd in ("restart", "refresh", "clear"):
        res = c.call(cmd, fmris=args.fmris)
        past = {"restart": "restarted", "refresh": "refreshed", "clear": "cleared"}[cmd]
        if verbose:
            for f in res["fmris"]:
                print(f"Action {cmd} set for {f}." if cmd != "refresh" else f"{f} {past}.")
        for f in res.get("skipped", []):
            why = "is not online or degraded" if cmd == "restart" else "is not in maintenance or degraded"
            print(f"svcadm: {f}: {why}; nothing to {cmd}", file=sys.stderr)
        return 0
    if cmd == "mark":
        res = c.call("mark", fmris=args.fmris, state=args.state, temporary=args.t, immediate=args.I)
        if verbose:
            for f in res["fmris"]:
                print(f"{f} marked {args.state}{' temporarily' if args.t else ''}.")
        for f in res.get("skipped", []):
            print(f"svcadm: {f}: cannot be marked {args.state} in its current state", file=sys.stderr)
        return 0
    if cmd == "milestone":
        res = c.call("milestone", target=args.target)
        if verbose:
            print(f"milestone set to {res['milestone']}.")
        return 0
    return 2  # pragma: no cover - argparse refuses unknown subcommands


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run("svcadm", lambda: execute(args))


if __name__ == "__main__":
    sys.exit(main())
