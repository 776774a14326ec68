"""A VRRP lab: nodes in network namespaces joined by a bridge, one svcmgrd per node.

For the integration tests, the failover benchmark and demos. It needs root,
iproute2 and keepalived. Every namespace, link and address exists only inside
the lab: a bridge in its own namespace (which also holds a client address,
``.254``), and per node a namespace whose ``eth0`` is one end of a veth pair
whose other end is a bridge port. ``close()`` stops every daemon the lab started
and waits for it (the daemon stops keepalived) before deleting the namespaces,
since a namespace keeps running processes after ``ip netns del``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from svcmgr.client import Client, ClientError
from svcmgr.polling import wait_for
from vrrp.keepalived import find_keepalived, read_pid

__all__ = ["Lab", "LabDaemon", "missing", "wait_for"]

PREFIX = "svl"
_NS_RE = re.compile(rf"^{PREFIX}(\d+)x(br|n\d+)$")


def missing() -> str | None:
    """Why a lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if find_keepalived() is None:
        return "keepalived is not installed"
    return None


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def _netns_list() -> list[str]:
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()]


def _kill_and_wait(pids: list[int], timeout: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        if not any(_alive(p) for p in pids):
            return


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(b")") + 2:st.rfind(b")") + 3] != b"Z"


def clean_stale() -> list[str]:
    """Delete namespaces an earlier lab (whose process is gone) left behind, after ending what runs in them."""
    gone = []
    for ns in _netns_list():
        m = _NS_RE.match(ns)
        if m is None or _alive(int(m.group(1))):
            continue
        pids = [int(p) for p in _run(["ip", "netns", "pids", ns], check=False).stdout.split()]
        _kill_and_wait(pids)
        _run(["ip", "netns", "del", ns], check=False)
        gone.append(ns)
    return gone


class Lab:
    """N nodes (``n1``..) on one bridge; node i has ``{net}.i/24`` on ``eth0``, the client ``{net}.254``."""

    def __init__(self, nodes: int = 3, *, net: str = "10.231.0") -> None:
        self.n = nodes
        self.net = net
        self.tag = f"{PREFIX}{os.getpid()}x"
        self.bridge = f"{self.tag}br"
        self.nodes = [f"{self.tag}n{i}" for i in range(1, nodes + 1)]
        self.tmp = Path(tempfile.mkdtemp(prefix="svl-", dir="/tmp"))
        os.chmod(self.tmp, 0o755)
        self.daemons: list[LabDaemon] = []
        self.created: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    # ---------------------------------------------------------------- network
    def ns(self, i: int) -> str:
        return self.nodes[i - 1]

    def addr(self, i: int) -> str:
        return f"{self.net}.{i}"

    @property
    def client_addr(self) -> str:
        return f"{self.net}.254"

    def port(self, i: int) -> str:
        """The bridge-side end of node i's link."""
        return f"p{i}"

    def ip(self, ns: str | None, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ip", *(["-n", ns] if ns else []), *args], check=check)

    def create(self) -> Lab:
        clean_stale()
        _run(["ip", "netns", "add", self.bridge])
        self.created.append(self.bridge)
        b = self.bridge
        self.ip(b, "link", "set", "lo", "up")
        self.ip(b, "link", "add", "br0", "type", "bridge")
        self.ip(b, "link", "set", "br0", "up")
        self.ip(b, "addr", "add", f"{self.client_addr}/24", "dev", "br0")
        for i in range(1, self.n + 1):
            ns = self.ns(i)
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
            a, p = f"{self.tag}a{i}", f"{self.tag}b{i}"
            self.ip(None, "link", "add", a, "type", "veth", "peer", "name", p)
            self.ip(None, "link", "set", a, "netns", ns)
            self.ip(None, "link", "set", p, "netns", b)
            self.ip(ns, "link", "set", a, "name", "eth0")
            self.ip(ns, "link", "set", "lo", "up")
            self.ip(ns, "link", "set", "eth0", "up")
            self.ip(ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            self.ip(b, "link", "set", p, "name", self.port(i))
            self.ip(b, "link", "set", self.port(i), "master", "br0")
            self.ip(b, "link", "set", self.port(i), "up")
        return self

    def cut(self, i: int) -> None:
        """Cut node i off the bridge; its link stays up, so keepalived sees silence, not a fault."""
        self.ip(self.bridge, "link", "set", self.port(i), "nomaster")

    def heal(self, i: int) -> None:
        self.ip(self.bridge, "link", "set", self.port(i), "master", "br0")

    def addresses(self, i: int) -> list[str]:
        out = self.ip(self.ns(i), "-o", "addr", "show", "dev", "eth0").stdout
        return re.findall(r"\binet6? ([0-9a-fA-F.:]+)/\d+", out)

    def holders(self, address: str) -> list[int]:
        """The nodes that hold ``address`` on eth0."""
        return [i for i in range(1, self.n + 1) if address in self.addresses(i)]

    def spawn(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        """A process inside a namespace (``ip netns exec`` execs it: the pid is the process's own)."""
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self.procs.append(p)
        return p

    # ---------------------------------------------------------------- daemons
    def daemon(self, i: int, *, config: str) -> LabDaemon:
        d = LabDaemon(self, i, config)
        self.daemons.append(d)
        return d

    def close(self) -> None:
        """Stop what the lab started (daemons first: they stop keepalived), then delete the namespaces."""
        errors = []
        for d in self.daemons:
            try:
                d.stop()
            except (RuntimeError, OSError) as e:  # go on tearing down; report at the end
                errors.append(f"node {d.i}: {e}")
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for ns in reversed(self.created):
            left = [int(x) for x in _run(["ip", "netns", "pids", ns], check=False).stdout.split()]
            if left:
                errors.append(f"{ns}: processes left behind: {left}")
                _kill_and_wait(left)
            _run(["ip", "netns", "del", ns], check=False)
        self.created.clear()
        if not os.environ.get("SVCMGR_KEEP_ROOTS"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            raise RuntimeError("lab teardown: " + "; ".join(errors))

    def __enter__(self) -> Lab:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()


class LabDaemon:
    """One svcmgrd inside node i's namespace, with its own --root, configuration and manifests."""

    def __init__(self, lab: Lab, i: int, config: str) -> None:
        self.lab = lab
        self.i = i
        self.root = lab.tmp / f"n{i}"
        self.root.mkdir(mode=0o755)
        self.mdir = self.root / "manifests"
        self.mdir.mkdir()
        self.config = self.root / "node.toml"
        self.config.write_text(config)
        self.output = self.root / "daemon.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ, XDG_RUNTIME_DIR=str(self.root / "xdg"), PYTHONUNBUFFERED="1")
        self.env.pop("SVCMGR_ROOT", None)
        self.env.pop("NOTIFY_SOCKET", None)

    def manifest(self, name: str, text: str) -> Path:
        p = self.mdir / name
        p.write_text(text)
        return p

    def web(self, vrrp_toml: str, port: int = 8080) -> Path:
        """The followed service: an HTTP server on every address of the node that answers the node's name."""
        www = self.root / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text(f"n{self.i}\n")
        argv = json.dumps([sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0",
                           "--directory", str(www)])
        return self.manifest("web.toml", f'name = "site/web"\nduration = "child"\n\n[methods.start]\n'
                                         f'exec = {argv}\n\n[methods.stop]\nexec = ":kill"\n\n[readiness]\n'
                                         f'tcp = "127.0.0.1:{port}"\n\n{vrrp_toml}')

    def start(self, timeout: float = 20) -> LabDaemon:
        cmd = [sys.executable, "-m", "svcmgr.daemon", "--root", str(self.root), "--no-register",
               "--config", str(self.config), "--manifests", str(self.mdir), "--log-level", "debug"]
        with open(self.output, "ab") as out:
            self.proc = self.lab.spawn(self.lab.ns(self.i), cmd, stdout=out, stderr=subprocess.STDOUT,
                                       env=self.env, start_new_session=True)
        wait_for(self._answers, timeout, f"svcmgrd on node {self.i}")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"svcmgrd on node {self.i} exited with {self.proc.returncode}:\n"
                                 f"{self.log_text()[-3000:]}")
        try:
            self.call("ping")
            return True
        except ClientError:
            return False

    def stop(self, timeout: float = 30) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise RuntimeError(f"svcmgrd on node {self.i} did not stop within {timeout:g}s") from None
        self.proc = None

    def call(self, op: str, **kw: Any) -> Any:
        return Client(str(self.root), timeout=30).call(op, **kw)

    def cli(self, module: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", module, "--root", str(self.root), *args],
                              capture_output=True, text=True, env=self.env, timeout=60, check=False)

    def reload(self, config: str) -> None:
        """Rewrite the node's configuration and have the daemon re-read it (as SIGHUP does)."""
        self.config.write_text(config)
        self.call("reload")

    def state(self, fmri: str) -> str:
        return self.call("list", fmris=[fmri])[0]["state"]

    def pids(self, fmri: str) -> list[int]:
        return self.call("list", fmris=[fmri])[0]["pids"]

    def routers(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in self.call("vrrp.show")["routers"]}

    def log_text(self) -> str:
        try:
            return self.output.read_text(errors="replace")
        except OSError:
            return ""

    def vrrp_pid(self) -> int | None:
        return read_pid(str(self.root / "run" / "vrrp" / "vrrp.pid"))

    def keepalived_pid(self) -> int | None:
        return read_pid(str(self.root / "run" / "vrrp" / "keepalived.pid"))

