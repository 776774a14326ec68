"""Each backend server of each frontend: what svcmgr wants HAProxy to make of it, and telling HAProxy.

A server's wanted admin state follows its instance (``follow``): ``ready`` while the
instance is online or degraded and staying so, ``maint`` otherwise, and ``maint`` at
once for an unplanned stop (``unplanned``, called from the bus listener as the engine
decides it). A planned stop is the engine's stop gate (``gate``): ``drain``, then wait
until HAProxy's ``scur`` for the server reaches 0 (at most the frontend's
``drain_timeout``), then ``maint``, and only then does the engine run the stop method.
One task (``run``) tells HAProxy what changed over the Runtime API, retrying while
HAProxy is starting, and after every change writes the server-state file, so that a
reload keeps every admin state. ``resync`` forgets what HAProxy was told (it restarted,
or reloaded), so everything is pushed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from lb.model import Frontend, Server
from lb.runtime import RuntimeApi, RuntimeApiError
from svcmgr.bus import Bus
from svcmgr.eventclasses import LB_SERVER_DRAINED, lb_server_class
from svcmgr.files import write_atomic
from svcmgr.services import ServiceView
from svcmgr.states import RUNNING

__all__ = ["Servers", "Slot"]

log = logging.getLogger("lb.servers")

#: How often a drain looks at the server's connections.
DRAIN_POLL = 0.05
#: How long a push of admin states may take before a gate goes on without it.
PUSH_WAIT = 3.0
RETRY = 0.2


@dataclass(eq=False)
class Slot:
    """One server of one frontend: what svcmgr wants it to be, and what HAProxy was last told."""

    frontend: Frontend
    server: Server
    want: str = "maint"  # ready | drain | maint
    sent: str | None = None  # None: unknown (HAProxy started or reloaded since)
    since: float | None = None
    draining: bool = False
    drains: int = 0
    last_drain: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.frontend.name, self.server.name


class Servers:
    def __init__(self, api: RuntimeApi, bus: Bus, view: ServiceView, state_file: str) -> None:
        self.api = api
        self.bus = bus
        self.view = view
        self.state_file = state_file
        self.slots: dict[tuple[str, str], Slot] = {}
        self.online = False  # HAProxy runs: its Runtime API answers (or soon will)
        self.wake = asyncio.Event()  # a server's wanted state changed
        self.lock = asyncio.Lock()  # pushes and reloads, one at a time
        self._pushed = asyncio.Condition()  # notified after each state HAProxy was told

    def rebuild(self, frontends: Iterable[Frontend]) -> None:
        """The servers of these frontends, keeping what is known of those that stay the same."""
        old, self.slots = self.slots, {}
        for fe in frontends:
            for srv in fe.servers:
                prev = old.get((fe.name, srv.name))
                slot = Slot(fe, srv)
                if prev is not None and prev.server == srv:
                    slot.want, slot.sent, slot.since, slot.draining = prev.want, prev.sent, prev.since, prev.draining
                    slot.drains, slot.last_drain = prev.drains, prev.last_drain
                else:
                    slot.want = self.wanted(srv.fmri)
                self.slots[slot.key] = slot
        self.wake.set()

    def resync(self) -> None:
        """HAProxy (re)started or reloaded: tell it every server's state again."""
        for s in self.slots.values():
            s.sent = None
        self.wake.set()

    def unplanned(self, fmri: str) -> None:
        """An instance stops unplanned (a death, a failed probe): out of rotation at once."""
        slots = self._slots_of(fmri)
        for s in slots:
            s.want = "maint"
        if slots:
            self.wake.set()

    def _slots_of(self, fmri: str) -> list[Slot]:
        return [s for s in self.slots.values() if s.server.fmri == fmri]

    def wanted(self, fmri: str) -> str:
        inst = self.view.instance(fmri)
        return "ready" if inst is not None and inst.state in RUNNING and inst.next_state is None else "maint"

    def follow(self, fmri: str) -> None:
        changed = False
        for s in self._slots_of(fmri):
            if s.draining:
                continue  # the stop gate decides until the stop method runs
            want = self.wanted(fmri)
            if s.want != want:
                s.want, changed = want, True
        if changed:
            self.wake.set()

    # ------------------------------------------------------------------ the stop gate
    def gate(self, fmri: str) -> tuple[Awaitable[None], float] | None:
        """The engine's stop gate: a backend in rotation is drained before its stop method runs."""
        slots = self._slots_of(fmri)
        live = [s for s in slots if s.sent in ("ready", "drain") or s.want in ("ready", "drain")]
        if not live or not self.online:
            for s in slots:
                s.want = "maint"
            if slots:
                self.wake.set()
            return None
        bound = max(s.frontend.drain_timeout for s in live) + 2 * PUSH_WAIT
        return self._drain(fmri, live), bound

    async def _drain(self, fmri: str, slots: list[Slot]) -> None:
        t0 = time.monotonic()
        for s in slots:
            s.want, s.draining = "drain", True
        self.wake.set()
        first: int | None = None
        last = 0
        try:
            await self._until_sent(slots)
            while True:
                try:
                    stats = await self.api.stats()
                except RuntimeApiError as e:
                    log.warning("draining %s: %s; going on", fmri, e)
                    break
                left = time.monotonic() - t0
                busy = [s for s in slots if (st := stats.get(s.key)) is not None and st.scur > 0]
                last = sum(stats[s.key].scur for s in busy)
                first = last if first is None else first
                if not busy or all(left >= s.frontend.drain_timeout for s in busy):
                    break
                await asyncio.sleep(DRAIN_POLL)
        finally:
            for s in slots:
                s.want, s.draining = "maint", False
            self.wake.set()
        await self._until_sent(slots)
        took = time.monotonic() - t0
        for s in slots:
            s.drains += 1
            s.last_drain = {"seconds": round(took, 3), "connections_at_start": first or 0,
                            "connections_left": last, "time": time.time()}
            self.bus.emit(LB_SERVER_DRAINED, f"lb:/{s.key[0]}/{s.key[1]}", frontend=s.key[0],
                          server=s.key[1], fmri=fmri, **s.last_drain)
        if last:
            log.warning("%s: drain timed out with %d connection(s) left; stopping anyway", fmri, last)
        else:
            log.info("%s drained in %.3fs (%d connection(s) at the start)", fmri, took, first or 0)

    async def _until_sent(self, slots: list[Slot]) -> None:
        """Until HAProxy was told what these servers should be (at most PUSH_WAIT)."""
        deadline = time.monotonic() + PUSH_WAIT
        async with self._pushed:
            while self.online and any(s.sent != s.want for s in slots) and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._pushed.wait(), 0.1)

    # ------------------------------------------------------------------ pushing admin states
    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                done = await self.push()
            except Exception:
                log.exception("pushing server states to HAProxy failed")
                done = False
            if not done and self.online:
                await asyncio.sleep(RETRY)
                self.wake.set()

    async def push(self) -> bool:
        """Tell HAProxy every server state that changed; False when HAProxy could not be told (retry)."""
        if not self.online:
            return True  # (pushed again once it is online)
        async with self.lock:
            changed = False
            for s in list(self.slots.values()):
                if s.want == s.sent or self.slots.get(s.key) is not s:
                    continue
                want = s.want
                try:
                    await self.api.set_state(*s.key, want)
                    if want == "ready" and s.frontend.check != "none":
                        await self.api.set_health(*s.key, "up")
                except RuntimeApiError as e:
                    log.debug("cannot set %s/%s %s: %s", *s.key, want, e)
                    return False
                s.sent, s.since, changed = want, time.time(), True
                async with self._pushed:
                    self._pushed.notify_all()
                self.bus.emit(lb_server_class(want), f"lb:/{s.key[0]}/{s.key[1]}", frontend=s.key[0],
                              server=s.key[1], fmri=s.server.fmri, state=want)
            if changed:
                await self.save_state()
        return True

    async def save_state(self) -> None:
        """``show servers state`` into the server-state file, which HAProxy reads back on a reload."""
        try:
            text = await self.api.servers_state()
        except RuntimeApiError as e:
            log.warning("cannot save HAProxy's server states: %s", e)
            return
        write_atomic(self.state_file, text, 0o600, durable=False)
