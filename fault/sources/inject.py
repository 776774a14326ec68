"""``fminject``'s side in the daemon: validate the ereports a request carries, all or none."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fault.events import Ereport, EreportError, validate

__all__ = ["MAX_BATCH", "ereports_from_request"]

MAX_BATCH = 10_000
_SCHEME_RE = re.compile(r"^[a-z]+:/")


def ereports_from_request(items: Any, *, node: str, resolve: Callable[[str], str]) -> list[Ereport]:
    """Ereports from ``[{"class", "resource"?, "payload"?, "time"?, "node"?}, ...]``.

    ``resolve`` turns a service abbreviation (``db``) into its FMRI or raises
    ValueError. Raises EreportError naming the item and the field of the first problem."""
    if not isinstance(items, list) or not items:
        raise EreportError("", "ereports", "expected a non-empty list of ereports")
    if len(items) > MAX_BATCH:
        raise EreportError("", "ereports", f"{len(items)} ereports in one request; at most {MAX_BATCH}")
    out = []
    for i, item in enumerate(items):
        where = f"ereports[{i}]"
        if not isinstance(item, dict):
            raise EreportError(where, "", "expected a table with a class")
        unknown = set(item) - {"class", "resource", "payload", "time", "node"}
        if unknown:
            raise EreportError(where, sorted(unknown)[0], "unknown field (known: class, resource, payload, time, node)")
        resource = item.get("resource", "")
        if isinstance(resource, str) and resource and not _SCHEME_RE.match(resource):
            try:
                resource = resolve(resource)
            except ValueError as e:
                raise EreportError(where, "resource", str(e)) from None
        out.append(validate(item.get("class"), time_=item.get("time"), node=item.get("node", ""),
                            resource=resource, payload=item.get("payload"), source=where, default_node=node))
    return out
