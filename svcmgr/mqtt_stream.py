"""The bridge's outgoing stream: one MQTT 3.1.1 connection that only publishes, pipelined.

aiomqtt (paho underneath) keeps the bridge's session: its status and last will, the
telemetry subscriptions. The outbox (events and the retained picture) leaves on this
second connection, which speaks only what publishing needs: CONNECT, PUBLISH (QoS 0
and 1), PINGREQ and DISCONNECT out; CONNACK, PUBACK and PINGRESP in. paho costs about
35 µs of CPU per QoS 1 publish and its acknowledgement (each packet read a few bytes
per system call, objects made for each PUBACK); this about 7 (bench/mqtt_bridge.py).
The publishes queued by ``publish`` leave in one write at ``flush``; acknowledgements
are read in chunks and must come in order (MQTT 3.1.1, 4.6), each for the oldest QoS 1
publish in flight.

The broker is not trusted: a refused or malformed CONNACK, any packet but those three,
an acknowledgement out of order or a broker silent past the keepalive ends the
connection with the reason (``StreamError``); nothing read is kept but an incomplete
4-byte packet.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import struct
from collections.abc import Callable

__all__ = ["Stream", "StreamError"]

_REFUSED = {1: "unacceptable protocol version", 2: "client identifier rejected", 3: "server unavailable",
            4: "bad user name or password", 5: "not authorized"}
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"
_PUBACK = 0x40
_PINGRESP = 0xD0
#: A packet's remaining length is at most this (MQTT 3.1.1, 2.2.3).
MAX_PACKET = 268_435_455


class StreamError(Exception):
    """The stream's connection failed, or the broker broke the protocol: the caller reconnects."""


def _length(n: int) -> bytes:
    """MQTT's remaining length: 7 bits a byte, least significant first."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def _text(s: str) -> bytes:
    b = s.encode()
    if len(b) > 0xFFFF:
        raise ValueError(f"longer than 65,535 bytes: {s[:64]!r}...")
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, username: str | None, password: str | None, keepalive: int) -> bytes:
    """CONNECT with a clean session; the password only with a user name (as paho and aiomqtt send it)."""
    flags, payload = 0x02, _text(client_id)
    if username is not None:
        flags |= 0x80
        payload += _text(username)
        if password is not None:
            flags |= 0x40
            payload += _text(password)
    body = _text("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    return b"\x10" + _length(len(body)) + body


class Stream:
    """One publishing connection. ``publish`` and ``flush`` send; ``run`` reads the broker's answers
    and keeps the connection alive (it returns only by raising ``StreamError``); ``sent`` and
    ``acked`` count the QoS 1 publishes sent and acknowledged."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, keepalive: int,
                 on_read: Callable[[], None]) -> None:
        self._reader = reader
        self._writer = writer
        self.keepalive = keepalive
        self._on_read = on_read
        self._out: list[bytes] = []
        self._inflight: collections.deque[int] = collections.deque()  # packet ids, oldest first
        self._mid = 0
        self._partial = b""
        self._loop = asyncio.get_running_loop()
        self._last_tx = self._loop.time()
        self._ping_sent: float | None = None
        self.sent = 0
        self.acked = 0

    @classmethod
    async def open(cls, host: str, port: int, *, client_id: str, username: str | None = None,
                   password: str | None = None, keepalive: int = 30, tls: ssl.SSLContext | None = None,
                   timeout: float = 10, on_read: Callable[[], None] = lambda: None) -> Stream:
        """Connect, send CONNECT and wait for the broker's CONNACK (at most ``timeout`` seconds)."""
        writer = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=tls, limit=1 << 16)
                writer.write(connect_packet(client_id, username, password, keepalive))
                ack = await reader.readexactly(4)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
            if writer is not None:
                writer.close()
            raise StreamError(f"cannot open the publishing connection to {host}:{port}: "
                              f"{e or type(e).__name__}") from None
        if ack[:2] != b"\x20\x02" or ack[3]:
            writer.close()
            why = _REFUSED.get(ack[3], f"return code {ack[3]}") if ack[:2] == b"\x20\x02" else f"CONNACK {ack!r}"
            raise StreamError(f"the broker refused the publishing connection: {why}")
        return cls(reader, writer, keepalive, on_read)

    # ------------------------------------------------------------ out
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Queue one PUBLISH (QoS 0 or 1) for the next ``flush``; returns ``sent`` after it."""
        t = topic.encode()
        if not t or len(t) > 0xFFFF or "+" in topic or "#" in topic or "\0" in topic:
            raise ValueError(f"not a topic to publish to: {topic[:64]!r}")
        if qos:
            if len(self._inflight) >= 0xFFFF:
                raise StreamError("65,535 publishes in flight: no packet id left")
            self._mid = self._mid % 0xFFFF + 1
            self._inflight.append(self._mid)
            self.sent += 1
            head = struct.pack("!H", len(t)) + t + struct.pack("!H", self._mid)
            first = 0x32
        else:
            head = struct.pack("!H", len(t)) + t
            first = 0x30
        size = len(head) + len(payload)
        if size > MAX_PACKET:
            raise ValueError(f"a message of {len(payload)} bytes is larger than MQTT allows")
        self._out += (bytes([first | retain]), _length(size), head, payload)
        return self.sent

    def flush(self) -> None:
        """Write what ``publish`` queued, in one write."""
        if self._out:
            if self._writer.is_closing():
                raise StreamError("the publishing connection is closed")
            self._writer.write(b"".join(self._out))
            self._out.clear()
            self._last_tx = self._loop.time()

    async def close(self) -> None:
        """Say DISCONNECT (a clean end) and close; never raises."""
        with contextlib.suppress(Exception):
            if not self._writer.is_closing():
                self._writer.write(_DISCONNECT)
            self._writer.close()
            async with asyncio.timeout(1):
                await self._writer.wait_closed()

    # ------------------------------------------------------------ in
    async def run(self) -> None:
        """Read acknowledgements until the connection ends (raises ``StreamError`` then); ping the broker
        when nothing was sent for half the keepalive, and give it up when a ping is not answered within
        the keepalive."""
        half = self.keepalive / 2 if self.keepalive else None
        while True:
            try:
                async with asyncio.timeout(half):
                    data = await self._reader.read(1 << 16)
            except TimeoutError:
                self._idle()
                continue
            except OSError as e:
                raise StreamError(f"publishing connection lost: {e or type(e).__name__}") from None
            if not data:
                raise StreamError("the broker closed the publishing connection")
            self._take(data)
            self._on_read()

    def _idle(self) -> None:
        now = self._loop.time()
        if self._ping_sent is not None:
            if now - self._ping_sent >= self.keepalive:
                raise StreamError(f"no answer from the broker in {self.keepalive}s")
        elif now - self._last_tx >= self.keepalive / 2:
            self._writer.write(_PINGREQ)
            self._last_tx = self._ping_sent = now

    def _take(self, data: bytes) -> None:
        """Account for the PUBACKs and PINGRESPs in ``data`` (with what was left of the last read)."""
        buf = self._partial + data if self._partial else data
        i, n = 0, len(buf)
        inflight = self._inflight
        while n - i >= 2:
            kind = buf[i]
            if kind == _PUBACK:
                if n - i < 4:
                    break
                if buf[i + 1] != 2:
                    raise StreamError(f"malformed PUBACK from the broker (length {buf[i + 1]})")
                mid = buf[i + 2] << 8 | buf[i + 3]
                if not inflight or inflight[0] != mid:
                    raise StreamError(f"PUBACK for packet {mid} out of order (oldest in flight: "
                                      f"{inflight[0] if inflight else 'none'})")
                inflight.popleft()
                self.acked += 1
                i += 4
            elif kind == _PINGRESP and buf[i + 1] == 0:
                self._ping_sent = None
                i += 2
            else:
                raise StreamError(f"unexpected packet from the broker (first bytes {bytes(buf[i:i + 2]).hex()})")
        self._partial = buf[i:]
