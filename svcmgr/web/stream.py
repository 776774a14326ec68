"""Live updates for the dashboard: bus events as server-sent events, one stream per open tab.

The hub holds one bus subscription. Each event the pages care about becomes a small
message, numbered, kept in a ring of the last ``RING`` messages (for ``Last-Event-ID``
resume) and put on the queue of every open stream. A message says only what the control
socket shows anyone (an instance's state, its reason, a case's id and class, a VRRP
instance's state): never an ereport's payload or a log line. A stream whose queue
overflows, or whose client does not read within ``WRITE_TIMEOUT``, is dropped; its
browser reconnects and resumes, or is told to ``reset`` (reload its data) when the ring
no longer reaches back to where it left.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from svcmgr.bus import Bus
from svcmgr.events import Event
from svcmgr.httpd import head_bytes

__all__ = ["Hub", "message_for"]

log = logging.getLogger("svcmgr.web")

RING = 1024
QUEUE = 256
WRITE_TIMEOUT = 5.0
HEARTBEAT = 15.0
RETRY_MS = 500
PREFIXES = ("svc.state", "svc.config", "list", "vrrp.state", "lb.server")


@dataclass(frozen=True)
class Message:
    id: int
    event: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        # json.dumps never writes a raw newline, so the data is one SSE line
        return f"id: {self.id}\nevent: {self.event}\ndata: {json.dumps(self.data)}\n\n".encode()


def message_for(ev: Event) -> tuple[str, dict[str, Any]] | None:
    """The page-facing projection of a bus event (event name, data with a ``text`` line for the
    pages' event list), or None for events pages ignore."""
    got = _project(ev)
    if got is None:
        return None
    name, d = got
    what = d.get("state") or d.get("what") or ""
    who = d.get("fmri") or d.get("resource") or (f"case {d['uuid']}" if d.get("uuid") else "")
    reason = f": {d['reason']}" if d.get("reason") and d.get("state") not in ("online", None) else ""
    d["text"] = f"{time.strftime('%H:%M:%S', time.localtime(ev.time))} {who} {what}{reason}".strip()
    return name, d


def _project(ev: Event) -> tuple[str, dict[str, Any]] | None:
    cls = ev.cls
    if cls == "svc.state.deleted" or cls.startswith("svc.config."):
        return "topology", {"fmri": ev.resource, "what": cls.rsplit(".", 1)[1], "time": ev.time}
    if cls.startswith("svc.state."):
        d = ev.data
        reason = d.get("reason")
        return "state", {"fmri": ev.resource, "state": cls.rsplit(".", 1)[1], "time": ev.time,
                         "previous": d.get("previous") if isinstance(d.get("previous"), str) else None,
                         "nstate": d.get("next_state") if isinstance(d.get("next_state"), str) else None,
                         "reason": reason[:300] if isinstance(reason, str) else None}
    if cls.startswith("list."):
        uuid = ev.data.get("uuid") or ev.data.get("case")
        return "case", {"uuid": uuid if isinstance(uuid, str) else "", "what": cls.split(".", 1)[1],
                        "time": ev.time}
    if cls.startswith("vrrp.state."):
        return "vrrp", {"resource": ev.resource, "state": cls.rsplit(".", 1)[1], "time": ev.time}
    if cls.startswith("lb.server."):
        return "lb", {"resource": ev.resource, "state": cls.rsplit(".", 1)[1], "time": ev.time}
    return None


class _Client:
    def __init__(self) -> None:
        self.queue: collections.deque[Message] = collections.deque()
        self.wake = asyncio.Event()
        self.overflowed = False

    def put(self, m: Message) -> None:
        if len(self.queue) >= QUEUE:
            self.overflowed = True
        else:
            self.queue.append(m)
        self.wake.set()


class Hub:
    """Fan-out of bus events to the open streams."""

    def __init__(self, bus: Bus, max_streams: int) -> None:
        self.bus = bus
        self.max_streams = max_streams
        self.ring: collections.deque[Message] = collections.deque(maxlen=RING)
        self.clients: set[_Client] = set()
        self.next_id = 1
        self.counters = {"messages": 0, "streams": 0, "refused": 0, "dropped_slow": 0, "resumed": 0, "resets": 0}
        self._sub = bus.subscribe(*PREFIXES, maxlen=10_000)

    @property
    def streams(self) -> int:
        return len(self.clients)

    async def run(self) -> None:
        try:
            async for ev in self._sub:
                self.publish(ev)
        finally:
            self._sub.close()

    def publish(self, ev: Event) -> Message | None:
        got = message_for(ev)
        if got is None:
            return None
        m = Message(self.next_id, got[0], got[1])
        self.next_id += 1
        self.counters["messages"] += 1
        self.ring.append(m)
        for c in self.clients:
            c.put(m)
        return m

    def backlog(self, last_id: str) -> list[Message] | None:
        """The messages after ``last_id`` (a client resuming), or None when the ring no longer holds them."""
        if not last_id:
            return []
        try:
            n = int(last_id)
        except ValueError:
            return None
        if n >= self.next_id or n < 0:
            return None  # from another daemon run
        if n == self.next_id - 1:
            return []
        if not self.ring or self.ring[0].id > n + 1:
            return None
        return [m for m in self.ring if m.id > n]

    async def serve(self, writer: asyncio.StreamWriter, last_id: str, headers: dict[str, str]) -> None:
        """Write one stream until its client leaves, falls behind, or the daemon stops."""
        if len(self.clients) >= self.max_streams:
            self.counters["refused"] += 1
            body = b"too many live streams; close a tab\n"
            writer.write(head_bytes(503, {"Content-Type": "text/plain", "Content-Length": str(len(body)),
                                          "Retry-After": "5", "Connection": "close", **headers}) + body)
            await writer.drain()
            return
        client = _Client()
        backlog = self.backlog(last_id)
        self.clients.add(client)
        self.counters["streams"] += 1
        try:
            writer.write(head_bytes(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                          "Connection": "close", "X-Accel-Buffering": "no", **headers}))
            first = f"retry: {RETRY_MS}\n: svcmgr live events\n\n".encode()
            if backlog is None:
                self.counters["resets"] += 1
                first += f"id: {self.next_id - 1}\nevent: reset\ndata: {{}}\n\n".encode()
            elif last_id:
                self.counters["resumed"] += 1
            writer.write(first + b"".join(m.encode() for m in backlog or []))
            await self._drain(writer)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.wake.wait(), HEARTBEAT)
                client.wake.clear()
                if client.overflowed:
                    self.counters["dropped_slow"] += 1
                    return
                out = b"".join(m.encode() for m in client.queue) or b": keep-alive\n\n"
                client.queue.clear()
                writer.write(out)
                await self._drain(writer)
        except TimeoutError:
            self.counters["dropped_slow"] += 1
        finally:
            self.clients.discard(client)

    @staticmethod
    async def _drain(writer: asyncio.StreamWriter) -> None:
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    def statistics(self) -> dict[str, Any]:
        return {**self.counters, "open": len(self.clients), "last_id": self.next_id - 1}
