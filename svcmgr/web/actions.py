"""What a dashboard button may do: each action is one control-socket operation and the command line
that does the same from a shell.

The dashboard calls the operation through ``Api.call`` with the logged-in user's caller,
so the operation's own authorization (``svcmgr.authz``) decides, exactly as for
``svcadm`` or ``fmadm`` run by that user. Targets are checked here first (an FMRI, a case
UUID) so that a bad form is refused with a clear message before anything runs.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from svcmgr import fmri as fmri_mod

__all__ = ["ACTIONS", "Action", "ActionError", "for_case", "for_instance"]

_UUID_RE = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\Z")


class ActionError(ValueError):
    pass


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    op: str
    args: tuple[tuple[str, Any], ...]
    command: str
    target: str  # "fmri" or "case"
    danger: bool = False

    def request(self, target: str) -> dict[str, Any]:
        """The operation's arguments for one checked target."""
        key = {"fmri": "fmris", "case": "target"}[self.target]
        value: Any = [target] if key == "fmris" else target
        return {key: value, **dict(self.args)}

    def command_line(self, target: str) -> str:
        return f"{self.command} {shlex.quote(target)}"

    def check(self, target: str) -> str:
        """The target in canonical form; ActionError says what is wrong."""
        if self.target == "case":
            if not _UUID_RE.fullmatch(target):
                raise ActionError(f"{target[:80]!r} is not a case UUID")
            return target
        try:
            return str(fmri_mod.parse(target, instance_required=True))
        except fmri_mod.FmriError as e:
            raise ActionError(f"{target[:80]!r}: {e}") from None


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("enable", "Enable", "enable", (), "svcadm enable", "fmri"),
    Action("disable", "Disable", "disable", (), "svcadm disable", "fmri", danger=True),
    Action("restart", "Restart", "restart", (), "svcadm restart", "fmri"),
    Action("refresh", "Refresh", "refresh", (), "svcadm refresh", "fmri"),
    Action("clear", "Clear", "clear", (), "svcadm clear", "fmri"),
    Action("mark-degraded", "Mark degraded", "mark", (("state", "degraded"),), "svcadm mark degraded", "fmri",
           danger=True),
    Action("mark-maintenance", "Mark maintenance", "mark", (("state", "maintenance"),),
           "svcadm mark maintenance", "fmri", danger=True),
    Action("repair", "Repair", "fm.verdict", (("verdict", "repair"),), "fmadm repair", "case"),
    Action("acquit", "Acquit", "fm.verdict", (("verdict", "acquit"),), "fmadm acquit", "case"),
)}


def for_instance(state: str, enabled: bool) -> list[Action]:
    """The buttons that make sense for an instance in this state."""
    names = ["enable"] if not enabled else ["disable"]
    if state in ("online", "degraded"):
        names += ["restart", "refresh", "mark-degraded" if state == "online" else "clear", "mark-maintenance"]
    elif state == "maintenance":
        names += ["clear"]
    elif state == "offline":
        names += ["refresh"]
    return [ACTIONS[n] for n in names]


def for_case() -> list[Action]:
    return [ACTIONS["repair"], ACTIONS["acquit"]]
