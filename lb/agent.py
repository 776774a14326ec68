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
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from lb import haproxy as hp
from lb import lvs
from lb.config import LbConfig, merge
from lb.model import Frontend
from lb.runtime import RuntimeApi, RuntimeApiError
from lb.servers import Servers
from svcmgr.api import ApiError, Caller, arg
from svcmgr.daemonagent import DaemonAgent
from svcmgr.eventclasses import SVC_CONFIG, SVC_IMPORTED, SVC_REFRESHED, SVC_STATE, SVC_STOPPING, state_of
from svcmgr.events import Event
from svcmgr.files import write_atomic
from svcmgr.rendered import iso
from svcmgr.schema import FieldError

if TYPE_CHECKING:
    from svcmgr.component import Context

__all__ = ["Agent", "create"]

log = logging.getLogger("lb.agent")

SERVICE = hp.SERVICE


class Agent(DaemonAgent):
    name = "lb"
    DAEMON = "HAProxy"
    BINARY = "haproxy"
    PROVIDES = "load balancing"
    WHAT = "load-balancing"
    NOUN = "frontend"
    SERVICE = SERVICE
    MANIFEST = "haproxy.toml"
    SUBSCRIBE = (SVC_STATE, SVC_CONFIG)
    CONFIG_FILES = ("rejected", "lvs")

    def __init__(self, ctx: Context, settings: LbConfig | None, binary: str | None) -> None:
        layout = hp.Layout.for_paths(ctx.paths.lib, ctx.paths.run)
        super().__init__(ctx, settings, binary, layout)
        self.layout: hp.Layout = layout
        self.api = RuntimeApi(self.layout.socket)
        self.applied: list[Frontend] = []
        self.servers = Servers(self.api, ctx.bus, ctx.services, self.layout.state_file)
        self.lvs_error: str | None = None
        self.reload_pending = False

    # ------------------------------------------------------------------ lifecycle
    def started(self) -> None:
        self.ctx.services.add_stop_gate(self.servers.gate)
        inst = self.ctx.services.instance(SERVICE)
        self.servers.online = inst is not None and inst.state.value == "online"
        self.wake.set()

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self.servers.run()]

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), "frontends": len(self.applied), "servers": len(self.servers.slots),
                "commands": self.api.commands, "failures": self.api.failures}

    # ------------------------------------------------------------------ following service state
    def on_event(self, ev: Event) -> None:
        state = state_of(ev.cls)
        if ev.cls in (SVC_IMPORTED, SVC_REFRESHED):
            self.wake.set()
        elif state is not None:
            if ev.resource == SERVICE:
                self._on_haproxy(state)
            elif state == "deleted":
                self.wake.set()
            else:
                self.servers.follow(ev.resource)

    def listen(self, ev: Event) -> None:
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
                self.wake.set()

    # ------------------------------------------------------------------ configuration
    def plan(self) -> tuple[list[Frontend], list[FieldError]]:
        return merge(self.settings, self.sources(), self._property)

    def _property(self, fmri: str, ref: tuple[str, str]) -> Any:
        inst = self.ctx.services.instance(fmri)
        if inst is None:
            return None
        p = inst.config.properties.get(ref[0], {}).get(ref[1])
        return p.values[0] if p is not None and p.values else None

    def render(self, items: list[Frontend]) -> str:
        return hp.render(items, node=self.ctx.node, layout=self.layout)

    def check_argv(self) -> list[str]:
        return hp.check_argv(self.binary or "haproxy", self.layout.candidate)

    def check_error(self, output: bytes) -> str:
        return hp.check_output(output)

    def follow(self, items: list[Frontend]) -> None:
        self.servers.rebuild(items)

    async def unchanged(self) -> None:
        if self.reload_pending:
            await self._reload()

    async def installed(self, items: list[Frontend]) -> None:
        await self._reload()
        await self._write_lvs(items)

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
    async def op_show(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"names": [frontend...]?}`` -> the frontends, their servers, HAProxy's view and svcmgr's (``lbadm``)."""
        names = arg(req, "names", list, [])
        out = self.head()
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
        out.update({**self.service_view(), "stats_error": stats_error, "lvs_error": self.lvs_error,
                    "frontends": fronts})
        return out

    def config_extra(self) -> dict[str, Any]:
        return {"lvs_error": self.lvs_error}


def create(ctx: Context) -> Agent:
    settings = ctx.config.section("lb")
    binary = hp.find_haproxy(settings.haproxy if settings else None)
    return Agent(ctx, settings, binary)
