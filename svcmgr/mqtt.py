"""The MQTT bridge: every bus event out to a broker, telemetry in as ereports (aiomqtt).

Off unless the node's configuration names a broker (``[mqtt] url``, or ``--mqtt
URL``); the in-process bus stays the default. When on:

* every bus event is queued in the outbox (SQLite, in the repository) the moment
  it is published, together with the retained picture it changes (an instance's
  state, an open case), and sent in order from a bounded window of QoS 1
  publishes; a row leaves the outbox only once the broker acknowledged it, so a
  broker that goes away, or a daemon restart, loses nothing (past the bound the
  oldest rows are dropped and counted); the last acknowledged events are sent
  again at each new connection, since a broker killed right after acknowledging
  may not have passed them on (subscribers keep the first copy of each ``seq``);
* the connection is retried with exponential backoff; each new connection
  publishes ``online`` on ``svcmgr/<node>/status`` (the last will says
  ``offline``), subscribes the telemetry filters and queues the retained picture
  again, since a broker may have lost it;
* each telemetry message is checked strictly and becomes an ``ereport.*`` on the
  bus; a malformed one is counted, logged (rate-limited) and published as
  ``mqtt.telemetry.rejected``, and never stops anything.

The topic scheme and payloads are in ``svcmgr.mqtt_topics``; the outbox in
``svcmgr.outbox``. Socket operation: ``mqtt`` (the bridge's status).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiomqtt

from svcmgr import __version__
from svcmgr import mqtt_topics as wire
from svcmgr.eventclasses import CASE_CLASSES, MQTT_DOWN, MQTT_REJECTED, MQTT_UP, SVC_STATE
from svcmgr.events import Event
from svcmgr.mqtt_config import MqttConfig, section, tls_context
from svcmgr.mqtt_pipeline import Pipeline
from svcmgr.outbox import Outbox, Row
from svcmgr.schema import FieldError

if TYPE_CHECKING:
    from svcmgr.api import Caller
    from svcmgr.component import Context
    from svcmgr.config import DaemonConfig

__all__ = ["Bridge"]

log = logging.getLogger("svcmgr.mqtt")

#: Seconds between attempts to write events to the outbox while it cannot be written (a full disk).
OUTBOX_RETRY = 1.0
#: Under a stream of events, pending ones are written to the outbox at most this often (seconds).
FLUSH_INTERVAL = 0.001
#: Under a stream, acknowledged rows leave the outbox in one transaction per this many (and whenever it runs dry).
ACK_BATCH = 256
#: Event topics kept made, by (class, node); past this many the cache starts again (telemetry classes are the senders').
TOPIC_CACHE = 1024
_STATE_PREFIX = SVC_STATE + "."

async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel and await tasks; their errors are collected, not raised (our own cancellation is)."""
    for t in tasks:
        t.cancel()
    await asyncio.wait(tasks)
    for t in tasks:
        if not t.cancelled():
            t.exception()


class _Inbox(asyncio.Queue):  # type: ignore[type-arg]
    """aiomqtt's queue of incoming messages (its ``queue_type``), replaced: each message is handed to
    ``handle`` as aiomqtt reads it, so nothing waits in memory (a flood of telemetry is held back by
    TCP, not queued) and there is no task per message, which aiomqtt's message iterator costs."""

    def __init__(self, handle: Callable[[aiomqtt.Message], None], maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._handle = handle

    def put_nowait(self, item: aiomqtt.Message) -> None:
        self._handle(item)


class _RateLimitedLog:
    """At most ``burst`` lines per ``period`` seconds, then one line saying how many were held back."""

    def __init__(self, burst: int = 10, period: float = 60.0) -> None:
        self.burst = burst
        self.period = period
        self.window_start = 0.0
        self.count = 0
        self.held = 0

    def __call__(self, level: int, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.window_start >= self.period:
            if self.held:
                log.warning("%d more such messages were not logged", self.held)
            self.window_start, self.count, self.held = now, 0, 0
        self.count += 1
        if self.count <= self.burst:
            log.log(level, msg, *args)
        else:
            self.held += 1


class Bridge:
    """The component: queue every bus event, keep a connection, send in order, take telemetry in."""

    name = "mqtt"

    def __init__(self, ctx: Context, cfg: MqttConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.node = ctx.node
        self.outbox: Outbox | None = None
        self.connected = False
        self._pending: list[tuple[Event, bool | None]] = []
        self._topics: dict[tuple[str, str], str] = {}
        self._pipe: Pipeline | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._last_flush = 0.0
        self._wake = asyncio.Event()
        self._closed = False
        self._snapshot_upto = 0  # last outbox seq of the most recent retained snapshot
        self._acked = 0
        self.event_seq = 1
        self.connects = 0
        self.last_error = ""
        self.stats = collections.Counter()
        self._log_rejects = _RateLimitedLog()
        self._log_drops = _RateLimitedLog(3, 60.0)
        self._log_conn = _RateLimitedLog(3, 60.0)

    # ------------------------------------------------------------ setup
    def setup(self) -> None:
        self.outbox = Outbox(self.ctx.db, self.cfg.outbox_limit)
        self.event_seq = self.outbox.counter("events", 0) + 1
        self._reconcile()
        self.ctx.bus.listen(self._on_event)
        self.ctx.api.register("mqtt", self._op_status)

    def _reconcile(self) -> None:
        """Make the stored retained picture match the instances this daemon has now: instances gone
        while it was down (or topics of a former node name) get a clearing message."""
        assert self.outbox is not None
        now = time.time()
        current: dict[str, bytes] = {}
        for inst in self.ctx.services.instances():
            m = wire.snapshot_state(self.node, inst.fmri, inst.state.value,
                                    inst.next_state.value if inst.next_state else None, inst.reason,
                                    inst.stime, inst.effective_enabled, now)
            if m is not None:
                current[m.topic] = m.payload
        mine = f"{wire.PREFIX}/{self.node}/"
        clears = []
        former: set[str] = set()
        for topic, _ in self.outbox.retained():
            if topic in current:
                continue
            if topic.startswith(mine + "cases/"):
                continue  # open cases stay until the fault manager closes them
            clears.append((topic, b"", 1, True))
            parsed = wire.parse_retained_topic(topic)
            if parsed and parsed[0] != self.node:
                former.add(parsed[0])
        stored = [(t, b"") for t, *_ in clears] + list(current.items())
        # a former name of this node: its status goes too, so the fleet view forgets it
        clears += [(wire.status_topic(n), b"", 1, True) for n in sorted(former)]
        if clears:
            log.info("mqtt: clearing %d retained topics of instances gone%s", len(clears),
                     f" and of former node names {', '.join(sorted(former))}" if former else "")
        self.outbox.append(clears, stored)

    # ------------------------------------------------------------ events in (synchronous, from the bus)
    def _on_event(self, ev: Event) -> None:
        """Called inside ``bus.publish``: remember the event, schedule the write; never raise."""
        try:
            self._take(ev)
        except Exception:
            self.stats["lost"] += 1
            log.exception("mqtt: cannot queue event %s", ev.cls)

    def _take(self, ev: Event) -> None:
        enabled: bool | None = None
        if ev.cls.startswith(_STATE_PREFIX):
            inst = self.ctx.services.instance(ev.resource)
            enabled = inst.effective_enabled if inst is not None else None
        self._pending.append((ev, enabled))
        if self._closed:
            self._flush()
        elif self._flush_handle is None:
            # At once when idle; under a stream of events, at most one transaction per millisecond.
            loop = asyncio.get_running_loop()
            wait = self._last_flush + FLUSH_INTERVAL - loop.time()
            self._flush_handle = loop.call_later(wait, self._flush) if wait > 0 else loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write pending events, and the retained picture they change, to the outbox in one transaction."""
        self._flush_handle = None
        if not self._pending or self.outbox is None:
            return
        with contextlib.suppress(RuntimeError):
            self._last_flush = asyncio.get_running_loop().time()
        pending, self._pending = self._pending, []
        msgs: list[tuple[str, bytes, int, bool]] = []
        retained: list[tuple[str, bytes]] = []
        seq = self.event_seq
        qos, topics = self.cfg.qos, self._topics
        for ev, enabled in pending:
            topic = topics.get((ev.cls, ev.node))
            if topic is None:
                if len(topics) >= TOPIC_CACHE:
                    topics.clear()
                topic = topics[ev.cls, ev.node] = wire.event_topic(ev)
            msgs.append((topic, wire.event_payload(ev, seq), qos, False))
            seq += 1
            extra = None
            if ev.cls.startswith(_STATE_PREFIX):
                extra = wire.state_message(self.node, ev, enabled=enabled)
            elif ev.cls in CASE_CLASSES:
                extra = wire.case_message(self.node, ev)
                if extra is None:
                    self._log_rejects(logging.WARNING, "mqtt: %s event without a valid case uuid (%r): "
                                      "not retained", ev.cls, ev.data.get("uuid"))
            if extra is not None:
                msgs.append((extra.topic, extra.payload, extra.qos, extra.retain))
                retained.append((extra.topic, extra.payload))
        try:
            dropped = self.outbox.append(msgs, retained, counters={"events": seq - 1})
        except sqlite3.Error as e:
            self._keep(pending, e)
            return
        self.event_seq = seq
        self.stats["queued"] += len(msgs)
        if dropped:
            self._log_drops(logging.WARNING, "mqtt: outbox full (%d messages): dropped the %d oldest "
                            "(%d dropped so far)", self.cfg.outbox_limit, dropped, self.outbox.dropped)
        self._wake.set()

    def _keep(self, pending: list[tuple[Event, bool | None]], e: sqlite3.Error) -> None:
        """The outbox cannot be written (a full disk): keep the events, in order and numbered later, and try
        again in a while; past ``outbox_limit`` held in memory, the oldest are lost (counted)."""
        self._pending = pending + self._pending
        over = len(self._pending) - self.cfg.outbox_limit
        if over > 0:
            del self._pending[:over]
            self.stats["lost"] += over
        self._log_drops(logging.ERROR, "mqtt: cannot write the outbox (%s); %d events wait in memory, tried "
                        "again every %gs", e, len(self._pending), OUTBOX_RETRY)
        if self._flush_handle is None and not self._closed:
            self._flush_handle = asyncio.get_running_loop().call_later(OUTBOX_RETRY, self._flush)

    # ------------------------------------------------------------ connection
    async def run(self) -> None:
        delay = self.cfg.reconnect_min
        try:
            while True:
                try:
                    client = self._client(aiomqtt)
                    async with client:
                        delay = self.cfg.reconnect_min
                        await self._session(client)
                except aiomqtt.MqttError as e:
                    self._down(str(e) or type(e).__name__)
                except Exception as e:
                    log.exception("mqtt: session failed; reconnecting")
                    self._down(f"internal error: {e!r}")
                pause = delay * random.uniform(0.8, 1.2)
                delay = min(delay * 2, self.cfg.reconnect_max)
                log.debug("mqtt: reconnecting to %s in %.2fs", self.cfg.broker, pause)
                await asyncio.sleep(pause)
        finally:
            self._closed = True
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            with contextlib.suppress(sqlite3.Error):
                self._flush()

    def _client(self, aiomqtt: Any) -> aiomqtt.Client:
        cfg = self.cfg
        will = aiomqtt.Will(wire.status_topic(self.node),
                            wire.status_payload(self.node, "offline", time.time(), __version__), qos=1, retain=True)
        tls = tls_context(cfg.ca_file, cfg.cert_file, cfg.key_file, cfg.tls_insecure) if cfg.tls else None
        client = aiomqtt.Client(
            cfg.host, cfg.port, identifier=cfg.client_id or f"svcmgr-{self.node}", username=cfg.username,
            password=cfg.password, will=will, keepalive=cfg.keepalive, tls_context=tls, timeout=10,
            queue_type=functools.partial(_Inbox, self._on_message),  # type: ignore[arg-type]
            clean_session=True, logger=logging.getLogger("svcmgr.mqtt.client"),
            # no limit in paho: the sender keeps ``window`` in flight itself (paho's limit costs a scan
            # of every message in flight at each acknowledgement)
            max_inflight_messages=0)
        client.pending_calls_threshold = cfg.window + len(cfg.telemetry) + 8
        return client

    def _down(self, why: str) -> None:
        self.last_error = why
        if self.connected:
            self.connected = False
            log.warning("mqtt: lost %s: %s; events wait in the outbox", self.cfg.broker, why)
            self.ctx.bus.emit(MQTT_DOWN, "", broker=self.cfg.broker, error=why[:500])
        else:
            self._log_conn(logging.INFO, "mqtt: cannot reach %s: %s", self.cfg.broker, why)

    async def _session(self, client: aiomqtt.Client) -> None:
        assert self.outbox is not None
        await client.publish(wire.status_topic(self.node),
                             wire.status_payload(self.node, "online", time.time(), __version__), qos=1, retain=True)
        for f in self.cfg.telemetry:
            await client.subscribe(f, qos=1)
        self.connected = True
        self.connects += 1
        self.last_error = ""
        replayed = self.outbox.replay()  # the last acknowledged ones again: a killed broker may have lost them
        log.info("mqtt: connected to %s as %s (%d queued, of them %d sent before and sent again)",
                 self.cfg.broker, client.identifier, self.outbox.depth, replayed)
        self.ctx.bus.emit(MQTT_UP, "", broker=self.cfg.broker, queued=self.outbox.depth)
        self._flush()
        if self._acked >= self._snapshot_upto:
            # the broker may have lost what it retained: queue the current picture after the backlog
            snap = self.outbox.retained()
            if snap:
                self.outbox.append([(t, p, 1, True) for t, p in snap])
                self._snapshot_upto = self.outbox.next_seq - 1
        # Two tasks owned here: the first to end (a lost connection) ends the session, the other is
        # cancelled and awaited. (Not a TaskGroup: in Python 3.11 one that sees a child fail can
        # swallow the daemon's own cancellation.)
        tasks = [asyncio.create_task(self._send(client), name="mqtt send"),
                 asyncio.create_task(self._receive(client), name="mqtt receive")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel_all(tasks)
            await self._goodbye(client)
            raise
        await _cancel_all(tasks)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        raise aiomqtt.MqttError(f"{next(iter(done)).get_name()} ended")

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """The daemon is stopping: send what is queued (briefly), then say offline."""
        self._flush()
        try:
            await asyncio.wait_for(self._send(client, until_empty=True), self.cfg.drain_timeout)
            await client.publish(wire.status_topic(self.node),
                                 wire.status_payload(self.node, "offline", time.time(), __version__),
                                 qos=1, retain=True, timeout=1)
        except (aiomqtt.MqttError, TimeoutError) as e:
            log.warning("mqtt: stopping with %d messages left in the outbox (%s)",
                        self.outbox.depth if self.outbox else 0, e or "timeout")
        self.connected = False

    # ------------------------------------------------------------ sending
    def _pipeline(self, client: aiomqtt.Client) -> Pipeline:
        """The sender's hold on paho's client under ``client``, made once per connection (see ``Pipeline``)."""
        if self._pipe is None or self._pipe.client is not client:
            self._pipe = Pipeline(client, self._wake)
        return self._pipe

    async def _send(self, client: aiomqtt.Client, *, until_empty: bool = False) -> None:
        """Publish the outbox in order from a sliding window of at most ``window`` unacknowledged
        publishes; forget rows once acknowledged, in batches. A failed publish ends the session (the
        caller reconnects) and every row not acknowledged is sent again."""
        assert self.outbox is not None
        box, pipe, size = self.outbox, self._pipeline(client), self.cfg.window
        window: collections.deque[tuple[int, int]] = collections.deque()  # (seq, message id) in flight
        ready: collections.deque[Row] = collections.deque()  # read from the outbox, not yet published
        last = acked = unrecorded = 0
        unacked = pipe.mine

        def retire() -> None:
            nonlocal acked, unrecorded
            while window and window[0][1] not in unacked:  # in order: the broker acknowledges in order
                acked = window.popleft()[0]
                unrecorded += 1

        def commit() -> None:
            nonlocal acked, unrecorded
            if acked:
                box.ack(acked)
                self._acked = acked
                acked = unrecorded = 0

        try:
            while True:
                retire()
                if not ready and len(window) < size:
                    ready.extend(box.peek(last, max(64, size * 4)))
                if ready and len(window) < size:
                    last = pipe.publish(ready, window, size - len(window)) or last
                    if unrecorded >= ACK_BATCH:
                        commit()
                    continue
                if not ready and not window:
                    commit()  # nothing in flight or new: record what is acknowledged
                    if until_empty:
                        return
                # Wait for news (``_flush``) or an acknowledgement (``Pipeline``): both come only while
                # this task awaits, so nothing since the checks above is missed.
                self._wake.clear()
                await self._wake.wait()
        except asyncio.CancelledError:
            # stopping with a live connection: let what is on the wire be acknowledged (a second)
            loop = asyncio.get_running_loop()
            end = loop.time() + 1.0
            retire()
            while window and loop.time() < end:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), end - loop.time())
                retire()
            raise
        finally:
            retire()
            with contextlib.suppress(sqlite3.Error):
                commit()

    # ------------------------------------------------------------ telemetry
    async def _receive(self, client: aiomqtt.Client) -> None:
        """Wait for the connection to end: telemetry is handled as it is read (``_Inbox``)."""
        async for _ in client.messages:  # yields nothing: the inbox keeps no message
            pass

    def _on_message(self, m: aiomqtt.Message) -> None:
        """One message read from the broker (inside aiomqtt's read callback): never raise."""
        try:
            self.handle_telemetry(m.topic.value, bytes(m.payload or b""), retained=bool(m.retain))
        except Exception as e:  # noqa: BLE001 - counted and logged (rate-limited): one message must not end the session
            self.stats["telemetry_failed"] += 1
            self._log_rejects(logging.ERROR, "mqtt: telemetry on %s not handled: %r", m.topic.value[:512], e)

    def handle_telemetry(self, topic: str, payload: bytes, *, retained: bool = False) -> Event | None:
        """One telemetry message: an ereport on the bus, or a counted and logged rejection."""
        if wire.under_prefix(topic):
            self.stats["telemetry_ignored"] += 1
            return None
        if retained:
            # Sent because we subscribed, not because something happened now: not an ereport.
            self.stats["telemetry_retained_skipped"] += 1
            return None
        try:
            ev = wire.telemetry_event(topic, payload, max_bytes=self.cfg.telemetry_max_bytes, now=time.time())
        except FieldError as e:
            self.stats["telemetry_rejected"] += 1
            self._log_rejects(logging.WARNING, "mqtt: telemetry refused: %s", e)
            self.ctx.bus.emit(MQTT_REJECTED, "", topic=topic[:512], error=str(e)[:500],
                              size=len(payload))
            return None
        self.stats["telemetry_received"] += 1
        return self.ctx.bus.publish(ev)

    # ------------------------------------------------------------ reporting
    def reconfigure(self, config: DaemonConfig) -> None:
        new = section(config)
        if new != self.cfg:
            log.warning("mqtt: configuration changed; the new broker settings apply after a daemon restart")

    def statistics(self) -> dict[str, Any]:
        box = self.outbox.statistics() if self.outbox else None
        return {
            "url": self.cfg.url, "broker": self.cfg.broker, "node": self.node, "connected": self.connected,
            "connects": self.connects, "last_error": self.last_error,
            "client_id": self.cfg.client_id or f"svcmgr-{self.node}",
            "telemetry": list(self.cfg.telemetry), "config": self.ctx.config.source,
            "outbox": {"depth": box.depth, "limit": self.cfg.outbox_limit, "dropped": box.dropped,
                       "sent": box.sent} if box else None,
            "events": self.event_seq - 1, **dict(self.stats),
        }

    async def _op_status(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{}`` -> the bridge's status: broker, connection, outbox, telemetry counters."""
        return self.statistics()
