"""svcmgrd: the daemon. Wires the repository, engine, restarter, control socket and components.

Runs in the foreground. With ``--root DIR`` every piece of its state lives under
DIR and it needs no root; without, it uses /run/svcmgr, /var/lib/svcmgr and
/var/log/svcmgr. SIGTERM or SIGINT stop every service (dependents first) and
exit; SIGHUP re-reads the configuration; SIGUSR2 exits for a restart (status 75)
leaving every service running, and the next daemon adopts them. All long-lived
tasks belong to one TaskGroup and are cancelled and awaited on the way out.

"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gc
import hashlib
import logging
import os
import resource
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from svcmgr import __version__
from svcmgr.api import Api, ApiError, Limits
from svcmgr.config import DaemonConfig, load_config
from svcmgr.eventclasses import DAEMON_READY
from svcmgr.forkservers import ForkServers
from svcmgr.paths import Paths, register, unregister
from svcmgr.reaper import Reaper, quiet_wakeup
from svcmgr.repofile import Damaged, restore
from svcmgr.repository import Repository
from svcmgr.safefs import open_own
from svcmgr.schema import FieldErrors
from svcmgr.sdnotify import Notifier
from svcmgr.states import RUNNING
from svcmgr.wording import counted

if TYPE_CHECKING:
    from svcmgr.backend import Backend
    from svcmgr.component import Component
    from svcmgr.engine import Engine

__all__ = ["EXIT_DAMAGED", "EXIT_RESTART", "Daemon", "main"]

#: Exit status after SIGUSR2 (EX_TEMPFAIL): not a clean stop, so systemd's Restart=on-failure restarts us.
EXIT_RESTART = 75
#: Exit status when the repository is damaged (EX_DATAERR): starting again will not help, an operator must
#: choose a way out (the unit's RestartPreventExitStatus).
EXIT_DAMAGED = 65


log = logging.getLogger("svcmgrd")

#: READY=1 goes out when every instance has settled, or after this many seconds at most
#: (the unit's TimeoutStartSec must be longer).
READY_TIMEOUT = 90.0
#: How often systemd's STATUS line is refreshed once the daemon is ready (only under systemd).
STATUS_INTERVAL = 2.0
#: Seconds a stopping daemon waits, at most, for the spawn helper to answer the spawns asked for before it
#: lets the helper go (a start cut short by the stop gets its child then, and ends it).
HELPER_DRAIN = 5.0
#: The events the bus keeps for the components until they join, once the first services are started (a
#: boot publishes a few per instance started; past this, the oldest are let go and counted).
BOOT_EVENTS = 100_000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="svcmgrd",
        description="Service supervisor and fault manager (SMF, FMA and VRRP for Linux). Runs in the foreground.")
    p.add_argument("--root", metavar="DIR", help="keep all state (socket, repository, logs) under DIR; "
                   "no root privileges needed")
    p.add_argument("--manifests", metavar="PATH", action="append", default=[],
                   help="import manifest files or folders (TOML or SMF XML) at start; repeatable")
    p.add_argument("--config", metavar="FILE", help="the node's configuration (TOML)")
    p.add_argument("--node", metavar="NAME", help="this node's name (default: the host name)")
    p.add_argument("--mqtt", metavar="URL", help="MQTT broker, e.g. mqtt://127.0.0.1:1883 (default: none)")
    p.add_argument("--metrics", metavar="ADDR",
                   help="Prometheus endpoint host:port (port 0: any free port, logged); '' turns it off")
    p.add_argument("--web", metavar="ADDR", help="serve the dashboard on host:port (read-only; see [web] for "
                   "credentials and actions); '' turns it off")
    p.add_argument("--no-cgroup", action="store_true",
                   help="track processes by process group even where cgroup v2 is writable")
    p.add_argument("--no-register", action="store_true",
                   help="do not record --root as this user's default for the commands")
    p.add_argument("--restore-repository", action="store_true",
                   help="put back the copy of the repository kept at the last good start, keeping the damaged "
                   "files beside it, and exit (when svcmgrd refuses a damaged repository)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--version", action="version", version=f"svcmgrd {__version__}")
    return p


def _spawn_helper(reaper: Reaper, loop: asyncio.AbstractEventLoop) -> ForkServers | None:
    """The spawn helpers (``svcmgr.forkservers``); none with SVCMGR_NO_SPAWN_HELPER=1 or where none can start."""
    if os.environ.get("SVCMGR_NO_SPAWN_HELPER"):
        return None
    helper = ForkServers(reaper)
    try:
        helper.start(loop)
    except OSError as e:
        log.info("no spawn helper (%s); children are spawned by the daemon", e.strerror or e)
        return None
    return helper


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"node": {"name": args.node}, "mqtt": {"url": args.mqtt}, "metrics": {"listen": args.metrics},
            "web": {"listen": args.web}}


class Daemon:
    def __init__(self, args: argparse.Namespace, config: DaemonConfig) -> None:
        self.args = args
        self.config = config
        self.paths = Paths.for_root(args.root)
        self.notifier = Notifier()
        self.stop_event = asyncio.Event()
        self.detaching = False
        self.components: list[Component] = []
        self.started = time.time()
        self.engine: Engine | None = None
        self.backend: Backend | None = None
        self.is_ready = False

    def _lock(self) -> int:
        fd = open_own(self.paths.pidfile, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode().strip()
            os.close(fd)
            raise SystemExit(f"svcmgrd: another svcmgrd (pid {other or '?'}) runs with state in "
                             f"{self.paths.root or self.paths.run}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.paths.make()
        lock = self._lock()
        try:
            repo = Repository(self.paths.repository)
        except Damaged as e:
            os.close(lock)
            log.error("%s", e.explain(self._restore_command()))
            return EXIT_DAMAGED
        self._keep_copy(repo, check=False, when="start")
        nofile = _raise_fd_limit()
        reaper = Reaper()
        reaper.install(loop)
        helper = _spawn_helper(reaper, loop)
        with _collector_paused():
            # imported here, not at the top: the spawn helper's interpreter starts on the other CPU meanwhile
            # (it was still starting at the first spawn when it came after these imports)
            from svcmgr.backend import detect_backend
            from svcmgr.bootimport import import_at_boot, settle
            from svcmgr.bus import Bus
            from svcmgr.component import Context
            from svcmgr.engine import Engine
            from svcmgr.facade import EngineServices
            from svcmgr.probes import NotifySocket
            from svcmgr.restarter import Restarter
            from svcmgr.timings import Recorder, TimingStore
        tag = "system" if self.paths.root is None else hashlib.sha1(self.paths.root.encode()).hexdigest()[:10]
        backend = detect_backend(tag, allow_cgroup=not self.args.no_cgroup, log=log.info)
        bus = Bus(self.config.node)
        bus.keep(BOOT_EVENTS)  # for the components, built once the first services are started
        first, last = repo.next_ctid()
        ctids = iter(range(first, last))

        def next_ctid() -> int:
            nonlocal ctids, last
            try:
                return next(ctids)
            except StopIteration:
                f, last = repo.next_ctid()
                ctids = iter(range(f, last))
                return next(ctids)

        restarter = Restarter(reaper=reaper, backend=backend, paths=self.paths, bus=bus, ctid=next_ctid,
                              helper=helper)
        timings = Recorder(TimingStore(repo.connection))
        engine = Engine(repo=repo, bus=bus, restarter=restarter, paths=self.paths, timings=timings)
        self.engine = engine
        notify = NotifySocket(self.paths.notify_socket, restarter.on_notify)
        api = Api(self.paths.socket, Limits.for_descriptors(nofile))
        api.register("reload", self._op_reload)
        self.backend = backend
        ctx = Context(self.config.node, self.paths, bus, api, EngineServices(engine), repo.connection, reaper.run,
                      timings, self.config, time.monotonic)
        self.ctx = ctx
        try:
            notify.open(loop)
            engine.load()
            timings.forget(keep_only=engine.instances)
            for err in engine.load_errors:
                log.error("%s", err)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop_event.set)
            loop.add_signal_handler(signal.SIGHUP, self._reload)
            loop.add_signal_handler(signal.SIGUSR2, self._detach)
            quiet_wakeup()  # add_signal_handler turned the full-pipe warning back on
            # What exists now (modules, networkx, the repository's state) lives as long as the daemon: out of the
            # collector's sight, a boot's full collections scan only what the boot makes (so do the components').
            gc.freeze()
            if self.args.manifests:
                engine.begin_boot_import()  # what the manifests may change waits for them
            engine.boot()
            if self.args.manifests:  # starts services as it goes
                with _collector_paused():
                    await import_at_boot(engine, self.args.manifests, log, started=self._add_components)
            else:
                await settle()
                self._add_components()
            await api.start()
            self._register()
            log.info("svcmgrd %s on node %s: %s, contracts by %s, state in %s", __version__,
                     self.config.node, counted(len(engine.instances), "instance"), backend.describe(),
                     self.paths.root or "system paths")
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(_guarded(c), name=c.name) for c in self.components]
                tasks.append(tg.create_task(self._announce(engine), name="announce"))
                if self.notifier.watchdog_interval:
                    tasks.append(tg.create_task(self._watchdog(), name="watchdog"))
                await self.stop_event.wait()
                running = sum(1 for i in engine.instances.values() if i.state in RUNNING)
                if self.detaching:
                    log.info("restarting: %s keep running and will be adopted", counted(running, "running instance"))
                    self.notifier.stopping(f"Restarting; {counted(running, 'running instance')} keep running")
                    await api.close()
                    await engine.detach()
                else:
                    log.info("stopping: %s", counted(len(engine.instances), "instance"))
                    self.notifier.stopping(f"Stopping {counted(running, 'running instance')}")
                    await api.close()
                    await engine.shutdown()
                    if helper is not None:
                        await helper.drain(HELPER_DRAIN)
                for t in tasks:
                    t.cancel()
        finally:
            await api.close()
            notify.close()
            if helper is not None:
                helper.close()
            reaper.uninstall()
            backend.close(groups=not self.detaching)
            timings.flush()
            if not self.detaching:
                self._keep_copy(repo, check=True, when="stop")
            repo.close()
            self._unregister()
            self.notifier.close()
            os.close(lock)
        if self.detaching:
            log.info("exited for a restart; services left running")
            return EXIT_RESTART
        log.info("stopped")
        return 0

    def _add_components(self) -> None:
        """Register the control socket's operations and build and set up the components (fault manager,
        metrics, MQTT bridge, web...), once the first services are started: they register their operations
        before the socket opens, and the bus gives them what it kept, as if they had been there from the
        start."""
        from svcmgr.component import load_components  # imported with the core in run(): no cost here

        self._add_operations()
        bus = self.ctx.bus
        self.components = load_components(self.ctx)
        for c in self.components:
            c.setup()
        if bus.missed:
            log.warning("the components missed the first %d events of this start (more than %d)", bus.missed,
                        BOOT_EVENTS)
        bus.stop_keeping()
        gc.freeze()  # the components live as long as the daemon, as what run() froze before the first start

    def _add_operations(self) -> None:
        """The operations of ``svcs``, ``svcadm``, ``svccfg``, ``svcprop`` and the observers, on the table the
        socket opens with once the boot's first part is started."""
        # imported here, not at the top: what only the socket's callers need waits until the first services
        # are asked for (about a tenth of the daemon's imports)
        from svcmgr.configure import Configure
        from svcmgr.control import Control
        from svcmgr.observe import Observe

        assert self.engine is not None and self.backend is not None
        api = self.ctx.api
        Control(self.engine, api, node=self.config.node, root=self.paths.root, backend=self.backend.describe(),
                controls=self.backend.controls)
        Configure(self.engine, api)
        Observe(self.engine, api)

    def restore_repository(self) -> int:
        """``--restore-repository``: put back the copy of the repository kept at the last good start (the
        way out the daemon names when it refuses a damaged one), then exit."""
        self.paths.make()
        lock = self._lock()
        try:
            print(f"svcmgrd: {restore(self.paths.repository)}; start svcmgrd again", file=sys.stderr)
        except Damaged as e:
            print(f"svcmgrd: {e.explain(self._restore_command())}", file=sys.stderr)
            return EXIT_DAMAGED
        finally:
            os.close(lock)
        return 0

    def _restore_command(self) -> str:
        root = f" --root {self.paths.root}" if self.paths.root is not None else ""
        return f"svcmgrd{root} --restore-repository"

    @staticmethod
    def _keep_copy(repo: Repository, *, check: bool, when: str) -> None:
        why = repo.keep_copy(check=check)
        if why is not None:
            log.warning("no copy of the repository kept at this %s (%s); the one kept earlier stays", when, why)

    async def _announce(self, engine: Engine) -> None:
        """Say READY once every enabled instance has settled (or after ``READY_TIMEOUT``, so that
        one start without a timeout cannot hold systemd's start job forever), tell the user
        what to type next, then keep systemd's STATUS line current."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            busy = engine.in_transition()
            if not busy and engine.settled():
                break
            if time.monotonic() >= deadline:
                log.warning("ready after %gs with %s still in transition: %s", READY_TIMEOUT,
                            counted(len(busy), "instance"), ", ".join(i.fmri for i in busy[:5]))
                break
            self.notifier.status(f"Starting: {counted(len(busy), 'instance')} in transition")
            await asyncio.sleep(0.05)
        text = _summary(engine)
        self.notifier.ready(text)
        self.is_ready = True
        online = sum(1 for i in engine.instances.values() if i.state in RUNNING)
        engine.bus.emit(DAEMON_READY, "", online=online, instances=len(engine.instances))
        hint = "svcs -a"
        script = sys.argv[0]
        bindir = os.path.dirname(script) if os.path.sep in script and script.endswith("svcmgrd") else ""
        if bindir and not _on_path(bindir):
            hint = f"{os.path.relpath(os.path.join(bindir, 'svcs'))} -a   (or: . {os.path.relpath(bindir)}/activate)"
        root_hint = "" if self.args.no_register or self.paths.root is None else \
            f" (state in {self.paths.root})"
        print(f"svcmgrd: ready, {text}{root_hint}. In another shell try: {hint}", file=sys.stderr, flush=True)
        while self.notifier.enabled:
            await asyncio.sleep(STATUS_INTERVAL)
            if not self.stop_event.is_set():  # stopping has its own status line
                self.notifier.status(_summary(engine))

    async def _watchdog(self) -> None:
        assert self.notifier.watchdog_interval is not None
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(self.notifier.watchdog_interval / 2)

    def _detach(self) -> None:
        """SIGUSR2: exit for a restart, leaving every service running for the next daemon to adopt."""
        self.detaching = True
        self.stop_event.set()

    def _reload(self) -> None:
        if not self.is_ready:
            self._reread()
            return
        self.notifier.reloading("Re-reading the configuration")
        try:
            self._reread()
        finally:
            if self.engine is not None:
                self.notifier.ready(_summary(self.engine))

    def _reread(self) -> None:
        try:
            cfg = load_config(self.args.config, overrides=_overrides(self.args))
        except FieldErrors as e:
            log.error("SIGHUP: configuration refused, keeping the running one:\n%s", e)
            return
        self.config = cfg
        self.ctx.config = cfg
        for c in self.components:
            with contextlib.suppress(AttributeError):
                c.reconfigure(cfg)
        log.info("SIGHUP: configuration re-read from %s", cfg.source)

    async def _op_reload(self, caller: Any, req: dict[str, Any]) -> dict[str, Any]:
        """``{}``: re-read the configuration, as SIGHUP does (root only)."""
        if not caller.privileged:
            raise ApiError(f"permission denied: {caller.describe()} may not reload the daemon", 1)
        self._reload()
        return {"config": self.config.source}

    def _register(self) -> None:
        if self.paths.root is None or self.args.no_register:
            return
        try:
            register(self.paths.root)
        except OSError as e:
            log.warning("--root %s is not recorded for the commands (use --root or SVCMGR_ROOT with them): %s",
                        self.paths.root, e)

    def _unregister(self) -> None:
        if self.paths.root is None or self.args.no_register:
            return
        unregister(self.paths.root)


async def _guarded(c: Component) -> None:
    """Run a component; if it fails, log it and go on without it rather than stop every service."""
    try:
        await c.run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("component %s failed; the daemon goes on without it", c.name)


def _summary(engine: Engine) -> str:
    """One line for systemd's STATUS: how many instances run, and how many need an operator."""
    insts = engine.instances.values()
    online = sum(1 for i in insts if i.state in RUNNING)
    maint = sum(1 for i in insts if i.state.value == "maintenance")
    text = f"{online} of {len(engine.instances)} instances online"
    return f"{text}, {maint} in maintenance" if maint else text


def _on_path(d: str) -> bool:
    d = os.path.realpath(d)
    return any(os.path.realpath(p) == d for p in os.environ.get("PATH", "").split(os.pathsep) if p)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic collector off for a run of imports, of modules or of the boot's manifests: it would find next
    to nothing to free in what they make (modules: about 100 collections, 13-24 ms; a boot of 1,000 services:
    about 190 collections, 40-60 ms, freeing some 400 objects), which then lives as long as the daemon or its
    services and is frozen out of its sight (``gc.freeze``, as ``Daemon.run`` does again before the first
    start). What is made while it is off is bounded by what is imported; the control socket opens after."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def _raise_fd_limit() -> int:
    """Raise the descriptor limit to the hard limit (services' logs, pipes and pidfds, and clients,
    need many); the limit in force, from which the control socket sizes its caps."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="svcmgrd: %(levelname)s: %(message)s")
    if args.root is None and os.geteuid() != 0:
        print("svcmgrd: without --root the daemon uses system paths and must run as root; "
              "use --root DIR to run unprivileged", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config, overrides=_overrides(args))
    except FieldErrors as e:
        print(f"svcmgrd: configuration refused:\n{e}", file=sys.stderr)
        return 2
    daemon = Daemon(args, config)
    if args.restore_repository:
        return daemon.restore_repository()
    try:
        return asyncio.run(daemon.run())
    except OSError as e:
        print(f"svcmgrd: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
