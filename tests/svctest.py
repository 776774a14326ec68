"""Helpers shared by every test: a real svcmgrd on a private state folder, and the commands.

Tests import these with ``from svctest import ...`` (a module name of its own: every
``conftest.py`` of a folder without ``__init__.py`` is loaded as the one module
``conftest``, so helpers cannot live there). The fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from svcmgr.client import Client, ClientError
from svcmgr.polling import wait_for

REPO = Path(__file__).resolve().parent.parent
def _conformance() -> Path:
    """The real-world inputs (SMF manifests with expected summaries), read where they are, never copied:
    $SVCMGR_CONFORMANCE, else ``shared/conformance`` beside the checkout, else the workspace's."""
    env = os.environ.get("SVCMGR_CONFORMANCE")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "conformance", Path("/work/shared/conformance")]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return candidates[0]


CONFORMANCE = _conformance()


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> Any:
    """Poll ``pred`` until it returns a true value; fail the test after ``timeout``."""
    return wait_for(pred, timeout, what or str(pred), interval)


def remove_cgroups(root: Path) -> None:
    """The empty contract groups of the daemons that ran on ``root``, deepest first (a daemon killed with -9,
    or stopped while a method's group was in use, leaves them), and its v1 resource-control groups."""
    import hashlib

    from svcmgr.procfs import find_cgroup2_mount, own_cgroup
    from svcmgr.rctl import Controls

    tag = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    limits = Controls.detect(tag, None)  # the v1 resource-control groups (made only when a limit needs one)
    limits.sweep()
    limits.close()
    mount = find_cgroup2_mount()
    if mount is None:
        return
    base = os.path.join(mount, own_cgroup().lstrip("/"), f"svcmgr-{tag}")
    for here, _dirs, _files in os.walk(base, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(here)


class Daemon:
    """One svcmgrd process and helpers to talk to it."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.mdir = root / "manifests"
        self.mdir.mkdir(exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = root / "daemon.out"
        self.args: list[str] = []

    # ---------------------------------------------------------------- lifecycle
    def start(self, *args: str, manifests: bool = True, wait: bool = True, wrap: tuple[str, ...] = ()) -> Daemon:
        """Start svcmgrd; ``wrap`` is a command it runs under (``("prlimit", "--nofile=2048")``)."""
        cmd = [*wrap, sys.executable, "-m", "svcmgr.daemon", "--root", str(self.root), "--no-register",
               "--log-level", "debug"]
        if manifests and any(self.mdir.iterdir()):
            cmd += ["--manifests", str(self.mdir)]
        cmd += list(args)
        if not any(a.startswith(("--metrics", "--config")) for a in args):
            cmd += ["--metrics", ""]  # parallel test daemons would all race for 127.0.0.1:9464
        self.args = list(args)
        out = open(self.output, "ab")  # noqa: SIM115 - kept for the daemon's life
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        out.close()
        if wait:
            try:
                wait_until(self._answers, 15, what="svcmgrd to answer")
            except AssertionError as e:
                raise AssertionError(f"{e}; its log ends:\n{self.log_text()[-2000:]}") from None
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"svcmgrd exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        try:
            self.call("ping")
            return True
        except ClientError:
            return False

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.output.read_text(errors="replace")
        except OSError:
            return ""

    # ---------------------------------------------------------------- manifests
    def manifest(self, name: str, text: str) -> Path:
        """Write a manifest into this daemon's manifest folder (imported at start, or with import_)."""
        p = self.mdir / name
        p.write_text(textwrap.dedent(text))
        return p

    def import_(self, *paths: Path) -> Any:
        files = [{"path": str(p), "content": p.read_text()} for p in paths]
        return self.call("import", files=files)

    # ---------------------------------------------------------------- talking
    def client(self) -> Client:
        return Client(str(self.root), timeout=60)

    def call(self, op: str, **kw: Any) -> Any:
        return self.client().call(op, **kw)

    def cli(self, prog: str, *args: str, user: str | None = None, check: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command (svcs, svcadm, ...) as a separate process, as an operator would."""
        module = {"svcs": "svcmgr.cli.svcs", "svcadm": "svcmgr.cli.svcadm", "svccfg": "svcmgr.cli.svccfg",
                  "svcprop": "svcmgr.cli.svcprop"}.get(prog, prog)
        python = sys.executable
        env = self.env
        kw: dict[str, Any] = {}
        if user is not None:
            # Another user cannot run this virtualenv's interpreter (it may live under /root):
            # the commands need only the standard library, so the system's Python will do.
            python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
            env = {**self.env, "PYTHONPATH": str(REPO)}
            kw["user"] = user
            kw["group"] = user if user != "nobody" else "nogroup"
            kw["extra_groups"] = []
            kw["cwd"] = "/"
        cmd = [python, "-m", module, "--root", str(self.root), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, **kw)

        if check and r.returncode != 0:
            raise AssertionError(f"{prog} {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def instances(self) -> dict[str, dict[str, Any]]:
        return {i["fmri"]: i for i in self.call("list")}

    def state(self, fmri: str) -> str:
        return self.call("list", fmris=[fmri])[0]["state"]

    def info(self, fmri: str) -> dict[str, Any]:
        return self.call("show", fmri=fmri)

    def wait_state(self, fmri: str, state: str, timeout: float = 15.0, settled: bool = True) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def check() -> Any:
            items = self.call("list", fmris=[fmri])
            i = seen["last"] = items[0]
            if i["state"] == state and (not settled or i["nstate"] is None):
                return i
            return None

        try:
            return wait_until(check, timeout, what=f"{fmri} to be {state}")
        except AssertionError as e:  # what the daemon says now, not when the wait began
            last = seen.get("last") or {}
            try:
                said = self.log(fmri)[-1500:]
            except (ClientError, OSError, KeyError) as why:
                said = f"({why})"
            raise AssertionError(f"{e}: it was {last.get('state')} (next: {last.get('nstate')}); its log ends:\n"
                                 f"{said}\ndaemon log tail:\n{self.log_text()[-1500:]}") from None

    def pids(self, fmri: str) -> list[int]:
        return self.call("list", fmris=[fmri], pids=True)[0]["pids"]

    def log(self, fmri: str) -> str:
        path = self.call("log", fmri=fmri)["path"]
        try:
            return Path(path).read_text(errors="replace")
        except OSError:
            return ""

    def logged(self, fmri: str, text: str, timeout: float = 10.0) -> str:
        """The instance's log once it has ``text``. A line is in the file a moment after the daemon wrote it: a
        log's first lines in a daemon wait for the spawn helper to make or open the file (svcmgr.logs), so a new
        daemon's first note (an adoption, say) may be missing just after ``wait_state`` under load."""
        def has() -> str:
            now = self.log(fmri)
            return now if text in now else ""

        return wait_until(has, timeout, what=f"{text!r} in the log of {fmri}")


def _short_root() -> Path:
    # Unix socket paths must stay under 108 bytes: keep roots short.
    return Path(tempfile.mkdtemp(prefix="svcmgr-", dir="/tmp"))


def _alive_marked(root: Path) -> list[int]:
    """Processes whose environment carries a contract marker of the daemon under ``root``."""
    import hashlib

    tag = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                st = f.read()
        except OSError:
            continue
        if st[st.rfind(b")") + 2:st.rfind(b")") + 3] == b"Z":
            continue
        if f"SVCMGR_CONTRACT={tag}.".encode() in env:
            out.append(int(name))
    return out


def read_json(text: str) -> Any:
    return json.loads(text)


@contextlib.contextmanager
def private_daemon() -> Iterator[Daemon]:
    """A daemon (not started) on a fresh short root, for a module's tests to share; stopped afterwards,
    checked for processes left behind, its root removed."""
    root = _short_root()
    os.chmod(root, 0o755)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(root / "xdg"), PYTHONUNBUFFERED="1")
    env.pop("SVCMGR_ROOT", None)
    env.pop("NOTIFY_SOCKET", None)
    d = Daemon(root, env)
    try:
        yield d
    finally:
        with contextlib.suppress(Exception):
            d.stop()
        if os.environ.get("SVCMGR_DAEMON_LOG"):  # print the end of its log (so many characters)
            print(d.log_text()[-int(os.environ["SVCMGR_DAEMON_LOG"]):])
        left = _alive_marked(root)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not left:
            shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes left behind: {left}"
