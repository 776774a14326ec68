"""The attacker of the hostile tests: an unprivileged local user (uid 65534) on the daemon's machine.

Each ``tests/integration/test_hostile_*.py`` plays one trust boundary of
``docs/security.md`` from the wrong side. The attacker's commands run as uid and gid
65534 with no supplementary groups (``setpriv --reuid=65534 --regid=65534
--clear-groups``) on the system interpreter ``/usr/bin/python3``, never on the test's
virtualenv: an interpreter under ``/root`` cannot be run by other users, and the
checkout itself may live in a folder they cannot read. So the session copies the
packages (the commands need only the standard library; the daemon's few libraries, all
pure Python, come along so that another user can run a daemon too) into a 0755 folder
of its own. ``uid=`` runs a program as another unprivileged user (a victim).

Tests that need this skip with the reason when the machine cannot play it: not root,
no ``setpriv``, no ``/usr/bin/python3`` of at least 3.11.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from svctest import REPO

__all__ = ["ATTACKER_UID", "Attacker", "raw_call", "why_not"]

ATTACKER_UID = 65534
SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = ("svcmgr", "fault", "vrrp", "lb", "manifests")  # manifests: the shipped rules, beside the packages
#: The daemon's libraries (pure Python, or with a pure fallback), copied from the test's interpreter.
LIBRARIES = ("networkx", "jinja2", "markupsafe", "aiomqtt", "paho", "prometheus_client", "defusedxml", "tomli_w",
             "typing_extensions")
CLI = {"svcs": "svcmgr.cli.svcs", "svcadm": "svcmgr.cli.svcadm", "svccfg": "svcmgr.cli.svccfg",
       "svcprop": "svcmgr.cli.svcprop", "fmadm": "fault.cli.fmadm", "fmdump": "fault.cli.fmdump",
       "fminject": "fault.cli.fminject", "lbadm": "lb.cli.lbadm"}


def why_not() -> str | None:
    """Why the hostile tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "playing another user needs root"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing: the attacker needs an interpreter every user may run"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                       capture_output=True, text=True, check=False)
    if r.stdout.strip() != "True":
        return f"{SYSTEM_PYTHON} is older than 3.11"
    return None


class Attacker:
    """Runs programs as uid 65534 with a private, world-readable copy of the packages."""

    uid = ATTACKER_UID

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="svcmgr-hostile-", dir="/tmp"))
        os.chmod(self.home, 0o755)
        self.lib = self.home / "lib"
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
        for pkg in PACKAGES:
            if (REPO / pkg).is_dir():
                shutil.copytree(REPO / pkg, self.lib / pkg, ignore=skip)
        for name in LIBRARIES:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                continue
            src = Path(spec.origin)
            if src.name == "__init__.py":
                shutil.copytree(src.parent, self.lib / name, ignore=skip)
            else:
                shutil.copy(src, self.lib / src.name)
        for dirpath, dirnames, filenames in os.walk(self.home):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
        self.work = self.home / "work"  # a folder the attacker owns
        self.work.mkdir()
        os.chown(self.work, self.uid, self.uid)
        self._n = 0

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(self.lib), "PYTHONDONTWRITEBYTECODE": "1",
               "HOME": str(self.work), "LANG": "C.UTF-8"}
        env.update(extra)
        return env

    def argv(self, *args: str, uid: int | None = None) -> list[str]:
        uid = self.uid if uid is None else uid
        return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *args]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
            input: str | None = None, uid: int | None = None) -> subprocess.CompletedProcess[str]:
        """Run a program as the attacker (or as ``uid``) and wait for it."""
        return subprocess.run(self.argv(*args, uid=uid), capture_output=True, text=True, env=env or self.env(),
                              cwd="/" if uid is not None else str(self.work), timeout=timeout, input=input,
                              check=False)

    def cli(self, root: Path, prog: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """One of the commands (``svcadm``, ``svccfg``, ...) as the attacker types it."""
        return self.run(SYSTEM_PYTHON, "-m", CLI[prog], "--root", str(root), *args, timeout=timeout)

    def script(self, code: str) -> str:
        """Write a Python program the attacker may read; its path."""
        self._n += 1
        path = self.home / f"attack{self._n}.py"
        path.write_text(textwrap.dedent(code))
        os.chmod(path, 0o644)
        return str(path)

    def python(self, code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a Python program as the attacker and wait for it."""
        return self.run(SYSTEM_PYTHON, self.script(code), *args, timeout=timeout)

    def spawn(self, code: str, *args: str) -> subprocess.Popen[str]:
        """Start a Python program as the attacker, its stdin a pipe (the test stops it, by its pid)."""
        return subprocess.Popen(self.argv(SYSTEM_PYTHON, self.script(code), *args), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env(),
                                cwd=str(self.work), start_new_session=True)

    def call(self, root: Path, op: str, **args: Any) -> dict[str, Any]:
        """One raw socket request as the attacker; the daemon's reply as it came."""
        r = self.run(SYSTEM_PYTHON, self.script(_RAW_CALL), str(root / "run" / "svcmgr.sock"),
                     input=json.dumps({"op": op, **args}))
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


_RAW_CALL = """
    import socket, sys
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sys.argv[1])
    try:
        s.sendall(sys.stdin.read().encode() + b"\\n")
    except BrokenPipeError:
        pass  # refused before the end: the reply says why
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    sys.stdout.write(data.decode())
    """


def raw_call(path: str, req: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    """One request on a control socket from this (root) process."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                s.connect(path)
                break
            except BlockingIOError:  # the backlog is full for now (a flood of connections)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        s.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        with contextlib.suppress(OSError):
            s.close()
    return json.loads(data)
