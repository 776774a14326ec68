"""HAProxy's side: where its files live, rendering its configuration, checking it, reloading it.

``render`` fills the jinja2 template shipped in ``lb/templates`` (StrictUndefined) with
values that ``lb.model`` validated; on output every value is checked once more against a
plain-token pattern, so even a value that slipped past validation cannot carry HAProxy
syntax. ``check_argv`` is ``haproxy -c``. HAProxy runs in master-worker mode (``-Ws``);
``reload`` sends SIGUSR2 to the master whose pid file names a process of the service's
contract, and callers write the server-state file first (``Layout.state_file``) so that
admin states (maint, drain) survive the reload (haproxy issues #2085, #199).
"""

from __future__ import annotations

import os
import pwd
import re
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lb.model import Frontend
from svcmgr.files import find_binary
from svcmgr.rendered import Files, RenderError, Templates, signal_daemon
from svcmgr.rendered import check_output as rendered_output

__all__ = ["SERVICE", "Layout", "RenderError", "check_argv", "check_output", "find_haproxy", "ms", "reload",
           "render"]

#: The service that runs HAProxy (manifests/system/haproxy.toml).
SERVICE = "svc:/network/haproxy:default"
#: An unprivileged account for HAProxy's workers, used when it exists and the daemon is root.
USER = "haproxy"
#: An old worker's connections (after a reload, or a soft stop) may last this long at most when no
#: frontend says otherwise; with frontends, the longest drain_timeout.
HARD_STOP_AFTER = 30.0



@dataclass(frozen=True)
class Layout(Files):
    """HAProxy's files, under the daemon's state folders (the manifest uses the same names)."""

    FOLDER, CONF, PID = "lb", "haproxy.cfg", "haproxy.pid"

    @property
    def state_file(self) -> str:
        """``show servers state``, written before every reload and after every change of admin state."""
        return os.path.join(self.lib, "server-state")

    @property
    def lvs(self) -> str:
        """keepalived ``virtual_server`` blocks for the same frontends (hosts with ip_vs; see lb.lvs)."""
        return os.path.join(self.lib, "keepalived-lvs.conf")

    @property
    def socket(self) -> str:
        """The Runtime API (stats socket, mode 0600, level admin)."""
        return os.path.join(self.run, "admin.sock")

    def make(self) -> None:
        for d in (self.lib, self.run):
            os.makedirs(d, mode=0o700, exist_ok=True)
            os.chmod(d, 0o700)


def find_haproxy(configured: str | None = None) -> str | None:
    """The haproxy binary: the configured one, else from PATH and the sbin folders; None if absent."""
    return find_binary("haproxy", configured)


# --------------------------------------------------------------------------- rendering


def ms(seconds: float) -> str:
    """A duration as HAProxy reads it: whole milliseconds."""
    return f"{max(1, round(seconds * 1000))}ms"


#: haproxy.cfg's template (lb/templates), every value printed one plain token.
TEMPLATES = Templates("lb", "haproxy.cfg", "HAProxy", re.compile(r"^[A-Za-z0-9_.:/+\[\]-]+\Z"),
                      "'_', '.', ':', '/', '+', '-', '[', ']'")


def _user() -> str:
    if os.geteuid() != 0:
        return ""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return ""
    return USER


def render(frontends: Sequence[Frontend], *, node: str, layout: Layout) -> str:
    """The haproxy.cfg text for these frontends. Raises RenderError for an unsafe value."""
    items = []
    for f in frontends:
        items.append({
            "name": f.name, "mode": f.mode, "bind": f.listen, "balance": f.balance, "idempotent": f.idempotent,
            # A virtual address is on this node only while it is master: bind it anyway (IP_TRANSPARENT).
            "transparent": not f.bind.is_unspecified and os.geteuid() == 0,
            "timeout_client": ms(f.timeout_client), "timeout_connect": ms(f.timeout_connect),
            "timeout_server": ms(f.timeout_server), "check": f.check, "check_path": f.check_path,
            "check_interval": ms(f.check_interval), "rise": str(f.rise), "fall": str(f.fall),
            "slowstart": ms(f.slowstart) if f.slowstart else "",
            "servers": [{"name": s.name, "address": s.address, "weight": str(s.weight)} for s in f.servers],
        })
    user = _user()
    return TEMPLATES.render("haproxy.cfg.j2",
        node=node, socket=layout.socket, state_file=layout.state_file,
        hard_stop=ms(max((f.drain_timeout for f in frontends), default=HARD_STOP_AFTER) or 1.0),
        user=user, group=user, frontends=items)


# --------------------------------------------------------------------------- the process


def check_argv(binary: str, path: str) -> list[str]:
    """``haproxy -c``: exit 0 when the file is good."""
    return [binary, "-c", "-f", path]


def check_output(text: bytes | str) -> str:
    """HAProxy's complaints, trimmed to the lines worth showing."""
    return rendered_output(text, "haproxy -c failed without a message", lambda line: "[NOTICE]" in line)


def reload(layout: Layout, contract_pids: Iterable[int]) -> int | None:
    """SIGUSR2 to HAProxy's master, if its pid file names a process of the service; the pid, or None."""
    return signal_daemon(layout.pidfile, contract_pids, signal.SIGUSR2)
