"""Across a daemon restart: what the repository says at start, and what a restarting daemon leaves running.

Part of the engine (``svcmgr.engine.Engine`` mixes it in). At start, instances are
built from the stored configuration with their enable state and marks; within one
boot of the machine, one that was running is adopted (its contract taken over by the
process layer) or resumed (nothing to track); one that was starting or stopping, or must
not run now, has its contract adopted and stopped at boot (``Phase`` stopping, then where
its settings say); contracts no one adopts are ended.
``detach`` records every contract and leaves the services running for the next
daemon (SIGUSR2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from svcmgr.machine import Phase, display
from svcmgr.manifest import ManifestErrors, parse_service
from svcmgr.spec import InstanceConfig, ServiceSpec, resolve_instance
from svcmgr.states import State
from svcmgr.timings import machine_boot
from svcmgr.wording import counted

if TYPE_CHECKING:
    from svcmgr.instance import Instance
    from svcmgr.process import ProcessLayer
    from svcmgr.repository import InstanceRecord, Repository

__all__ = ["Adoption"]

log = logging.getLogger("svcmgr.engine")


class Adoption:
    """Load and detach (a part of ``Engine``)."""

    # What this part uses of the engine's state...
    instances: dict[str, Instance]
    specs: dict[str, ServiceSpec]
    editing: dict[str, dict[str, Any]]
    sources: dict[str, tuple[str, str]]
    repo: Repository
    restarter: ProcessLayer
    load_errors: list[str]
    shutting_down: bool
    # ... and of the other parts:
    new_instance: Callable[[InstanceConfig], Instance]
    rebuild_graph: Callable[[], None]
    save: Callable[[Instance], None]
    release_waiters: Callable[[int], None]
    close: Callable[[], Awaitable[None]]

    def load(self) -> None:
        """Build instances from the repository, adopting contracts an earlier daemon left running.

        Adoption happens only within one boot of the machine: after a reboot
        nothing of the previous daemon runs, and every instance starts afresh."""
        records = self.repo.instances()
        boot = machine_boot()
        same_boot = self.repo.get_meta("boot_id") == boot
        self.repo.set_meta("boot_id", boot)
        for rec in self.repo.services():
            try:
                spec = parse_service(rec.running, rec.source)
            except ManifestErrors as e:
                self.load_errors.append(f"{rec.fmri}: stored configuration is invalid: {e}")
                log.error("skipping %s: %s", rec.fmri, e)
                continue
            self.specs[rec.fmri] = spec
            self.editing[rec.fmri] = rec.editing
            self.sources[rec.fmri] = (rec.source, rec.format)
            for name in spec.instances:
                cfg = resolve_instance(spec, name)
                inst = self.new_instance(cfg)
                r = records.get(str(cfg.fmri))
                if r is None:
                    continue
                inst.enabled_set = r.enabled
                inst.marks = {k: v for k, v in (r.marks or {}).items() if not v.get("temporary")}
                settled = r.state in ("online", "degraded") and r.next_state is None and same_boot \
                    and inst.effective_enabled and "maintenance" not in inst.marks
                if r.contract and same_boot:
                    if not self.restarter.adopt(inst, r.contract):
                        continue
                    ctid = f"contract {r.contract.get('ctid')} ({counted(len(inst.pids), 'process', 'processes')})"
                    if settled:
                        self._resume(inst, r, f"Adopted running {ctid} after a daemon restart.")
                    else:
                        why = ("to finish its stop" if r.next_state not in (None, "online") else
                               "to stop its unfinished start" if r.next_state else "to stop it, as its settings say")
                        self._finish_stop(inst, r, f"Adopted {ctid} after a daemon restart, {why}.")
                elif settled and self._untracked(cfg):
                    self._resume(inst, r, "Still online after a daemon restart (nothing to track).")
                elif r.contract:
                    self.restarter.discard(r.contract)
        self.rebuild_graph()
        self.restarter.sweep(self.instances.values())

    @staticmethod
    def _untracked(cfg: InstanceConfig) -> bool:
        """Online without processes to track: transient services and ``:true`` starts (milestones)."""
        start = cfg.methods.get("start")
        return cfg.duration == "transient" or start is None or start.exec.kind == "true"

    def _resume(self, inst: Instance, rec: InstanceRecord, note: str) -> None:
        inst.phase = Phase.DEGRADED if rec.state == "degraded" else Phase.ONLINE
        inst.state = State(rec.state)
        inst.stime = rec.stime or time.time()
        inst.reason = rec.reason or ""
        assert inst.log is not None
        inst.log.note(note)

    def _finish_stop(self, inst: Instance, rec: InstanceRecord, note: str) -> None:
        """An adopted contract the instance must not keep as it is: it was stopping, or starting, when the
        earlier daemon died, or is now disabled or in maintenance. ``boot`` stops it (stop method, then every
        process), and the instance goes where its settings say."""
        if "maintenance" in inst.marks:
            phase = Phase.STOPPING_MAINT
        elif not inst.effective_enabled:
            phase = Phase.STOPPING_DISABLE
        else:
            phase = Phase.STOPPING
        inst.phase = phase
        inst.state, inst.next_state = display(phase, State(rec.state or "offline"))
        inst.stime = rec.stime or time.time()
        inst.reason = rec.reason or ""
        assert inst.log is not None
        inst.log.note(note)

    async def detach(self) -> None:
        """Leave every service running for the next daemon: record contracts, close without stopping."""
        self.shutting_down = True
        for inst in self.instances.values():
            self.save(inst)
        self.release_waiters(1)
        await self.close()
