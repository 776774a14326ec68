"""Where the daemon keeps its state: one folder with ``--root``, else the system paths. A leaf module.

The commands find the daemon through ``--root DIR``, then ``SVCMGR_ROOT``, then the
system socket, then the folder that the last daemon started with ``--root`` by this
user registered (so a second shell needs no flags).

The state folders must be the daemon's own (``svcmgr.safefs``): a ``--root`` that
another user made, or can write to, is refused with the reason, and an existing one
keeps its mode. The registration lives in ``$XDG_RUNTIME_DIR/svcmgr``, else in
``/tmp/svcmgr-UID/svcmgr`` (mode 0700), and is written and believed only when each of those
folders is the user's own and nobody else may write to it (checked with ``lstat``): a
folder another user created first in ``/tmp`` is ignored.
"""

from __future__ import annotations

import os
import stat
import sys
from collections import namedtuple

from svcmgr.safefs import UnsafePath, check_dir, check_parents, make_dir

__all__ = ["Paths", "read_registration", "register", "registration_dir", "resolve_root", "shipped", "unregister"]

SYSTEM_RUN = "/run/svcmgr"
SYSTEM_LIB = "/var/lib/svcmgr"
SYSTEM_LOG = "/var/log/svcmgr"
SOCKET_NAME = "svcmgr.sock"


class Paths(namedtuple("Paths", ("root", "run", "lib", "log"))):
    """The daemon's folders: ``root`` (None: the system paths), ``run``, ``lib`` and ``log``. What
    ``typing.NamedTuple`` makes, from ``collections``: the commands start without typing (2-4 ms,
    ``svcmgr.client``), nor dataclasses and inspect (``fmri._Frozen``)."""

    __slots__ = ()
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
        """Create the state folders, or check that the existing ones are the daemon's own and no one
        else may write to them; raises UnsafePath saying which and why. An existing folder keeps
        its mode."""
        top = self.root if self.root is not None else self.run
        check_parents(top)
        if self.root is not None:
            make_dir(self.root, 0o755)
        else:
            for d in (self.lib, self.log):
                check_parents(d)
        for d, mode in ((self.run, 0o755), (self.lib, 0o700), (self.log, 0o755), (self.fifos, 0o700)):
            make_dir(d, mode)


def registration_dir(*, create: bool = False) -> str:
    """This user's folder for the registration; raises UnsafePath when it (or the folder above it) is
    not a real folder of this user's that only this user may write to. ``create`` makes the folders
    (mode 0700), and takes back what an older svcmgr left open to others in a folder of this user's."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    base = xdg or f"/tmp/svcmgr-{os.getuid()}"
    folder = os.path.join(base, "svcmgr")
    for d in (base, folder):
        if create and d != xdg:
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:
                _make_private(d)
        check_dir(d, uid=os.getuid())
    return folder


def _make_private(path: str) -> None:
    """Mode 0700 for a folder, if it is a real folder of this user's (opened without following a link)."""
    # try/except, not contextlib.suppress, here and below: the commands start without contextlib (svcmgr.client)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_uid == os.getuid():
                os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    except OSError:
        pass


def register(root: str) -> None:
    """Record ``root`` as the daemon this user started last (raises OSError, UnsafePath saying why not)."""
    path = os.path.join(registration_dir(create=True), "root")
    tmp = f"{path}.{os.getpid()}"
    try:
        os.unlink(tmp)  # left by an earlier process of this pid
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (root + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_registration() -> str | None:
    """The root this user registered last, if its folders and file are the user's own; else None."""
    try:
        path = os.path.join(registration_dir(), "root")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return None
        return os.read(fd, 4096).decode(errors="replace").strip() or None
    finally:
        os.close(fd)


def unregister(root: str) -> None:
    """Forget ``root`` if it is still this user's registration."""
    if read_registration() == root:
        try:
            os.unlink(os.path.join(registration_dir(), "root"))
        except (OSError, UnsafePath):
            pass


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
    root = read_registration()
    if root and os.path.exists(Paths.for_root(root).socket):
        return Paths.for_root(root)
    return system


def shipped(*parts: str) -> str | None:
    """A file or folder shipped under ``manifests/`` (rules, system services): in the source tree
    beside the packages, else where ``pip install`` put the data files (``<prefix>/share/svcmgr``)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for base in (os.path.join(here, "manifests"), os.path.join(sys.prefix, "share", "svcmgr", "manifests"),
                 "/usr/share/svcmgr/manifests"):
        p = os.path.join(base, *parts)
        if os.path.exists(p):
            return p
    return None
