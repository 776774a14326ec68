"""Where the daemon keeps its state: one folder with ``--root``, else the system paths. A leaf module.

The commands find the daemon through ``--root DIR``, then ``SVCMGR_ROOT``, then the
system socket, then the folder that the last daemon started with ``--root`` by this
user registered (so a second shell needs no flags).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Paths", "registration_file", "resolve_root", "shipped"]

SYSTEM_RUN = "/run/svcmgr"
SYSTEM_LIB = "/var/lib/svcmgr"
SYSTEM_LOG = "/var/log/svcmgr"
SOCKET_NAME = "svcmgr.sock"


@dataclass(frozen=True)
class Paths:
    root: str | None
    run: str
    lib: str
    log: str

    @classmethod
    def for_root(cls, root: str | None) -> Paths:
        if root is None:
            return cls(None, SYSTEM_RUN, SYSTEM_LIB, SYSTEM_LOG)
        root = os.path.abspath(root)
        return cls(root, os.path.join(root, "run"), os.path.join(root, "lib"), os.path.join(root, "log"))

    @property
    def socket(self) -> str:
        return os.path.join(self.run, SOCKET_NAME)

    @property
    def notify_socket(self) -> str:
        return os.path.join(self.run, "notify.sock")

    @property
    def fifos(self) -> str:
        return os.path.join(self.run, "fifo")

    @property
    def repository(self) -> str:
        return os.path.join(self.lib, "repository.db")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.run, "svcmgrd.pid")

    def instance_log(self, log_name: str) -> str:
        return os.path.join(self.log, f"{log_name}.log")

    def make(self) -> None:
        for d in (self.run, self.lib, self.log, self.fifos):
            os.makedirs(d, exist_ok=True)
        if self.root is not None:
            os.chmod(self.root, 0o755)
        os.chmod(self.run, 0o755)


def registration_file() -> str:
    """Per-user file naming the root of the daemon this user started last."""
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/svcmgr-{os.getuid()}"
    return os.path.join(base, "svcmgr", "root")


def resolve_root(flag: str | None) -> Paths:
    """The daemon the commands should talk to."""
    if flag:
        return Paths.for_root(flag)
    env = os.environ.get("SVCMGR_ROOT")
    if env:
        return Paths.for_root(env)
    system = Paths.for_root(None)
    if os.path.exists(system.socket):
        return system
    try:
        with open(registration_file()) as f:
            root = f.read().strip()
    except OSError:
        return system
    if root and os.path.exists(Paths.for_root(root).socket):
        return Paths.for_root(root)
    return system


def shipped(*parts: str) -> str | None:
    """A file or folder shipped under ``manifests/`` (rules, system services): in the source tree
    beside the packages, else where ``pip install`` put the data files (``<prefix>/share/svcmgr``)."""
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for base in (os.path.join(here, "manifests"), os.path.join(sys.prefix, "share", "svcmgr", "manifests"),
                 "/usr/share/svcmgr/manifests"):
        p = os.path.join(base, *parts)
        if os.path.exists(p):
            return p
    return None
