"""svcmgrd plus one test-only component: socket operation ``test.emit`` puts any event on the bus.

Tests use it to publish the events other components own (the fault manager's
``list.suspect`` / ``list.repaired``, the VRRP agent's ``vrrp.state.*``) into a
real daemon, and watch the MQTT bridge and the metrics react. Run exactly as
``svcmgrd`` (same flags).
"""

from __future__ import annotations

import sys
from typing import Any

from svcmgr import component
from svcmgr.api import ApiError, arg
from svcmgr.events import EventError, check_class


class Emitter:
    name = "test-emitter"

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def setup(self) -> None:
        self.ctx.api.register("test.emit", self.op_emit)

    async def run(self) -> None:
        return None

    def statistics(self) -> dict[str, Any]:
        return {}

    async def op_emit(self, caller: Any, req: dict[str, Any]) -> dict[str, Any]:
        """``{"class": C, "resource": R, "data": {...}, "count": N}`` -> emit N such events."""
        try:
            cls = check_class(arg(req, "class", str))
        except EventError as e:
            raise ApiError(str(e), 2) from None
        resource = arg(req, "resource", str, "")
        data = arg(req, "data", dict, {})
        count = arg(req, "count", int, 1)
        for i in range(count):
            self.ctx.bus.emit(cls, resource, **data, **({"n": i} if count > 1 else {}))
        return {"emitted": count}


def create(ctx: Any) -> Emitter:
    return Emitter(ctx)


if __name__ == "__main__":
    component.COMPONENTS.append("__main__:create")
    from svcmgr.daemon import main

    sys.exit(main())
