"""keepalived's side: where its files live, rendering its configuration, checking it, reloading it.

``render`` fills the jinja2 template shipped in ``vrrp/templates`` (StrictUndefined)
with values that ``vrrp.model`` validated; on output every value is checked once
more against a plain-token pattern, so even a value that slipped past validation
cannot carry keepalived syntax. ``write_atomic`` replaces a file in one rename.
``check_argv`` is the ``keepalived --config-test`` command (run it where the
interfaces exist: in the daemon's own network namespace). ``reload`` sends SIGHUP
to the keepalived whose pid file names a process of the service's contract;
callers reload only after a check passed, since a SIGHUP with a bad
configuration makes keepalived exit and leave its addresses behind.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from svcmgr.files import find_binary, read_pid, read_text, write_atomic
from svcmgr.rendered import Files, RenderError, Templates, signal_daemon
from svcmgr.rendered import check_output as rendered_output
from vrrp.model import VrrpInstance, track_name

__all__ = ["HOLD", "MOVE_WEIGHT", "SERVICE", "Layout", "RenderError", "check_argv", "drop_addresses", "find_keepalived",
           "read_pid", "read_text", "reload", "render", "track_value", "write_atomic"]

log = logging.getLogger("vrrp.keepalived")

#: The service that runs keepalived (manifests/system/vrrp.toml).
SERVICE = "svc:/network/vrrp:default"
#: The track file every instance follows with weight 0: the agent's crash hold.
HOLD = "svcmgr_hold"
#: The weight of an instance's move file: 1 there drops its priority below any backup's (a planned move).
MOVE_WEIGHT = -253

_SEARCH = "/usr/sbin:/sbin:/usr/local/sbin"


@dataclass(frozen=True)
class Layout(Files):
    """keepalived's files, all under the daemon's state folders (the manifest uses the same names)."""

    FOLDER, CONF, PID = "vrrp", "keepalived.conf", "keepalived.pid"

    @property
    def track_dir(self) -> str:
        return os.path.join(self.lib, "track")

    @property
    def fifo(self) -> str:
        return os.path.join(self.run, "notify.fifo")

    @property
    def vrrp_pidfile(self) -> str:
        return os.path.join(self.run, "vrrp.pid")

    @property
    def hold(self) -> str:
        """The track file of the crash hold: 1 keeps every instance in FAULT (see the agent)."""
        return os.path.join(self.track_dir, "hold")

    def track_file(self, fmri: str) -> str:
        return os.path.join(self.track_dir, track_name(fmri))

    def move_file(self, instance: str) -> str:
        """1 while a followed service is about to stop on purpose: the address moves first (see the agent)."""
        return os.path.join(self.track_dir, f"move_{instance}")

    def make(self) -> None:
        for d in (self.lib, self.run, self.track_dir):
            os.makedirs(d, mode=0o755, exist_ok=True)


def find_keepalived(configured: str | None = None) -> str | None:
    """The keepalived binary: the configured one, else from PATH and the sbin folders; None if absent."""
    return find_binary("keepalived", configured)


# --------------------------------------------------------------------------- rendering


def _interval(seconds: float) -> str:
    """An advert interval as keepalived reads it: ``1``, ``0.1``, ``0.25``."""
    cs = round(seconds * 100)
    return str(cs // 100) if cs % 100 == 0 else f"{cs / 100:.2f}".rstrip("0")


def _seconds(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:.2f}".rstrip("0")


#: keepalived.conf's template (vrrp/templates), every value printed one plain token.
TEMPLATES = Templates("vrrp", "keepalived.conf", "keepalived", re.compile(r"^[A-Za-z0-9_.:/+-]+\Z"),
                      "'_', '.', ':', '/', '+', '-'")


def render(instances: Sequence[VrrpInstance], *, node: str, layout: Layout) -> str:
    """The keepalived.conf text for these instances. Raises RenderError for an unsafe value."""
    tracks: dict[str, dict[str, str]] = {}
    items = []
    for i in instances:
        refs = []
        for f in i.follows:
            name = track_name(f.fmri)
            tracks[name] = {"name": name, "path": layout.track_file(f.fmri)}
            refs.append({"name": name, "weight": str(f.weight)})
        items.append({
            "name": i.name, "interface": i.interface, "router_id": str(i.router_id), "version": str(i.version),
            "priority": str(i.priority), "advert_int": _interval(i.advert_interval), "preempt": i.preempt,
            "preempt_delay": _seconds(i.preempt_delay) if i.preempt_delay else "",
            "unicast_src": str(i.unicast_src) if i.unicast_src else "",
            "unicast_peers": [str(p) for p in i.unicast_peers],
            "addresses": [str(a) for a in i.addresses], "tracks": refs,
            "move": {"name": f"move_{i.name}", "path": layout.move_file(i.name), "weight": str(MOVE_WEIGHT)},
        })
    return TEMPLATES.render("keepalived.conf.j2",
        node=node, fifo=layout.fifo, hold={"name": HOLD, "path": layout.hold},
        tracks=sorted(tracks.values(), key=lambda t: t["name"]), instances=items)


def track_value(healthy: bool) -> str:
    """The content of a track file: 0 while the service is healthy, 1 when it is not."""
    return "0\n" if healthy else "1\n"


# --------------------------------------------------------------------------- files and the process


def check_argv(binary: str, path: str) -> list[str]:
    """``keepalived --config-test``: exit 0 when the file is good; ``-e`` makes a missing file an error."""
    return [binary, "--config-test", "--all-config", "--use-file", path]


def check_output(text: bytes | str) -> str:
    """keepalived's complaints, trimmed to the lines worth showing."""
    return rendered_output(text, "keepalived --config-test failed without a message")


def drop_addresses(instances: Iterable[VrrpInstance]) -> None:
    """Remove these instances' virtual addresses from their interfaces (what a dead keepalived left).

    A clean stop removes them itself; a crash (SIGKILL) leaves them, and the node keeps
    answering on them beside the new master until keepalived runs again, or for good if
    it does not. Call it only while keepalived is not running."""
    cmds = [f"address del {a} dev {i.interface}\n" for i in instances for a in i.addresses]
    ip = shutil.which("ip", path=os.environ.get("PATH", "") + os.pathsep + _SEARCH)
    if not cmds or ip is None:
        return
    try:
        subprocess.run([ip, "-force", "-batch", "-"], input="".join(cmds), capture_output=True, text=True,
                       timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("could not remove the addresses keepalived left behind: %s", e)


def reload(layout: Layout, contract_pids: Iterable[int]) -> int | None:
    """SIGHUP to keepalived's parent, if its pid file names a process of the service; the pid, or None."""
    return signal_daemon(layout.pidfile, contract_pids, signal.SIGHUP)
