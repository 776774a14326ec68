"""The VRRP agent: keeps keepalived configured, fed with service health, and heard.

- **Configuration.** The instances this node runs are the manifests' ``[vrrp]``
  declarations with the node's ``[vrrp]`` values on top (``vrrp.config.merge``).
  The agent renders ``keepalived.conf``, writes it beside the running one,
  checks it with ``keepalived --config-test`` and only then renames it into place
  and sends SIGHUP, and only when the text changed. A configuration that fails
  is not applied: the running one stays, ``vrrpadm`` shows the error and the
  bus gets ``ereport.vrrp.config.rejected``.
- **keepalived as a service.** keepalived runs as ``svc:/network/vrrp:default``
  (``manifests/system/vrrp.toml``), in the foreground, so a crash is restarted
  like any service's. The agent imports that manifest (``ServiceCommands.import_manifest``) the
  first time the node has an instance and a checked configuration; after that
  the operator's ``svcadm enable/disable`` rule it.
- **Health in.** Each followed service's state (``svc.state.*``) and the fault
  cases that name it (``list.suspect`` ... ``list.repaired``) decide the content
  of its ``track_file``: 0 while healthy, 1 when not. keepalived applies the
  follow's weight at once (0: FAULT, the fastest failover).
- **When keepalived stops.** The addresses a dead keepalived left on the
  interfaces are removed, and unless an operator disabled it the crash hold
  (``vrrp.hold``) keeps the restarted keepalived in FAULT for a while, so it
  does not race the backup that took over.
- **State out.** keepalived's notify FIFO is read in order; each transition is
  published as ``vrrp.state.master|backup|fault|stop`` (resource ``vrrp:/NAME``)
  with the instance, the priority and the time.
- **Operations.** ``vrrp.show`` and ``vrrp.config`` for ``vrrpadm``.

Where keepalived is not installed the agent stays idle: the daemon runs without
VRRP and the operations say why.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from svcmgr.api import ApiError, Caller, arg
from svcmgr.daemonagent import CHECK_TIMEOUT, DaemonAgent
from svcmgr.eventclasses import (
    CASE_CLOSED,
    CASE_CLOSED_STATES,
    CASE_OPEN,
    LIST,
    SVC_IMPORTED,
    SVC_STATE,
    state_of,
    vrrp_state_class,
)
from svcmgr.events import Event
from svcmgr.rendered import iso
from svcmgr.schema import FieldError
from vrrp import keepalived as ka
from vrrp.config import VrrpConfig, merge
from vrrp.health import Health, case_resources, effective_priority
from vrrp.hold import CrashHold
from vrrp.model import VrrpInstance
from vrrp.move import PlannedMove
from vrrp.notify import FifoReader, Notice

if TYPE_CHECKING:
    from svcmgr.component import Context

__all__ = ["Agent", "create"]

log = logging.getLogger("vrrp.agent")

SERVICE = ka.SERVICE
#: keepalived's words in the notify FIFO -> the state in our events.
STATES = {"MASTER": "master", "BACKUP": "backup", "FAULT": "fault", "STOP": "stop", "DELETED": "stop"}
PRIORITY_NOTICES = ("MASTER_PRIORITY", "BACKUP_PRIORITY")


@dataclass
class Router:
    """What keepalived last said about one instance."""

    state: str = "init"
    previous: str | None = None
    reported_priority: int | None = None
    since: float | None = None
    transitions: collections.deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=20))


class Agent(DaemonAgent):
    name = "vrrp"
    DAEMON = BINARY = "keepalived"
    PROVIDES = WHAT = "VRRP"
    NOUN = "VRRP instance"
    SERVICE = SERVICE
    MANIFEST = "vrrp.toml"
    SUBSCRIBE = (SVC_STATE, SVC_IMPORTED, LIST)

    def __init__(self, ctx: Context, settings: VrrpConfig | None, binary: str | None) -> None:
        layout = ka.Layout.for_paths(ctx.paths.lib, ctx.paths.run)
        super().__init__(ctx, settings, binary, layout)
        self.layout: ka.Layout = layout
        self.health = Health()
        self.applied: list[VrrpInstance] = []
        self.routers: dict[str, Router] = {}
        self._configured: set[str] = set()  # the instances of the running configuration
        self.fifo = FifoReader(self.layout.fifo, self._on_notice)
        self.hup_pending = False
        self._ka_online = False
        self.hold = CrashHold(self.layout.hold, self.hold_time)
        self.move = PlannedMove(self.layout.move_file, lambda name: (self.routers.get(name) or Router()).state)

    # ------------------------------------------------------------------ lifecycle
    def started(self) -> None:
        self.ctx.services.add_stop_gate(lambda fmri: self.move.gate(fmri, self.applied) if self._ka_online else None)
        self.hold.clear()
        self.fifo.open(asyncio.get_running_loop())
        for inst in self.ctx.services.instances():
            self.health.set_state(inst.fmri, inst.state.value)
        self._apply_sync()

    def stopped(self) -> None:
        self.hold.cancel()
        self.fifo.close()

    def statistics(self) -> dict[str, Any]:
        return {**super().statistics(), "instances": len(self.applied), "fifo_lines": self.fifo.lines,
                "fifo_malformed": self.fifo.malformed}

    # ------------------------------------------------------------------ events
    def on_event(self, ev: Event) -> None:
        state = state_of(ev.cls)
        if state is not None:
            if ev.resource == SERVICE:
                self._on_keepalived(state)
                return
            self.health.set_state(ev.resource, state)
            self._write_tracks()
            if state in ("online", "degraded"):
                self.move.back(ev.resource, self.applied)
            if state == "deleted":
                self.wake.set()
        elif ev.cls == SVC_IMPORTED:
            self.wake.set()
        elif ev.cls.startswith(LIST + "."):
            uuid = ev.data.get("uuid") or ev.data.get("case") or ev.resource
            if not isinstance(uuid, str) or not uuid:
                return
            if ev.cls in CASE_CLOSED or ev.data.get("state") in CASE_CLOSED_STATES:
                self.health.close_case(uuid)
            elif ev.cls in CASE_OPEN:
                # An update may name new suspects; a case announced again after a daemon
                # restart (list.updated) is learnt here too.
                self.health.open_case(uuid, case_resources(ev.resource, ev.data))
            self._write_tracks()

    # ------------------------------------------------------------------ at once
    def listen(self, ev: Event) -> None:
        """Synchronous bus listener, for what cannot wait for the agent's turn on the loop.

        An ereport on a followed service (a process died) is looked at right after the
        engine has handled it: a service on its way down is unhealthy at once, not
        once its stop is complete. And the moment keepalived stops running (before the
        restarter starts it again) its leftover addresses go and the hold is set.
        Called inside the publisher: it must not raise."""
        try:
            self._on_sync_event(ev)
        except Exception:
            log.exception("VRRP agent: handling %s failed", ev.cls)

    def _on_sync_event(self, ev: Event) -> None:
        if ev.cls.startswith("ereport.svc.") and ev.resource in self._followed():
            asyncio.get_running_loop().call_soon(self._recheck, ev.resource)
            return
        state = state_of(ev.cls)
        if ev.resource != SERVICE or state is None:
            return
        if ev.data.get("previous") in ("online", "degraded") and state not in ("online", "degraded"):
            # Its processes are gone now (the state changes once the stop is complete).
            ka.drop_addresses(self.applied)
            if state != "disabled":
                self.hold.set()

    def hold_time(self) -> float:  # (see vrrp.hold)
        """How long a restarted keepalived stays in FAULT: configured, else 5 adverts of the slowest
        instance (longer than any backup's master-down interval, 3 adverts plus skew)."""
        if self.settings is not None and self.settings.crash_hold is not None:
            return self.settings.crash_hold
        return 5 * max((i.advert_interval for i in self.applied), default=1.0)

    def _on_keepalived(self, state: str) -> None:
        was = self._ka_online
        self._ka_online = state == "online"
        if self._ka_online:
            self.hold.arm()
            if self.fifo.stale():
                log.warning("notify FIFO %s was replaced; reopening it", self.fifo.path)
                self.fifo.open(asyncio.get_running_loop())
            if self.hup_pending:
                self._hup()
        elif was:
            for name, r in self.routers.items():
                if r.state not in ("stop", "init"):
                    self._transition(name, r, "stop", r.reported_priority, reason="keepalived is not running")

    # ------------------------------------------------------------------ state out
    def _on_notice(self, n: Notice) -> None:
        if n.kind != "INSTANCE":
            return
        r = self.routers.setdefault(n.name, Router())
        if n.state in PRIORITY_NOTICES:
            r.reported_priority = n.priority
            return
        state = STATES.get(n.state)
        if state is None:
            return
        self._transition(n.name, r, state, n.priority, deleted=n.state == "DELETED")

    def _transition(self, name: str, r: Router, state: str, priority: int | None, **extra: Any) -> None:
        now = time.time()
        r.previous, r.state, r.since = r.state, state, now
        self.move.transitioned()
        if priority is not None:
            r.reported_priority = priority
        inst = self._instance(name)
        record = {"state": state, "previous": r.previous, "priority": priority, "time": now, **extra}
        r.transitions.append(record)
        data: dict[str, Any] = {"instance": name, "state": state, "previous": r.previous, "priority": priority,
                                "time": now, **extra}
        if inst is not None:
            data.update(configured_priority=inst.priority, effective_priority=self._effective(inst, r),
                        addresses=[str(a) for a in inst.addresses], router_id=inst.router_id,
                        interface=inst.interface)
        log.info("VRRP instance %s: %s -> %s (priority %s)", name, r.previous, state, priority)
        self.ctx.bus.emit(vrrp_state_class(state), f"vrrp:/{name}", **data)

    def _instance(self, name: str) -> VrrpInstance | None:
        return next((i for i in self.applied if i.name == name), None)

    def _effective(self, inst: VrrpInstance, r: Router | None) -> int:
        if r is not None and r.state in ("fault", "stop"):
            return 0
        return effective_priority(inst, self.health)

    # ------------------------------------------------------------------ health in
    def _recheck(self, fmri: str) -> None:
        """The live state of a followed instance: online and staying online, or not."""
        inst = self.ctx.services.instance(fmri)
        if inst is None:
            return
        staying = inst.next_state is None or inst.next_state.value == "online"
        state = inst.state.value
        self.health.set_state(fmri, state if state != "online" or staying else "stopping")
        self._write_tracks()

    def _followed(self) -> set[str]:
        return {f.fmri for i in self.applied for f in i.follows}

    def _write_tracks(self, instances: list[VrrpInstance] | None = None) -> None:
        """Write the track file of each followed service whose health changed (or whose file is missing)."""
        followed = {f.fmri for i in (self.applied if instances is None else instances) for f in i.follows}
        changed = self.health.changed(followed)
        for f in followed:
            path = self.layout.track_file(f)
            if f not in changed and os.path.exists(path):
                continue
            healthy = self.health.healthy(f)
            try:
                ka.write_atomic(path, ka.track_value(healthy), durable=False)
            except OSError as e:
                log.error("cannot write track file %s: %s", path, e)
                continue
            if f in changed:
                log.info("%s is %s: track file %s", f, "healthy" if healthy else
                         f"unhealthy ({self.health.why(f)})", os.path.basename(path))

    def _prune_tracks(self) -> None:
        keep = {os.path.basename(self.layout.track_file(f)) for f in self._followed()}
        self.health.forget(self._followed())
        with contextlib.suppress(OSError):
            for name in os.listdir(self.layout.track_dir):
                if name.startswith("svc_") and name not in keep:
                    os.unlink(os.path.join(self.layout.track_dir, name))

    # ------------------------------------------------------------------ configuration
    def plan(self) -> tuple[list[VrrpInstance], list[FieldError]]:
        return merge(self.settings, self.sources())

    def render(self, items: list[VrrpInstance]) -> str:
        return ka.render(items, node=self.ctx.node, layout=self.layout)

    def check_argv(self) -> list[str]:
        return ka.check_argv(self.binary or "keepalived", self.layout.candidate)

    def check_error(self, output: bytes) -> str:
        return ka.check_output(output)

    def stage(self, text: str, items: list[VrrpInstance]) -> None:
        """Track files first, so keepalived reads each service's health, not the pessimistic init value."""
        self._write_tracks(items)
        ka.write_atomic(self.layout.candidate, text)

    def _apply_sync(self) -> None:
        """First application, before services start: keepalived then starts with the current configuration."""
        self.wake.set()  # and once more when running, after the --manifests import
        text, instances, _error, _stage = self.prepare()
        if text is None or self.is_current(text, instances):
            return  # (an error may be fixed by a manifest imported next: the run loop reports what is left)
        try:
            p = subprocess.run(self.check_argv(), capture_output=True, timeout=CHECK_TIMEOUT, check=False)
            ok, out = p.returncode == 0, p.stdout + p.stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, out = False, str(e).encode()
        if self.checked(text, instances, ok, out) == "applied":
            self._hup()

    def follow(self, items: list[VrrpInstance]) -> None:
        names = {i.name for i in items}
        for name in self._configured - names:
            self.routers.pop(name, None)
        self._configured = names
        for i in items:
            self.routers.setdefault(i.name, Router())
        self._write_tracks()
        self._prune_tracks()
        self.move.prune(items, self.layout.track_dir)
        self.move.write(items)

    async def installed(self, items: list[VrrpInstance]) -> None:
        self._hup()

    def _hup(self) -> None:
        """SIGHUP keepalived if it runs and is ready; otherwise remember to once it is."""
        inst = self.ctx.services.instance(SERVICE)
        if inst is None:
            self.hup_pending = False
            return
        if inst.state.value != "online" or inst.next_state is not None:
            # Starting: it may have read the old file; stopped: it reads the new one when it starts.
            self.hup_pending = inst.has_processes
            return
        pid = ka.reload(self.layout, inst.pids)
        self.hup_pending = False
        if pid is not None:
            self.config.reloads += 1
            log.info("keepalived (pid %d) reloading its configuration", pid)
        else:
            log.warning("keepalived's pid file %s names no process of %s; not reloaded", self.layout.pidfile,
                        SERVICE)

    # ------------------------------------------------------------------ operations
    def router_view(self, inst: VrrpInstance) -> dict[str, Any]:
        r = self.routers.get(inst.name) or Router()
        view = inst.to_dict()
        view.update({
            "state": r.state, "previous": r.previous, "configured_priority": inst.priority,
            "effective_priority": self._effective(inst, r), "reported_priority": r.reported_priority,
            "last_transition": iso(r.since), "last_transition_epoch": r.since,
            "peers": [str(p) for p in inst.unicast_peers] if inst.unicast_peers else ["multicast"],
            "moving_for": sorted(self.move.moving.get(inst.name, ())),
            "follows": [{"fmri": f.fmri, "weight": f.weight, "healthy": self.health.healthy(f.fmri),
                         "state": self.health.why(f.fmri)} for f in inst.follows],
            "transitions": [{**t, "time": iso(t["time"])} for t in r.transitions],
        })
        return view

    async def op_show(self, caller: Caller, req: dict[str, Any]) -> dict[str, Any]:
        """``{"names": [instance...]?}`` -> the VRRP routers of this node (``vrrpadm show-router``)."""
        names = arg(req, "names", list, [])
        out = self.head()
        if not self.available:
            return out
        unknown = [n for n in names if self._instance(n) is None]
        if unknown:
            raise ApiError(f"no VRRP instance named {unknown[0]!r} on node {self.ctx.node}", 1)
        out.update({**self.service_view(), "hold": self.hold.view(),
                    "routers": [self.router_view(i) for i in self.applied if not names or i.name in names]})
        return out


def create(ctx: Context) -> Agent:
    settings = ctx.config.section("vrrp")
    binary = ka.find_keepalived(settings.keepalived if settings else None)
    return Agent(ctx, settings, binary)
