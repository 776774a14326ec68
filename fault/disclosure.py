"""What an ordinary caller reads of the error log and the cases: a service's log lines only with its log right.

A manifest's ``[[log.patterns]]`` make each line they match an ereport of source ``log`` whose payload holds the
line, and a case those ereports convict may quote it: its detail (which the knowledge article's text may hold)
and its history's texts. The line is the service's log, which only root and those the service grants ``log``
read (``svcmgr.authz``, ``svcs -xv``). So for a caller without that right on the service:

* an error log entry of source ``log`` keeps its id, time, class, node, resource and source; its payload is
  withheld (empty);
* a case that may quote such a line keeps its classes, suspects, states, times and ereports' ids; its detail
  (the article is rendered with ``(withheld)`` in its place) and its history's texts are withheld. A case may
  quote one when one of its ereports has a class no confined source owns (``svcmgr.events.EREPORT_NAMESPACES``:
  log patterns report only those) on a service, or, when it has more ereports than it keeps, when one of its
  rules consumes such a class (on its suspects and the resources it was diagnosed on).

Each withheld record says which of its fields are (``withheld``), so that the commands say how many, once.
Root and the daemon's own user read everything.
"""

from __future__ import annotations

from typing import Any

from fault.cases import Case
from fault.rules import RuleSet
from svcmgr import authz
from svcmgr.api import Caller
from svcmgr.authz import Right
from svcmgr.events import ereport_owner
from svcmgr.services import Services

__all__ = ["WITHHELD", "Reader", "quoted_services"]

#: What a withheld text is replaced with.
WITHHELD = "(withheld)"


def _unowned(pattern: str) -> bool:
    """Whether a class, or a rule's match pattern (``ereport.app.*``), may name a class no confined source owns."""
    return ereport_owner(pattern[:-1] if pattern.endswith(".*") else pattern) is None


def _service(resource: Any) -> bool:
    return isinstance(resource, str) and resource.startswith("svc:")


def quoted_services(case: Case, rules: RuleSet) -> set[str]:
    """The services whose log lines the case may quote (see the module's text)."""
    out = {b.get("resource") for b in case.ereports
           if _service(b.get("resource")) and _unowned(str(b.get("class", "")))}
    if case.ereport_count > len(case.ereports):  # the ereports not kept may be of other classes
        for name in {case.rule, *(d.get("rule") for d in case.diagnoses)}:
            rule = rules.by_name.get(name) if isinstance(name, str) else None
            if rule is None or any(_unowned(p) for p in rule.match):  # a rule gone: it may have
                out.update(s.resource for s in case.suspects)
                out.update(d.get("resource") for d in case.diagnoses)
    return {f for f in out if _service(f)}


class Reader:
    """What one caller may read (for one request: each service's right is asked once)."""

    def __init__(self, caller: Caller, services: Services) -> None:
        self.caller = caller
        self.services = services
        self.everything = caller.privileged
        self._log: dict[str, bool] = {}

    def reads_log(self, fmri: str) -> bool:
        """Whether the caller holds the log right on the service of the instance ``fmri``."""
        hit = self._log.get(fmri)
        if hit is None:
            inst = self.services.instance(fmri) if fmri.startswith("svc:") else None
            hit = self._log[fmri] = authz.allowed(self.caller, inst.config.spec if inst is not None else None,
                                                  Right.LOG)
        return hit

    def entry(self, e: dict[str, Any]) -> dict[str, Any]:
        """An error log entry as the caller may read it: a log line's payload withheld without the right."""
        if self.everything or e.get("source") != "log" or self.reads_log(str(e.get("resource", ""))):
            return e
        return {**e, "payload": {}, "withheld": ["payload"]}

    def withholds(self, case: Case, rules: RuleSet) -> bool:
        """Whether the case's detail and history texts are withheld from the caller."""
        return not self.everything and not all(self.reads_log(f) for f in quoted_services(case, rules))
