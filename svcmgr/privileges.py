"""illumos privileges (``privileges(7)``) as Linux capabilities. A leaf module: no I/O.

SMF's ``method_credential`` grants privileges by name: ``basic,net_privaddr``,
``zone,!proc_owner``, ``all``. Each illumos privilege is listed here once with the
Linux capabilities it needs, or with none and the reason nothing is needed on Linux
(a basic privilege every Linux process holds, or a facility Linux does not have).
A set expression is read as illumos' ``priv_str_to_set`` reads it: comma-separated
tokens, left to right; ``basic``, ``zone``, ``all`` add a set, ``none`` empties it,
``!name`` (or ``-name``) takes one out; names are case-insensitive and may carry
``priv_``. Linux capability names (``CAP_NET_BIND_SERVICE``) are accepted beside them.

A negated privilege withholds every capability it maps to, even when another privilege
of the set maps to the same one (``zone,!sys_mount`` withholds ``CAP_SYS_ADMIN``):
what an author takes away stays away. A negated basic privilege has nothing to take
away on Linux; ``PrivilegeSet.unenforced`` names it so that the import can say so.

``python -m svcmgr.privileges`` prints the table of ``docs/manifests.md``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "BASIC",
    "CAPS",
    "PRIVILEGES",
    "SETS",
    "PrivilegeSet",
    "cap_names",
    "cap_number",
    "markdown_table",
    "mask",
    "parse",
    "summary",
]

#: Linux capabilities by number (linux/capability.h, up to CAP_CHECKPOINT_RESTORE = 40).
CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
_CAP_NUM = {n: i for i, n in enumerate(CAPS)}

_BASIC = "basic: every Linux process may"
_TX = "Trusted Extensions labels: Linux has none"
_X = "the X server's own policy (Trusted Extensions): nothing in the kernel"

#: Every privilege of illumos-gate's priv_defs: name -> (capabilities, why none when empty).
PRIVILEGES: dict[str, tuple[tuple[str, ...], str]] = {
    "contract_event": ((), "process contracts: svcmgr tracks processes itself"),
    "contract_identity": ((), "process contracts: svcmgr tracks processes itself"),
    "contract_observer": ((), "process contracts: svcmgr tracks processes itself"),
    "cpc_cpu": (("CAP_PERFMON",), ""),
    "dtrace_kernel": (("CAP_PERFMON", "CAP_BPF"), ""),
    "dtrace_proc": (("CAP_PERFMON",), ""),
    "dtrace_user": (("CAP_PERFMON",), ""),
    "file_chown": (("CAP_CHOWN",), ""),
    "file_chown_self": (("CAP_CHOWN",), ""),
    "file_dac_execute": (("CAP_DAC_OVERRIDE",), ""),
    "file_dac_read": (("CAP_DAC_READ_SEARCH",), ""),
    "file_dac_search": (("CAP_DAC_READ_SEARCH",), ""),
    "file_dac_write": (("CAP_DAC_OVERRIDE",), ""),
    "file_downgrade_sl": ((), _TX),
    "file_flag_set": (("CAP_LINUX_IMMUTABLE",), ""),
    "file_link_any": ((), _BASIC + " (fs.protected_hardlinks decides, for every process)"),
    "file_owner": (("CAP_FOWNER",), ""),
    "file_read": ((), _BASIC),
    "file_setid": (("CAP_FSETID",), ""),
    "file_upgrade_sl": ((), _TX),
    "file_write": ((), _BASIC),
    "graphics_access": (("CAP_SYS_ADMIN",), ""),
    "graphics_map": (("CAP_SYS_RAWIO",), ""),
    "hyprlofs_control": ((), "hyprlofs: a SmartOS file system Linux does not have"),
    "ipc_dac_read": (("CAP_IPC_OWNER",), ""),
    "ipc_dac_write": (("CAP_IPC_OWNER",), ""),
    "ipc_owner": (("CAP_IPC_OWNER",), ""),
    "net_access": ((), _BASIC),
    "net_bindmlp": ((), _TX),
    "net_icmpaccess": ((), "ICMP echo sockets need none (net.ipv4.ping_group_range); raw ICMP is net_rawaccess"),
    "net_mac_aware": ((), _TX),
    "net_mac_implicit": ((), _TX),
    "net_observability": (("CAP_NET_RAW",), ""),
    "net_privaddr": (("CAP_NET_BIND_SERVICE",), ""),
    "net_rawaccess": (("CAP_NET_RAW",), ""),
    "proc_audit": (("CAP_AUDIT_WRITE",), ""),
    "proc_chroot": (("CAP_SYS_CHROOT",), ""),
    "proc_clock_highres": ((), "high-resolution timers are open to every Linux process"),
    "proc_exec": ((), _BASIC),
    "proc_fork": ((), _BASIC),
    "proc_info": ((), _BASIC + " (/proc's hidepid decides, for every process)"),
    "proc_lock_memory": (("CAP_IPC_LOCK",), ""),
    "proc_meminfo": ((), "/proc/meminfo is readable by every Linux process"),
    "proc_owner": (("CAP_KILL", "CAP_SYS_PTRACE"), ""),
    "proc_prioup": (("CAP_SYS_NICE",), ""),
    "proc_priocntl": (("CAP_SYS_NICE",), ""),
    "proc_secflags": ((), _BASIC + " (a process's own security flags)"),
    "proc_session": ((), _BASIC),
    "proc_setid": (("CAP_SETUID", "CAP_SETGID"), ""),
    "proc_taskid": ((), "tasks and projects: svcmgr's resource controls take their place"),
    "proc_zone": ((), "zones: Linux has namespaces, which svcmgr does not enter"),
    "sys_acct": (("CAP_SYS_PACCT",), ""),
    "sys_admin": (("CAP_SYS_ADMIN",), ""),
    "sys_audit": (("CAP_AUDIT_CONTROL", "CAP_AUDIT_READ"), ""),
    "sys_config": (("CAP_SYS_ADMIN",), ""),
    "sys_devices": (("CAP_SYS_RAWIO", "CAP_MKNOD"), ""),
    "sys_dl_config": (("CAP_NET_ADMIN",), ""),
    "sys_fs_import": (("CAP_SYS_ADMIN",), ""),
    "sys_ip_config": (("CAP_NET_ADMIN",), ""),
    "sys_ipc_config": (("CAP_SYS_RESOURCE",), ""),
    "sys_iptun_config": (("CAP_NET_ADMIN",), ""),
    "sys_linkdir": ((), "Linux links no directory, whatever the privileges"),
    "sys_mount": (("CAP_SYS_ADMIN",), ""),
    "sys_net_config": (("CAP_NET_ADMIN",), ""),
    "sys_nfs": ((), "ports 2049 and 4045 are unprivileged on Linux; its NFS server is in the kernel"),
    "sys_ppp_config": (("CAP_NET_ADMIN",), ""),
    "sys_res_bind": (("CAP_SYS_NICE",), ""),
    "sys_res_config": (("CAP_SYS_NICE",), ""),
    "sys_resource": (("CAP_SYS_RESOURCE",), ""),
    "sys_smb": (("CAP_NET_BIND_SERVICE",), ""),
    "sys_suser_compat": ((), "third-party illumos kernel modules only"),
    "sys_time": (("CAP_SYS_TIME",), ""),
    "sys_trans_label": ((), _TX),
    "virt_manage": ((), "/dev/kvm's permissions decide on Linux"),
    "win_colormap": ((), _X),
    "win_config": ((), _X),
    "win_dac_read": ((), _X),
    "win_dac_write": ((), _X),
    "win_devices": ((), _X),
    "win_dga": ((), _X),
    "win_downgrade_sl": ((), _X),
    "win_fontpath": ((), _X),
    "win_mac_read": ((), _X),
    "win_mac_write": ((), _X),
    "win_selection": ((), _X),
    "win_upgrade_sl": ((), _X),
    "xvm_control": ((), "xVM: an illumos hypervisor"),
}
BASIC = frozenset(n for n, (_, why) in PRIVILEGES.items() if why.startswith(_BASIC))
SETS = {"basic": "what an ordinary Linux process has: no capability",
        "zone": "everything (Linux has no zones: the same as all)",
        "all": "every capability (within what svcmgrd itself holds)",
        "none": "nothing, not even basic (on Linux: the same as basic)"}
_ALL_CAPS = frozenset(range(len(CAPS)))


class PrivilegeSet(NamedTuple):  # not a dataclass: svcs imports this module (fmri._Frozen)
    """A parsed privilege expression, as capabilities."""

    caps: frozenset[int]
    #: capabilities named (or reached through a named privilege), not reached through all or zone
    named: frozenset[int]
    #: negated basic privileges: Linux lets every process do these, so they are not withheld
    unenforced: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return cap_names(self.caps)


def cap_number(name: str) -> int | None:
    """``CAP_NET_RAW`` (any case, ``CAP_`` optional only with it) -> 13; None if unknown."""
    return _CAP_NUM.get(name.upper())


def cap_names(caps: frozenset[int] | set[int] | int) -> list[str]:
    """Capability numbers (a set or a bit mask) as names, in number order."""
    if isinstance(caps, int):
        caps = {i for i in range(64) if caps >> i & 1}
    return [CAPS[i] if i < len(CAPS) else f"cap_{i}" for i in sorted(caps)]


def summary(names: list[str] | tuple[str, ...] | None) -> str:
    """Capability names, short: ``none``, ``all``, ``all but CAP_SYS_RESOURCE``, or the names."""
    if names is None:
        return "as svcmgrd"
    if not names:
        return "none"
    missing = [c for c in CAPS if c not in names]
    if not missing:
        return "all"
    if len(missing) < len(names):
        return "all but " + ",".join(missing)
    return ",".join(names)


def mask(caps: frozenset[int] | set[int]) -> int:
    out = 0
    for c in caps:
        out |= 1 << c
    return out


def _token(tok: str) -> tuple[str, frozenset[int]] | None:
    """A privilege or capability token (no sign) -> (its normal name, its capabilities)."""
    low = tok.lower()
    if low.startswith("cap_"):
        n = cap_number(tok)
        return None if n is None else (CAPS[n], frozenset({n}))
    if low.startswith("priv_"):
        low = low[5:]
    entry = PRIVILEGES.get(low)
    if entry is None:
        return None
    return low, frozenset(_CAP_NUM[c] for c in entry[0])


def parse(expr: str | list[str] | tuple[str, ...]) -> PrivilegeSet:
    """A privilege expression (``"basic,net_privaddr"``, or a list of tokens). Raises ValueError
    naming the first unknown token."""
    tokens = [t.strip() for part in ([expr] if isinstance(expr, str) else expr) for t in part.split(",")]
    have: set[str] = set()  # privilege and capability tokens in the set
    full = False  # all or zone: every capability
    negated: set[str] = set()
    for tok in tokens:
        if not tok:
            continue
        low = tok.lower()
        if low in ("all", "zone"):
            full = True
            negated.clear()
            continue
        if low == "none":
            full = False
            have.clear()
            negated.clear()
            continue
        if low == "basic":
            have |= BASIC
            negated -= BASIC
            continue
        neg = tok[0] in "!-"
        body = tok[1:] if neg or tok[0] == "+" else tok
        found = _token(body)
        if found is None:
            raise ValueError(f"{body!r} is not an illumos privilege (privileges(7)) nor a Linux capability")
        name = found[0]
        if neg:
            have.discard(name)
            negated.add(name)
        else:
            have.add(name)
            negated.discard(name)
    named = frozenset().union(*(_caps_of(n) for n in have))
    withheld = frozenset().union(*(_caps_of(n) for n in negated))
    caps = (_ALL_CAPS if full else named) - withheld
    unenforced = tuple(sorted(n for n in negated if n in BASIC))
    return PrivilegeSet(caps, named - withheld, unenforced)


def _caps_of(name: str) -> frozenset[int]:
    found = _token(name)
    return found[1] if found else frozenset()


def markdown_table() -> str:
    """The privilege table of docs/manifests.md, from ``PRIVILEGES`` (the one source)."""
    lines = ["| illumos privilege | Linux | |", "| --- | --- | --- |"]
    for name, desc in SETS.items():
        lines.append(f"| `{name}` | (a set) | {desc} |")
    for name, (caps, why) in sorted(PRIVILEGES.items()):
        linux = ", ".join(f"`{c}`" for c in caps) if caps else "nothing needed here"
        lines.append(f"| `{name}` | {linux} | {why} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
