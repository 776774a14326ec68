"""Two balancer nodes in network namespaces, for the tests and the benchmark: real svcmgrd, HAProxy and
keepalived on each, three backend instances.

``cluster()`` builds a lab of two nodes and a bridge (``vrrp.lab``) and starts on each
node a daemon with the same manifests: ``site/app`` with instances a, b, c (``python -m
lb.lab backend``, answering after ``delay``), behind the frontends ``web`` (VIP:80) and
``webi`` (VIP:81, idempotent); instance c requires ``site/dep`` (restart_on = "restart").
Each node's VRRP instance ``vip`` follows HAProxy's own service at advert_interval 100 ms,
n1 at priority 150, n2 at 100. Name lookups inside the nodes fail at once
(``/etc/netns/NODE/resolv.conf`` names 127.0.0.1, removed with the lab). ``Cluster.load``
runs the bounded client loop from the bridge's namespace while a callable acts.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lb.lab import Result, load_result
from svcmgr.client import ClientError
from vrrp.lab import Lab, LabDaemon, wait_for

__all__ = ["APP", "DEP", "HAPROXY", "VIP", "Cluster", "cluster", "node_config"]

NET = "10.232.0"
VIP = f"{NET}.100"
PRIORITY = {1: 150, 2: 100}
HAPROXY = "svc:/network/haproxy:default"
KA = "svc:/network/vrrp:default"
APP = [f"svc:/site/app:{n}" for n in "abc"]
DEP = "svc:/site/dep:default"


def app_manifest(delay: float = 0.02) -> str:
    argv = json.dumps([sys.executable, "-m", "lb.lab", "backend", "--port", "%{lb/port}", "--name", "%i",
                       "--delay", str(delay)])
    text = textwrap.dedent(f"""
        name = "site/app"
        duration = "child"
        [methods.start]
        exec = {argv}
        [methods.stop]
        exec = ":kill"
        [restart]
        limit = 50
        [lb.frontends.web]
        bind = "{VIP}:80"
        drain_timeout = "10s"
        check_interval = "1s"
        [lb.frontends.webi]
        bind = "{VIP}:81"
        idempotent = true
        drain_timeout = "10s"
        check_interval = "1s"
    """)
    for i, n in enumerate("abc"):
        port = 8081 + i
        text += f'\n[instances.{n}.readiness]\ntcp = "127.0.0.1:{port}"\n' \
                f'[instances.{n}.properties.lb]\naddress = "127.0.0.1:{port}"\nport = {port}\n'
    text += '\n[[instances.c.dependencies]]\nname = "dep"\ngrouping = "require_all"\nrestart_on = "restart"\n' \
            f'fmris = ["{DEP}"]\n'
    return text


DEP_MANIFEST = 'name = "site/dep"\nduration = "child"\n[methods.start]\nexec = ["sleep", "100000"]\n'


def node_config(i: int, extra: str = "") -> str:
    return textwrap.dedent(f"""
        [node]
        name = "n{i}"
        [vrrp.instances.vip]
        interface = "eth0"
        router_id = 61
        addresses = ["{VIP}/24"]
        advert_interval = "100ms"
        priority = {PRIORITY[i]}
        follows = ["{HAPROXY}"]
    """) + extra


class Cluster:
    def __init__(self, lab: Lab, daemons: list[LabDaemon]) -> None:
        self.lab = lab
        self.d = {d.i: d for d in daemons}

    def holders(self) -> list[int]:
        return self.lab.holders(VIP)

    def servers(self, i: int, frontend: str = "web") -> dict[str, dict[str, Any]]:
        """Node i's backends of a frontend, by instance: svcmgr's state, the admin state sent, HAProxy's view."""
        out = self.d[i].call("lb.show", names=[frontend])
        return {s["fmri"]: s for s in out["frontends"][0]["servers"]}

    def status(self, i: int, fmri: str, frontend: str = "web") -> str | None:
        h = self.servers(i, frontend)[fmri]["haproxy"]
        return h["status"] if h else None

    def wait_ready(self, i: int = 1, timeout: float = 30) -> None:
        """Every backend running (online, or degraded by a fault case) and UP in HAProxy on node i, in both
        frontends."""
        def ok() -> bool:
            return all(s["svc_state"] in ("online", "degraded") and s["sent"] == "ready"
                       and (s["haproxy"] or {}).get("status") == "UP"
                       for fe in ("web", "webi") for s in self.servers(i, fe).values())
        wait_for(ok, timeout, f"every backend ready on n{i}", interval=0.05)

    def metrics(self, i: int) -> str:
        """Node i's /metrics exposition (the daemon's default listen address, inside its namespace)."""
        code = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9464/metrics').read().decode())"
        r = subprocess.run(["ip", "netns", "exec", self.lab.ns(i), sys.executable, "-c", code], capture_output=True,
                           text=True, timeout=20, check=True)
        return r.stdout

    def wait_vip(self, want: list[int], timeout: float = 20) -> None:
        wait_for(lambda: self.holders() == want, timeout, f"{VIP} held by {want}", interval=0.01)

    def load(self, act: Callable[[], Any] | None = None, *, at: float = 1.0, port: int = 80, rate: float = 300,
             seconds: float = 3.0) -> tuple[Result, Any, float]:
        """Run the client loop for ``seconds`` at ``rate``; ``act`` runs ``at`` seconds in. (result, what act
        returned, the wall-clock time act started)."""
        out = self.lab.tmp / f"load-{time.monotonic_ns()}.json"
        count = int(rate * seconds)
        p = self.lab.spawn(self.lab.bridge, [sys.executable, "-m", "lb.lab", "client", "--url",
                                             f"http://{VIP}:{port}/", "--rate", str(rate), "--count", str(count),
                                             "--seconds", str(seconds + 5), "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        acted: list[Any] = [None, 0.0]
        if act is not None:
            def run() -> None:
                time.sleep(at)
                acted[1] = time.time()
                acted[0] = act()
            t = threading.Thread(target=run)
            t.start()
        _stdout, stderr = p.communicate(timeout=seconds + 60)
        if act is not None:
            t.join()
        assert p.returncode == 0, stderr.decode()
        return load_result(str(out)), acted[0], acted[1]


def _state(d: LabDaemon, fmri: str) -> str | None:
    try:
        return d.state(fmri)
    except ClientError:
        return None


@contextlib.contextmanager
def cluster(delay: float = 0.02) -> Iterator[Cluster]:
    """A running two-node cluster (every backend ready, the address on n1); torn down on the way out."""
    lab = Lab(2, net=NET)
    etc = [Path("/etc/netns") / ns for ns in lab.nodes]
    try:
        lab.create()
        for d in etc:
            d.mkdir(parents=True, exist_ok=True)
            (d / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        daemons = []
        for i in (1, 2):
            d = lab.daemon(i, config=node_config(i))
            d.manifest("app.toml", app_manifest(delay))
            d.manifest("dep.toml", DEP_MANIFEST)
            daemons.append(d)
        for d in daemons:
            d.start()
        c = Cluster(lab, daemons)
        for d in daemons:
            for f in (KA, HAPROXY):
                wait_for(lambda d=d, f=f: _state(d, f) == "online", 30, f"{f} online on n{d.i}")
            c.wait_ready(d.i)
        c.wait_vip([1])
        yield c
    finally:
        lab.close()
        for d in etc:
            shutil.rmtree(d, ignore_errors=True)
