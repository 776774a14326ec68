"""paho's decoding of a PUBACK, made cheap for MQTT 3.1.1: the one place the bridge changes paho's inside.

With QoS 1 every event the bridge sends comes back as a PUBACK, and paho-mqtt 2 decodes each
through ``paho.mqtt._packet.decode_puback``, which builds a ``ReasonCode`` and a ``Properties``
for it: MQTT 5's fields, which a 3.1.1 PUBACK (two bytes, the message id) does not have.
``Properties``' constructor alone builds its tables of 27 property names and types each time;
the whole decode took about 10-16 us of the 55-90 us of daemon CPU an event cost in the
benchmark (``bench/mqtt_bridge.py``), more than anything else paho does per message.

``install()`` puts in its place a function that answers a well-formed 3.1.1 PUBACK with the
same ``PubackPacket`` paho makes: the message id, the reason "Success" and empty properties,
both made once and shared (paho hands them only to ``on_publish``, whose callbacks here,
aiomqtt's and the bridge's, do not look at them). Anything else (MQTT 5, a packet of another
length) goes to paho's own function, so what is refused is refused as before.

paho keeps this function in a private module, and the change holds for the whole process (the
daemon: the bridge is its only MQTT client); so it is made only when paho looks as expected and
answers a probe exactly as the replacement does, else the bridge runs on paho's own decode, as
before, only slower. ``tests/unit/svcmgr/test_mqtt_puback.py`` checks the answers against paho's.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

__all__ = ["install", "installed"]

log = logging.getLogger("svcmgr.mqtt")

_MID = struct.Struct("!H").unpack


def _make(original: Callable[..., Any], packet_type: Any) -> Callable[..., Any]:
    """The replacement of ``original`` (paho's ``decode_puback``), its reason and properties made once."""
    # here, not at the top: another paho may lack these; ``install`` then keeps paho's own decoding
    from paho.mqtt import _packet
    from paho.mqtt.enums import MQTTProtocolVersion
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    puback, v5 = _packet.PubackPacket, MQTTProtocolVersion.MQTTv5
    reason, properties = ReasonCode(packet_type), Properties(packet_type)

    def decode_puback(header: int, packet: bytes | bytearray, protocol: Any) -> Any:
        """A PUBACK's mid, reason and properties (paho's ``decode_puback``, without two objects made per packet)."""
        if protocol != v5 and len(packet) == 2:
            return puback(_MID(packet)[0], reason, properties)
        return original(header, packet, protocol)

    decode_puback.original = original  # type: ignore[attr-defined]
    return decode_puback


def _same(a: Any, b: Any) -> bool:
    """Two decoded PUBACKs are alike: mid, reason (packet type, value, name) and properties (none)."""
    return (type(a) is type(b) and a.mid == b.mid and a.reason == b.reason
            and a.reason.packetType == b.reason.packetType and a.reason.getName() == b.reason.getName()
            and a.properties.packetType == b.properties.packetType and a.properties.json() == b.properties.json())


def installed() -> bool:
    """Whether paho decodes PUBACKs through the replacement."""
    try:
        from paho.mqtt import _packet  # here: another paho may lack it (then: not installed)
    except ImportError:
        return False
    return hasattr(_packet.decode_puback, "original")


def install() -> bool:
    """Replace paho's PUBACK decoding (once per process) if paho answers a probe as the replacement does.
    Returns whether the replacement is in place."""
    try:
        # here, not at the top: another paho may lack these; then its own decoding stays
        from paho.mqtt import _packet
        from paho.mqtt.enums import MQTTProtocolVersion
        from paho.mqtt.packettypes import PacketTypes

        current = _packet.decode_puback
        if hasattr(current, "original"):
            return True
        fast = _make(current, PacketTypes.PUBACK)
        probes = [(0x40, b"\x12\x34", v) for v in (MQTTProtocolVersion.MQTTv31, MQTTProtocolVersion.MQTTv311)]
        if not all(_same(fast(*p), current(*p)) for p in probes):
            raise ValueError("answers differ")
    except Exception as e:  # noqa: BLE001 - another paho: keep its own decoding
        log.info("mqtt: paho's PUBACK decoding left as it is (%r)", e)
        return False
    _packet.decode_puback = fast
    return True
