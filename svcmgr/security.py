"""What a method may do, and what an instance may use: the manifest vocabulary, validated.

A method context (service, instance or method table) may say, beside ``user`` and
``group``:

    privileges = "basic,net_privaddr"   # illumos privileges and/or CAP_ names (svcmgr.privileges)
    limit_privileges = "basic,net_privaddr,proc_setid"   # the bounding set
    capabilities = ["CAP_NET_BIND_SERVICE"]             # the same as naming them in privileges
    no_new_privileges = true            # default: true when the method runs as a non-root user
    supplemental_groups = ["adm"]       # default: the user's groups (initgroups)
    umask = "027"
    [rlimits]                           # setrlimit(2): a number, a size, "unlimited" or [soft, hard]
    nofile = 4096

and a service or instance table may set ``[resources]``: ``memory`` (a size), ``cpu``
(CPUs, ``0.5`` or ``"50%"``) and ``tasks``. Each field set at a deeper level (method over
instance over service) replaces the one above; ``rlimits`` merge per limit. Nothing here
does I/O: applying is ``svcmgr.credentials``' job, cgroups are ``svcmgr.rctl``'s.
"""

from __future__ import annotations

import re
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from svcmgr import privileges
from svcmgr.schema import MISSING, Reader
from svcmgr.units import parse_size

__all__ = ["KEYS", "NO_RESOURCES", "NO_SECURITY", "RLIMITS", "Resources", "Security", "check", "merge",
           "read_resources", "read_security"]

#: The context keys this module reads (a table that has one of them has a context).
KEYS = ("privileges", "limit_privileges", "capabilities", "no_new_privileges", "supplemental_groups",
        "umask", "rlimits")

#: rlimit name -> (its RLIMIT_ number on Linux: Python's resource module lacks some, takes a size)
RLIMITS: dict[str, tuple[int, bool]] = {
    "cpu": (0, False), "fsize": (1, True), "data": (2, True), "stack": (3, True), "core": (4, True),
    "rss": (5, True), "nproc": (6, False), "nofile": (7, False), "memlock": (8, True), "as": (9, True),
    "locks": (10, False), "sigpending": (11, False), "msgqueue": (12, True), "nice": (13, False),
    "rtprio": (14, False), "rttime": (15, False),
}
INFINITY = resource.RLIM_INFINITY
_GROUP_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_.-]*\$?|\d+)\Z")
_UMASK_RE = re.compile(r"^0?[0-7]{1,3}\Z")
MIN_MEMORY = 1 << 20


@dataclass(frozen=True, slots=True)
class Security:
    """The security fields of one context table; None: as the level above says."""

    privileges: str | None = None
    limit_privileges: str | None = None
    capabilities: tuple[str, ...] | None = None
    no_new_privileges: bool | None = None
    supplemental_groups: tuple[str, ...] | None = None
    umask: int | None = None
    rlimits: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def granted(self) -> privileges.PrivilegeSet | None:
        """The privileges granted (None: the default, which depends on the user)."""
        if self.privileges is None and not self.capabilities:
            return None
        return privileges.parse([self.privileges or "basic", *(self.capabilities or ())])

    def limit(self) -> privileges.PrivilegeSet | None:
        return None if self.limit_privileges is None else privileges.parse(self.limit_privileges)

    def declared(self) -> dict[str, Any]:
        """The fields set, as a manifest writes them."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or (f.name == "rlimits" and not v):
                continue
            if f.name == "umask":
                v = f"{v:03o}"
            elif f.name == "rlimits":
                v = {k: [_limit_text(s), _limit_text(h)] for k, (s, h) in v.items()}
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


@dataclass(frozen=True, slots=True)
class Resources:
    """An instance's resource controls (None: no limit)."""

    memory: int | None = None  # bytes
    cpu: float | None = None  # CPUs
    tasks: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.memory, self.cpu, self.tasks))

    def declared(self) -> dict[str, Any]:
        return {k: v for k, v in (("memory", self.memory), ("cpu", self.cpu), ("tasks", self.tasks))
                if v is not None}


#: The empty context and no limits: the defaults of every table.
NO_SECURITY = Security()
NO_RESOURCES = Resources()


def merge(over: Security, under: Security) -> Security:
    """``over``'s fields where set, else ``under``'s; rlimits per limit."""
    changes: dict[str, Any] = {f.name: getattr(over, f.name) for f in fields(over)
                               if f.name != "rlimits" and getattr(over, f.name) is not None}
    if over.rlimits:
        changes["rlimits"] = {**under.rlimits, **over.rlimits}
    return replace(under, **changes) if changes else under


def check(sec: Security) -> tuple[list[tuple[str, str]], list[str]]:
    """A merged context's (errors as (field, message), warnings): privileges named outside
    limit_privileges are errors; negated basic privileges, which Linux cannot withhold, warnings."""
    errors: list[tuple[str, str]] = []
    granted, limit = sec.granted(), sec.limit()
    if granted is not None and limit is not None:
        outside = granted.named - limit.caps
        if outside:
            errors.append(("privileges", f"grants {', '.join(privileges.cap_names(outside))}, which "
                                         f"limit_privileges ({sec.limit_privileges}) leaves out"))
    warnings = []
    if granted is not None and granted.unenforced:
        warnings.append(f"privileges: {', '.join('!' + n for n in granted.unenforced)}: basic privileges "
                        "Linux grants every process; not withheld")
    return errors, warnings


def _privs(r: Reader, key: str) -> str | None:
    v = r.get(key, MISSING)
    if v is MISSING:
        return None
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        v = ",".join(v)
    if not isinstance(v, str) or len(v) > 4096:
        r.error(key, 'expected a privilege set such as "basic,net_privaddr" (or a list of names)')
        return None
    try:
        privileges.parse(v)
    except ValueError as e:
        r.error(key, str(e))
        return None
    return v.strip()


def read_security(r: Reader) -> Security:
    """The security fields of a context table (errors recorded on ``r``)."""
    privs = _privs(r, "privileges")
    limit = _privs(r, "limit_privileges")
    caps = r.strlist("capabilities", None)
    if caps is not None:
        for c in caps:
            if privileges.cap_number(c) is None:
                r.error("capabilities", f"{c!r} is not a Linux capability (such as CAP_NET_BIND_SERVICE)")
                caps = None
                break
    nnp = r.bool("no_new_privileges")
    groups = r.strlist("supplemental_groups", None, pattern=_GROUP_RE)
    umask = _umask(r)
    rlimits = _rlimits(r.table("rlimits"))
    return Security(privs, limit, tuple(caps) if caps is not None else None, nnp,
                    tuple(groups) if groups is not None else None, umask, rlimits)


def _umask(r: Reader) -> int | None:
    v = r.get("umask", MISSING)
    if v is MISSING:
        return None
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0o777:
        return v  # a TOML octal integer, 0o027
    if isinstance(v, str) and _UMASK_RE.match(v.strip()):
        return int(v.strip(), 8)
    r.error("umask", f'expected an octal mode such as "027" (or 0o027), got {v!r}')
    return None


def _limit_value(name: str, v: Any, size: bool) -> int:
    if isinstance(v, str) and v.strip().lower() in ("unlimited", "infinity"):
        return INFINITY
    if size and isinstance(v, str):
        v = parse_size(v)
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 63:
        return v
    raise ValueError(f"expected a number{', a size' if size else ''} or \"unlimited\", got {v!r}")


def _rlimits(r: Reader | None) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    if r is None:
        return out
    for name in list(r.data):
        v = r.get(name)
        if name not in RLIMITS:
            r.error(name, f"unknown resource limit (known: {', '.join(RLIMITS)})")
            continue
        pair = v if isinstance(v, list) else [v, v]
        try:
            if len(pair) != 2:
                raise ValueError(f"expected one value or [soft, hard], got {len(pair)} values")
            soft, hard = (_limit_value(name, x, RLIMITS[name][1]) for x in pair)
        except ValueError as e:
            r.error(name, str(e))
            continue
        if hard != INFINITY and (soft == INFINITY or soft > hard):
            r.error(name, f"the soft limit {_limit_text(soft)} is above the hard limit {_limit_text(hard)}")
            continue
        out[name] = (soft, hard)
    return out


def _limit_text(v: int) -> str | int:
    return "unlimited" if v == INFINITY else v


def read_resources(r: Reader | None) -> Resources | None:
    """A ``[resources]`` table (None when absent)."""
    if r is None:
        return None
    memory = r.size("memory")
    if memory is not None and memory < MIN_MEMORY:
        r.error("memory", f"{memory} bytes is below the least limit svcmgr applies (1 MiB)")
        memory = None
    cpu = _cpu(r)
    tasks = r.int("tasks", lo=1, hi=4_194_304)
    r.done()
    return Resources(memory, cpu, tasks)


def _cpu(r: Reader) -> float | None:
    v = r.get("cpu", MISSING)
    if v is MISSING:
        return None
    try:
        if isinstance(v, str) and v.strip().endswith("%"):
            n = float(v.strip()[:-1]) / 100
        elif isinstance(v, int | float) and not isinstance(v, bool):
            n = float(v)
        else:
            raise ValueError
    except ValueError:
        r.error("cpu", f'expected a number of CPUs (0.5) or a percentage ("50%"), got {v!r}')
        return None
    if not 0.01 <= n <= 4096:
        r.error("cpu", f"{v!r} is out of range: from 0.01 CPU (1%) to 4096")
        return None
    return n
