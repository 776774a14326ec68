"""The restarter: runs methods in contracts, waits for readiness, stops, runs health probes.

It carries out what the engine decides (start, stop, refresh); ``svcmgr.monitor``
watches the running contracts. It reports what happens to the processes (a member
died on a signal, the contract emptied, a probe failed) through two callbacks. It
decides nothing about states.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import Any

from svcmgr.backend import Backend
from svcmgr.bus import Bus
from svcmgr.contract import Contract, strays
from svcmgr.credentials import Credentials
from svcmgr.forkservers import ForkServers, HelperUnavailable
from svcmgr.instance import Instance
from svcmgr.methods import MethodContext, credentials
from svcmgr.monitor import Monitor
from svcmgr.paths import Paths
from svcmgr.policy import EXIT_NAMES, SMF_EXIT_NODAEMON, Outcome, classify_method_exit
from svcmgr.probes import check_command, check_http, check_tcp, poll_intervals
from svcmgr.process import ContractReport, HealthReport, MembersReport, StartResult
from svcmgr.rctl import format_limits
from svcmgr.reaper import Child, ExitStatus, Reaper
from svcmgr.spec import Exec, InstanceConfig, Method

__all__ = ["Restarter", "StartResult"]

log = logging.getLogger("svcmgr.restarter")

#: How a contract's kind is said in the instance's log.
_KINDS = {"cgroup": "cgroup v2", "pgid": "process groups (--no-cgroup)"}

DEFAULT_STOP_TIMEOUT = 30.0
CHILD_THROTTLE = 1.0
#: Spawns closer than this to the previous one count as a burst (see ``_spawn``).
BURST_GAP = 0.05


class Restarter:
    def __init__(self, *, reaper: Reaper, backend: Backend, paths: Paths, bus: Bus,
                 ctid: Callable[[], int], helper: ForkServers | None = None,
                 on_contract: ContractReport | None = None, on_health: HealthReport | None = None) -> None:
        self.reaper = reaper
        self.backend = backend
        #: the spawn helper (``svcmgr.forkserver``), when the daemon started one
        self.helper = helper
        #: log files are made by the helper too, off the event loop (``svcmgr.logs``)
        self.log_opener = helper.open_log if helper is not None else None
        self.paths = paths
        self.bus = bus
        self._ctid = ctid
        self._on_contract: ContractReport = on_contract or (lambda *a: None)
        self._on_health: HealthReport = on_health or (lambda *a: None)
        self._on_members: MembersReport = lambda inst: None
        self.monitor = Monitor(reaper, bus, lambda *a: self._on_contract(*a), lambda i: self._on_members(i))
        self.awaiting_ready: set[Instance] = set()
        self._last_spawn = 0.0
        self.methods = MethodContext(paths)

    def bind(self, on_contract: ContractReport, on_health: HealthReport,
             on_members: MembersReport | None = None) -> None:
        self._on_contract, self._on_health = on_contract, on_health
        if on_members is not None:
            self._on_members = on_members

    async def _spawn(self, inst: Instance, method: str, m: Method, contract: Contract,
                     user: Credentials) -> Child:
        argv = self.methods.argv(inst.config, method, m.exec)
        env = self.methods.env(inst.config, method, user, contract.marker)
        cwd = self.methods.cwd(inst.config, method, user)
        assert inst.log is not None
        child, helper = None, self.helper
        if helper is not None and helper.usable() and not user.needs_child and \
                (contract.kind == "pgid" or contract.cgroup):
            # The spawn helper: a fork of a small process, born in the contract's group, while the
            # daemon goes on. Credentials that need the child are applied by the in-process spawn.
            # The helper opens the instance's FIFO for the child (and makes it at the first spawn).
            try:
                fut = await helper.spawn(argv, cgroup=contract.cgroup if contract.kind == "cgroup" else None,
                                         env=env, cwd=cwd, fifo=inst.log.fifo, reader=inst.log.for_helper())
            except HelperUnavailable:
                fut = None
            if fut is not None:
                with contextlib.suppress(HelperUnavailable):
                    child = await _arrival(fut, contract)
        if child is None:
            child = self._spawn_here(inst, argv, env, cwd, contract, user)
        contract.started(child.pid)
        return child

    def _spawn_here(self, inst: Instance, argv: list[str], env: dict[str, str], cwd: str, contract: Contract,
                    user: Credentials) -> Child:
        """Spawn from the daemon itself: born in the group by clone3 for an isolated start, else by
        vfork while the daemon stands in the group (or joining it before exec)."""
        assert inst.log is not None
        fd = inst.log.writer_fd()
        spawner = self.backend.spawner
        now = time.monotonic()
        try:
            if contract.kind == "cgroup" and contract.cgroup and spawner is not None and spawner.usable() \
                    and now - self._last_spawn > BURST_GAP:
                # An isolated start (a restart): born in its group with clone3, no move into it and
                # so no RCU grace period to wait for. Within a burst, moves are cheap (the kernel's
                # RCU sync is still hot) and a fork-like clone of the daemon is not: move.
                pid = spawner.spawn(argv, cgroup=contract.cgroup, env=env, cwd=cwd, stdout=fd,
                                    credentials=user.apply if user.needs_child else None)
                return self.reaper.register(pid)
            with contract.placing():
                return self.reaper.spawn(argv, stdout=fd, stderr=fd, cwd=cwd, env=env,
                                         **contract.popen_kwargs(user, leader=True))
        finally:
            os.close(fd)
            self._last_spawn = time.monotonic()

    # ------------------------------------------------------------------ start
    async def start(self, inst: Instance) -> StartResult:
        """Run the start method and wait until the instance is ready (or fails)."""
        cfg = inst.config
        m = cfg.methods.get("start")
        assert inst.log is not None
        inst.ready = None
        if m is None or m.exec.kind == "true":
            inst.log.note('Executing start method (":true").')
            inst.ready_ns = time.monotonic_ns()
            return StartResult(Outcome.OK, "")
        if m.exec.kind == "kill":
            return StartResult(Outcome.FATAL, "start method cannot be :kill")
        try:
            user = credentials(cfg, "start")
        except LookupError as e:
            inst.log.note(f"Start method not run: {e}.")
            return StartResult(Outcome.FATAL, f"{e} (SMF_EXIT_ERR_CONFIG)")
        if user.changes_user and os.geteuid() != 0:
            inst.log.note("Start method not run: the daemon is not root and cannot change user.")
            return StartResult(Outcome.FATAL, "method_credential needs a root daemon (SMF_EXIT_ERR_PERM)")
        if cfg.duration == "child" and inst.last_start:
            wait = inst.last_start + CHILD_THROTTLE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        try:
            contract = await self.backend.create_for_burst(self._ctid(), cfg.fmri.log_name, cfg.resources, self.helper)
        except OSError as e:
            why = f"resource controls ({format_limits(cfg.resources)}) could not be applied: {e.strerror or e}"
            inst.log.note(f"Start method not run: {why}.")
            return StartResult(Outcome.FATAL, why)
        user = user.joining(contract.rctl.join)
        for note in user.notes:
            inst.log.note(note[:1].upper() + note[1:] + ".")
        inst.log.note(f'Executing start method ("{m.exec.display()}").')
        if cfg.readiness.kind == "notify":
            inst.ready = asyncio.Event()
        try:
            child = await self._spawn(inst, "start", m, contract, user)
        except OSError as e:
            contract.remove()
            inst.log.note(f"Start method could not be executed: {e.strerror or e}.")
            return StartResult(Outcome.FATAL, f"start method could not be executed: {e.strerror or e}")
        inst.spawned_ns = time.monotonic_ns()
        inst.last_start = time.monotonic()  # the throttle counts from the spawn, not from the wait for a helper
        inst.contract = contract
        self._on_members(inst)  # recorded from now on: a daemon killed during the start finds it, and ends it
        self.monitor.owns(child.pid, inst)
        main = child.exited
        timeout = cfg.readiness.timeout if cfg.readiness.timeout is not None else m.timeout
        if cfg.readiness.kind == "spawn" and cfg.duration != "transient":
            timeout = None  # ready once spawned: ``_wait_ready`` returns at once, no timer to set and cancel
        self.awaiting_ready.add(inst)
        try:
            async with asyncio.timeout(timeout):
                result = await self._wait_ready(inst, main)
        except TimeoutError:
            inst.log.note(f"Method or service exit timed out. Killing contract {contract.ctid}.")
            self.bus.emit("ereport.svc.start.timeout", str(cfg.fmri), timeout=timeout, ctid=contract.ctid)
            await self._kill_contract(inst, contract, signal.SIGKILL, 5.0)
            return StartResult("timeout", f"Start method timed out after {timeout:g}s")
        finally:
            self.awaiting_ready.discard(inst)
        if result.outcome != Outcome.OK:
            return result
        inst.ready_ns = time.monotonic_ns()
        transient = cfg.duration == "transient" or result.code == SMF_EXIT_NODAEMON
        if transient:
            self.monitor.forget(inst)
        else:
            self.monitor.watch(inst, main)
            if not inst.monitoring:
                # Every process ended as soon as the start method returned: the contract reported
                # empty before the instance was online, so the start failed (and is retried).
                return StartResult(Outcome.RETRY, "all processes of the service exited as soon as it started",
                                   result.status, result.code)
        return result

    async def _wait_ready(self, inst: Instance, main: asyncio.Future[ExitStatus]) -> StartResult:
        cfg = inst.config
        kind = cfg.readiness.kind
        assert inst.log is not None
        if kind == "exit" or cfg.duration == "transient":
            status = await asyncio.shield(main)
            return self._method_result(inst, "start", status)
        if kind == "spawn":
            return StartResult(Outcome.OK, "")
        exited: ExitStatus | None = None
        intervals = poll_intervals()
        while True:
            if main.done() and exited is None:
                exited = main.result()
                res = self._method_result(inst, "start", exited)
                if res.outcome != Outcome.OK:
                    return res
                if cfg.duration == "child":
                    inst.log.note("Service exited before it was ready.")
                    return StartResult(Outcome.RETRY, f"exited before ready ({exited.describe()})", exited)
            if exited is not None and inst.contract is not None and inst.contract.empty():
                inst.log.note("Service processes all exited before it was ready.")
                return StartResult(Outcome.RETRY, "all processes exited before the service was ready", exited)
            if kind == "notify":
                assert inst.ready is not None
                if inst.ready.is_set():
                    return StartResult(Outcome.OK, "READY=1")
                waits = [asyncio.ensure_future(inst.ready.wait())]
                if not main.done():
                    waits.append(main)  # type: ignore[arg-type]
                else:
                    waits.append(asyncio.ensure_future(asyncio.sleep(next(intervals))))
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        if w is not main:
                            w.cancel()
                continue
            ok, detail = await self._check(inst, kind, cfg.readiness.target, 2.0)
            if ok:
                return StartResult(Outcome.OK, detail)
            delay = next(intervals)
            if not main.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(main), delay)
            else:
                await asyncio.sleep(delay)

    def _method_result(self, inst: Instance, method: str, status: ExitStatus) -> StartResult:
        assert inst.log is not None
        inst.log.note(f'Method "{method}" {status.describe()}.')
        if status.signalled:
            oom = self.monitor.oom(inst, inst.contract, status)
            return StartResult(Outcome.RETRY, f"{method} method {status.describe()}{oom}", status)
        outcome = classify_method_exit(status.code, method=method)
        name = EXIT_NAMES.get(status.code or 0)
        detail = f"{method} method {status.describe()}" + (f" ({name})" if name else "")
        return StartResult(outcome, detail, status, status.code)

    async def _check(self, inst: Instance, kind: str, target: object, timeout: float) -> tuple[bool, str]:
        if kind == "tcp":
            return await check_tcp(str(target), timeout)
        if kind == "http":
            return await check_http(str(target), timeout)
        cfg = inst.config
        ex = Exec("argv", argv=tuple(target)) if isinstance(target, tuple) else Exec("shell", shell=str(target))
        try:
            user = credentials(cfg, "start")
        except LookupError as e:
            return False, str(e)
        env = self.methods.env(inst.config, "probe", user, None)
        return await check_command(self.reaper, self.methods.argv(inst.config, "probe", ex), timeout, env=env,
                                   cwd=self.methods.cwd(inst.config, "start", user),
                                   preexec=user.apply if user.needs_child else None)

    def adopt(self, inst: Instance, record: dict[str, Any]) -> bool:
        """Take over a contract an earlier daemon left running; False (and the instance's log says why) if it
        cannot be: nothing of it lives, it is of the other kind, or its record cannot be read."""
        assert inst.log is not None
        ctid = record.get("ctid") if isinstance(record, dict) else None
        try:
            contract = Contract.from_record(record)
        except (KeyError, TypeError, ValueError) as e:
            inst.log.note(f"Contract {ctid} left by the earlier daemon not adopted: its record cannot be read "
                          f"({type(e).__name__}: {e}); what carries its marker is ended as a stray.")
            return False
        if contract.kind != self.backend.kind:
            inst.log.note(f"Contract {ctid} left by the earlier daemon not adopted: it tracked processes by "
                          f"{_KINDS.get(contract.kind, contract.kind)}, this daemon by "
                          f"{_KINDS.get(self.backend.kind, self.backend.kind)}; its processes are ended.")
            self.discard(record)
            return False
        members = contract.scan(None)
        if not members:
            contract.remove()
            inst.log.note(f"Contract {ctid} left by the earlier daemon not adopted: none of its processes is "
                          f"alive any more.")
            return False
        inst.contract = contract
        self.monitor.take(inst, members)
        return True

    def discard(self, record: dict[str, Any]) -> None:
        """Kill and remove what is left of a recorded contract that no instance adopts."""
        with contextlib.suppress(Exception):
            c = Contract.from_record(record)
            if c.kind == "pgid" or c.cgroup:
                c.scan()
            if c.members:
                c.signal(signal.SIGKILL)
            c.remove()

    def sweep(self, instances: Iterable[Instance]) -> None:
        """What an earlier daemon left that none of these instances' contracts owns, killed: its groups
        (cgroup mode), its processes by their contract marker (process-group mode)."""
        contracts = [i.contract for i in instances if i.contract is not None]
        known = {c.cgroup for c in contracts if c.cgroup}
        for path in self.backend.leftovers(known):
            self.discard({"ctid": 0, "kind": "cgroup", "marker": "", "cgroup": path})
        if self.backend.kind == "pgid":
            own = os.getpgrp()
            keep = {c.marker for c in contracts}
            # Twice: /proc is read process by process, and a process forked after the listing by one that exited
            # before its line was read is in neither; the second reading finds it.
            for _ in range(2):
                for pid in strays(self.backend.tag, keep):
                    log.info("killing process %d, left by an earlier daemon in a contract no instance adopted", pid)
                    with contextlib.suppress(OSError):
                        group = os.getpgid(pid)
                        os.kill(pid, signal.SIGKILL)
                        if group != own:  # and its group: a child it forked after the list was read is in it
                            os.killpg(group, signal.SIGKILL)
        self.backend.controls.sweep(d for c in contracts for d in c.rctl.own)

    def refusals(self, config: InstanceConfig) -> list[tuple[str, str]]:
        return list(self.backend.controls.refusals(config.resources))

    def on_notify(self, pid: int, fields: dict[str, str]) -> None:
        """A notify-socket message; it counts only when the sender belongs to the instance."""
        owner = self.monitor.owner(pid)
        candidates = [owner] if owner is not None else []
        candidates += [i for i in self.awaiting_ready if i not in candidates]
        for inst in candidates:
            c = inst.contract
            if c is None or (pid not in c.members and pid not in c.scan()):
                continue
            if "STATUS" in fields:
                inst.status_text = fields["STATUS"]
            if fields.get("READY") == "1" and inst.ready is not None:
                inst.ready.set()
            return

    # ------------------------------------------------------------------ stop
    async def stop(self, inst: Instance, *, immediate: bool = False, why: str = "") -> None:
        """Run the stop method, then end every process of the contract; ``why`` goes to the log."""
        cfg = inst.config
        if why and inst.log is not None:
            inst.log.note(f"Stopping: {why.rstrip('.')}.")
        inst.stopping = True
        self.monitor.unwatch(inst)
        self.awaiting_ready.discard(inst)
        try:
            m = cfg.methods.get("stop")
            sig, timeout = signal.SIGTERM, DEFAULT_STOP_TIMEOUT
            if m is not None:
                timeout = m.timeout if m.timeout is not None else DEFAULT_STOP_TIMEOUT
                if m.exec.kind == "kill":
                    sig = m.exec.signal
                elif m.exec.kind in ("argv", "shell") and not immediate:
                    await self.run_method(inst, "stop", m)
            c = inst.contract
            if c is not None:
                await self._kill_contract(inst, c, sig, timeout)
        finally:
            inst.contract = None
            inst.stopping = False

    async def _kill_contract(self, inst: Instance, c: Contract, sig: int, timeout: float) -> None:
        assert inst.log is not None
        if not c.empty():
            c.signal(sig)
            if not await self._wait_empty(inst, c, timeout):
                inst.log.note(f"Stop timed out after {timeout:g}s; killing contract {c.ctid}.")
                c.signal(signal.SIGKILL)
                while not await self._wait_empty(inst, c, 5.0):
                    c.signal(signal.SIGKILL)
        self.monitor.release(inst)
        c.remove()

    async def _wait_empty(self, inst: Instance, c: Contract, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        try:
            for delay in poll_intervals(0.002, 0.1):
                reaped = inst.reaped = asyncio.Event()
                if c.empty():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reaped.wait(), min(delay, left))
            return False  # pragma: no cover
        finally:
            inst.reaped = None

    async def run_method(self, inst: Instance, method: str, m: Method) -> ExitStatus | None:
        """Run a stop or refresh method in a contract of its own; None if it timed out."""
        assert inst.log is not None
        inst.log.note(f'Executing {method} method ("{m.exec.display()}").')
        try:
            user = credentials(inst.config, method)
        except LookupError as e:
            inst.log.note(f"{method} method not run: {e}.")
            return None
        c = self.backend.create(self._ctid(), inst.config.fmri.log_name + f".{method}")
        try:
            child = await self._spawn(inst, method, m, c, user)
        except OSError as e:
            inst.log.note(f"{method} method could not be executed: {e.strerror or e}.")
            c.remove()
            return None
        try:
            status = await asyncio.wait_for(child.wait(), m.timeout)
        except TimeoutError:
            inst.log.note(f"{method} method timed out after {m.timeout:g}s; killing its contract {c.ctid}.")
            c.signal(signal.SIGKILL)
            status = None
        else:
            inst.log.note(f'Method "{method}" {status.describe()}.')
        # What the method left behind goes with it.
        if not c.empty():
            c.signal(signal.SIGKILL)
            for _ in range(50):
                if c.empty():
                    break
                await asyncio.sleep(0.01)
        c.remove()
        return status

    async def refresh(self, inst: Instance) -> None:
        m = inst.config.methods.get("refresh")
        if m is None:
            return
        if m.exec.kind == "kill":
            if inst.contract is not None:
                inst.contract.signal(m.exec.signal)
            return
        if m.exec.kind == "true":
            return
        await self.run_method(inst, "refresh", m)

    # ------------------------------------------------------------------ health
    async def health_loop(self, inst: Instance) -> None:
        """Probe a running instance; report when ``failures`` probes in a row fail, and recovery."""
        h = inst.config.health
        if h is None:
            return
        failures = 0
        bad = False
        while True:
            await asyncio.sleep(h.interval)
            ok, detail = await self._check(inst, h.kind, h.target, h.timeout)
            if ok:
                failures = 0
                if bad:
                    bad = False
                    self._on_health(inst, True, detail)
                continue
            failures += 1
            self.bus.emit("ereport.svc.probe.failed", str(inst.config.fmri), probe=h.kind, detail=detail,
                          failures=failures)
            if inst.log is not None:
                inst.log.note(f"Health probe failed ({failures}/{h.failures}): {detail}.")
            if failures >= h.failures and not bad:
                bad = True
                self._on_health(inst, False, detail)
                if h.action == "restart":
                    return


async def _arrival(fut: asyncio.Future[Child], contract: Contract) -> Child:
    """The child the spawn helper was asked for. If the start is cancelled meanwhile, the child still
    comes: it is killed with its contract when it does, and the contract removed once it is reaped."""
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        def end(f: asyncio.Future[Child]) -> None:
            if f.cancelled() or f.exception() is not None:
                contract.remove()
                return
            child = f.result()
            contract.started(child.pid)
            contract.signal(signal.SIGKILL)
            child.exited.add_done_callback(lambda _: contract.remove())

        fut.add_done_callback(end)
        raise
