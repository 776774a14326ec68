"""Watching running contracts: which instance each process belongs to, and what each end means.

The restarter hands an instance over once it is ready (``watch``), or after a daemon
restart with the processes it adopted (``take``). A member dying on a signal
(unless ``restart.ignore_error`` names it), a ``child`` service's main process
ending, or the contract emptying is reported once through ``on_contract``, with
its ereport (``ereport.svc.exit.*``, ``ereport.svc.oom``) on the bus. Our own
children's ends come from the reaper; orphans re-parented to the daemon (it is a
subreaper) are routed by pid, or found by a sweep of the contracts; adopted
processes that are not our children are watched through a pidfd. When a contract's
processes are found to have changed, ``on_members`` says so, for its record: a daemon
restarted after a crash finds a process-group contract's processes through it.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

from svcmgr.bus import Bus
from svcmgr.contract import Contract
from svcmgr.instance import Instance
from svcmgr.process import ContractReport
from svcmgr.rctl import format_size
from svcmgr.reaper import ExitStatus, Reaper

__all__ = ["Monitor"]


class Monitor:
    def __init__(self, reaper: Reaper, bus: Bus, on_contract: ContractReport,
                 on_members: Callable[[Instance], None] = lambda inst: None) -> None:
        self.reaper = reaper
        self.bus = bus
        self.on_contract = on_contract
        self.on_members = on_members
        #: which instance each known process belongs to; ``_pids`` is the same, by instance (so that
        #: releasing one instance's processes does not read every instance's)
        self.pid_owner: dict[int, Instance] = {}
        self._pids: dict[Instance, set[int]] = {}
        self.monitored: set[Instance] = set()
        self._sweep_scheduled = False
        reaper.on_orphan = self.orphan_reaped

    def owns(self, pid: int, inst: Instance) -> None:
        """``pid`` is a process of ``inst`` (its start method, before it is watched)."""
        old = self.pid_owner.get(pid)
        if old is inst:
            return
        if old is not None:
            self._drop(old, pid)
        self.pid_owner[pid] = inst
        self._pids.setdefault(inst, set()).add(pid)

    def disown(self, pid: int) -> None:
        """``pid`` is nobody's process any more (it ended)."""
        old = self.pid_owner.pop(pid, None)
        if old is not None:
            self._drop(old, pid)

    def _drop(self, inst: Instance, pid: int) -> None:
        pids = self._pids.get(inst)
        if pids is not None:
            pids.discard(pid)
            if not pids:
                del self._pids[inst]

    def owner(self, pid: int) -> Instance | None:
        return self.pid_owner.get(pid)

    def unwatch(self, inst: Instance) -> None:
        """The instance is stopping: its processes' ends are the stop's business."""
        inst.monitoring = False
        self.monitored.discard(inst)

    def release(self, inst: Instance) -> None:
        """The instance's contract is gone: forget its processes."""
        for p in self._pids.pop(inst, ()):
            del self.pid_owner[p]

    def take(self, inst: Instance, members: set[int]) -> None:
        """Watch an adopted contract's processes (not our children)."""
        inst.monitoring = True
        self.monitored.add(inst)
        for p in members:
            self.owns(p, inst)
            self.watch_foreign(inst, p)

    def watch(self, inst: Instance, main: asyncio.Future[ExitStatus] | None) -> None:
        """Watch a running contract; report deaths on signals and the contract emptying."""
        inst.monitoring = True
        self.monitored.add(inst)
        c = inst.contract
        if c is None:
            return
        # Route later orphan reaps straight to this instance. A process group is not scanned
        # here (a /proc walk per start): what the start method left, re-parented to the daemon,
        # is taken from the daemon's children; orphans it does not know yet go through a sweep.
        if c.kind == "pgid":
            c.claim_children(os.getpid())
        for p in (c.scan() if c.kind == "cgroup" else c.members):
            self.owns(p, inst)
        if main is not None:
            if main.done():  # reaped, so not in the group the scan just read: that reading tells if it emptied
                self._member_exited(inst, main.result(), scanned=c.kind == "cgroup")
            else:
                main.add_done_callback(lambda f, i=inst, c=c: self._member_exited(i, f.result(), contract=c))
        elif not c.members:
            self._report(inst, "empty", "all processes exited", None)

    def forget(self, inst: Instance) -> None:
        """A transient start: its contract is not tracked any more."""
        c = inst.contract
        if c is not None:
            for p in list(c.members):
                self.disown(p)
            if c.empty():
                c.remove()
        inst.contract = None

    def orphan_reaped(self, status: ExitStatus) -> None:
        owner = self.pid_owner.get(status.pid)
        if owner is not None:
            self._member_exited(owner, status)
            return
        if not self._sweep_scheduled:
            self._sweep_scheduled = True
            asyncio.get_running_loop().call_soon(self._sweep)

    def _sweep(self) -> None:
        """An unknown process of ours ended: see which contracts emptied."""
        self._sweep_scheduled = False
        for inst in list(self.monitored):
            inst.note_reaped()
            c = inst.contract
            if c is None or inst.stopping or self._main_pending(c):
                continue
            known = set(c.members)
            if c.empty():
                self._report(inst, "empty", "all processes exited", None)
                continue
            # Members a scan found (a daemon's orphans found by their marker) are known from now on,
            # so that a signal that ends one is reported as that process's death, not missed.
            for p in c.members:
                if p not in self.pid_owner:
                    self.owns(p, inst)
            if c.members != known:
                self.on_members(inst)

    @staticmethod
    def _main_pending(c: Contract) -> bool:
        """Whether the contract's main process is our child whose end we have not processed yet:
        then only its exit status may end the contract (a sweep that saw the group empty first
        would lose the signal that killed it)."""
        return c.main_pid is not None and not c.adopted and not c.main_exited

    def _member_exited(self, inst: Instance, status: ExitStatus, *, scanned: bool = False,
                       contract: Contract | None = None) -> None:
        """A process of the instance ended; ``scanned``: its contract's members were read since it was reaped;
        ``contract``: the one it was a process of, when known."""
        if contract is not None and contract is not inst.contract:
            # Its contract was stopped, and emptied, before its end was reaped (the rest of a burst of ends
            # is reaped later, a spawn helper relays its children's): the end of that stop, which sent
            # its signal, and no death of the instance's contract now (started again meanwhile, or none).
            return
        self.disown(status.pid)
        inst.note_reaped()
        c = inst.contract
        if c is not None and status.pid == c.main_pid:
            c.main_exited = True
        if c is None or not inst.monitoring or inst.stopping:
            return
        c.members.discard(status.pid)
        cfg = inst.config
        desc = status.describe()
        if status.signalled:
            desc += self.oom(inst, c, status)
            kind = "core" if status.core else "signal"
            self.bus.emit(f"ereport.svc.exit.{kind}", str(cfg.fmri), pid=status.pid, signal=status.signal,
                          core=status.core, ctid=c.ctid)
            inst.last_exit = desc
            if kind not in cfg.restart.ignore_error:
                self._report(inst, "error", desc, status)
                return
        elif status.code:
            self.bus.emit("ereport.svc.exit.code", str(cfg.fmri), pid=status.pid, code=status.code, ctid=c.ctid)
        if cfg.duration == "child" and status.pid == c.main_pid:
            inst.last_exit = desc
            self._report(inst, "error" if status.signalled or status.code else "empty", desc, status)
            return
        if status.pid != c.main_pid and self._main_pending(c):
            return  # the main process's own end will tell (the group may look empty before it is reaped)
        if (not c.members) if scanned else c.empty():
            inst.last_exit = inst.last_exit or desc
            self._report(inst, "empty", desc, status)
        else:
            for p in c.members:
                self.owns(p, inst)
            self.on_members(inst)

    def oom(self, inst: Instance, c: Contract | None, status: ExitStatus) -> str:
        """When the kernel's OOM killer ended this process at the instance's memory limit: an
        ereport, and the words that say so (else "")."""
        if c is None or status.signal != signal.SIGKILL or not c.rctl.new_oom_kill():
            return ""
        limit = inst.config.resources.memory
        text = f", killed by the kernel at the memory limit of {format_size(limit) if limit else '?'} " \
               "(resources.memory)"
        self.bus.emit("ereport.svc.oom", str(inst.config.fmri), pid=status.pid, limit=limit, ctid=c.ctid,
                      summary=f"process {status.pid} was killed by the kernel's OOM killer at the instance's "
                              f"memory limit of {format_size(limit) if limit else '?'} (resources.memory)")
        return text

    def _report(self, inst: Instance, kind: str, detail: str, status: ExitStatus | None) -> None:
        if not inst.monitoring:
            return
        inst.monitoring = False
        self.monitored.discard(inst)
        if inst.log is not None:
            inst.log.note(f"Stopping because {'process ' + detail if status else detail}." if kind == "error"
                          else "Stopping because all processes in service exited.")
        self.on_contract(inst, kind, detail, status)

    def watch_foreign(self, inst: Instance, pid: int) -> None:
        """Watch a process that is not our child (adopted) through a pidfd."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return
        loop = asyncio.get_running_loop()

        def gone() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self.disown(pid)
            inst.note_reaped()
            c = inst.contract
            if c is None or not inst.monitoring or inst.stopping:
                return
            members = c.scan()
            if not members:
                self._report(inst, "empty", "all processes exited", None)
                return
            for p in members:
                if p not in self.pid_owner:
                    self.owns(p, inst)
                    if not self.reaper.is_child(p):
                        self.watch_foreign(inst, p)
            self.on_members(inst)

        loop.add_reader(fd, gone)
