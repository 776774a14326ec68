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
- **Backends follow service state** (``lb.servers``) over the Runtime API, the moment it changes:
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
from typing import TYPE_CHECKING, Any

from lb import haproxy as hp
from lb import lvs
from lb.config import LbConfig, Source, merge
from lb.model import Frontend
from lb.runtime import RuntimeApi, RuntimeApiError
from lb.servers import Servers
from svcmgr.api import ApiError, Caller, arg
from svcmgr.eventclasses import (
    SVC_CONFIG,
    SVC_IMPORTED,
    SVC_REFRESHED,
    SVC_STATE,
    SVC_STOPPING,
    state_of,
)
from svcmgr.events import Event
from svcmgr.files import read_text, write_atomic
from svcmgr.paths import shipped
from svcmgr.rendered import ConfigStatus, apply_loop, iso, not_installed, run_check
from svcmgr.schema import FieldError

if TYPE_CHECKING:
    from svcmgr.component import Context
    from svcmgr.config import DaemonConfig

__all__ = ["Agent", "create"]

log = logging.getLogger("lb.agent")

SERVICE = hp.SERVICE
CHECK_TIMEOUT = 20.0


class Agent:
    name = "lb"

    def __init__(self, ctx: Context, settings: LbConfig | None, binary: str | None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.binary = binary
        self.layout = hp.Layout.for_paths(ctx.paths.lib, ctx.paths.run)
        self.api = RuntimeApi(self.layout.socket)
        self.applied: list[Frontend] = []
        self.servers = Servers(self.api, ctx.bus, ctx.services, self.layout.state_file)
        self.config = ConfigStatus()
        self.service_error: str | None = None
        self.lvs_error: str | None = None
        self.reload_pending = False
        self._wake = asyncio.Event()  # the configuration may have changed
        self._sub: Any = None

    @property
    def available(self) -> bool:
        return self.binary is not None

    @property
    def reason(self) -> str | None:
        if self.binary is not None:
            return None
        want = self.settings.haproxy if self.settings and self.settings.haproxy else "haproxy"
        return not_installed("HAProxy", want, "load balancing")

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
        self._sub = self.ctx.bus.subscribe(SVC_STATE, SVC_CONFIG)
        self.ctx.bus.listen(self._listen)
        self.ctx.services.add_stop_gate(self.servers.gate)
        self.layout.make()
        inst = self.ctx.services.instance(SERVICE)
        self.servers.online = inst is not None and inst.state.value == "online"
        self._wake.set()

    async def run(self) -> None:
        if not self.available:
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._events(), name="lb-events")
                tg.create_task(apply_loop(self._wake, self.apply, "load-balancing"), name="lb-apply")
                tg.create_task(self.servers.run(), name="lb-push")
        finally:
            if self._sub is not None:
                self._sub.close()

    def reconfigure(self, config: DaemonConfig) -> None:
        self.settings = config.section("lb")
        self._wake.set()

    def statistics(self) -> dict[str, Any]:
        return {"available": self.available, "frontends": len(self.applied), "servers": len(self.servers.slots),
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
        state = state_of(ev.cls)
        if ev.cls in (SVC_IMPORTED, SVC_REFRESHED):
            self._wake.set()
        elif state is not None:
            if ev.resource == SERVICE:
                self._on_haproxy(state)
            elif state == "deleted":
                self._wake.set()
            else:
                self.servers.follow(ev.resource)

    def _listen(self, ev: Event) -> None:
        """Synchronous bus listener: an unplanned stop (a death, a failed probe) takes its servers out of
        rotation at once, before the engine has even started stopping it. Must not raise."""
        if ev.cls != SVC_STOPPING:
            return
        if ev.resource == SERVICE:
            self.servers.online = False  # its stats socket goes with it: nothing waits for it any more
        elif not ev.data.get("planned"):
            self.servers.unplanned(ev.resource)

    def _on_haproxy(self, state: str) -> None:
        was, self.servers.online = self.servers.online, state == "online"
        if self.servers.online and not was:
            self.servers.resync()  # a new master
            if self.reload_pending:
                self._wake.set()

    # ------------------------------------------------------------------ configuration
    def _plan(self) -> tuple[list[Frontend], list[FieldError]]:
        sources = []
        for service, spec in self.ctx.services.specs().items():
            decl = spec.extensions.get("lb")
            if decl is not None:
                sources.append(Source(service, tuple(str(f) for f in spec.instance_fmris()), decl))
        return merge(self.settings, sources, self._property)

    def _property(self, fmri: str, ref: tuple[str, str]) -> Any:
        inst = self.ctx.services.instance(fmri)
        if inst is None:
            return None
        p = inst.config.properties.get(ref[0], {}).get(ref[1])
        return p.values[0] if p is not None and p.values else None

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
        ok, out = await run_check(self.ctx.run, hp.check_argv(self.binary or "haproxy", self.layout.candidate),
                                  CHECK_TIMEOUT)
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
        self.servers.rebuild(frontends)
        if frontends:
            self._ensure_service()
        if changed:
            log.info("HAProxy configuration applied: %d frontend(s) (%s)", len(frontends),
                     ", ".join(f.name for f in frontends) or "none")
            self.reload_pending = True

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
            self.service_error = self.ctx.services.import_manifest(path, {"HAPROXY": self.binary or "haproxy"})
        if self.service_error:
            log.error("HAProxy service manifest: %s", self.service_error)

    async def _reload(self) -> None:
        """Server states into the state file, then SIGUSR2 to the master; once the new worker answers, every
        server's state is pushed again. Not running or starting: it reads the new file when it starts."""
        inst = self.ctx.services.instance(SERVICE)
        if inst is None or inst.state.value != "online" or inst.next_state is not None:
            self.reload_pending = inst is not None and inst.has_processes
            return
        async with self.servers.lock:
            await self.servers.save_state()
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
        self.servers.resync()

    async def _write_lvs(self, frontends: list[Frontend]) -> None:
        """keepalived ``virtual_server`` blocks for the same frontends, checked with ``keepalived -t`` (untested
        as a data path here: these hosts have no ip_vs)."""
        text = lvs.render(frontends, node=self.ctx.node)
        write_atomic(self.layout.lvs, text, 0o600)
        self.lvs_error = await lvs.check(self.ctx.run, self.layout.lvs)

    # ------------------------------------------------------------------ operations
    def _service_state(self) -> str:
        inst = self.ctx.services.instance(SERVICE)
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
        if self.servers.online:
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
                s = self.servers.slots.get((fe.name, srv.name))
                inst = self.ctx.services.instance(srv.fmri)
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
