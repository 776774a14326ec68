"""Least privilege, for real: what each method's processes hold, read from /proc/PID/status.

One daemon runs every combination at once (root by default, root under limit_privileges,
root with privileges, nobody with basic, with net_privaddr, with a negated privilege, a
forking daemon whose grandchild keeps the grant, groups/umask/rlimits); a server as nobody
binds port 80 in a network namespace made here, and one without the privilege is refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from svcmgr.privileges import CAPS, cap_number

from svctest import wait_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing users and granting capabilities needs root")
pytestmark = needs_root

PY = "/usr/bin/python3"  # an interpreter every user may run
BIT = {name: 1 << i for i, name in enumerate(CAPS)}


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _caps(st: dict[str, str], key: str) -> int:
    return int(st[key], 16)


def _svc(name: str, ctx: str, exec_: str = '["sleep", "1000"]', duration: str = "child") -> str:
    return f'name = "{name}"\nduration = "{duration}"\n{ctx}\n[methods.start]\nexec = {exec_}\n'


COMBOS = {
    "root-default": "",
    "root-limit": 'limit_privileges = "basic,net_privaddr,proc_setid"',
    "root-privs": 'privileges = "basic,net_privaddr"',
    "nobody-basic": 'user = "nobody"\nprivileges = "basic"',
    "nobody-privaddr": 'user = "nobody"\nprivileges = "basic,net_privaddr"',
    "nobody-negated": 'user = "nobody"\nprivileges = "zone,!proc_owner,!sys_admin"',
    "nobody-nnp-off": 'user = "nobody"\nno_new_privileges = false\ncapabilities = ["CAP_NET_RAW"]',
    "nobody-extras": 'user = "nobody"\nsupplemental_groups = ["nogroup", "adm"]\numask = "027"\n'
                     '[rlimits]\nnofile = [256, 512]\ncore = 0',
}


def test_each_method_runs_with_exactly_what_its_manifest_grants(daemon):
    for n, ctx in COMBOS.items():
        daemon.manifest(f"{n}.toml", _svc(f"priv/{n}", ctx))
    # A forking daemon: the start method double-forks and exits; the grandchild keeps the grant.
    daemon.manifest("forker.toml", _svc(
        "priv/forker", 'user = "nobody"\nprivileges = "basic,net_privaddr"',
        exec_='"/bin/sh -c \'(sleep 1000 &) ; exit 0\'"', duration="contract"))
    daemon.start()
    mine = _status(daemon.pid)
    held, bounding = _caps(mine, "CapPrm"), _caps(mine, "CapBnd")
    st = {}
    for n in [*COMBOS, "forker"]:
        f = f"svc:/priv/{n}:default"
        daemon.wait_state(f, "online")
        pids = wait_until(lambda f=f: daemon.pids(f), 10, what=f"the processes of {f}")
        st[n] = _status(pids[-1])

    s = st["root-default"]  # root, nothing asked: what svcmgrd holds, as before
    assert s["Uid"].split()[0] == "0" and _caps(s, "CapEff") == held and _caps(s, "CapBnd") == bounding
    assert s["NoNewPrivs"] == "0" and _caps(s, "CapAmb") == 0

    s = st["root-limit"]  # the bounding set is the limit, and root's exec gets no more than it
    want = BIT["CAP_NET_BIND_SERVICE"] | BIT["CAP_SETUID"] | BIT["CAP_SETGID"]
    assert _caps(s, "CapBnd") == want and _caps(s, "CapEff") == want and s["Uid"].split()[0] == "0"

    s = st["root-privs"]  # uid 0 holding one capability (NOROOT secure bits, locked)
    assert s["Uid"].split()[0] == "0" and _caps(s, "CapEff") == BIT["CAP_NET_BIND_SERVICE"]
    assert _caps(s, "CapPrm") == BIT["CAP_NET_BIND_SERVICE"] and _caps(s, "CapBnd") == bounding

    s = st["nobody-basic"]
    assert s["Uid"].split() == ["65534"] * 4 and s["Gid"].split() == ["65534"] * 4
    assert s["Groups"].split() == ["65534"] and s["NoNewPrivs"] == "1"
    assert all(_caps(s, k) == 0 for k in ("CapEff", "CapPrm", "CapInh", "CapAmb"))

    for n in ("nobody-privaddr", "forker"):
        s = st[n]
        assert s["Uid"].split()[0] == "65534" and s["NoNewPrivs"] == "1"
        assert all(_caps(s, k) == BIT["CAP_NET_BIND_SERVICE"] for k in ("CapEff", "CapPrm", "CapAmb")), n
    forker = daemon.pids("svc:/priv/forker:default")
    assert len(forker) == 1 and _status(forker[0])["Name"] == "sleep"  # the grandchild, its parent gone

    s = st["nobody-negated"]  # everything svcmgrd holds but what was taken away
    withheld = BIT["CAP_KILL"] | BIT["CAP_SYS_PTRACE"] | BIT["CAP_SYS_ADMIN"]
    assert _caps(s, "CapEff") == held & ~withheld and _caps(s, "CapAmb") == held & ~withheld

    s = st["nobody-nnp-off"]
    assert s["NoNewPrivs"] == "0" and _caps(s, "CapAmb") == BIT["CAP_NET_RAW"]

    s = st["nobody-extras"]
    assert sorted(s["Groups"].split()) == ["4", "65534"] and s["Umask"] == "0027"
    pid = daemon.pids("svc:/priv/nobody-extras:default")[0]
    with open(f"/proc/{pid}/limits") as f:
        limits = f.read()
    assert re.search(r"^Max open files\s+256\s+512\s", limits, re.M)
    assert re.search(r"^Max core file size\s+0\s+0\s", limits, re.M)

    # svcs -l and svcprop show who runs and with what, declared and live.
    text = daemon.cli("svcs", "-l", "nobody-privaddr", check=True).stdout
    assert re.search(r"^user\s+nobody \(65534\), group nogroup \(65534\), groups 65534$", text, re.M)
    assert re.search(r"^privileges\s+basic,net_privaddr: CAP_NET_BIND_SERVICE, no_new_privileges$", text, re.M)
    assert re.search(r"^credentials\s+pid \d+: uid 65534 gid 65534 groups 65534; effective "
                     r"CAP_NET_BIND_SERVICE;.* no_new_privs 1$", text, re.M)
    text = daemon.cli("svcs", "-l", "root-limit", check=True).stdout
    assert re.search(r"^bounding\s+basic,net_privaddr,proc_setid: CAP_SETGID,CAP_SETUID,"
                     r"CAP_NET_BIND_SERVICE$", text, re.M)
    props = daemon.cli("svcprop", "-p", "start", "nobody-extras", check=True).stdout
    assert "start/supp_groups astring nogroup,adm" in props and "start/umask astring 027" in props
    assert "start/rlimits astring core=0:0 nofile=256:512" in props

    # The method context is a method property: set, refreshed, restarted, applied; a typo is refused.
    r = daemon.cli("svccfg", "-s", "nobody-basic", "setprop", "start/privileges", "=", "astring:", "basic,nope")
    assert r.returncode == 1 and "methods.start.privileges: 'nope' is not an illumos privilege" in r.stderr
    daemon.cli("svccfg", "-s", "nobody-basic", "setprop", "start/privileges", "=", "astring:",
               "basic,net_privaddr", check=True)
    daemon.cli("svcadm", "refresh", "nobody-basic", check=True)
    before = daemon.pids("svc:/priv/nobody-basic:default")
    daemon.cli("svcadm", "restart", "nobody-basic", check=True)
    (pid,) = wait_until(lambda: (p := daemon.pids("svc:/priv/nobody-basic:default")) and p != before and p, 10)
    assert _caps(_status(pid), "CapEff") == BIT["CAP_NET_BIND_SERVICE"]


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of this test's own, its loopback up."""
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        pytest.skip("needs ip netns")
    name = f"svcmgr-priv-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["ip", "netns", "del", name], check=True)


def _server(name: str, port: int, privileges: str) -> str:
    return f"""
        name = "{name}"
        duration = "child"
        user = "nobody"
        privileges = "{privileges}"
        [methods.start]
        exec = ["{PY}", "-m", "http.server", "{port}", "--bind", "127.0.0.1", "--directory", "/"]
        [readiness]
        tcp = "127.0.0.1:{port}"
        timeout = "10s"
        """


def test_a_server_as_nobody_binds_port_80_with_net_privaddr_alone(netns, daemon):
    daemon.manifest("web.toml", _server("priv/web", 80, "basic,net_privaddr"))
    daemon.manifest("bare.toml", _server("priv/bare", 81, "basic"))
    # The daemon, and so its services, in the namespace (nsenter: the network namespace only).
    daemon.start(wrap=("nsenter", f"--net=/run/netns/{netns}", "--"))
    daemon.wait_state("svc:/priv/web:default", "online")
    (pid,) = daemon.pids("svc:/priv/web:default")
    st = _status(pid)
    assert st["Uid"].split()[0] == "65534" and _caps(st, "CapEff") == 1 << cap_number("CAP_NET_BIND_SERVICE")
    r = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "--", PY, "-c",
                        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:80/').status)"],
                       capture_output=True, text=True, timeout=20)
    assert r.stdout.strip() == "200", r.stderr
    # Without the privilege the same server cannot bind: its own error is what svcs -x shows.
    daemon.wait_state("svc:/priv/bare:default", "maintenance", timeout=30)
    text = daemon.cli("svcs", "-x", "bare", check=True).stdout
    assert "PermissionError: [Errno 13] Permission denied" in text
    assert re.search(r"^Reason: Start method failed repeatedly", text, re.M)
