"""Stand-ins for the daemon's parts in fast unit tests.

* ``FakeServices`` implements ``svcmgr.services.Services`` (the view and commands a
  component is given) without an engine, a restarter, a reaper or a repository: a
  test sets instance states by hand and reads back what the component asked.
  ``run_command`` runs a short command with asyncio (the daemon's runner goes through
  its reaper); ``context`` builds a component ``Context`` from them.
* ``FakeProcesses`` implements ``svcmgr.process.ProcessLayer`` for the engine: a
  start completes at once (or as scripted: a failure, a fatal exit, a timeout, a
  temporary disable, or held until ``ready``), and a test injects what processes do
  (``exit``, ``kill``, ``health``). ``FakeClock`` is the one clock the engine and its
  restart histories read. ``engine_on_fakes`` builds a real ``Engine`` on them, and
  ``settle`` runs the loop until it has nothing left to do: the engine's decisions
  tested in milliseconds, no process started.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from svcmgr.api import Api
from svcmgr.bus import Bus
from svcmgr.component import Context
from svcmgr.config import DaemonConfig
from svcmgr.engine import Engine
from svcmgr.instance import Instance
from svcmgr.loader import load_bytes
from svcmgr.manifest import ManifestErrors, parse_service
from svcmgr.paths import Paths
from svcmgr.policy import Outcome
from svcmgr.process import ContractReport, ExitStatus, HealthReport, MembersReport, StartResult
from svcmgr.repository import Repository
from svcmgr.schema import FieldError, read_toml
from svcmgr.services import EngineError, StopGate
from svcmgr.spec import InstanceConfig, ServiceSpec, resolve_instance
from svcmgr.states import State
from svcmgr.timings import Recorder


@dataclass(eq=False)
class FakeInstance:
    """An instance as a component sees it (``svcmgr.services.InstanceInfo``), set by hand."""

    fmri: str
    config: InstanceConfig
    state: State = State.UNINITIALIZED
    next_state: State | None = None
    reason: str = ""
    stime: float = field(default_factory=time.time)
    effective_enabled: bool = True
    marks: dict[str, dict[str, Any]] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    cgroup: str | None = None
    starts: int = 0
    restarts: int = 0

    @property
    def service(self) -> str:
        return str(self.config.fmri.service_fmri)

    @property
    def has_processes(self) -> bool:
        return bool(self.pids)


class FakeServices:
    """``Services`` over dictionaries: specs, instances, direct dependencies; records every command."""

    def __init__(self) -> None:
        self.spec_map: dict[str, ServiceSpec] = {}
        self.instance_map: dict[str, FakeInstance] = {}
        self.deps: dict[str, set[str]] = {}
        self.gates: list[StopGate] = []
        self.commands: list[tuple[str, Any]] = []

    def add(self, spec: ServiceSpec, state: State = State.UNINITIALIZED) -> list[FakeInstance]:
        self.spec_map[str(spec.fmri)] = spec
        out = []
        for name in spec.instances:
            cfg = resolve_instance(spec, name)
            inst = FakeInstance(str(cfg.fmri), cfg, state)
            self.instance_map[inst.fmri] = inst
            self.deps[inst.fmri] = {t for d in cfg.dependencies for t in d.fmris if t.startswith("svc:/")}
            out.append(inst)
        return out

    def set_state(self, fmri: str, state: str, next_state: str | None = None) -> None:
        inst = self.instance_map[fmri]
        inst.state = State(state)
        inst.next_state = State(next_state) if next_state else None

    # ------------------------------------------------------------ view
    def instance(self, fmri: str) -> FakeInstance | None:
        return self.instance_map.get(fmri)

    def instances(self) -> Iterator[FakeInstance]:
        return iter(list(self.instance_map.values()))

    def specs(self) -> Mapping[str, ServiceSpec]:
        return self.spec_map

    def closure(self, fmri: str, groupings: Iterable[str]) -> frozenset[str]:
        seen, stack = {fmri}, [fmri]
        while stack:
            for d in self.deps.get(stack.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    stack.append(d)
        return frozenset(seen)

    def owner(self, pid: int, memcg: str | None = None) -> str | None:
        return next((f for f, i in self.instance_map.items() if pid in i.pids), None)

    # ------------------------------------------------------------ commands
    def mark(self, fmris: list[str], what: str, *, temporary: bool = False, immediate: bool = False,
             reason: str | None = None, by: str = "operator", case: str | None = None) -> list[str]:
        self.commands.append(("mark", (list(fmris), what, by, case)))
        done = []
        for f in fmris:
            inst = self.instance_map[f]
            if inst.marks.get(what, {}).get("case") == case and inst.state.value == what:
                continue
            inst.marks[what] = {"reason": reason or what, "by": by, "case": case}
            inst.state = State(what)
            done.append(f)
        return done

    def clear(self, fmris: list[str]) -> list[str]:
        self.commands.append(("clear", list(fmris)))
        done = []
        for f in fmris:
            inst = self.instance_map[f]
            if inst.state in (State.MAINTENANCE, State.DEGRADED):
                inst.marks.pop(inst.state.value, None)
                inst.state = State.ONLINE
                done.append(f)
        return done

    def resolve(self, pattern: str) -> str:
        hits = [f for f in self.instance_map if f == pattern or f.startswith(f"svc:/{pattern}:")
                or f.split(":")[1].endswith("/" + pattern)]
        if len(hits) != 1:
            raise EngineError(f"{pattern}: {'ambiguous' if hits else 'no service or instance matches'}", 1)
        return hits[0]

    def add_stop_gate(self, gate: StopGate) -> None:
        self.gates.append(gate)

    def import_manifest(self, path: str, environment: Mapping[str, str]) -> str | None:
        try:
            data = read_toml(path)
            data.setdefault("environment", {}).update(environment)
            spec = parse_service(data, path, base_dir=os.path.dirname(path))
        except (FieldError, ManifestErrors) as e:
            return str(e)
        self.commands.append(("import", str(spec.fmri)))
        current = self.spec_map.get(str(spec.fmri))
        if current is None or current.to_dict() != spec.to_dict():
            self.add(spec)
        return None


async def run_command(argv: Sequence[str], *, timeout: float | None = None) -> tuple[ExitStatus | None, bytes]:
    """The daemon's ``CommandRunner`` without its reaper: asyncio's subprocess support."""
    p = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                             start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(p.communicate(), timeout)
    except TimeoutError:
        p.kill()
        await p.wait()
        return None, b""
    code = p.returncode or 0
    raw = (-code & 0x7F) if code < 0 else (code << 8)
    return ExitStatus(p.pid, raw), out


def context(config: DaemonConfig, paths: Paths, *, services: FakeServices | None = None, node: str = "t1",
            bus: Bus | None = None, api: Api | None = None, db: sqlite3.Connection | None = None) -> Context:
    """A component's context on fakes: an in-memory database, an API table that listens nowhere."""
    return Context(node, paths, bus or Bus(node), api or Api(os.path.join(paths.run, "unused.sock")),
                   services if services is not None else FakeServices(),
                   db if db is not None else sqlite3.connect(":memory:", isolation_level=None),
                   run_command, Recorder(), config, time.monotonic)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProcesses:
    """The process layer in memory: what the engine asked (``calls``), what runs (``running``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.running: set[str] = set()
        #: FMRI -> results the next starts return, in order (then OK)
        self.script: dict[str, list[StartResult]] = {}
        #: FMRI -> held starts wait for this event (readiness not reached yet)
        self.held: dict[str, asyncio.Event] = {}
        #: FMRI -> held stops wait for this event (a slow stop method)
        self.held_stops: dict[str, asyncio.Event] = {}
        self._on_contract: ContractReport = lambda *a: None
        self._on_health: HealthReport = lambda *a: None
        self._instances: dict[str, Instance] = {}
        self.log_opener = None  # logs are opened in the daemon

    # ------------------------------------------------------------ what a test scripts or injects
    def fail_next(self, fmri: str, outcome: Outcome | str = Outcome.RETRY, detail: str = "exited with status 1",
                  code: int | None = 1) -> None:
        """The next start of ``fmri`` fails: RETRY, FATAL (a fatal exit code), TEMP_DISABLE or "timeout"."""
        self.script.setdefault(fmri, []).append(StartResult(outcome, f"start method {detail}", None, code))

    def hold(self, fmri: str) -> None:
        """Starts of ``fmri`` wait (readiness not reached) until ``ready``."""
        self.held[fmri] = asyncio.Event()

    def ready(self, fmri: str) -> None:
        self.held.pop(fmri).set()

    def exit(self, fmri: str, code: int = 0) -> None:
        """Every process of a running instance exited with ``code``."""
        inst = self._instances[fmri]
        self.running.discard(fmri)
        status = ExitStatus(4242, code << 8)
        child = inst.config.duration == "child"
        self._on_contract(inst, "error" if child and code else "empty", status.describe(), status)

    def kill(self, fmri: str, sig: int) -> None:
        """A process of a running instance died on ``sig`` (an error, unless the manifest ignores it)."""
        inst = self._instances[fmri]
        self.running.discard(fmri)
        status = ExitStatus(4242, sig)
        self._on_contract(inst, "error", status.describe(), status)

    def health(self, fmri: str, ok: bool, detail: str = "probe failed") -> None:
        self._on_health(self._instances[fmri], ok, detail)

    # ------------------------------------------------------------ ProcessLayer
    def bind(self, on_contract: ContractReport, on_health: HealthReport,
             on_members: MembersReport | None = None) -> None:
        self._on_contract, self._on_health = on_contract, on_health

    async def start(self, inst: Instance) -> StartResult:
        self._instances[inst.fmri] = inst
        self.calls.append(("start", inst.fmri))
        gate = self.held.get(inst.fmri)
        if gate is not None:
            await gate.wait()
        queued = self.script.get(inst.fmri)
        if queued:
            return queued.pop(0)
        start = inst.config.methods.get("start")
        if inst.config.duration != "transient" and start is not None and start.exec.kind != "true":
            self.running.add(inst.fmri)
        return StartResult(Outcome.OK, "")

    async def stop(self, inst: Instance, *, immediate: bool = False, why: str = "") -> None:
        self.calls.append(("stop", inst.fmri))
        gate = self.held_stops.get(inst.fmri)
        if gate is not None:
            await gate.wait()
        self.running.discard(inst.fmri)

    async def refresh(self, inst: Instance) -> None:
        self.calls.append(("refresh", inst.fmri))

    async def health_loop(self, inst: Instance) -> None:
        self._instances[inst.fmri] = inst
        await asyncio.Event().wait()

    def adopt(self, inst: Instance, record: dict[str, Any]) -> bool:
        return False

    def discard(self, record: dict[str, Any]) -> None:
        pass

    def sweep(self, instances: Iterable[Instance]) -> None:
        pass

    def refusals(self, config: InstanceConfig) -> list[tuple[str, str]]:
        return []


def engine_on_fakes(tmp: str) -> tuple[Engine, FakeProcesses, FakeClock]:
    """A real engine on fake processes, an in-memory repository and a fake clock (call inside a loop)."""
    paths = Paths.for_root(tmp)
    paths.make()
    clock = FakeClock()
    procs = FakeProcesses()
    engine = Engine(repo=Repository(":memory:"), bus=Bus("t1"), restarter=procs, paths=paths, clock=clock)
    return engine, procs, clock


def manifests(engine: Engine, *texts: str) -> None:
    """Import TOML manifests (one service each) and bring the engine up."""
    specs = [s for i, t in enumerate(texts) for s in load_bytes(t.encode(), f"m{i}.toml")]
    engine.import_specs(specs, ["toml"] * len(specs))


async def settle(engine: Engine, procs: FakeProcesses, rounds: int = 10_000) -> None:
    """Run the loop until the engine has nothing left to do but the starts ``procs`` holds."""
    for _ in range(rounds):
        await asyncio.sleep(0)
        busy = [i for i in engine.in_transition() if not (i.phase.value == "starting" and i.fmri in procs.held)]
        jobs = [i for i in engine.instances.values() if i.job is not None and not i.job.done()
                and i.fmri not in procs.held]
        if not busy and not jobs and (engine.settled() or engine.in_transition()):
            return
    raise AssertionError("the engine did not settle: " + ", ".join(f"{i.fmri} {i.phase}" for i in busy))


__all__ = ["FakeClock", "FakeInstance", "FakeProcesses", "FakeServices", "context", "engine_on_fakes",
           "manifests", "run_command", "settle"]
