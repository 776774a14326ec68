"""The bridge's incoming side: aiomqtt's queue replaced by ``_Inbox`` (each message handled as read, none kept),
and a handler that raises counted and logged, never raised into aiomqtt's read callback."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace

import aiomqtt

from svcmgr.mqtt import Bridge, _Inbox
from svcmgr.mqtt_config import MqttConfig


def _message(topic: str, payload: bytes) -> aiomqtt.Message:
    return aiomqtt.Message(topic, payload, qos=1, retain=False, mid=1, properties=None)


async def test_the_inbox_hands_each_message_over_at_once_and_keeps_none():
    got: list[aiomqtt.Message] = []
    box = functools.partial(_Inbox, got.append)(maxsize=0)  # as aiomqtt makes its queue_type
    for i in range(3):
        box.put_nowait(_message("telemetry/t", str(i).encode()))
    assert [m.payload for m in got] == [b"0", b"1", b"2"]
    assert box.empty() and box.qsize() == 0


async def test_a_telemetry_handler_that_raises_is_counted_not_raised(caplog):
    bridge = Bridge(SimpleNamespace(node="n1"), MqttConfig())  # type: ignore[arg-type]
    calls: list[str] = []

    def broken(topic: str, payload: bytes, *, retained: bool = False) -> None:
        calls.append(topic)
        raise RuntimeError("a bug")

    bridge.handle_telemetry = broken  # type: ignore[method-assign]
    for _ in range(2):
        bridge._on_message(_message("telemetry/disk", b"{}"))
    await asyncio.sleep(0)
    assert calls == ["telemetry/disk", "telemetry/disk"]
    assert bridge.stats["telemetry_failed"] == 2
    assert "telemetry on telemetry/disk not handled: RuntimeError('a bug')" in caplog.text
