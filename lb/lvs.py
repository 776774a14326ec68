"""keepalived ``virtual_server`` (LVS) blocks for the same frontends, for hosts that have ``ip_vs``.

These machines have no ``ip_vs`` module, so LVS cannot carry traffic here: the rendering
is only checked with ``keepalived -t`` (which accepts it without the module) and shown
by ``lbadm show-config --lvs``. Only backends with an IP address are rendered (LVS does
not resolve names); HAProxy's balance algorithms map to the nearest IPVS scheduler.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from lb.model import Frontend
from svcmgr.files import find_binary
from svcmgr.process import CommandRunner
from svcmgr.rendered import Templates

__all__ = ["SCHEDULERS", "check", "render"]

#: HAProxy's balance -> IPVS scheduler (first and random have no IPVS twin: round robin).
SCHEDULERS = {"roundrobin": "rr", "static-rr": "wrr", "leastconn": "lc", "source": "sh", "first": "rr",
              "random": "rr"}
#: lvs.conf's template (lb/templates), every value printed one plain token.
TEMPLATES = Templates("lb", "keepalived's configuration", "keepalived", re.compile(r"^[A-Za-z0-9_.:-]+\Z"),
                      "'_', '.', ':', '-'")


def _seconds(s: float) -> str:
    return str(max(1, round(s)))


def render(frontends: Sequence[Frontend], *, node: str) -> str:
    """The virtual_server blocks of these frontends. Raises RenderError for an unsafe value."""
    items = []
    for f in frontends:
        servers = []
        for s in f.servers:
            try:
                ip = ipaddress.ip_address(s.host)
            except ValueError:
                continue  # a DNS name: LVS takes addresses only
            servers.append({"ip": str(ip), "port": str(s.port), "weight": str(s.weight)})
        items.append({"ip": str(f.bind), "port": str(f.port), "algo": SCHEDULERS[f.balance],
                      "delay": _seconds(f.check_interval), "connect": _seconds(f.timeout_connect),
                      "servers": servers})
    return TEMPLATES.render("lvs.conf.j2", node=node, frontends=items)


async def check(run: CommandRunner, path: str) -> str | None:
    """``keepalived -t`` on the rendering: None when it passes, else why (or that keepalived is absent)."""
    binary = find_binary("keepalived")
    if binary is None:
        return "keepalived is not installed: the LVS rendering is not checked"
    status, out = await run([binary, "--config-test", "--use-file", path], timeout=20.0)
    if status is not None and status.code == 0:
        return None
    lines = [ln.strip() for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    return "keepalived -t: " + ("\n".join(lines[-10:]) or f"exit status {status.code if status else 'timeout'}")
