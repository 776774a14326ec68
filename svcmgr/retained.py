"""The retained messages a broker holds under some topic filters, read once.

The MQTT bridges keep each node's picture retained on the broker
(``svcmgr/<node>/state/...``, ``svcmgr/<node>/cases/<uuid>``,
``svcmgr/<node>/status``); the fleet view (``svcmgr.cli.fleet``) and the web
dashboard read it here. To know when the broker has sent every retained message,
the reader subscribes, then publishes a probe on a private topic it also
subscribed to: the broker queues the probe behind the retained messages, so its
return marks the end.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiomqtt

from svcmgr.mqtt_config import tls_context

__all__ = ["PROBE_PREFIX", "TIMEOUT", "read_retained"]

PROBE_PREFIX = "svcmgr-fleet"
TIMEOUT = 5.0


async def read_retained(cfg: Any, filters: list[str], *, timeout: float = TIMEOUT) -> tuple[dict[str, bytes], bool]:
    """Every retained message under ``filters``: ({topic: payload}, complete). Incomplete when the
    probe did not come back in time (a broker that refuses our publish): then what arrived is returned."""
    tag = uuid.uuid4().hex[:12]
    probe = f"{PROBE_PREFIX}/{tag}"
    tls = tls_context(cfg.ca_file, cfg.cert_file, cfg.key_file, cfg.tls_insecure) if cfg.tls else None
    out: dict[str, bytes] = {}
    complete = False
    client = aiomqtt.Client(cfg.host, cfg.port, identifier=f"svcmgr-fleet-{tag}", username=cfg.username,
                            password=cfg.password, tls_context=tls, timeout=timeout, clean_session=True)
    async with client:
        await client.subscribe([(f, 1) for f in [*filters, probe]])
        await client.publish(probe, b"end", qos=1)
        try:
            async with asyncio.timeout(timeout):
                async for m in client.messages:
                    topic = m.topic.value
                    if topic == probe:
                        complete = True
                        break
                    payload = bytes(m.payload or b"")
                    if payload:
                        out[topic] = payload
                    else:
                        out.pop(topic, None)
        except TimeoutError:
            pass
    return out, complete
