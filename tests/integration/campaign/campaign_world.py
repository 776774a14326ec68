"""The world a fault campaign runs in, and what its operator was told.

One real svcmgrd, on a small tmpfs of its own (so that its disk can fill up), with a dozen
services chosen for their ways of dying (children, a contract whose start method leaves a
background child, a daemon that forks away with children of its own, slow start, stop and
refresh methods, a dependency chain, a transient service, a milestone); a real mosquitto and
a subscriber that records every event's ``seq``; keepalived holding a virtual address. Where
root can build one, everything runs in a network namespace of a ``vrrp.lab.Lab`` (one node),
else on loopback without keepalived.

``Model`` is what the operator was told: each acknowledged setting (enable state, temporary
or not, maintenance marks, property values, the milestone), and for a request whose reply
never came (the daemon was killed), the values it may have left. ``expected_state`` says
where each instance must settle. Helpers are named uniquely (test folders have no
``__init__.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svctest import Daemon, remove_cgroups, wait_until

HERE = Path(__file__).resolve().parent
NODE = "chaos"
VIP = "10.232.0.100"
NET = "10.232.0"
MILESTONE = "svc:/milestone/chaos:default"
KEEPALIVED = "svc:/network/vrrp:default"

#: The services: FMRI -> (manifest body, its require_all dependencies with their restart_on). Each has an
#: application property ``app/gen`` that the campaign changes (setprop and refresh, or an import of a changed
#: manifest).
SERVICES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "svc:/chaos/db:default": ('duration = "child"\n[methods.start]\nexec = "exec sleep 1000"\n', ()),
    "svc:/chaos/app:default": ('duration = "child"\n[methods.start]\nexec = "exec sleep 1000"\n'
                               '[[dependencies]]\nname = "db"\ngrouping = "require_all"\nrestart_on = "error"\n'
                               'fmris = ["svc:/chaos/db:default"]\n', (("svc:/chaos/db:default", "error"),)),
    "svc:/chaos/web:default": ('duration = "child"\n[methods.start]\nexec = "exec sleep 1000"\n'
                               '[[dependencies]]\nname = "upstream"\ngrouping = "require_all"\nrestart_on = "restart"\n'
                               'fmris = ["svc:/chaos/app:default"]\n', (("svc:/chaos/app:default", "restart"),)),
    "svc:/chaos/opt:default": ('duration = "child"\n[methods.start]\nexec = "exec sleep 1000"\n'
                               '[[dependencies]]\nname = "web"\ngrouping = "optional_all"\nrestart_on = "none"\n'
                               'fmris = ["svc:/chaos/web:default"]\n', ()),
    # The leak: a contract whose start method leaves a background child and exits.
    "svc:/chaos/bg:default": ('duration = "contract"\n[methods.start]\nexec = "sleep 1000 & exit 0"\n', ()),
    # A daemon that forks away (a session of its own) with two children.
    "svc:/chaos/forker:default": ('duration = "contract"\n[methods.start]\nexec = "setsid sh -c '
                                  "'sleep 1001 & sleep 1002 & wait' </dev/null >/dev/null 2>&1 & exit 0\"\n", ()),
    # Slow methods: windows to kill the daemon (or the method) in.
    "svc:/chaos/slowstart:default": ('duration = "contract"\n[methods.start]\n'
                                     'exec = "sleep 1.5; sleep 1000 & exit 0"\n', ()),
    "svc:/chaos/slowstop:default": ('duration = "child"\n[methods.start]\nexec = "exec sleep 1000"\n'
                                    '[methods.stop]\nexec = "sleep 1.5"\ntimeout = "10s"\n', ()),
    "svc:/chaos/slowrefresh:default": ('duration = "child"\n[methods.start]\nexec = "exec sleep 1000"\n'
                                       '[methods.refresh]\nexec = "sleep 1.5"\ntimeout = "10s"\n', ()),
    "svc:/chaos/once:default": ('duration = "transient"\n[methods.start]\nexec = "true"\n', ()),
    MILESTONE: ('type = "milestone"\n[[dependencies]]\nname = "core"\ngrouping = "require_all"\nrestart_on = "none"\n'
                'fmris = ["svc:/chaos/db:default", "svc:/chaos/app:default"]\n',
                (("svc:/chaos/db:default", "none"), ("svc:/chaos/app:default", "none"))),
}
#: What the milestone lets run: itself and its require_all closure.
MILESTONE_CLOSURE = frozenset({MILESTONE, "svc:/chaos/db:default", "svc:/chaos/app:default"})
#: Instances whose start leaves processes (a transient or a milestone has none to track).
TRACKED = frozenset(f for f in SERVICES if f not in (MILESTONE, "svc:/chaos/once:default"))


def manifest_text(fmri: str, gen: int) -> str:
    body, _ = SERVICES[fmri]
    name = fmri.removeprefix("svc:/").removesuffix(":default")
    return (f'name = "{name}"\n{body}[restart]\nlimit = 100000\nperiod = "1h"\n'
            f'[properties.app]\ngen = "{gen}"\n')


def file_name(fmri: str) -> str:
    return fmri.removeprefix("svc:/").removesuffix(":default").replace("/", "-") + ".toml"


# ==================================================================== the control socket
class Unanswered(Exception):
    """The request was sent but no reply came (the daemon died): it may or may not have been done."""


class Refused(Exception):
    """The daemon answered with an error."""


def call(root: Path, op: str, timeout: float = 30.0, **args: Any) -> Any:
    """One request. ConnectionRefusedError/FileNotFoundError: not sent at all (nothing done);
    Unanswered: sent, no reply; Refused: the daemon's error."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        s.connect(str(root / "run" / "svcmgr.sock"))
        try:
            s.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            chunks = []
            while True:
                b = s.recv(1 << 16)
                if not b:
                    break
                chunks.append(b)
        except OSError as e:
            raise Unanswered(f"{op}: {e}") from None
    finally:
        s.close()
    if not chunks:
        raise Unanswered(f"{op}: closed without a reply")
    reply = json.loads(b"".join(chunks))
    if not reply.get("ok"):
        raise Refused(reply.get("error", "?"))
    return reply.get("result")


# ==================================================================== what the operator was told
@dataclass
class Setting:
    """One acknowledged value, and the values a request that got no reply may have left instead."""

    value: Any
    maybe: set[Any] = field(default_factory=set)

    def told(self, value: Any) -> None:
        self.value, self.maybe = value, set()

    def unknown(self, value: Any) -> None:
        self.maybe.add(value)

    def allows(self, seen: Any) -> bool:
        return seen == self.value or seen in self.maybe

    def settle(self, seen: Any) -> None:
        """After a check: what the daemon has is what the operator now knows."""
        self.told(seen)


@dataclass
class Model:
    enabled: dict[str, Setting] = field(default_factory=dict)  # persistent enable state
    temp: dict[str, Setting] = field(default_factory=dict)  # temporary override (None: none)
    maint: dict[str, Setting] = field(default_factory=dict)  # an operator's persistent maintenance mark
    gen: dict[str, Setting] = field(default_factory=dict)  # app/gen in the running snapshot
    editing: dict[str, Setting] = field(default_factory=dict)  # app/gen in the editing copy
    milestone: Setting = field(default_factory=lambda: Setting("all"))
    requires: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # (dependency, restart_on)

    @classmethod
    def initial(cls, extra: list[str]) -> Model:
        m = cls()
        for f in [*SERVICES, *extra]:
            m.enabled[f] = Setting(True)
            m.temp[f] = Setting(None)
            m.maint[f] = Setting(False)
            m.requires[f] = SERVICES[f][1] if f in SERVICES else ()
            if f in SERVICES:
                m.gen[f] = Setting(0)
                m.editing[f] = Setting(0)
        return m

    def daemon_restarted(self) -> None:
        """Temporary settings and the milestone end with the daemon."""
        for s in self.temp.values():
            s.told(None)
        self.milestone.told("all")

    def effective(self, f: str, enabled: bool, temp: bool | None) -> bool:
        return enabled if temp is None else temp

    def expected_state(self, f: str, seen: dict[str, dict[str, Any]], states: dict[str, str]) -> set[str]:
        """Where an instance may settle, given the settings the daemon shows (already checked against the
        model) and where its dependencies are: maintenance, disabled, online (or degraded, a fault case's
        mark) when every dependency runs. When one does not, it is offline if that dependency's
        ``restart_on`` stops it whatever stopped the dependency (restart, refresh); otherwise it may have
        stayed online (none, error) or be offline (it was stopped, and cannot start). Each instance is
        checked this way, so a dependency that should run and does not is found on its own line."""
        s = seen[f]
        if s["maint"]:
            return {"maintenance"}
        if not s["enabled"]:  # a milestone holds an instance back through its temporary override
            return {"disabled"}
        down = [on for d, on in self.requires.get(f, ()) if states.get(d) not in ("online", "degraded")]
        if not down:
            return {"online", "degraded"}
        if any(on in ("restart", "refresh") for on in down):
            return {"offline"}
        return {"online", "degraded", "offline"}


# ==================================================================== real parts
class Broker:
    """mosquitto with persistence (a subscriber's session survives its restart), in the lab's namespace or on
    loopback; ``kill()`` is kill -9."""

    def __init__(self, folder: Path, host: str, port: int, netns: str | None) -> None:
        self.folder, self.host, self.port, self.netns = folder, host, port, netns
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        lines = [f"listener {port} {host}", "allow_anonymous true", "persistence true",
                 f"persistence_location {folder}/", "autosave_interval 1", "max_queued_messages 0",
                 "log_dest stderr", "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*_netns(self.netns), "mosquitto", "-c", str(self.conf)], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise AssertionError(f"mosquitto exited: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kills += 1
        _end(self.proc, signal.SIGKILL)
        self.proc = None

    def stop(self) -> None:
        """A clean stop (it saves its state)."""
        _end(self.proc, signal.SIGTERM)
        self.proc = None


class Subscriber:
    """campaign_subscriber.py in its own process (in the namespace): every event's seq, in arrival order."""

    def __init__(self, folder: Path, broker: Broker) -> None:
        self.out = folder / "events.jsonl"
        self.broker = broker
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([*_netns(self.broker.netns), sys.executable, str(HERE / "campaign_subscriber.py"),
                                      self.broker.host, str(self.broker.port), f"svcmgr/{NODE}/#", str(self.out)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.out.with_suffix(".err"), "ab"),  # noqa: SIM115
                                     start_new_session=True)
        wait_until(lambda: self.out.exists(), 15, what="the subscriber to subscribe")

    def seqs(self) -> list[int]:
        out = []
        with contextlib.suppress(FileNotFoundError), open(self.out) as f:
            for line in f:
                with contextlib.suppress(ValueError, KeyError):
                    out.append(int(json.loads(line)["seq"]))
        return out

    def stop(self) -> None:
        _end(self.proc, signal.SIGTERM)
        self.proc = None


def _end(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    """Signal a process we started and wait for it (SIGKILL after 10 s)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _netns(ns: str | None) -> list[str]:
    # nsenter, not "ip netns exec": that one remounts /sys, hiding the cgroup v2 mount from the daemon.
    return ["nsenter", f"--net=/run/netns/{ns}"] if ns else []


@contextlib.contextmanager
def small_disk(size_mb: int) -> Iterator[tuple[Path, str | None]]:
    """A fresh folder for --root on a tmpfs of its own (root only), else a plain folder and why not."""
    root = Path(tempfile.mkdtemp(prefix="svcchaos-", dir="/tmp"))
    os.chmod(root, 0o755)
    why = None
    mounted = False
    if os.geteuid() != 0:
        why = "a tmpfs needs root"
    else:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "chaos", str(root)],
                           capture_output=True, text=True, check=False)
        mounted = r.returncode == 0
        why = None if mounted else f"mount -t tmpfs failed: {r.stderr.strip()}"
    try:
        yield root, why
    finally:
        if mounted:
            for _ in range(50):
                if subprocess.run(["umount", str(root)], capture_output=True, check=False).returncode == 0:
                    break
                time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


def fill(path: Path) -> None:
    """Fill the filesystem of ``path`` up to the last byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError:
                pass
    finally:
        os.close(fd)


# ==================================================================== the world
class World:
    """The daemon under test and its parts; ``mode`` is () for cgroups or ("--no-cgroup",)."""

    def __init__(self, mode: tuple[str, ...], root: Path, work: Path, *, lab: Any = None,
                 disk_why: str | None = None, log: Callable[[str], None] = print) -> None:
        self.mode = mode
        self.root = root
        self.work = work
        self.lab = lab
        self.netns = lab.ns(1) if lab is not None else None
        self.disk_why = disk_why
        self.say = log
        env = dict(os.environ, XDG_RUNTIME_DIR=str(work / "xdg"), PYTHONUNBUFFERED="1")
        env.pop("SVCMGR_ROOT", None)
        env.pop("NOTIFY_SOCKET", None)
        self.daemon = Daemon(root, env)
        self.daemon.output = work / "daemon.out"  # not on the small disk: it must say why it cannot write
        host = lab.addr(1) if lab is not None else "127.0.0.1"
        port = 1883 if lab is not None else _free_port()
        self.broker = Broker(work / "broker", host, port, self.netns)
        self.subscriber = Subscriber(work, self.broker)
        self.model: Model | None = None
        self.gens: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self.restarts = 0
        #: what a fault found wrong by itself (the checks add theirs)
        self.violations: list[str] = []
        self.disk_refusals = 0
        self.disks = 0
        self.events_dropped, self.daemon_pid = 0, None  # the daemon's own count of events it could not queue
        self.sqlite_recovered = 0
        self.config = work / "node.toml"
        vrrp = ""
        if lab is not None:
            vrrp = textwrap.dedent(f"""
                [vrrp.instances.vip]
                interface = "eth0"
                router_id = 62
                addresses = ["{VIP}/24"]
                priority = 150
                advert_interval = "500ms"
                """)
        self.config.write_text(f'[node]\nname = "{NODE}"\n[metrics]\nlisten = ""\n[mqtt]\nurl = "{self.broker.url}"\n'
                               f'reconnect_min = "100ms"\nreconnect_max = "1s"\n{vrrp}')

    # ---------------------------------------------------------------- lifecycle
    def open(self) -> None:
        for f in SERVICES:
            self.daemon.manifest(file_name(f), manifest_text(f, 0))
        self.broker.start()
        self.subscriber.start()
        # The subscriber's persistent session must be in the broker's saved state before a kill -9 can come:
        # a clean stop saves it (a broker killed before its first autosave forgot it, and with it every event
        # published before the subscriber came back: seed 2445776626, round 1).
        self.broker.stop()
        self.broker.start()
        self.start_daemon(manifests=True)
        extra = [f for f in self.daemon.instances() if f not in SERVICES]
        self.model = Model.initial(extra)
        self.open_case()

    def open_case(self) -> None:
        """Errors on a disk of its own, enough for the fault manager's disk rule to open a case (kept across
        restarts, and never closed by the campaign's requests)."""
        self.disks += 1
        dev = f"dev:///chaos-disk{self.disks}"
        self.call("fm.inject", ereports=[{"class": "ereport.io.disk.error", "resource": dev}] * 5)

    def start_daemon(self, *, manifests: bool = False) -> None:
        wrap = tuple(_netns(self.netns))
        self.daemon.start(*self.mode, "--config", str(self.config), "--log-level", "info", manifests=manifests,
                          wrap=wrap)

    def restart_daemon(self) -> None:
        """After a kill -9: a new daemon on the same root."""
        self.start_daemon()
        self.restarts += 1
        assert self.model is not None
        self.model.daemon_restarted()

    def kill_daemon(self) -> None:
        if self.daemon.proc is not None:
            self.daemon.kill9()

    def try_start(self, timeout: float = 20) -> tuple[int, str] | None:
        """Start a daemon that may refuse to: None once it answers, else (exit status, what it said)."""
        before = len(self.daemon.log_text())
        self.daemon.start(*self.mode, "--config", str(self.config), "--log-level", "info", manifests=False, wait=False,
                          wrap=tuple(_netns(self.netns)))
        proc = self.daemon.proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.daemon.proc = None
                return proc.returncode, self.daemon.log_text()[before:]
            try:
                self.call("ping")
                return None
            except (OSError, Refused, Unanswered):
                time.sleep(0.05)
        raise AssertionError(f"svcmgrd neither answered nor exited within {timeout:g}s")

    def next_gen(self, f: str) -> int:
        self.gens[f] += 1
        return self.gens[f]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.daemon.stop(60)
        remove_cgroups(self.root)
        self.subscriber.stop()
        self.broker.stop()

    # ---------------------------------------------------------------- reading
    def call(self, op: str, **args: Any) -> Any:
        return call(self.root, op, **args)

    def listing(self) -> dict[str, dict[str, Any]]:
        return {i["fmri"]: i for i in self.call("list", pids=True)}

    def log_of(self, fmri: str) -> str:
        p = self.root / "log" / (fmri.removeprefix("svc:/").replace("/", "-") + ".log")
        try:
            return p.read_text(errors="replace")
        except OSError:
            return ""

    def settled(self, timeout: float = 40.0) -> dict[str, dict[str, Any]]:
        """Wait until no instance is in transition and two listings agree; the listing."""
        last: dict[str, Any] = {}

        def quiet() -> Any:
            nonlocal last
            now = self.listing()
            busy = [f for f, i in now.items() if i["nstate"] is not None]
            same = {f: i["state"] for f, i in now.items()} == {f: i["state"] for f, i in last.items()}
            last = now
            return now if not busy and same else None

        return wait_until(quiet, timeout, interval=0.3, what="every instance to settle")

    def processes(self) -> dict[int, str]:
        """Every live process carrying a contract marker of this daemon -> its SMF_FMRI (or '?')."""
        tag = _tag(self.root)
        out = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                with open(f"/proc/{name}/stat", "rb") as f:
                    st = f.read()
            except OSError:
                continue
            if st[st.rfind(b")") + 2:st.rfind(b")") + 3] in (b"Z", b"X"):
                continue
            if any(e.startswith(f"SVCMGR_CONTRACT={tag}.".encode()) for e in env):
                fmri = next((e[9:].decode() for e in env if e.startswith(b"SMF_FMRI=")), "?")
                out[int(name)] = fmri
        return out

    def method_pids(self, fmri: str, method: str) -> list[int]:
        """Processes of ``fmri`` run for ``method`` (SMF_METHOD in their environment)."""
        out = []
        for pid, f in self.processes().items():
            if f != fmri:
                continue
            with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as fh:
                if f"SMF_METHOD={method}".encode() in fh.read().split(b"\0"):
                    out.append(pid)
        return out


def _tag(root: Path) -> str:
    return hashlib.sha1(str(root).encode()).hexdigest()[:10]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
