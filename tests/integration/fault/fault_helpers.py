"""Helpers for the fault manager's integration tests (the Alertmanager fixture is in conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

from svctest import CONFORMANCE, REPO, Daemon, read_json, wait_until

__all__ = ["CONFORMANCE", "REPO", "Daemon", "read_json", "wait_until"]

FAULT_CLI = {"fmadm": "fault.cli.fmadm", "fmdump": "fault.cli.fmdump", "fmstat": "fault.cli.fmstat",
             "fminject": "fault.cli.fminject"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fault_config(daemon: Any, text: str) -> str:
    """Write the node's configuration (a ``[fault]`` section, usually) and return its path."""
    path = daemon.root / "svcmgr.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def webhook_secret(daemon: Any) -> Path:
    """The credential Alertmanager sends and the daemon requires: a random secret in a 0600 file."""
    path = daemon.root / "webhook.secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(24).hex().encode() + b"\n")
        os.close(fd)
    return path


def webhook_config(daemon: Any, port: int, extra: str = "") -> str:
    """A node configuration with the webhook receiver on ``port`` and its credential; its path."""
    return fault_config(daemon, f'[fault]\nwebhook = "127.0.0.1:{port}"\n'
                                f'webhook_credential = "{webhook_secret(daemon)}"\n{extra}')


def rules_dir(daemon: Any, files: dict[str, str]) -> Path:
    d = daemon.root / "fault-rules"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(textwrap.dedent(text))
    return d


def fm(daemon: Any, prog: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run fmadm, fmdump, fmstat or fminject as an operator would."""
    return daemon.cli(FAULT_CLI[prog], *args, **kw)


def cases(daemon: Any, *, everything: bool = False) -> list[dict[str, Any]]:
    return daemon.call("fm.faulty", all=everything)


def errlog(daemon: Any, cls: str | None = None) -> list[dict[str, Any]]:
    req: dict[str, Any] = {"errlog": True, "limit": 100000}
    if cls:
        req["class"] = cls
    return daemon.call("fm.dump", **req)["entries"]


def child_service(name: str, script: str, *, deps: list[str] | None = None, extra: str = "") -> str:
    """A manifest for a ``child`` service running a Python snippet."""
    text = f'name = "{name}"\nduration = "child"\n\n[methods.start]\nexec = ["python3", "-c", {json.dumps(script)}]\n'
    for d in deps or []:
        text += (f'\n[[dependencies]]\nname = "{d.split("/")[-1].split(":")[0]}"\ngrouping = "require_all"\n'
                 f'restart_on = "none"\nfmris = ["{d}"]\n')
    return text + textwrap.dedent(extra)


class Alertmanager:
    """A real prometheus-alertmanager on loopback whose one receiver is a webhook."""

    def __init__(self, root: Path, webhook: str, credentials_file: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        cfg = root / "alertmanager.yml"
        cfg.write_text(textwrap.dedent(f"""\
            route:
              receiver: svcmgr
              group_by: ['alertname', 'instance']
              group_wait: 0s
              group_interval: 1s
              repeat_interval: 1h
            receivers:
              - name: svcmgr
                webhook_configs:
                  - url: {webhook}
                    send_resolved: true
            """))
        if credentials_file is not None:  # as docs/faults.md shows it
            cfg.write_text(cfg.read_text() + textwrap.indent(textwrap.dedent(f"""\
                http_config:
                  authorization:
                    type: Bearer
                    credentials_file: {credentials_file}
                """), " " * 8))
        self.log = root / "alertmanager.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                ["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._ready, 20, what=f"alertmanager to answer (log: {self.log})")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"alertmanager exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def add(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``amtool alert add ARGS``."""
        return subprocess.run(["amtool", f"--alertmanager.url={self.url}", "alert", "add", *args],
                              capture_output=True, text=True, timeout=30, check=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def settle(seconds: float) -> None:
    """Let time pass on purpose (spreading events beyond a rule's window), not to wait for a result."""
    time.sleep(seconds)


def memory_cgroup_v1() -> Path | None:
    """Our own memory cgroup (v1) folder, where a child group with a limit can be made; None if not possible."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if base.is_dir() and os.access(base, os.W_OK):
                return base
    return None


def call_as(daemon: Any, user: str, op: str, **args: Any) -> dict[str, Any]:
    """One socket request from a process running as ``user`` (forked, so it needs no access to the venv).

    Returns the daemon's raw reply: ``{"ok": ..., "result" | "error", "code"}``."""
    import pwd

    pw = pwd.getpwnam(user)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, ask, write the reply to the pipe
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(daemon.root / "run" / "svcmgr.sock"))
            s.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            os.write(w, data)
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def kill_running(daemon: Any, fmri: str, *, want: tuple[str, ...] = ("online", "degraded")) -> int:
    """Wait until the service settles running a process, SIGKILL its main process, and wait until the daemon
    has taken its death (the contract it ran in is gone); the pid.

    The main process leads its own process group; the others (a shell's, or a ``python3`` that is a pyenv
    shim forking as it starts) are not the service's process. A pid leaves the contract's group when it
    dies, before the daemon reaps it: until then the listing still says online, with any children left."""
    def running() -> tuple[int, int] | None:
        i = daemon.call("list", fmris=[fmri])[0]
        if not i["pids"] or i["state"] not in want or i["nstate"] is not None:
            return None
        leaders = [p for p in i["pids"] if _leads_group(p)]
        return (leaders or i["pids"])[0], i["ctid"]

    def taken(ctid: int) -> bool:
        i = daemon.call("list", fmris=[fmri])[0]
        return i["ctid"] != ctid or i["state"] not in want

    while True:
        pid, ctid = wait_until(running, 15, what=f"{fmri} to run")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended between the listing and the kill: take the next one
            wait_until(lambda ctid=ctid: taken(ctid), 10)
            continue
        wait_until(lambda ctid=ctid: taken(ctid), 10, what=f"the death of pid {pid} to be taken")
        return pid


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False
