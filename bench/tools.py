"""The supervisors under test, behind one small interface (``Tool``), and svcmgr and the asyncio floor behind it.

Each tool writes its own configuration for a list of services, in the form its
users write it, launches its supervisor, answers "which services are up, with
which pid" through the tool's own status interface, names its listing command
and the processes that make up the supervisor (for memory), and stops.

* ``svcmgr``: TOML manifests in a folder, ``svcmgrd --root DIR --manifests DIR``;
  status by the control socket's ``list`` operation (what ``svcs`` sends);
  contracts are cgroup v2 where writable, and a second entry runs ``--no-cgroup``.
The peers are in ``bench.peers``:

* ``supervisord``: one ini file, status by XML-RPC ``getAllProcessInfo`` /
  ``getProcessInfo`` over its Unix socket (what ``supervisorctl status`` calls).
* ``circus``: one ini file, status by the ZeroMQ ``status`` / ``list`` commands
  (what ``circusctl`` sends).
* ``runit``: a ``run`` script per service under ``runsvdir``; status from
  ``supervise/stat`` and ``supervise/pid`` (the files ``sv status`` reads).
* ``s6``: a ``run`` script per service under ``s6-svscan``; status from
  ``supervise/status`` (the record ``s6-svstat`` reads).
* ``floor``: ``bench.floor``, the bare asyncio spawner.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.procs import Tracked, children_of, spawn
from svcmgr.client import recv_all

__all__ = ["REPO", "Floor", "NotReady", "Service", "Svcmgr", "Tool", "unix_call"]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


@dataclass
class Service:
    name: str
    argv: list[str]
    deps: list[str] = field(default_factory=list)
    #: "spawn": up once running; "exit": ready when the start command exits 0 (a daemon-style start).
    ready: str = "spawn"


def unix_call(path: str, payload: bytes, timeout: float = 30.0) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(payload)
        return recv_all(s)
    finally:
        s.close()


class NotReady(Exception):
    """The supervisor does not answer yet."""


_NOT_UP = (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError, NotReady)


class Tool(abc.ABC):
    """One supervisor under test. ``status`` maps service name -> pid for the services it reports up."""

    name = "?"
    supports_dag = False
    #: its start does more the second time on the same state (svcmgr: from the repository's records of the
    #: manifests imported), measured by the warm scenario; the others' second start is their ordinary one
    warm_start = False
    note = ""

    def __init__(self, work: str) -> None:
        self.work = work
        self.proc: Tracked | None = None
        self.services: list[Service] = []

    # -- lifecycle
    def available(self) -> str | None:
        """None if the tool can run here, else why not."""
        return None

    def version(self) -> str:
        return ""

    def prepare(self, services: list[Service]) -> None:
        self.services = services
        if os.path.exists(self.work):
            shutil.rmtree(self.work)
        os.makedirs(self.work)
        self.write_config(services)

    @abc.abstractmethod
    def write_config(self, services: list[Service]) -> None:
        """Each tool's own."""

    @abc.abstractmethod
    def launch(self) -> None:
        """Each tool's own."""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM, 60.0)
            self.proc = None

    # -- status
    @abc.abstractmethod
    def status(self) -> dict[str, int]:
        """Each tool's own."""

    def status_one(self, name: str) -> int | None:
        return self.status().get(name)

    def poll_status(self) -> dict[str, int] | None:
        """``status``, or None while the supervisor does not answer yet."""
        try:
            return self.status()
        except _NOT_UP:
            return None

    # -- what the scenarios need
    def supervisor_pids(self) -> list[int]:
        """The supervisor's own processes (not the services'), for memory."""
        assert self.proc is not None
        return [self.proc.pid]

    def listing_command(self) -> list[str] | None:
        return None


# ---------------------------------------------------------------------------------------------- svcmgr
class Svcmgr(Tool):
    name = "svcmgr"
    supports_dag = True
    warm_start = True

    def __init__(self, work: str, bindir: str, *, cgroup: bool = True, source: str | None = None,
                 label: str | None = None) -> None:
        super().__init__(work)
        self.bindir = bindir
        self.cgroup = cgroup
        #: another copy of the svcmgr package to run instead of the installed one (before/after comparisons)
        self.source = source
        if not cgroup:
            self.name = "svcmgr --no-cgroup"
        if label:
            self.name = f"{self.name} {label}"
        self.root = os.path.join(work, "root")
        self.manifests = os.path.join(work, "manifests")
        self.backend = ""

    def available(self) -> str | None:
        if not os.access(os.path.join(self.bindir, "svcmgrd"), os.X_OK):
            return f"no svcmgrd in {self.bindir} (run make venv)"
        return None

    def version(self) -> str:
        try:
            out = subprocess.run([os.path.join(self.bindir, "svcmgrd"), "--version"], capture_output=True,
                                 text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return f"{out} ({rev.stdout.strip()})" if rev.returncode == 0 else out

    @staticmethod
    def fmri(name: str) -> str:
        return f"svc:/bench/{name}:default"

    def write_config(self, services: list[Service]) -> None:
        os.makedirs(self.manifests)
        for s in services:
            lines = [f'name = "bench/{s.name}"',
                     'duration = "child"' if s.ready == "spawn" else 'duration = "contract"', "",
                     "[methods.start]", f"exec = {json.dumps(s.argv)}", "",
                     "[restart]", "limit = 100000", ""]
            for i, d in enumerate(s.deps):
                lines += ["[[dependencies]]", f'name = "d{i}"', 'grouping = "require_all"',
                          'restart_on = "none"', f'fmris = ["{self.fmri(d)}"]', ""]
            with open(os.path.join(self.manifests, f"{s.name}.toml"), "w") as f:
                f.write("\n".join(lines))

    def launch(self) -> None:
        # /metrics stays on, as by default, but on a free port: the default 127.0.0.1:9464 would be taken from
        # the demo or a test suite running beside the bench
        argv = [os.path.join(self.bindir, "svcmgrd"), "--root", self.root, "--manifests", self.manifests,
                "--no-register", "--metrics", f"127.0.0.1:{_free_port()}"]
        if not self.cgroup:
            argv.append("--no-cgroup")
        env = None
        if self.source:
            env = {**os.environ, "PYTHONPATH": self.source}
        self.proc = spawn(argv, self.name, log=os.path.join(self.work, "svcmgrd.log"), env=env)

    @property
    def sock(self) -> str:
        return os.path.join(self.root, "run", "svcmgr.sock")

    #: what ``_up`` and ``status`` read of ``list`` (a daemon older than ``fields`` ignores it and says all)
    LIST_FIELDS = ("fmri", "state", "nstate", "pids")

    def _list(self, fmris: list[str] | None = None) -> list[dict[str, Any]]:
        req: dict[str, Any] = {"op": "list", "fields": list(self.LIST_FIELDS)}
        if fmris:
            req["fmris"] = fmris
        raw = unix_call(self.sock, json.dumps(req).encode() + b"\n")
        if not raw:
            raise NotReady("no reply")
        reply = json.loads(raw)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error"))
        return reply["result"]

    @staticmethod
    def _up(item: dict[str, Any]) -> int | None:
        if item["state"] != "online" or item.get("nstate"):
            return None
        pids = item.get("pids") or []
        return pids[0] if pids else -1  # online without a process (a transient start) counts as up

    def status(self) -> dict[str, int]:
        out = {}
        for item in self._list():
            pid = self._up(item)
            if pid is not None:
                out[item["fmri"].split("/")[-1].split(":")[0]] = pid
        return out

    def status_one(self, name: str) -> int | None:
        items = self._list([self.fmri(name)])
        return self._up(items[0]) if items else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM, 120.0)
            self.proc = None
        _remove_cgroups(self.root)

    def supervisor_pids(self) -> list[int]:
        """svcmgrd and its spawn helper (``svcmgr.forkserver``), when it runs one."""
        assert self.proc is not None
        helpers = []
        for pid in children_of(self.proc.pid):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "svcmgr-spawn":
                    helpers.append(pid)
        return [self.proc.pid, *helpers]

    def listing_command(self) -> list[str]:
        cmd = [os.path.join(self.bindir, "svcs"), "--root", self.root, "-a"]
        if self.source:
            cmd = ["env", f"PYTHONPATH={self.source}", *cmd]
        return cmd


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _remove_cgroups(root: str) -> None:
    """Kill and remove the contract cgroups a daemon on ``root`` left behind (only if it died)."""
    tag = hashlib.sha1(root.encode()).hexdigest()[:10]
    try:
        with open("/proc/self/mountinfo") as f:
            mounts = [line.partition(" - ")[0].split()[4] for line in f if " - cgroup2 " in line]
    except OSError:
        return
    for m in mounts:
        for dirpath, dirnames, _ in os.walk(m):
            for d in dirnames:
                if d != f"svcmgr-{tag}":
                    continue
                base = os.path.join(dirpath, d)
                for sub in os.listdir(base):
                    p = os.path.join(base, sub)
                    if os.path.isdir(p):
                        with contextlib.suppress(OSError), open(os.path.join(p, "cgroup.kill"), "w") as f:
                            f.write("1")
                time.sleep(0.05)
                for sub in os.listdir(base):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(base, sub))
                with contextlib.suppress(OSError):
                    os.rmdir(base)
            dirnames[:] = [d for d in dirnames if not d.startswith("svcmgr-")]


# ---------------------------------------------------------------------------------------------- floor
class Floor(Tool):
    name = "asyncio floor"
    supports_dag = True
    note = "bare asyncio spawner, pidfd child watcher (bench/floor.py)"

    def write_config(self, services: list[Service]) -> None:
        spec = {"services": [{"name": s.name, "argv": s.argv, "deps": s.deps} for s in services],
                "ready": services[0].ready if services else "spawn"}
        with open(os.path.join(self.work, "spec.json"), "w") as f:
            json.dump(spec, f)

    @property
    def sock(self) -> str:
        return os.path.join(self.work, "floor.sock")

    def launch(self) -> None:
        self.proc = spawn([sys.executable, "-m", "bench.floor", os.path.join(self.work, "spec.json"), self.sock],
                          self.name, log=os.path.join(self.work, "floor.log"), cwd=REPO)

    def _ask(self, name: str = "") -> dict[str, Any]:
        raw = unix_call(self.sock, name.encode() + b"\n")
        if not raw:
            raise NotReady("no reply")
        return json.loads(raw)

    def status(self) -> dict[str, int]:
        return {n: v[1] for n, v in self._ask().items() if v[0]}

    def status_one(self, name: str) -> int | None:
        v = self._ask(name).get(name)
        return v[1] if v and v[0] else None
