"""svcadm: change the state of service instances, as SMF's svcadm does.

    svcadm [-S state] [-v] enable [-rst] [FMRI|pattern ...]
    svcadm [-S state] [-v] disable [-c comment] [-st] [FMRI|pattern ...]
    svcadm [-S state] [-v] restart [-d] [FMRI|pattern ...]
    svcadm [-S state] [-v] refresh | clear [FMRI|pattern ...]
    svcadm [-S state] [-v] mark [-It] maintenance|degraded [FMRI|pattern ...]
    svcadm [-v] milestone [-d] FMRI|all|none

An operand is an FMRI, an abbreviation or a glob; ``-S state`` instead acts on every
instance in that state. An operand that names nothing is reported (``Pattern 'x'
doesn't match any instances``) and the others are acted on, exit 1; an abbreviation or
a service that names several instances is refused before anything is done (``Partial
FMRI matches multiple instances``: use a glob to mean them all). ``-t`` lasts until the
daemon stops. ``-s`` waits until each instance gets there and exits 3 when one cannot
by itself, 4 when its dependencies cannot. ``clear`` of an instance neither in
maintenance nor degraded, and ``mark degraded`` of one not online, exit 1 as illumos
does. ``restart -d`` sends SIGABRT to every process of the instance first (a core dump);
``disable -c`` keeps a comment, shown by ``svcs -l`` and ``svcs -x``, until the next
enable. ``-Z`` and ``-z`` are refused: svcmgr has no zones.

An instance the caller may not act on (``docs/security.md``) is left alone and reported on
a line of its own (``svcadm: permission denied: uid N (user) may not VERB FMRI: needs ...``),
exit 1; the others are acted on (``-s`` waits for them only). When the caller may act on
none of them, nothing is done. ``enable -r`` enables no dependency the caller may not.

Socket requests: ``match`` (or ``list`` for ``-S``), then ``enable``, ``disable``,
``restart``, ``refresh``, ``clear``, ``mark``, ``milestone``, and ``wait`` for ``-s``.
"""

from __future__ import annotations

import sys
from typing import Any

from svcmgr.cli.common import EXIT_ERROR, EXIT_USAGE, Parser, add_root, die, run, select, usage
from svcmgr.client import Client

EXIT_STATE = 3
EXIT_DEPS = 4


def parser() -> Parser:
    p = Parser(prog="svcadm", description="Manipulate service instances.")
    add_root(p)
    p.add_argument("-S", metavar="STATE", dest="state_filter",
                   help="act on every instance in this state instead of the operands")
    p.add_argument("-v", action="store_true", help="say what was done to each instance")
    p.add_argument("-Z", action="store_true", help="all zones (refused: svcmgr has no zones)")
    p.add_argument("-z", metavar="ZONE", help="one zone (refused: svcmgr has no zones)")
    sub = p.add_subparsers(dest="cmd", metavar="SUBCOMMAND", parser_class=Parser)
    sub.required = True
    e = sub.add_parser("enable", help="enable instances (and start them when their dependencies allow)")
    e.add_argument("-r", action="store_true", help="enable what they require too")
    e.add_argument("-s", action="store_true", help="wait until each instance is online")
    e.add_argument("-t", action="store_true", help="only until the daemon stops")
    e.add_argument("fmris", nargs="*", metavar="FMRI")
    d = sub.add_parser("disable", help="disable instances (stopping them)")
    d.add_argument("-c", metavar="COMMENT", dest="comment", default="",
                   help="why (shown by svcs -l and svcs -x until the instance is enabled again)")
    d.add_argument("-s", action="store_true", help="wait until each instance is disabled")
    d.add_argument("-t", action="store_true", help="only until the daemon stops")
    d.add_argument("fmris", nargs="*", metavar="FMRI")
    r = sub.add_parser("restart", help="restart online or degraded instances")
    r.add_argument("-d", action="store_true", help="SIGABRT to every process first, for a core dump")
    r.add_argument("fmris", nargs="*", metavar="FMRI")
    for name, text in (("refresh", "apply edited configuration and run the refresh method"),
                       ("clear", "bring instances out of maintenance, or degraded ones back online")):
        s = sub.add_parser(name, help=text)
        s.add_argument("fmris", nargs="*", metavar="FMRI")
    m = sub.add_parser("mark", help="put instances in maintenance or mark online ones degraded")
    m.add_argument("-I", action="store_true", help="immediately: no stop method")
    m.add_argument("-t", action="store_true", help="only until the daemon stops (maintenance only)")
    m.add_argument("state", choices=("maintenance", "degraded"))
    m.add_argument("fmris", nargs="*", metavar="FMRI")
    ms = sub.add_parser("milestone", help="run only a milestone and what it needs ('all' to undo)")
    ms.add_argument("-d", action="store_true", help="accepted for SMF compatibility; the milestone is not persistent")
    ms.add_argument("target", metavar="FMRI|all|none")
    return p


def _targets(c: Client, args: Any) -> tuple[list[str], int]:
    """The instances to act on and the exit status so far; exits when nothing may be done."""
    if args.state_filter is not None:
        return sorted(i["fmri"] for i in c.call("list") if i["state"] == args.state_filter), 0
    res = select("svcadm", c, args.fmris)
    if res["ambiguous"]:
        print("svcadm: Partial FMRI matches multiple instances", file=sys.stderr)
        for p, names in res["ambiguous"].items():
            print(f"svcadm: '{p}' is ambiguous, it matches: {', '.join(names)} (a glob names them all)",
                  file=sys.stderr)
        raise SystemExit(EXIT_ERROR)
    return res["fmris"], EXIT_ERROR if res["unmatched"] else 0


def _wait(c: Client, fmris: list[str], want: str) -> int:
    waiter = Client(c.paths.root, timeout=None)
    res = waiter.call("wait", fmris=fmris, want=want)
    codes = res.get("fmris", {})
    if not codes:
        return res.get("code", 1)
    states = {i["fmri"]: i for i in c.call("list", fmris=[f for f, code in codes.items() if code])} if any(
        codes.values()) else {}
    for f, code in codes.items():
        i = states.get(f, {})
        if code == EXIT_DEPS:
            print(f'svcadm: Instance "{f}" has unsatisfied dependencies.', file=sys.stderr)
        elif code and i.get("state") == "maintenance":
            print(f'svcadm: Instance "{f}" is in maintenance state.', file=sys.stderr)
        elif code:
            other = "disabled" if want == "online" else "enabled"
            print(f'svcadm: Instance "{f}" has been {other} by another entity.', file=sys.stderr)
    worst = [code for code in codes.values() if code]
    return EXIT_STATE if EXIT_STATE in worst else max(worst, default=0)


def _refused(res: dict[str, Any]) -> set[str]:
    """Say, one line each, the instances the daemon refused to act on (each named with why: svcadm.c's
    ``svcadm: FMRI: Permission denied.``); those FMRIs."""
    refused = res.get("refused") or []
    for r in refused:
        print(f"svcadm: {r['reason']}", file=sys.stderr)
    return {r["fmri"] for r in refused}


def _say(args: Any, lines: list[str]) -> None:
    if args.v:
        for text in lines:
            print(text)


def execute(args: Any) -> int:
    c = Client(args.root)
    cmd = args.cmd
    if cmd == "milestone":
        res = c.call("milestone", target=args.target)
        _say(args, [f"milestone set to {res['milestone']}."])
        return 0
    fmris, status = _targets(c, args)
    if not fmris:
        return status
    temp = " temporarily" if getattr(args, "t", False) and cmd in ("enable", "disable") else ""
    if cmd == "enable":
        res = c.call("enable", fmris=fmris, temporary=args.t, recursive=args.r)
        for step in res.get("steps") or [{"enable": f} for f in res["fmris"]]:
            if "enable" in step:
                _say(args, [f"{step['enable']}{temp} enabled."])
            elif "refused" in step:  # in the walk's order, as svcadm.c says it
                print(f"svcadm: {step['reason']}", file=sys.stderr)
            elif "requires_one_of" in step:  # as svcadm.c: on standard output, whatever -v
                print(f"{step['fmri']} requires one of:", *(f"  {m}" for m in step["requires_one_of"]), sep="\n")
            elif "multiple" in step:
                print(f"svcadm: {step['fmri']} depends on {step['multiple']}, which has multiple instances.",
                      file=sys.stderr)
        for t in res.get("absent", []):
            print(f"svcadm: warning: dependency {t} is not imported", file=sys.stderr)
        refused = {s["refused"] for s in res.get("steps") or [] if "refused" in s}
        permitted = [f for f in fmris if f not in refused]
        # as svcadm.c: the others are waited for too (only those the caller may enable)
        waited = _wait(c, permitted, "online") if args.s and permitted else 0
        return status or (EXIT_ERROR if refused else waited)
    if cmd == "disable":
        res = c.call("disable", fmris=fmris, temporary=args.t, comment=args.comment)
        _say(args, [f"{f}{temp} disabled." for f in res["fmris"]])
        refused = _refused(res)
        waited = _wait(c, res["fmris"], "disabled") if args.s and not status and res["fmris"] else 0
        return status or (EXIT_ERROR if refused else waited)
    if cmd == "restart":
        res = c.call("restart", fmris=fmris, dump=args.d)
        refused = _refused(res)
        acted = [f for f in fmris if f not in refused]
        _say(args, [f"Action dodump set for {f}." for f in acted if args.d]
             + [f"Action restart set for {f}." for f in acted])
        for f in res.get("skipped", []):
            print(f"svcadm: {f}: not online or degraded; nothing to restart", file=sys.stderr)
        return status or (EXIT_ERROR if refused else 0)
    if cmd == "refresh":
        res = c.call("refresh", fmris=fmris)
        refused = _refused(res)
        _say(args, [f"Action refresh set for {f}." for f in fmris if f not in refused])
        return status or (EXIT_ERROR if refused else 0)
    if cmd == "clear":
        res = c.call("clear", fmris=fmris)
        refused = _refused(res)
        _say(args, [f"Action {res.get('actions', {}).get(f, 'maint_off')} set for {f}." for f in res["fmris"]])
        for f in res.get("skipped", []):
            print(f'svcadm: Instance "{f}" is not in a maintenance or degraded state.', file=sys.stderr)
        return EXIT_ERROR if res.get("skipped") or refused else status
    if cmd == "mark":
        res = c.call("mark", fmris=fmris, state=args.state, temporary=args.t, immediate=args.I)
        refused = _refused(res)
        action = ("maint_on" + ("_immtemp" if args.I and args.t else "_immediate" if args.I else
                                "_temporary" if args.t else "")) if args.state == "maintenance" else \
            ("degrade_immediate" if args.I else "degraded")
        _say(args, [f"Action {action} set for {f}." for f in res["fmris"]])
        for f in res.get("skipped", []):
            print(f'svcadm: Instance "{f}" is not online.', file=sys.stderr)
        return EXIT_ERROR if res.get("skipped") or refused else status
    return EXIT_USAGE  # pragma: no cover - argparse refuses unknown subcommands


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.Z or args.z is not None:
        die("svcadm", f"{'-Z' if args.Z else '-z'}: svcmgr has no zones: one daemon manages one system "
            "(choose another daemon with --root)")
    if args.cmd != "milestone":
        if args.state_filter is not None and args.fmris:
            usage(p, "-S selects the instances: give no operands with it")
        if args.state_filter is None and not args.fmris:
            usage(p, f"{args.cmd} needs at least one FMRI or pattern (or -S state)")
        if args.cmd == "mark" and args.state == "degraded" and args.t:
            die("svcadm", "-t may not be used with degraded.", EXIT_USAGE)
        if args.cmd == "clear" and args.state_filter not in (None, "maintenance", "degraded"):
            die("svcadm", "State must be 'maintenance' or 'degraded'")
    return run("svcadm", lambda: execute(args))


if __name__ == "__main__":
    sys.exit(main())
