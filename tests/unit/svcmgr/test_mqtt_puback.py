"""``svcmgr.mqtt_puback``: paho's PUBACK decoding replaced, with paho's own answers (a test per kind of packet)."""

from __future__ import annotations

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket

from svcmgr import mqtt_puback

V311, V31, V5 = MQTTProtocolVersion.MQTTv311, MQTTProtocolVersion.MQTTv31, MQTTProtocolVersion.MQTTv5


@pytest.fixture
def decode():
    """The replacement, installed; paho's own function as ``decode.original``."""
    assert mqtt_puback.install()
    assert mqtt_puback.installed()
    return _packet.decode_puback


@pytest.mark.parametrize("protocol", [V311, V31])
@pytest.mark.parametrize("mid", [1, 0x1234, 0xFF00, 65535])
def test_a_puback_decodes_as_paho_decodes_it(decode, protocol, mid):
    packet = mid.to_bytes(2, "big")
    fast, paho = decode(0x40, packet, protocol), decode.original(0x40, packet, protocol)
    assert type(fast) is type(paho) is _packet.PubackPacket
    assert fast.mid == paho.mid == mid
    assert fast.reason == paho.reason == 0
    assert (fast.reason.packetType, fast.reason.getName()) == (paho.reason.packetType, paho.reason.getName())
    assert fast.properties.packetType == paho.properties.packetType
    assert fast.properties.json() == paho.properties.json() == {}
    assert fast.properties.isEmpty()


@pytest.mark.parametrize("packet", [b"", b"\x01", b"\x00\x01\x00"])
def test_a_malformed_puback_is_refused_as_paho_refuses_it(decode, packet):
    with pytest.raises(MalformedPacket):
        decode(0x40, packet, V311)


def test_an_mqtt5_puback_is_decoded_by_paho(decode):
    got = decode(0x40, b"\x00\x07\x10", V5)  # reason 16: no matching subscribers
    assert (got.mid, got.reason.value) == (7, 0x10)


def test_install_is_done_once():
    assert mqtt_puback.install()
    first = _packet.decode_puback
    assert mqtt_puback.install()
    assert _packet.decode_puback is first
    assert not hasattr(first.original, "original")
