"""Why fmdump and fmadm show a record with fields withheld, in one sentence (see fault.disclosure).

A withheld record's ``quotes`` names whose text it may hold: ``log`` (a line of a service's log, which a log pattern
made an ereport) or ``kmsg`` (the kernel log); a daemon that does not say means ``log``. The commands print, once,
how many records they show withheld, then ``because(...)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["because", "quotes_of"]

_WHY = {
    "log": "a line of a service's log, which only root and those the service grants log ([authorizations.read], "
           ".action or .value) may read",
    "kmsg": "a line of the kernel log, which only root may read while the kernel restricts it "
            "(sysctl kernel.dmesg_restrict = 1), and those a service grants log what it says of the service's own "
            "processes",
}


def quotes_of(row: dict[str, Any]) -> set[str]:
    """Whose text a withheld row may hold (``log`` when the daemon does not say)."""
    q = row.get("quotes")
    return {str(x) for x in q} if isinstance(q, list) and q else {"log"}


def because(quotes: Iterable[str]) -> str:
    """The reason for records withheld that may quote ``quotes``: ``a line of ..., which ... may read``."""
    wanted = set(quotes)
    known = [why for q, why in _WHY.items() if q in wanted] or [_WHY["log"]]
    return "; or ".join(known)
