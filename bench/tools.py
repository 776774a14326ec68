"""The supervisors under test, behind one small interface.

Each tool writes its own configuration for a list of services, in the form its
users write it, launches its supervisor, answers "which services are up, with
which pid" through the tool's own status interface, names its listing command
and the processes that make up the supervisor (for memory), and stops.

* ``svcmgr``: TOML manifests in a folder, ``svcmgrd --root DIR --manifests DIR``;
  status by the control socket's ``list`` operation (what ``svcs`` sends);
  contracts are cgroup v2 where writable, and a second entry runs ``--no-cgroup``.
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
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass, field
from http.client import HTTPConnection
from typing import Any

from bench.procs import Tracked, spawn

__all__ = ["TOOLS", "Service", "Tool", "make_tools"]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


@dataclass
class Service:
    name: str
    argv: list[str]
    deps: list[str] = field(default_factory=list)
    #: "spawn": up once running; "exit": ready when the start command exits 0 (a daemon-style start).
    ready: str = "spawn"


def _unix_call(path: str, payload: bytes, timeout: float = 30.0) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(payload)
        chunks = []
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    return b"".join(chunks)


class NotReady(Exception):
    """The supervisor does not answer yet."""


_NOT_UP = (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError, NotReady)


class Tool(abc.ABC):
    """One supervisor under test. ``status`` maps service name -> pid for the services it reports up."""

    name = "?"
    supports_dag = False
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
        argv = [os.path.join(self.bindir, "svcmgrd"), "--root", self.root, "--manifests", self.manifests,
                "--no-register"]
        if not self.cgroup:
            argv.append("--no-cgroup")
        env = None
        if self.source:
            env = {**os.environ, "PYTHONPATH": self.source}
        self.proc = spawn(argv, self.name, log=os.path.join(self.work, "svcmgrd.log"), env=env)

    @property
    def sock(self) -> str:
        return os.path.join(self.root, "run", "svcmgr.sock")

    def _list(self, fmris: list[str] | None = None) -> list[dict[str, Any]]:
        req: dict[str, Any] = {"op": "list"}
        if fmris:
            req["fmris"] = fmris
        raw = _unix_call(self.sock, json.dumps(req).encode() + b"\n")
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

    def listing_command(self) -> list[str]:
        cmd = [os.path.join(self.bindir, "svcs"), "--root", self.root, "-a"]
        if self.source:
            cmd = ["env", f"PYTHONPATH={self.source}", *cmd]
        return cmd


def _remove_cgroups(root: str) -> None:
    """Kill and remove the contract cgroups a daemon on ``root`` left behind (only if it died)."""
    import hashlib

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
        raw = _unix_call(self.sock, name.encode() + b"\n")
        if not raw:
            raise NotReady("no reply")
        return json.loads(raw)

    def status(self) -> dict[str, int]:
        return {n: v[1] for n, v in self._ask().items() if v[0]}

    def status_one(self, name: str) -> int | None:
        v = self._ask(name).get(name)
        return v[1] if v and v[0] else None


# ---------------------------------------------------------------------------------------------- supervisord
class _UnixHTTPConnection(HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.path)
        self.sock = s


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def make_connection(self, host: Any) -> HTTPConnection:
        return _UnixHTTPConnection(self.path)


class Supervisord(Tool):
    name = "supervisord"

    def __init__(self, work: str, venv_bin: str) -> None:
        super().__init__(work)
        self.bin = venv_bin
        self._rpc: Any = None

    def available(self) -> str | None:
        if not os.access(os.path.join(self.bin, "supervisord"), os.X_OK):
            return "supervisor is not installed in the bench venv"
        return None

    def version(self) -> str:
        r = subprocess.run([os.path.join(self.bin, "supervisord"), "--version"], capture_output=True, text=True)
        return r.stdout.strip()

    @property
    def conf(self) -> str:
        return os.path.join(self.work, "supervisord.conf")

    @property
    def sock(self) -> str:
        return os.path.join(self.work, "supervisor.sock")

    def write_config(self, services: list[Service]) -> None:
        os.makedirs(os.path.join(self.work, "logs"))
        lines = ["[unix_http_server]", f"file={self.sock}", "",
                 "[supervisord]", f"logfile={self.work}/supervisord.log", f"pidfile={self.work}/supervisord.pid",
                 f"childlogdir={self.work}/logs", "nodaemon=true", f"minfds={max(1024, 8 * len(services) + 256)}",
                 "", "[rpcinterface:supervisor]",
                 "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
                 "[supervisorctl]", f"serverurl=unix://{self.sock}", ""]
        for s in services:
            # startsecs=0: RUNNING as soon as spawned, the same "up" as the others (the default waits 1 s).
            lines += [f"[program:{s.name}]", f"command={subprocess.list2cmdline(s.argv)}", "startsecs=0",
                      "autorestart=true", "startretries=100000", ""]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))

    def launch(self) -> None:
        self._rpc = None
        self.proc = spawn([os.path.join(self.bin, "supervisord"), "-c", self.conf], self.name,
                          log=os.path.join(self.work, "out.log"))

    def _server(self) -> Any:
        if self._rpc is None:
            self._rpc = xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(self.sock))
        return self._rpc

    def status(self) -> dict[str, int]:
        try:
            infos = self._server().supervisor.getAllProcessInfo()
        except xmlrpc.client.Fault as e:
            raise NotReady(str(e)) from None
        return {i["name"]: i["pid"] for i in infos if i["statename"] == "RUNNING"}

    def status_one(self, name: str) -> int | None:
        i = self._server().supervisor.getProcessInfo(name)
        return i["pid"] if i["statename"] == "RUNNING" else None

    def listing_command(self) -> list[str]:
        return [os.path.join(self.bin, "supervisorctl"), "-c", self.conf, "status"]


# ---------------------------------------------------------------------------------------------- circus
class Circus(Tool):
    name = "circus"

    def __init__(self, work: str, venv_bin: str) -> None:
        super().__init__(work)
        self.bin = venv_bin
        self._client: Any = None

    def available(self) -> str | None:
        if not os.access(os.path.join(self.bin, "circusd"), os.X_OK):
            return "circus is not installed in the bench venv"
        try:
            import circus.client  # noqa: F401
        except ImportError:
            return "circus is not importable by the harness (run it with the bench venv's python)"
        return None

    def version(self) -> str:
        r = subprocess.run([os.path.join(self.bin, "circusd"), "--version"], capture_output=True, text=True)
        return f"circus {r.stdout.strip()}"

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.work}/endpoint"

    def write_config(self, services: list[Service]) -> None:
        lines = ["[circus]", f"endpoint = {self.endpoint}", f"pubsub_endpoint = ipc://{self.work}/pubsub",
                 "statsd = false", ""]
        for s in services:
            lines += [f"[watcher:{s.name}]", f"cmd = {s.argv[0]}", f"args = {subprocess.list2cmdline(s.argv[1:])}",
                      "numprocesses = 1", "warmup_delay = 0", "copy_env = true", ""]
        with open(os.path.join(self.work, "circus.ini"), "w") as f:
            f.write("\n".join(lines))

    def launch(self) -> None:
        self._client = None
        self.proc = spawn([os.path.join(self.bin, "circusd"), os.path.join(self.work, "circus.ini")], self.name,
                          log=os.path.join(self.work, "out.log"))

    def _call(self, command: str, **props: Any) -> dict[str, Any]:
        from circus.client import CircusClient
        from circus.exc import CallError

        if not os.path.exists(os.path.join(self.work, "endpoint")):
            raise NotReady("no endpoint yet")
        if self._client is None:
            self._client = CircusClient(endpoint=self.endpoint, timeout=30)
        try:
            reply = self._client.call({"command": command, "properties": props})
        except CallError as e:
            self._client.stop()
            self._client = None
            raise NotReady(str(e)) from None
        if reply.get("status") != "ok":
            raise NotReady(str(reply))
        return reply

    def status(self) -> dict[str, int]:
        st = self._call("status").get("statuses", {})
        active = [n for n, v in st.items() if v == "active"]
        if len(active) < len(self.services):
            return {n: -1 for n in active}
        # Every watcher active: ask for the pids (what "circusctl list NAME" prints).
        out = {}
        for n in active:
            pids = self._call("list", name=n).get("pids") or []
            if pids:
                out[n] = pids[0]
        return out

    def status_one(self, name: str) -> int | None:
        pids = self._call("list", name=name).get("pids") or []
        return pids[0] if pids else None

    def stop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.stop()
            self._client = None
        super().stop()

    def listing_command(self) -> list[str]:
        return [os.path.join(self.bin, "circusctl"), "--endpoint", self.endpoint, "status"]


# ---------------------------------------------------------------------------------------------- runit, s6
def _run_script(s: Service) -> str:
    return "#!/bin/sh\nexec " + " ".join(_sh_quote(a) for a in s.argv) + "\n"


def _sh_quote(a: str) -> str:
    import shlex

    return shlex.quote(a)


class _ServiceDirs(Tool):
    def write_config(self, services: list[Service]) -> None:
        for s in services:
            d = os.path.join(self.work, "sv", s.name)
            os.makedirs(d)
            with open(os.path.join(d, "run"), "w") as f:
                f.write(_run_script(s))
            os.chmod(os.path.join(d, "run"), 0o755)

    def supervisor_pids(self) -> list[int]:
        # The scanner and one supervisor process per service (runsv / s6-supervise).
        assert self.proc is not None
        return [self.proc.pid, *_children(self.proc.pid)]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Runit(_ServiceDirs):
    name = "runit"

    def available(self) -> str | None:
        return None if shutil.which("runsvdir") and shutil.which("sv") else "runit is not installed (apt install runit)"

    def version(self) -> str:
        return "runit " + _dpkg_version("runit")

    def launch(self) -> None:
        self.proc = spawn(["runsvdir", "-P", os.path.join(self.work, "sv")], self.name,
                          log=os.path.join(self.work, "out.log"))

    def _one(self, name: str) -> int | None:
        d = os.path.join(self.work, "sv", name, "supervise")
        try:
            with open(os.path.join(d, "stat")) as f:
                stat = f.read().strip()
            if stat != "run":
                return None
            with open(os.path.join(d, "pid")) as f:
                pid = f.read().strip()
        except OSError:
            return None
        return int(pid) if pid.isdigit() and pid != "0" else None

    def status(self) -> dict[str, int]:
        out = {}
        for s in self.services:
            pid = self._one(s.name)
            if pid:
                out[s.name] = pid
        return out

    def status_one(self, name: str) -> int | None:
        return self._one(name)

    def stop(self) -> None:
        # HUP: runsvdir sends TERM to every runsv and exits; the harness then ends what is left, by pid.
        if self.proc is not None:
            self.proc.stop(signal.SIGHUP, 30.0)
            self.proc = None

    def listing_command(self) -> list[str]:
        return ["sv", "status", *[os.path.join(self.work, "sv", s.name) for s in self.services]]


class S6(_ServiceDirs):
    name = "s6"

    def available(self) -> str | None:
        if shutil.which("s6-svscan") and shutil.which("s6-svstat"):
            return None
        return "s6 is not installed (apt install s6)"

    def version(self) -> str:
        return "s6 " + _dpkg_version("s6")

    def launch(self) -> None:
        n = max(1000, 2 * len(self.services))
        self.proc = spawn(["s6-svscan", "-c", str(n), os.path.join(self.work, "sv")], self.name,
                          log=os.path.join(self.work, "out.log"))

    def _one(self, name: str) -> int | None:
        # s6-supervise's status record (s6 >= 2.11: 43 bytes; 2.10: 35): two TAI64N stamps, then the
        # pid as a big-endian uint64 at offset 24; s6-svstat reads the same record.
        try:
            with open(os.path.join(self.work, "sv", name, "supervise", "status"), "rb") as f:
                rec = f.read()
        except OSError:
            return None
        if len(rec) < 35:
            return None
        pid = struct.unpack(">Q", rec[24:32])[0]
        flags = rec[-1]
        finishing = bool(flags & 2)
        return int(pid) if pid and not finishing else None

    def status(self) -> dict[str, int]:
        out = {}
        for s in self.services:
            pid = self._one(s.name)
            if pid:
                out[s.name] = pid
        return out

    def status_one(self, name: str) -> int | None:
        return self._one(name)

    def check_with_svstat(self, name: str) -> int | None:
        """The pid ``s6-svstat`` reports (cross-check of the record parsing)."""
        r = subprocess.run(["s6-svstat", "-o", "up,pid", os.path.join(self.work, "sv", name)],
                           capture_output=True, text=True)
        parts = r.stdout.split()
        if len(parts) == 2 and parts[0] == "true":
            return int(parts[1])
        return None

    def listing_command(self) -> list[str]:
        # s6 has no "list all" command: s6-svstat once per service directory, as an operator would loop.
        return ["sh", "-c", 'for d in "$0"/*; do s6-svstat "$d"; done', os.path.join(self.work, "sv")]


def _dpkg_version(pkg: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() or "?"


TOOLS = ["svcmgr", "svcmgr --no-cgroup", "asyncio floor", "supervisord", "circus", "runit", "s6"]


def make_tools(work: str, svcmgr_bin: str, venv_bin: str, names: list[str],
               compare: str | None = None) -> list[Tool]:
    """The named tools; ``compare`` (a git revision exported to a folder) adds svcmgr at that revision."""
    out: list[Tool] = []
    if compare:
        rev = os.path.basename(compare.rstrip("/"))
        for n in names:
            if n.startswith("svcmgr"):
                d = os.path.join(work, n.replace(" ", "").replace("-", "") + "-before")
                out.append(Svcmgr(d, svcmgr_bin, cgroup=n == "svcmgr", source=compare, label=f"@{rev}"))
    for n in names:
        d = os.path.join(work, n.replace(" ", "").replace("-", ""))
        if n == "svcmgr":
            out.append(Svcmgr(d, svcmgr_bin))
        elif n == "svcmgr --no-cgroup":
            out.append(Svcmgr(d, svcmgr_bin, cgroup=False))
        elif n == "asyncio floor":
            out.append(Floor(d))
        elif n == "supervisord":
            out.append(Supervisord(d, venv_bin))
        elif n == "circus":
            out.append(Circus(d, venv_bin))
        elif n == "runit":
            out.append(Runit(d))
        elif n == "s6":
            out.append(S6(d))
        else:
            raise ValueError(f"unknown tool {n!r} (known: {', '.join(TOOLS)})")
    return out
