"""vrrpadm: show this node's VRRP routers and keepalived's configuration, as illumos' vrrpadm does.

    vrrpadm show-router [-H] [--json] [NAME ...]
        NAME STATE PRIO EPRIO VRID IFACE ADV PEERS LAST VIRTUAL_IPS, one router a line:
        the instance, keepalived's state (init, master, backup, fault, stop), the
        configured and effective priority, the virtual router id, the interface, the
        advert interval, the unicast peers (or multicast), the time of the last
        transition and the virtual addresses. A rejected configuration is reported
        after the table (the routers shown are the ones keepalived runs).
    vrrpadm show-config [--rejected]
        The keepalived.conf keepalived runs (or the last one its check refused).

Where keepalived is not installed, both say so in one line and exit 1.
Socket requests: ``vrrp.show`` ``{"names": [...]}``, ``vrrp.config`` ``{"rejected": bool}``.
"""

from __future__ import annotations

import sys
from typing import Any

from svcmgr.cli import daemonadm
from svcmgr.cli.common import Parser, add_root, call_component, print_json, stime, table
from svcmgr.cli.daemonadm import config_notes

PROG = "vrrpadm"


def parser() -> Parser:
    p = Parser(prog=PROG, description="Show VRRP routers (keepalived) run by svcmgr on this node.")
    add_root(p)
    sub = p.add_subparsers(dest="cmd", metavar="SUBCOMMAND", parser_class=Parser)
    s = sub.add_parser("show-router", help="list the VRRP routers: state, priority, addresses, peers")
    s.add_argument("-H", action="store_true", help="omit the header line")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("names", nargs="*", metavar="NAME")
    c = sub.add_parser("show-config", help="print the keepalived configuration that runs")
    c.add_argument("--rejected", action="store_true", help="print the last configuration that failed its check")
    c.add_argument("--json", action="store_true", help="print JSON")
    return p


def _call(args: Any, op: str, **kw: Any) -> dict[str, Any]:
    return call_component(PROG, args, op, "VRRP", **kw)


def _adv(seconds: float) -> str:
    return f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"


def show_router(args: Any) -> int:
    out = _call(args, "vrrp.show", names=args.names)
    if args.json:
        print_json(out)
        return 0
    rows = []
    for r in out["routers"]:
        rows.append([r["name"], r["state"].upper(), str(r["configured_priority"]), str(r["effective_priority"]),
                     str(r["router_id"]), r["interface"], _adv(r["advert_interval"]), ",".join(r["peers"]),
                     stime(r["last_transition_epoch"]), ",".join(r["addresses"])])
    headers = None if args.H else ["NAME", "STATE", "PRIO", "EPRIO", "VRID", "IFACE", "ADV", "PEERS", "LAST",
                                   "VIRTUAL_IPS"]
    text = table(rows, headers)
    if text:
        print(text)
    config_notes(PROG, out, "keepalived", running=bool(out["routers"]))
    return 0


def show_config(args: Any) -> int:
    out = _call(args, "vrrp.config", rejected=args.rejected)
    return daemonadm.show_config(PROG, out, rejected=args.rejected, json=args.json,
                                 none_yet="no keepalived configuration yet")


def main(argv: list[str] | None = None) -> int:
    return daemonadm.main(PROG, parser, {"show-router": show_router, "show-config": show_config}, argv)


if __name__ == "__main__":
    sys.exit(main())
