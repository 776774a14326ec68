"""The peers svcmgr is measured against, each behind ``bench.tools.Tool``, and the list of every tool.

* ``supervisord``: one ini file, status by XML-RPC ``getAllProcessInfo`` /
  ``getProcessInfo`` over its Unix socket (what ``supervisorctl status`` calls).
* ``circus``: one ini file, status by the ZeroMQ ``status`` / ``list`` commands
  (what ``circusctl`` sends).
* ``runit``: a ``run`` script per service under ``runsvdir``; status from
  ``supervise/stat`` and ``supervise/pid`` (the files ``sv status`` reads).
* ``s6``: a ``run`` script per service under ``s6-svscan``; status from
  ``supervise/status`` (the record ``s6-svstat`` reads).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import xmlrpc.client
from http.client import HTTPConnection
from typing import Any

from bench.procs import spawn
from bench.tools import Floor, NotReady, Service, Svcmgr, Tool

__all__ = ["TOOLS", "make_tools"]


class _VenvTool(Tool):
    """A peer installed in the bench venv (``venv_bin``): its daemon must be there."""

    DAEMON = ""

    def __init__(self, work: str, venv_bin: str) -> None:
        super().__init__(work)
        self.bin = venv_bin

    def available(self) -> str | None:
        if not os.access(os.path.join(self.bin, self.DAEMON), os.X_OK):
            return f"{self.name} is not installed in the bench venv"
        return None


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


class Supervisord(_VenvTool):
    name = DAEMON = "supervisord"

    def __init__(self, work: str, venv_bin: str) -> None:
        super().__init__(work, venv_bin)
        self._rpc: Any = None

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
class Circus(_VenvTool):
    name = "circus"
    DAEMON = "circusd"

    def __init__(self, work: str, venv_bin: str) -> None:
        super().__init__(work, venv_bin)
        self._client: Any = None

    def available(self) -> str | None:
        missing = super().available()
        if missing:
            return missing
        try:
            import circus.client  # noqa: F401  (a probe: the harness may run with another python)
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
        from circus.client import CircusClient  # here: circus is in the bench venv only (see available)
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
    return shlex.quote(a)


class _ServiceDirs(Tool):
    """A supervisor of service directories (runit, s6): a ``run`` script each, status read per directory."""

    def _one(self, name: str) -> int | None:
        raise NotImplementedError

    def status(self) -> dict[str, int]:
        out = {}
        for s in self.services:
            pid = self._one(s.name)
            if pid:
                out[s.name] = pid
        return out

    def status_one(self, name: str) -> int | None:
        return self._one(name)

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
