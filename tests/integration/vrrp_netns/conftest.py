"""A three-node VRRP cluster in network namespaces: real keepalived, one real svcmgrd per node.

``lab`` builds the namespaces (three nodes and a bridge, addresses only inside
them) and removes them after the test, even when it fails: daemons are stopped
first (each stops its keepalived) and the lab checks that nothing is left in a
namespace before deleting it. ``cluster`` starts a daemon per node with the
same manifest (a web service and three VIPs that follow it) and per-node
priorities n1 150, n2 100, n3 50.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest

from svcmgr.client import ClientError
from vrrp.lab import Lab, LabDaemon, missing, wait_for

VIPS = {"web": "10.231.0.100", "api": "10.231.0.101", "db": "10.231.0.102"}
PRIORITY = {1: 150, 2: 100, 3: 50}
ADVERT = "500ms"

VRRP = textwrap.dedent(f"""
    # web follows the service with weight 0 (FAULT when it is down), and preempts.
    [vrrp.instances.web]
    interface = "eth0"
    router_id = 51
    addresses = ["{VIPS['web']}/24"]
    advert_interval = "{ADVERT}"

    # api: the same, but nopreempt (a recovered node does not take the address back).
    [vrrp.instances.api]
    interface = "eth0"
    router_id = 52
    addresses = ["{VIPS['api']}/24"]
    advert_interval = "{ADVERT}"
    preempt = false

    # db: a negative weight (priority 150 - 100 = 50 on n1 when the service is down).
    [vrrp.instances.db]
    interface = "eth0"
    router_id = 53
    addresses = ["{VIPS['db']}/24"]
    advert_interval = "{ADVERT}"
    follows = [{{ fmri = "svc:/site/web:default", weight = -100 }}]
""")


def node_config(i: int, **override: str) -> str:
    """Node i's configuration: its priority for each instance, or the given text for an instance."""
    text = f'[node]\nname = "n{i}"\n'
    for name in VIPS:
        text += f"\n[vrrp.instances.{name}]\n{override.get(name, f'priority = {PRIORITY[i]}')}\n"
    return text


class Cluster:
    def __init__(self, lab: Lab, daemons: list[LabDaemon]) -> None:
        self.lab = lab
        self.d = {d.i: d for d in daemons}

    def reconfigure(self, i: int, **override: str) -> None:
        """Rewrite node i's configuration (see ``node_config``) and have its daemon re-read it."""
        self.d[i].reload(node_config(i, **override))

    def holders(self, name: str) -> list[int]:
        return self.lab.holders(VIPS[name])

    def state(self, i: int, name: str) -> str | None:
        return self.d[i].routers().get(name, {}).get("state")

    def masters(self, name: str) -> list[int]:
        return [i for i in self.d if self.state(i, name) == "master"]

    def wait_holder(self, name: str, want: list[int], timeout: float = 20) -> None:
        wait_for(lambda: self.holders(name) == want, timeout, f"{name} ({VIPS[name]}) held by {want}",
                 interval=0.01)

    def wait_settled(self, name: str, master: int, timeout: float = 20) -> None:
        """One master, every other node backup (or fault), and only the master holds the address."""
        seen: list[object] = []

        def ok() -> bool:
            states = {i: self.state(i, name) for i in self.d}
            holders = self.holders(name)
            seen[:] = [states, holders]
            return holders == [master] and states[master] == "master" and \
                all(s in ("backup", "fault") for i, s in states.items() if i != master)

        try:
            wait_for(ok, timeout, f"{name} settled on n{master}", interval=0.05)
        except AssertionError:
            raise AssertionError(f"{name} did not settle on n{master} within {timeout:g}s: states and "
                                 f"holders {seen}") from None

    def fetch(self, name: str) -> str:
        """The node that answers on the virtual address, asked from the bridge's client address."""
        code = ("import urllib.request,sys;"
                f"print(urllib.request.urlopen('http://{VIPS[name]}:8080/', timeout=1).read().decode().strip())")
        import subprocess
        import sys

        r = subprocess.run(["ip", "netns", "exec", self.lab.bridge, sys.executable, "-c", code],
                           capture_output=True, text=True, timeout=10, check=False)
        return r.stdout.strip()


def _state(d: LabDaemon, fmri: str) -> str | None:
    try:
        return d.state(fmri)
    except ClientError:
        return None  # not imported yet


@pytest.fixture
def lab() -> Iterator[Lab]:
    why = missing()
    if why:
        pytest.skip(why)
    lab = Lab(3)
    try:
        lab.create()
        yield lab
    finally:
        lab.close()


@pytest.fixture
def cluster(lab: Lab) -> Cluster:
    daemons = []
    for i in (1, 2, 3):
        d = lab.daemon(i, config=node_config(i))
        d.web(VRRP)
        daemons.append(d)
    for d in daemons:
        d.start()
    c = Cluster(lab, daemons)
    for d in daemons:
        wait_for(lambda d=d: _state(d, "svc:/network/vrrp:default") == "online", 30,
                 f"keepalived online on n{d.i}")
    return c
