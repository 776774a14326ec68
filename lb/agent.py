"""The load-balancing agent: keeps HAProxy configured, and each backend server in the state of its instance.

- **Configuration.** The frontends this node runs are the manifests' ``[lb]``
  declarations with the node's ``[lb]`` values on top (``lb.config.merge``), each
  backend's address read from its instance's property. The agent renders
  ``haproxy.cfg``, checks it with ``haproxy -c`` and only then renames it into place,
  writes the server-state file and reloads (SIGUSR2 to the master), and only when
  the text changed. A configuration that fails is not applied: the running one
  stays, ``lbadm`` shows the error and the bus gets ``ereport.lb.config.rejected``.
- **HAProxy as a service.** HAProxy runs as ``svc:/network/haproxy:default``
  (``manifests/system/haproxy.toml``), master-worker in the foreground, imported the
  first time the node has a checked configuration.
- **Backends follow service state** over the Runtime API, the moment it changes:
  online (or degraded) and staying so: ``ready`` (and ``health up`` where checks
  run); a planned stop waits in the engine's stop gate while the agent sets
  ``drain``, waits until the server's connections (``scur``) reach 0, bounded by the
  frontend's ``drain_timeout``, and sets ``maint``; an unplanned stop
  (``svc.stopping`` with ``planned`` false) is ``maint`` at once; any other state is
  ``maint``. Every server is rendered ``disabled``; after HAProxy starts or reloads
  the agent pushes every server's state again, and after every change it writes
  the server-state file, so a reload (its own, or ``svcadm refresh``) keeps them.
- **State out.** ``lb.server.ready|drain|maint`` events (resource ``lb:/FRONTEND/SERVER``) each time
  HAProxy was told, and ``lb.server.drained`` (seconds, connections at the start and left) after a drain.
- **Operations.** ``lb.show`` and ``lb.config`` for ``lbadm``.

Where HAProxy is not installed the agent stays idle and the operations say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lb import haproxy as hp
from lb import lvs
from lb.config import LbConfig, Source, merge
from lb.model import Frontend, Server
from lb.runtime import RuntimeApi, RuntimeApiError
from svcmgr.api import ApiError, Caller, arg
from svcmgr.component import import_manifest
from svcmgr.events import Event
from svcmgr.files import read_text, write_atomic
from svcmgr.paths import shipped
from svcmgr.rendered import ConfigStatus, iso
from svcmgr.schema import FieldError

if TYPE_CHECKING:
    from svcmgr.component import Context
    from svcmgr.config import DaemonConfig

__all__ = ["Agent", "create"]

log = logging.getLogger("lb.agent")

SERVICE = hp.SERVICE
CHECK_TIMEOUT = 20.0
#: How often a drain looks at the server's connections.
DRAIN_POLL = 0.05
#: How long a push of admin states may take before a gate goes on without it.
PUSH_WAIT = 3.0
RETRY = 0.2
RUNNING = ("online", "degraded")


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


class Agent:
    name = "lb"

    def __init__(self, ctx: Context, settings: LbConfig | None, binary: str | None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.binary = binary
        self.layout = hp.Layout.for_paths(ctx.paths.lib, ctx.paths.run)
        self.api = RuntimeApi(self.layout.socket)
        self.applied: list[Frontend] = []
        self.slots: dict[tuple[str, str], Slot] = {}
        self.config = ConfigStatus()
        self.service_error: str | None = None
        self.lvs_error: str | None = None
        self.reload_pending = False
        self._wake = asyncio.Event()  # the configuration may have changed
        self._push_wake = asyncio.Event()  # a server's wanted state changed
        self._lock = asyncio.Lock()  # pushes and reloads, one at a time
        self._pushed = asyncio.Condition()  # notified after each state HAProxy was told
        self._sub: Any = None
        self._ha_online = False

    @property
    def available(self) -> bool:
        return self.binary is not None

    @property
    def reason(self) -> str | None:
        if self.binary is not None:
            return None
        want = self.settings.haproxy if self.settings and self.settings.haproxy else "haproxy"
        return f"HAProxy is not installed ({want} not found); the daemon runs without load balancing"

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        api = self.ctx.api
        api.register("lb.show", self.op_show)
        api.register("lb.config", self.op_config)
        if not self.available:
            frontends, _ = self._plan()
            if frontends:
                log.warning("%d frontend(s) declared, but %s", len(frontends), self.reason)
            return
        self._sub = self.ctx.bus.subscribe("svc.state", "svc.config")
        self.ctx.bus.listen(self._listen)
        self.ctx.engine.add_stop_gate(self.stop_gate)
        self.layout.make()
        inst = self.ctx.engine.instances.get(SERVICE)
        self._ha_online = inst is not None and inst.state.value == "online"
        self._wake.set()

    async def run(self) -> None:
        if not self.available:
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._events(), name="lb-events")
                tg.create_task(self._applier(), name="lb-apply")
                tg.create_task(self._pusher(), name="lb-push")
        finally:
            if self._sub is not None:
                self._sub.close()

    def reconfigure(self, config: DaemonConfig) -> None:
        self.settings = config.section("lb")
        self._wake.set()

    def statistics(self) -> dict[str, Any]:
        return {"available": self.available, "frontends": len(self.applied), "servers": len(self.slots),
                "config": self.config.status, "checks": self.config.checks, "rejections": self.config.rejections,
                "reloads": self.config.reloads, "commands": self.api.commands, "failures": self.api.failures}

    # ------------------------------------------------------------------ following service state
    async def _events(self) -> None:
        assert self._sub is not None
        async for ev in self._sub:
            try:
                self.on_event(ev)
            except Exception:
                log.exception("handling %s failed", ev.cls)

    def on_event(self, ev: Event) -> None:
        if ev.cls in ("svc.config.imported", "svc.config.refreshed"):
            self._wake.set()
        elif ev.cls.startswith("svc.state."):
            state = ev.cls.rsplit(".", 1)[1]
            if ev.resource == SERVICE:
                self._on_haproxy(state)
            elif state == "deleted":
                self._wake.set()
            else:
                self._follow(ev.resource)

    def _listen(self, ev: Event) -> None:
        """Synchronous bus listener: an unplanned stop (a death, a failed probe) takes its servers out of
        rotation at once, before the engine has even started stopping it. Must not raise."""
        if ev.cls != "svc.stopping":
            return
        if ev.resource == SERVICE:
            self._ha_online = False  # its stats socket goes with it: nothing waits for it any more
            return
        if ev.data.get("planned"):
            return
        slots = self._slots_of(ev.resource)
        for s in slots:
            s.want = "maint"
        if slots:
            self._push_wake.set()

    def _slots_of(self, fmri: str) -> list[Slot]:
        return [s for s in self.slots.values() if s.server.fmri == fmri]

    def _wanted(self, fmri: str) -> str:
        inst = self.ctx.engine.instances.get(fmri)
        if inst is None or inst.state.value not in RUNNING or inst.next_state is not None:
            return "maint"
        return "ready"

    def _follow(self, fmri: str) -> None:
        changed = False
        for s in self._slots_of(fmri):
            if s.draining:
                continue  # the stop gate decides until the stop method runs
            want = self._wanted(fmri)
            if s.want != want:
                s.want, changed = want, True
        if changed:
            self._push_wake.set()

    def _on_haproxy(self, state: str) -> None:
        was, self._ha_online = self._ha_online, state == "online"
        if self._ha_online and not was:
            for s in self.slots.values():
                s.sent = None  # a new master: push everything again
            if self.reload_pending:
                self._wake.set()
            self._push_wake.set()

    # ------------------------------------------------------------------ the stop gate
    def stop_gate(self, fmri: str) -> tuple[Awaitable[None], float] | None:
        """The engine's stop gate: a backend in rotation is drained before its stop method runs."""
        slots = self._slots_of(fmri)
        live = [s for s in slots if s.sent in ("ready", "drain") or s.want in ("ready", "drain")]
        if not live or not self._ha_online:
            for s in slots:
                s.want = "maint"
            if slots:
                self._push_wake.set()
            return None
        bound = max(s.frontend.drain_timeout for s in live) + 2 * PUSH_WAIT
        return self._drain(fmri, live), bound

    async def _drain(self, fmri: str, slots: list[Slot]) -> None:
        t0 = time.monotonic()
        for s in slots:
            s.want, s.draining = "drain", True
        self._push_wake.set()
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
            self._push_wake.set()
        await self._until_sent(slots)
        took = time.monotonic() - t0
        for s in slots:
            s.drains += 1
            s.last_drain = {"seconds": round(took, 3), "connections_at_start": first or 0,
                            "connections_left": last, "time": time.time()}
            self.ctx.bus.emit("lb.server.drained", f"lb:/{s.key[0]}/{s.key[1]}", frontend=s.key[0],
                              server=s.key[1], fmri=fmri, **s.last_drain)
        if last:
            log.warning("%s: drain timed out with %d connection(s) left; stopping anyway", fmri, last)
        else:
            log.info("%s drained in %.3fs (%d connection(s) at the start)", fmri, took, first or 0)

    async def _until_sent(self, slots: list[Slot]) -> None:
        """Until HAProxy was told what these servers should be (at most PUSH_WAIT)."""
        deadline = time.monotonic() + PUSH_WAIT
        async with self._pushed:
            while self._ha_online and any(s.sent != s.want for s in slots) and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._pushed.wait(), 0.1)

    # ------------------------------------------------------------------ pushing admin states
    async def _pusher(self) -> None:
        while True:
            await self._push_wake.wait()
            self._push_wake.clear()
            try:
                done = await self.push()
            except Exception:
                log.exception("pushing server states to HAProxy failed")
                done = False
            if not done and self._ha_online:
                await asyncio.sleep(RETRY)
                self._push_wake.set()

    async def push(self) -> bool:
        """Tell HAProxy every server state that changed; False when HAProxy could not be told (retry)."""
        if not self._ha_online:
            return True  # (pushed again once it is online)
        async with self._lock:
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
                self.ctx.bus.emit(f"lb.server.{want}", f"lb:/{s.key[0]}/{s.key[1]}", frontend=s.key[0],
                                  server=s.key[1], fmri=s.server.fmri, state=want)
            if changed:
                await self._save_state()
        return True

    async def _save_state(self) -> None:
        """``show servers state`` into the server-state file, which HAProxy reads back on a reload."""
        try:
            text = await self.api.servers_state()
        except RuntimeApiError as e:
            log.warning("cannot save HAProxy's server states: %s", e)
            return
        write_atomic(self.layout.state_file, text, 0o600, durable=False)

    # ------------------------------------------------------------------ configuration
    def _plan(self) -> tuple[list[Frontend], list[FieldError]]:
        sources = []
        for service, spec in self.ctx.engine.specs.items():
            decl = spec.extensions.get("lb")
            if decl is not None:
                sources.append(Source(service, tuple(str(f) for f in spec.instance_fmris()), decl))
        return merge(self.settings, sources, self._property)

    def _property(self, fmri: str, ref: tuple[str, str]) -> Any:
        inst = self.ctx.engine.instances.get(fmri)
        if inst is None:
            return None
        p = inst.config.properties.get(ref[0], {}).get(ref[1])
        return p.values[0] if p is not None and p.values else None

    async def _applier(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(0.05)  # let a burst of imports settle into one render
            self._wake.clear()
            try:
                await self.apply()
            except Exception:
                log.exception("applying the load-balancing configuration failed")

    async def apply(self) -> str:
        """Render, check and install the configuration; 'unchanged', 'applied' or 'rejected'."""
        frontends, errors = self._plan()
        if errors:
            self._reject("validate", "\n".join(str(e) for e in errors), None)
            return "rejected"
        try:
            text = hp.render(frontends, node=self.ctx.node, layout=self.layout)
        except hp.RenderError as e:
            self._reject("render", str(e), None)
            return "rejected"
        if text == read_text(self.layout.conf) or (not frontends and not os.path.exists(self.layout.conf)):
            self._applied(frontends, changed=False)
            if self.reload_pending:
                await self._reload()
            return "unchanged"
        write_atomic(self.layout.candidate, text, 0o600)
        self.config.checks += 1
        try:
            status, out = await self.ctx.reaper.run(hp.check_argv(self.binary or "haproxy", self.layout.candidate),
                                                    timeout=CHECK_TIMEOUT)
            ok = status is not None and status.code == 0
            if status is None:
                out += b"\nhaproxy -c timed out"
        except OSError as e:
            ok, out = False, str(e).encode()
        if not ok:
            with contextlib.suppress(OSError):
                os.replace(self.layout.candidate, self.layout.rejected)
            self._reject("config-test", hp.check_output(out), text)
            return "rejected"
        os.replace(self.layout.candidate, self.layout.conf)
        self._applied(frontends, changed=True)
        await self._reload()
        await self._write_lvs(frontends)
        return "applied"

    def _applied(self, frontends: list[Frontend], *, changed: bool) -> None:
        self.applied = frontends
        self.config.applied(changed=changed, present=bool(frontends) or os.path.exists(self.layout.conf))
        old = self.slots
        self.slots = {}
        for fe in frontends:
            for srv in fe.servers:
                prev = old.get((fe.name, srv.name))
                slot = Slot(fe, srv)
                if prev is not None and prev.server == srv:
                    slot.want, slot.sent, slot.since, slot.draining = prev.want, prev.sent, prev.since, prev.draining
                    slot.drains, slot.last_drain = prev.drains, prev.last_drain
                else:
                    slot.want = self._wanted(srv.fmri)
                self.slots[slot.key] = slot
        if frontends:
            self._ensure_service()
        if changed:
            log.info("HAProxy configuration applied: %d frontend(s) (%s)", len(frontends),
                     ", ".join(f.name for f in frontends) or "none")
            self.reload_pending = True
        self._push_wake.set()

    def _reject(self, stage: str, error: str, text: str | None) -> None:
        if not self.config.reject(stage, error):
            return
        log.error("load-balancing configuration rejected (%s), keeping the running one:\n%s", stage, error)
        self.ctx.bus.emit("ereport.lb.config.rejected", SERVICE, stage=stage, error=error[:4000],
                          file=self.layout.rejected if text is not None else None)

    def _ensure_service(self) -> None:
        path = self.settings.manifest if self.settings and self.settings.manifest else shipped("system",
                                                                                              "haproxy.toml")
        if path is None:
            self.service_error = "cannot find the HAProxy service manifest (manifests/system/haproxy.toml)"
        else:
            self.service_error = import_manifest(self.ctx.engine, path, {"HAPROXY": self.binary or "haproxy"})
        if self.service_error:
            log.error("HAProxy service manifest: %s", self.service_error)

    async def _reload(self) -> None:
        """Server states into the state file, then SIGUSR2 to the master; once the new worker answers, every
        server's state is pushed again. Not running or starting: it reads the new file when it starts."""
        inst = self.ctx.engine.instances.get(SERVICE)
        if inst is None or inst.state.value != "online" or inst.next_state is not None:
            self.reload_pending = inst is not None and inst.contract is not None
            return
        async with self._lock:
            await self._save_state()
            try:
                before = await self.api.worker_pid()
            except RuntimeApiError:
                before = None
            pid = hp.reload(self.layout, inst.pids)
            self.reload_pending = False
            if pid is None:
                log.warning("HAProxy's pid file %s names no process of %s; not reloaded", self.layout.pidfile,
                            SERVICE)
                return
            self.config.reloads += 1
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                with contextlib.suppress(RuntimeApiError):
                    now = await self.api.worker_pid()
                    if now is not None and now != before:
                        break
            log.info("HAProxy (master pid %d) reloaded", pid)
            for s in self.slots.values():
                s.sent = None
        self._push_wake.set()

    async def _write_lvs(self, frontends: list[Frontend]) -> None:
        """keepalived ``virtual_server`` blocks for the same frontends, checked with ``keepalived -t`` (untested
        as a data path here: these hosts have no ip_vs)."""
        text = lvs.render(frontends, node=self.ctx.node)
        write_atomic(self.layout.lvs, text, 0o600)
        self.lvs_error = await lvs.check(self.ctx.reaper, self.layout.lvs)

    # ------------------------------------------------------------------ operations
    def _service_state(self) -> str:
        inst = self.ctx.engine.instances.get(SERVICE)
        return inst.state.value if inst is not None else "absent"

    async def op_show(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"names": [frontend...]?}`` -> the frontends, their servers, HAProxy's view and svcmgr's (``lbadm``)."""
        names = arg(req, "names", list, [])
        out: dict[str, Any] = {"available": self.available, "reason": self.reason, "node": self.ctx.node}
        if not self.available:
            return out
        unknown = [n for n in names if not any(f.name == n for f in self.applied)]
        if unknown:
            raise ApiError(f"no frontend named {unknown[0]!r} on node {self.ctx.node}", 1)
        stats: dict[tuple[str, str], Any] = {}
        stats_error = None
        if self._ha_online:
            try:
                stats = await self.api.stats()
            except RuntimeApiError as e:
                stats_error = str(e)
        fronts = []
        for fe in self.applied:
            if names and fe.name not in names:
                continue
            view = fe.to_dict()
            servers = []
            for srv in fe.servers:
                s = self.slots.get((fe.name, srv.name))
                inst = self.ctx.engine.instances.get(srv.fmri)
                st = stats.get((fe.name, srv.name))
                servers.append({
                    "name": srv.name, "fmri": srv.fmri, "address": srv.address, "weight": srv.weight,
                    "svc_state": inst.state.value if inst else "absent",
                    "svc_next_state": inst.next_state.value if inst and inst.next_state else None,
                    "want": s.want if s else None, "sent": s.sent if s else None,
                    "since": iso(s.since) if s else None, "drains": s.drains if s else 0,
                    "last_drain": s.last_drain if s else None,
                    "haproxy": st.to_dict() if st is not None else None,
                })
            view["servers"] = servers
            fronts.append(view)
        out.update({"haproxy": self.binary, "service": SERVICE, "service_state": self._service_state(),
                    "service_error": self.service_error, "stats_error": stats_error, "lvs_error": self.lvs_error,
                    "config": self.config.view(self.layout.conf, self.layout.rejected), "frontends": fronts})
        return out

    async def op_config(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"rejected": bool?, "lvs": bool?}`` -> the running haproxy.cfg (or the last rejected one, or the
        keepalived virtual_server rendering of the same frontends)."""
        rejected = arg(req, "rejected", bool, False)
        want_lvs = arg(req, "lvs", bool, False)
        out: dict[str, Any] = {"available": self.available, "reason": self.reason, "node": self.ctx.node}
        if not self.available:
            return out
        path = self.layout.lvs if want_lvs else self.layout.rejected if rejected else self.layout.conf
        out.update({"path": path, "text": read_text(path), "lvs_error": self.lvs_error,
                    "config": self.config.view(self.layout.conf, self.layout.rejected)})
        return out


def create(ctx: Context) -> Agent:
    settings = ctx.config.section("lb")
    binary = hp.find_haproxy(settings.haproxy if settings else None)
    return Agent(ctx, settings, binary)
