"""lbadm: show this node's load-balanced frontends, their backends in HAProxy and in svcmgr.

    lbadm show [-H] [--json] [FRONTEND ...]
        FRONTEND BIND SERVER ADDRESS SVC LB STATUS CUR FMRI, one backend a line: the
        frontend and its listen address, HAProxy's server name and the backend's
        address, the instance's svcmgr state (with ``->next`` while it moves), the admin
        state the agent set in HAProxy (ready, drain, maint), HAProxy's own status (UP,
        DOWN, MAINT, DRAIN, ...) and current connections, and the instance. A rejected
        configuration is reported after the table (the frontends shown are the ones
        HAProxy runs).
    lbadm show-config [--rejected | --lvs]
        The haproxy.cfg HAProxy runs (or the last one its check refused, or the keepalived
        virtual_server rendering of the same frontends, for hosts with ip_vs).

Where HAProxy is not installed, both say so in one line and exit 1.
Socket requests: ``lb.show`` ``{"names": [...]}``, ``lb.config`` ``{"rejected": bool, "lvs": bool}``.
"""

from __future__ import annotations

import sys
from typing import Any

from svcmgr.cli import daemonadm
from svcmgr.cli.common import Parser, add_root, call_component, print_json, table
from svcmgr.cli.daemonadm import config_notes

PROG = "lbadm"
HEADERS = ["FRONTEND", "BIND", "SERVER", "ADDRESS", "SVC", "LB", "STATUS", "CUR", "FMRI"]


def parser() -> Parser:
    p = Parser(prog=PROG, description="Show the load-balanced frontends (HAProxy) run by svcmgr on this node.")
    add_root(p)
    sub = p.add_subparsers(dest="cmd", metavar="SUBCOMMAND", parser_class=Parser)
    s = sub.add_parser("show", help="list each frontend's backends: svcmgr state, HAProxy state, connections")
    s.add_argument("-H", action="store_true", help="omit the header line")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("names", nargs="*", metavar="FRONTEND")
    c = sub.add_parser("show-config", help="print the HAProxy configuration that runs")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--rejected", action="store_true", help="print the last configuration that failed its check")
    g.add_argument("--lvs", action="store_true", help="print the keepalived virtual_server (LVS) rendering")
    c.add_argument("--json", action="store_true", help="print JSON")
    return p


def _call(args: Any, op: str, **kw: Any) -> dict[str, Any]:
    return call_component(PROG, args, op, "load balancing", **kw)


def _svc(s: dict[str, Any]) -> str:
    return s["svc_state"] + (f"->{s['svc_next_state']}" if s.get("svc_next_state") else "")


def show(args: Any) -> int:
    out = _call(args, "lb.show", names=args.names)
    if args.json:
        print_json(out)
        return 0
    rows = []
    for f in out["frontends"]:
        for s in f["servers"]:
            h = s["haproxy"] or {}
            rows.append([f["name"], f["bind"], s["name"], s["address"], _svc(s), s["sent"] or "-",
                         h.get("status") or "-", str(h.get("scur", "-")), s["fmri"]])
    text = table(rows, None if args.H else HEADERS)
    if text:
        print(text)
    config_notes(PROG, out, "HAProxy", running=bool(out["frontends"]),
                 errors=[("stats_error", "HAProxy's Runtime API")])
    return 0


def show_config(args: Any) -> int:
    out = _call(args, "lb.config", rejected=args.rejected, lvs=args.lvs)
    code = daemonadm.show_config(PROG, out, rejected=args.rejected, json=args.json, none_yet="no configuration yet",
                                 other=args.lvs)
    if args.lvs and not args.json and out.get("lvs_error"):
        print(f"{PROG}: {out['lvs_error']}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    return daemonadm.main(PROG, parser, {"show": show, "show-config": show_config}, argv)


if __name__ == "__main__":
    sys.exit(main())
