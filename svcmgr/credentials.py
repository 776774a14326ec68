"""A method's credentials: resolved in the daemon, applied in the child between fork and exec.

``Credentials.resolve`` turns a method context (``svcmgr.manifest.Context``) into what
the child must do; ``apply`` does it, with system calls only (``prctl``, ``capset``
through ctypes: no C compiler, no ``setpriv``), in this order:

1. join the instance's v1 resource-control groups (``svcmgr.rctl``), while still root;
2. rlimits, then the umask;
3. drop from the bounding set what ``limit_privileges`` leaves out (needs
   ``CAP_SETPCAP``; a daemon without it sets ``no_new_privs`` instead, which keeps
   every privilege out as surely);
4. for a root method with ``privileges``: the ``NOROOT`` secure bits, locked, so that
   uid 0 keeps only what it is granted across ``exec``;
5. keep capabilities across ``setuid`` (``PR_SET_KEEPCAPS``), then supplemental
   groups, group, user;
6. permitted = effective = inheritable = the grant, and each granted capability raised
   as *ambient*, the only way a non-root process keeps one across ``exec``;
7. ``PR_SET_NO_NEW_PRIVS`` (default on for a method whose user is set and not root).

A method that asks for none of this needs nothing in the child (``needs_child`` is
false), so the spawn keeps its fast path. Grants are cut to what svcmgrd itself
holds; ``notes`` says what was asked and not held, for the instance log.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import resource
from dataclasses import dataclass, field, replace
from functools import cache

from svcmgr import privileges
from svcmgr.security import NO_SECURITY, RLIMITS, Security

__all__ = ["Credentials", "held", "proc_status"]

PR_SET_KEEPCAPS = 8
PR_SET_SECUREBITS = 28
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
SECBIT_NOROOT = 1 << 0
SECBIT_NOROOT_LOCKED = 1 << 1
CAPABILITY_VERSION_3 = 0x20080522
CAP_SETPCAP = 8
RESOURCE_CAP = 24  # CAP_SYS_RESOURCE: raising a hard rlimit


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


@cache
def _libc() -> ctypes.CDLL:
    lib = ctypes.CDLL(None, use_errno=True)
    lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return lib


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _prctl(op: int, a: int = 0, b: int = 0, what: str = "prctl") -> None:
    _check(_libc().prctl(op, a, b, 0, 0), what)


def _capset(caps: int) -> None:
    hdr = _Header(CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        word = (caps >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = data[i].inheritable = word
    _check(_libc().capset(ctypes.byref(hdr), data), "capset")


def proc_status(pid: int | str = "self") -> dict[str, str]:
    """``/proc/PID/status`` as a mapping (empty when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


@cache
def held() -> tuple[frozenset[int], frozenset[int]]:
    """svcmgrd's own (permitted, bounding) capabilities, read once."""
    st = proc_status()

    def caps(key: str) -> frozenset[int]:
        v = int(st.get(key, "0"), 16)
        return frozenset(i for i in range(64) if v >> i & 1)

    return caps("CapPrm"), caps("CapBnd")


def _text(v: int) -> str:
    return "unlimited" if v == resource.RLIM_INFINITY else str(v)


def _gid(name: str) -> int:
    try:
        return grp.getgrgid(int(name)).gr_gid if name.isdigit() else grp.getgrnam(name).gr_gid
    except (KeyError, OverflowError):
        raise LookupError(f"group {name!r} does not exist") from None


@dataclass(frozen=True)
class Credentials:
    """What a method's child does before exec (None and empty: nothing, as svcmgrd)."""

    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] | None = None
    home: str | None = None
    name: str | None = None
    #: the grant: permitted, effective, inheritable and ambient (None: as exec makes it)
    caps: frozenset[int] | None = None
    #: capabilities dropped from the bounding set
    drop: frozenset[int] = frozenset()
    noroot: bool = False
    no_new_privs: bool = False
    umask: int | None = None
    rlimits: tuple[tuple[int, int, int], ...] = ()
    #: cgroup.procs files (v1 resource controls) the child joins
    join: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def resolve(cls, user: str | None, group: str | None, sec: Security = NO_SECURITY) -> Credentials:
        """Look the names up and plan the privileges; raises LookupError naming what is missing (a
        user, a group) or cannot be had (a hard rlimit above svcmgrd's own, without CAP_SYS_RESOURCE)."""
        uid = gid = None
        home = name = None
        groups: tuple[int, ...] | None = None
        if user is not None:
            try:
                pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            except (KeyError, OverflowError):
                raise LookupError(f"user {user!r} does not exist") from None
            uid, gid, home, name = pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_name
            groups = tuple(os.getgrouplist(pw.pw_name, pw.pw_gid))
        if group is not None:
            gid = _gid(group)
            if groups is None:
                groups = (gid,)
        if sec.supplemental_groups is not None:
            if os.geteuid() != 0:
                raise LookupError("supplemental_groups: only a root svcmgrd can set a method's groups")
            groups = tuple(dict.fromkeys(_gid(g) for g in sec.supplemental_groups))
            if gid is None:
                gid = os.getegid()
        base = cls(uid, gid, groups, home, name)
        if sec == NO_SECURITY and uid in (None, 0):
            return base  # nothing asked: the fast path (a non-root user still gets its defaults)
        return base._privileges(sec)

    def _privileges(self, sec: Security) -> Credentials:
        permitted, bounding = held()
        setpcap = CAP_SETPCAP in permitted
        notes: list[str] = []
        target_root = (self.uid if self.uid is not None else os.geteuid()) == 0
        drop: frozenset[int] = frozenset()
        nnp = sec.no_new_privileges if sec.no_new_privileges is not None else \
            (self.uid is not None and self.uid != 0)
        limit = sec.limit()
        if limit is not None:
            drop = bounding - limit.caps
            if drop and not setpcap:
                drop = frozenset()
                nnp = True
                notes.append("limit_privileges: svcmgrd lacks CAP_SETPCAP to narrow the bounding set; "
                             "no_new_privileges is set instead")
        caps: frozenset[int] | None = None
        granted = sec.granted()
        if granted is not None:
            caps = granted.caps & permitted & (limit.caps if limit is not None else bounding)
            missing = granted.named - permitted
            if missing:
                notes.append(f"privileges: {', '.join(privileges.cap_names(missing))} not granted: "
                             "svcmgrd does not hold them")
        elif not target_root:
            caps = frozenset()  # the default for a non-root user: basic
        rl = tuple((RLIMITS[k][0], s, h) for k, (s, h) in sorted(sec.rlimits.items()))
        if RESOURCE_CAP not in permitted:
            for (name, _), (num, _soft, hard) in zip(sorted(sec.rlimits.items()), rl, strict=True):
                own = resource.getrlimit(num)[1]
                if own != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > own):
                    raise LookupError(f"rlimits.{name}: the hard limit {_text(hard)} is above svcmgrd's own "
                                      f"({own}), which it lacks CAP_SYS_RESOURCE to raise")
        return replace(self, caps=caps, drop=drop, noroot=target_root and caps is not None and setpcap,
                       no_new_privs=nnp, umask=sec.umask, rlimits=rl, notes=tuple(notes))

    def joining(self, procs: tuple[str, ...]) -> Credentials:
        return replace(self, join=procs) if procs else self

    @property
    def changes_user(self) -> bool:
        """Whether the method's user, group or groups differ from svcmgrd's (which needs root)."""
        return (self.uid is not None and self.uid != os.geteuid()) or \
               (self.gid is not None and self.gid != os.getegid())

    @property
    def needs_child(self) -> bool:
        """Whether anything must run in the child before exec."""
        return any(v is not None for v in (self.uid, self.gid, self.groups, self.caps, self.umask)) or \
            bool(self.drop or self.no_new_privs or self.rlimits or self.join)

    def apply(self) -> None:
        """In the child, before exec: every step, in order; raises OSError naming the one that failed."""
        for procs in self.join:
            with open(procs, "w") as f:
                f.write("0")
        for num, soft, hard in self.rlimits:
            resource.setrlimit(num, (soft, hard))
        if self.umask is not None:
            os.umask(self.umask)
        for c in sorted(self.drop):
            _prctl(PR_CAPBSET_DROP, c, what=f"dropping {privileges.CAPS[c]} from the bounding set")
        if self.noroot:
            _prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, what="setting the NOROOT secure bits")
        grant = self.caps
        if grant and self.uid not in (None, 0):
            _prctl(PR_SET_KEEPCAPS, 1, what="keeping capabilities across setuid")
        if self.groups is not None and os.geteuid() == 0:
            os.setgroups(list(self.groups))
        if self.gid is not None:
            os.setgid(self.gid)
        if self.uid is not None:
            os.setuid(self.uid)
        if grant is not None:
            _capset(privileges.mask(grant))
            for c in sorted(grant):
                _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, what=f"raising {privileges.CAPS[c]} as ambient")
        if self.no_new_privs:
            _prctl(PR_SET_NO_NEW_PRIVS, 1, what="setting no_new_privs")

    def describe(self) -> dict[str, object]:
        """The plan, for svcs -l: granted and bounding capabilities by name."""
        _, bounding = held()
        return {"capabilities": None if self.caps is None else privileges.cap_names(self.caps),
                "bounding": privileges.cap_names(bounding - self.drop) if self.drop else None,
                "no_new_privileges": self.no_new_privs, "umask": None if self.umask is None else f"{self.umask:03o}",
                "notes": list(self.notes)}


def _names(ids: tuple[int, ...] | list[int], lookup: object) -> list[str]:
    out = []
    for i in ids:
        try:
            out.append(lookup(i)[0])  # type: ignore[operator]
        except (KeyError, OverflowError):
            out.append(str(i))
    return out


def live(pid: int) -> dict[str, object]:
    """A running process's credentials as the kernel has them (/proc/PID/status)."""
    st = proc_status(pid)
    if not st:
        return {}

    def caps(key: str) -> list[str]:
        return privileges.cap_names(int(st.get(key, "0"), 16))

    return {"pid": pid, "uid": int(st.get("Uid", "0").split()[1]), "gid": int(st.get("Gid", "0").split()[1]),
            "groups": [int(g) for g in st.get("Groups", "").split()], "effective": caps("CapEff"),
            "permitted": caps("CapPrm"), "ambient": caps("CapAmb"), "bounding": caps("CapBnd"),
            "no_new_privileges": st.get("NoNewPrivs", "0").strip() == "1"}


def view(user: str | None, group: str | None, sec: Security, pid: int | None = None) -> dict[str, object]:
    """What ``svcs -l`` shows of a method's credentials: declared, planned and, when running, live."""
    out: dict[str, object] = {k: v for k, v in sec.declared().items()}
    try:
        c = Credentials.resolve(user, group, sec)
    except LookupError as e:
        out["error"] = str(e)
        return out
    uid = c.uid if c.uid is not None else os.geteuid()
    gid = c.gid if c.gid is not None else os.getegid()
    out.update({"user": _names((uid,), pwd.getpwuid)[0], "uid": uid, "group": _names((gid,), grp.getgrgid)[0],
                "gid": gid, "groups": list(c.groups) if c.groups is not None else None})
    out.update(c.describe())
    if pid is not None:
        out["process"] = live(pid)
    return out
