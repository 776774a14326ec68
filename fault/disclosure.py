"""What an ordinary caller reads of the error log and the cases: a service's log lines only with its log right, the
kernel log's only when the kernel would give them its log.

Two sources put text that not every user may read into ereports, and a case those ereports convict may quote it:
its detail (which the knowledge article's text may hold) and its history's texts.

* ``log``: a manifest's ``[[log.patterns]]`` make each line they match an ereport of source ``log`` whose payload
  holds the line. The line is the service's log, which only root and those the service grants ``log`` read
  (``svcmgr.authz``, ``svcs -xv``).
* ``kmsg``: the kernel log (``fault.sources.kmsg``) makes OOM kills and disk I/O errors ereports of its classes
  (``ereport.kernel.*``, ``ereport.io.*``) whose payloads hold the kernel's line, the killed process's pid, command,
  memory cgroup and sizes, the disk and sector. The kernel gives its log to every user only while
  ``kernel.dmesg_restrict`` is 0 (``kernel_log_open``: read when a request asks, never kept longer; unreadable:
  restricted), else to ``CAP_SYSLOG`` alone. A kernel-log ereport about a service's own process (its resource is
  the service instance) is also read by those the service grants ``log``: it is that service's failure, as its
  log is.

So for a caller who may not read the text (``Reader``):

* an error log entry of source ``log``, or of a kernel-log class (any source: ``fminject`` may post one), keeps
  its id, time, class, node, resource and source; its payload is withheld (empty);
* a case that may quote such text keeps its classes, suspects, states, times and ereports' ids; its detail (the
  article is rendered with ``(withheld)`` in its place) and its history's texts are withheld. A case may quote a
  service's log when one of its ereports has a class no confined source owns (``svcmgr.events.EREPORT_NAMESPACES``:
  log patterns report only those) on a service, and the kernel log when one of its ereports has a kernel-log class
  (on any resource); or, when it has more ereports than it keeps, when one of its rules consumes such a class (on
  its suspects and the resources it was diagnosed on), or is a cascade that may not have kept all it quoted: a new
  cascade case takes its suspects' recent ereports of any class (``fault.attribution``) before any other, so when
  every ereport it kept is a suspect's, some it did not keep may be too.

Each withheld record says which of its fields are (``withheld``) and whose text they may hold (``quotes``: the
sources, ``log`` and/or ``kmsg``), so that the commands say how many and why, once. Root and the daemon's own user
read everything. Only the caller's uid and groups are known (``SO_PEERCRED``), not its capabilities: a user with
``CAP_SYSLOG`` who is not root is an ordinary caller here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fault.cases import Case
from fault.rules import RuleSet
from svcmgr import authz
from svcmgr.api import Caller
from svcmgr.authz import Right
from svcmgr.events import EREPORT_NAMESPACES, ereport_owner
from svcmgr.services import Services

__all__ = ["DMESG_RESTRICT", "KMSG", "LOG", "WITHHELD", "Reader", "kernel_log_open", "quoted_kernel",
           "quoted_services"]

#: What a withheld text is replaced with.
WITHHELD = "(withheld)"
#: The sources whose text a record may hold (its ``quotes``): a service's log (log patterns), the kernel log.
LOG, KMSG = "log", "kmsg"
#: The sysctl by which the kernel says whether an unprivileged user may read its log.
DMESG_RESTRICT = "/proc/sys/kernel/dmesg_restrict"

_KERNEL_PREFIXES = EREPORT_NAMESPACES[KMSG]


def kernel_log_open(path: str = DMESG_RESTRICT) -> bool:
    """Whether the kernel lets every user read its log: the sysctl at ``path`` reads 0. False when it reads
    anything else or cannot be read (no /proc, a kernel without it): then the log is taken as restricted."""
    try:
        with open(path, "rb") as f:
            return f.read(16).strip() == b"0"
    except OSError:
        return False


def _unowned(pattern: str) -> bool:
    """Whether a class, or a rule's match pattern (``ereport.app.*``), may name a class no confined source owns."""
    return ereport_owner(pattern[:-1] if pattern.endswith(".*") else pattern) is None


def _kernel(pattern: str) -> bool:
    """Whether a class, or a rule's match pattern (``ereport.*``, ``ereport.io.*``), may name a kernel-log class."""
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        return any(k.startswith(prefix) or prefix.startswith(k) for k in _KERNEL_PREFIXES)
    return ereport_owner(pattern) == KMSG


def _service(resource: Any) -> bool:
    return isinstance(resource, str) and resource.startswith("svc:")


def _quoted(case: Case, rules: RuleSet, may_quote: Callable[[str], bool]) -> set[str]:
    """The resources of the ereports of classes ``may_quote`` says yes to that the case may quote."""
    out = {str(b.get("resource") or "") for b in case.ereports if may_quote(str(b.get("class", "")))}
    if case.ereport_count > len(case.ereports):  # the ereports not kept may be of other classes
        for name in {case.rule, *(d.get("rule") for d in case.diagnoses)}:
            rule = rules.by_name.get(name) if isinstance(name, str) else None
            # a rule gone may have; a cascade quotes its suspects' ereports of any class
            if rule is None or any(may_quote(p) for p in rule.match) or (rule.kind == "cascade" and _cut(case)):
                named = {s.resource for s in case.suspects} | {str(d.get("resource") or "") for d in case.diagnoses}
                out.update(named or {""})  # none named: the node's
    return out


def _cut(case: Case) -> bool:
    """Whether a cascade case may have left out some of its suspects' ereports it quotes: every one it kept is a
    suspect's (they come first; a dependent's that follows them was kept only if they all were)."""
    suspects = {s.resource for s in case.suspects}
    return all(b.get("resource") in suspects for b in case.ereports)


def quoted_services(case: Case, rules: RuleSet) -> set[str]:
    """The services whose log lines the case may quote (see the module's text)."""
    return {f for f in _quoted(case, rules, _unowned) if _service(f)}


def quoted_kernel(case: Case, rules: RuleSet) -> set[str]:
    """The resources (services, disks, ``sw:`` processes, ``""`` for the node) whose kernel-log lines the case may
    quote (see the module's text)."""
    return _quoted(case, rules, _kernel)


def _kernel_entry(e: dict[str, Any]) -> bool:
    return e.get("source") == KMSG or ereport_owner(str(e.get("class", ""))) == KMSG


class Reader:
    """What one caller may read, for one request: each service's right is asked once, the kernel's sysctl (at
    ``dmesg_restrict``) at most once."""

    def __init__(self, caller: Caller, services: Services, *, dmesg_restrict: str = DMESG_RESTRICT) -> None:
        self.caller = caller
        self.services = services
        self.everything = caller.privileged
        self.dmesg_restrict = dmesg_restrict
        self._log: dict[str, bool] = {}
        self._kernel_open: bool | None = None

    def reads_log(self, fmri: str) -> bool:
        """Whether the caller holds the log right on the service of the instance ``fmri``."""
        hit = self._log.get(fmri)
        if hit is None:
            inst = self.services.instance(fmri) if fmri.startswith("svc:") else None
            hit = self._log[fmri] = authz.allowed(self.caller, inst.config.spec if inst is not None else None,
                                                  Right.LOG)
        return hit

    def reads_kernel_log(self, resource: str) -> bool:
        """Whether the caller may read what the kernel log says of ``resource``: privileged, the kernel gives its
        log to every user (``kernel_log_open``), or ``resource`` is a service on which the caller holds ``log``."""
        if self.everything or (_service(resource) and self.reads_log(resource)):
            return True
        if self._kernel_open is None:
            self._kernel_open = kernel_log_open(self.dmesg_restrict)
        return self._kernel_open

    def entry(self, e: dict[str, Any]) -> dict[str, Any]:
        """An error log entry as the caller may read it: a service's log line, or the kernel log's, withheld."""
        if self.everything:
            return e
        resource = str(e.get("resource") or "")
        if _kernel_entry(e):
            if self.reads_kernel_log(resource):
                return e
            source = KMSG
        elif e.get("source") == LOG and not self.reads_log(resource):
            source = LOG
        else:
            return e
        return {**e, "payload": {}, "withheld": ["payload"], "quotes": [source]}

    def withholds(self, case: Case, rules: RuleSet) -> list[str]:
        """Whose text the case may quote that the caller may not read (``LOG``, ``KMSG``; empty: none): its detail
        and history texts are withheld when any."""
        if self.everything:
            return []
        out = []
        if not all(self.reads_log(f) for f in quoted_services(case, rules)):
            out.append(LOG)
        if not all(self.reads_kernel_log(r) for r in quoted_kernel(case, rules)):
            out.append(KMSG)
        return out
