"""The MQTT bridge as a component of the daemon: built only where ``[mqtt]`` names a broker.

The bridge (``svcmgr.mqtt``) is imported here, when it is built: aiomqtt takes some 70 ms
to import, which a daemon without a broker (every daemon of the test suite but a few)
does not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from svcmgr.mqtt_config import section

if TYPE_CHECKING:
    from svcmgr.component import Context

__all__ = ["create"]


def create(ctx: Context) -> Any:
    """The bridge, or None when no broker is configured."""
    cfg = section(ctx.config)
    if cfg is None:
        return None
    from svcmgr.mqtt import Bridge  # here: aiomqtt only with a broker (see above)

    return Bridge(ctx, cfg)
