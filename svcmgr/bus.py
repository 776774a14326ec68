"""The in-process event bus: publish without waiting, consume with ``async for``.

Each subscription has its own bounded queue. A subscriber that falls behind loses
its oldest events, never blocks the publisher, and the loss is counted on the
subscription (``statistics()``), so a slow consumer cannot stall the daemon.

While the bus ``keep``s, it also holds what is published (bounded, the loss counted
in ``missed``) for those who join late: a subscription or listener added then is
first given the kept events, in order, as if it had been there. The daemon keeps
from its start until its components, built once the first services are started,
have joined (``stop_keeping``).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from svcmgr.events import Event

__all__ = ["Bus", "Subscription"]


@dataclass
class SubscriptionStats:
    delivered: int = 0
    dropped: int = 0
    queued: int = 0


class Subscription:
    """A filtered, bounded stream of events; iterate it with ``async for``."""

    def __init__(self, bus: Bus, prefixes: tuple[str, ...], maxlen: int, lag: float = 0.0) -> None:
        self._bus = bus
        self._prefixes = prefixes
        self._exact = frozenset(prefixes)
        self._under = tuple(p + "." for p in prefixes)
        self._queue: collections.deque[Event] = collections.deque()
        self._maxlen = maxlen
        self._waiter: asyncio.Future[None] | None = None
        #: seconds a waiting consumer is woken after the first event it waits for (``Bus.subscribe``)
        self._lag = lag
        self._wake_at: asyncio.TimerHandle | None = None
        self._stats = SubscriptionStats()
        self.closed = False

    def wants(self, event: Event) -> bool:
        if not self._prefixes:
            return True
        cls = event.cls
        return cls in self._exact or cls.startswith(self._under)

    def put_nowait(self, event: Event) -> None:
        if len(self._queue) >= self._maxlen:
            self._queue.popleft()
            self._stats.dropped += 1
        self._queue.append(event)
        w = self._waiter
        if w is not None and not w.done():
            if not self._lag:
                w.set_result(None)
            elif self._wake_at is None:
                self._wake_at = w.get_loop().call_later(self._lag, self._wake)

    def _wake(self) -> None:
        """The lag is over: the waiting consumer takes what has come meanwhile."""
        self._wake_at = None
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def get_nowait(self) -> Event | None:
        if self._queue:
            self._stats.delivered += 1
            return self._queue.popleft()
        return None

    async def get(self) -> Event:
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
                if self._wake_at is not None:  # cancelled while its wake was due
                    self._wake_at.cancel()
                    self._wake_at = None
        self._stats.delivered += 1
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        self.closed = True
        self._bus._subs.discard(self)
        if self._wake_at is not None:
            self._wake_at.cancel()
            self._wake_at = None
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def statistics(self) -> SubscriptionStats:
        self._stats.queued = len(self._queue)
        return self._stats

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus:
    """Fan-out of events to subscriptions and synchronous listeners."""

    def __init__(self, node: str = "") -> None:
        self.node = node
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self.published = 0
        #: what a late joiner is given first, while the bus keeps (``keep``)
        self._kept: collections.deque[Event] | None = None
        #: events the kept record let go (past its bound) since ``keep``
        self.missed = 0

    def keep(self, limit: int) -> None:
        """Keep the events published from now on, the latest ``limit`` of them (the others counted in
        ``missed``), for the subscriptions and listeners added until ``stop_keeping``."""
        self._kept = collections.deque(maxlen=limit)
        self.missed = 0

    def stop_keeping(self) -> None:
        self._kept = None

    def _late(self) -> tuple[Event, ...]:
        """The kept events, oldest first, for a late joiner (a copy: what it publishes in turn reaches it live)."""
        return () if self._kept is None else tuple(self._kept)

    def subscribe(self, *prefixes: str, maxlen: int = 100_000, lag: float = 0.0) -> Subscription:
        """A new subscription to events whose class equals or starts with a prefix (all if none).

        With ``lag``, a consumer waiting in ``get`` is woken that many seconds after the first event it
        waits for, not at the next turn of the loop: a consumer of lower priority than the work that
        published (the fault manager's diagnosis of a death after the restart it sets going). Every event
        is still delivered, in order, within the same bound (what comes meanwhile waits in the queue)."""
        sub = Subscription(self, tuple(prefixes), maxlen, lag)
        for ev in self._late():
            if sub.wants(ev):
                sub.put_nowait(ev)
        self._subs.add(sub)
        return sub

    def listen(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn`` synchronously for every event (for cheap, non-blocking bookkeeping)."""
        self._listeners.append(fn)
        for ev in self._late():
            fn(ev)

    def publish(self, event: Event) -> Event:
        if not event.node and self.node:
            event = Event(event.cls, event.resource, event.data, self.node, event.time)
        self.published += 1
        kept = self._kept
        if kept is not None:
            if len(kept) == kept.maxlen:
                self.missed += 1
            kept.append(event)
        for fn in self._listeners:
            fn(event)
        for sub in tuple(self._subs):
            if sub.wants(event):
                sub.put_nowait(event)
        return event

    def emit(self, cls: str, resource: str = "", **data: object) -> Event:
        return self.publish(Event(cls, resource, data, self.node))  # ``data`` is this call's own dict
