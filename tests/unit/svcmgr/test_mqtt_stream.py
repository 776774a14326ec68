"""The bridge's publishing connection (``svcmgr.mqtt_stream``) against brokers written here, to say
exactly what the broker sends: packets as MQTT 3.1.1 has them, acknowledgements taken in any
split, and every way a broker can break the protocol ending the connection with the reason.
(The same connection against a real mosquitto: tests/integration/export/test_mqtt_stream_broker.py.)"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable

import pytest

from svcmgr.mqtt_stream import Stream, StreamError, _length, connect_packet

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
CONNACK = b"\x20\x02\x00\x00"


async def _packet(r: asyncio.StreamReader) -> tuple[int, bytes]:
    """One packet as a broker reads it: (first byte, body)."""
    first = (await r.readexactly(1))[0]
    size, mult = 0, 1
    while True:
        b = (await r.readexactly(1))[0]
        size += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, await r.readexactly(size)


def _publish(first: int, body: bytes) -> tuple[str, bytes, int, bool, int | None]:
    """(topic, payload, qos, retain, packet id) of a PUBLISH."""
    n = struct.unpack("!H", body[:2])[0]
    topic, rest = body[2:2 + n].decode(), body[2 + n:]
    qos = (first >> 1) & 3
    mid = None
    if qos:
        mid, rest = struct.unpack("!H", rest[:2])[0], rest[2:]
    return topic, rest, qos, bool(first & 1), mid


async def _broker(serve: Serve) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _open(port: int, **kw: object) -> Stream:
    return await Stream.open("127.0.0.1", port, client_id="svcmgr-n1-out", timeout=5, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "encoded"), [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
                                            (16_384, b"\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f")])
def test_remaining_length_is_encoded_as_mqtt_has_it(n, encoded):
    assert _length(n) == encoded


def test_connect_packet_carries_the_password_only_with_a_user_name():
    bare = connect_packet("c", None, "pw", 30)
    assert bare == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x1e\x00\x01c"
    full = connect_packet("c", "u", "pw", 30)
    assert full[9] == 0x02 | 0x80 | 0x40 and full.endswith(b"\x00\x01c\x00\x01u\x00\x02pw")


async def test_publishes_leave_as_mqtt_packets_and_in_order_acknowledgements_are_counted_in_any_split():
    got: list[tuple[str, bytes, int, bool, int | None]] = []
    done = asyncio.Event()

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        first, body = await _packet(r)
        assert first == 0x10 and body[:6] == b"\x00\x04MQTT"
        w.write(CONNACK)
        acks = b""
        while len(got) < 5:
            m = _publish(*await _packet(r))
            got.append(m)
            if m[4] is not None:
                acks += b"\x40\x02" + struct.pack("!H", m[4])
        for i in range(len(acks)):  # one byte at a time: packets split across reads
            w.write(acks[i:i + 1])
            await w.drain()
            await asyncio.sleep(0.001)
        await done.wait()
        w.close()

    server, port = await _broker(serve)
    woken: list[int] = []
    s = await _open(port, on_read=lambda: woken.append(1))
    reading = asyncio.create_task(s.run())
    assert s.publish("svcmgr/n1/a", b"one", 1, False) == 1
    assert s.publish("svcmgr/n1/b", b"", 0, False) == 1  # QoS 0: no packet id, nothing to acknowledge
    assert s.publish("svcmgr/n1/state/x", b"{}", 1, True) == 2
    assert s.publish("svcmgr/n1/c", b"x" * 300, 1, False) == 3  # a length of two bytes
    assert s.publish("svcmgr/n1/d", b"four", 1, False) == 4
    s.flush()
    for _ in range(500):
        if s.acked == 4:
            break
        await asyncio.sleep(0.01)
    assert s.acked == 4 and woken
    assert got == [("svcmgr/n1/a", b"one", 1, False, 1), ("svcmgr/n1/b", b"", 0, False, None),
                   ("svcmgr/n1/state/x", b"{}", 1, True, 2), ("svcmgr/n1/c", b"x" * 300, 1, False, 3),
                   ("svcmgr/n1/d", b"four", 1, False, 4)]
    done.set()
    with pytest.raises(StreamError, match="closed"):
        await reading
    await s.close()
    server.close()


@pytest.mark.parametrize(("connack", "why"), [(b"\x20\x02\x00\x05", "not authorized"),
                                              (b"\x20\x02\x00\x04", "bad user name or password"),
                                              (b"\x20\x02\x00\x09", "return code 9"),
                                              (b"\x30\x02\x00\x00", "CONNACK"),
                                              (b"\x20", "cannot open")])
async def test_a_refused_or_malformed_connack_is_an_error_with_the_reason(connack, why):
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _packet(r)
        w.write(connack)
        await w.drain()
        w.close()

    server, port = await _broker(serve)
    with pytest.raises(StreamError, match=why):
        await _open(port)
    server.close()


async def test_a_broker_that_says_nothing_times_out():
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    server, port = await _broker(serve)
    with pytest.raises(StreamError, match="cannot open"):
        await Stream.open("127.0.0.1", port, client_id="c", timeout=0.3)
    server.close()


async def test_nothing_listening_is_an_error_not_a_crash():
    server, port = await _broker(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(StreamError, match="cannot open"):
        await _open(port)


@pytest.mark.parametrize(("answer", "why"), [(b"\x40\x02\x00\x02", "PUBACK for packet 2 out of order"),
                                             (b"\x40\x02\x00\x01\x40\x02\x00\x01", "PUBACK for packet 1 out of order"),
                                             (b"\x40\x03\x00\x01\x00", "malformed PUBACK"),
                                             (b"\x30\x05\x00\x01tabc", "unexpected packet"),
                                             (b"\xd0\x01\x00", "unexpected packet"),
                                             (b"\x90\x03\x00\x01\x01", "unexpected packet")])
async def test_a_broker_breaking_the_protocol_ends_the_connection_with_the_reason(answer, why):
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _packet(r)
        w.write(CONNACK)
        await _packet(r)
        w.write(answer)
        await w.drain()
        await asyncio.sleep(5)

    server, port = await _broker(serve)
    s = await _open(port)
    s.publish("t", b"p", 1, False)
    s.flush()
    with pytest.raises(StreamError, match=why):
        await asyncio.wait_for(s.run(), 5)
    await s.close()
    server.close()


async def test_the_broker_is_pinged_when_idle_and_given_up_when_it_does_not_answer():
    pings: list[int] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _packet(r)
        w.write(CONNACK)
        while True:
            first, _ = await _packet(r)
            pings.append(first)
            if len(pings) == 1:
                w.write(b"\xd0\x00")  # the first ping is answered, the next not

    server, port = await _broker(serve)
    s = await _open(port, keepalive=1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(StreamError, match="no answer from the broker in 1s"):
        await asyncio.wait_for(s.run(), 10)
    assert pings == [0xC0, 0xC0]
    assert 1.5 <= loop.time() - t0 < 5
    await s.close()
    server.close()


async def test_topics_that_cannot_be_published_to_are_refused_before_anything_is_sent():
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _packet(r)
        w.write(CONNACK)
        await asyncio.sleep(5)

    server, port = await _broker(serve)
    s = await _open(port)
    for topic in ("", "a/+/b", "a/#", "a\0b", "x" * 65_536):
        with pytest.raises(ValueError, match="not a topic"):
            s.publish(topic, b"p", 1, False)
    assert s.sent == 0
    await s.close()
    server.close()
