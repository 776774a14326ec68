"""Hostile: any local user on the control socket tries to starve the daemon (docs/security.md, "bounds").

Findings 5 and 6 of issue 10. The socket is open to everyone (reading is), so what one
user may hold of the daemon is bounded: connections per user and in total with room kept
for root, time to send a request, its size, and the work a request may do on the event
loop. The attacker (uid 65534) holds thousands of idle connections, sends endless
requests, and asks to validate huge manifests; root's ``svcs`` keeps answering and a
killed service restarts meanwhile.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from hostile import raw_call
from svctest import wait_until

WEB = "svc:/site/web:default"
SERVICE = """
    name = "site/web"
    duration = "child"
    [methods.start]
    exec = ["/bin/sleep", "100000"]
    """

#: Open up to N connections and keep them; after a second, say how many the daemon still holds open.
_HOLD = r"""
import json, select, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
socks, last = [], time.monotonic()
while len(socks) < n and time.monotonic() - last < 3:  # until n, or 3 s without a new connection
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(0.5)
    try:
        s.connect(path)
    except OSError:
        s.close()
        continue
    socks.append(s)
    last = time.monotonic()
time.sleep(1.0)
poll = select.poll()
for s in socks:
    poll.register(s, select.POLLIN)
closed = {fd for fd, _ in poll.poll(0)}  # readable: a refusal, or the end of the connection
print(json.dumps({"opened": len(socks), "held": len(socks) - len(closed)}), flush=True)
sys.stdin.read()
"""

#: N connections at once, each sending SIZE bytes that never end a line.
_ENDLESS = r"""
import json, socket, sys, threading
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = b'{"op": "ping", "pad": "' + b"x" * 65536
results = []
def one():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    try:
        s.connect(path)
        sent = 0
        while sent < size:
            s.sendall(chunk)
            sent += len(chunk)
        results.append("all sent")
    except OSError as e:
        results.append(type(e).__name__)
    finally:
        s.close()
threads = [threading.Thread(target=one) for _ in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"""


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _timed_list(sock: str) -> float:
    t0 = time.monotonic()
    reply = raw_call(sock, {"op": "list"}, timeout=15)
    assert reply["ok"], reply
    return time.monotonic() - t0


def test_finding_5_idle_connections_cannot_starve_root_or_a_restart(daemon, attacker):
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    daemon.manifest("web.toml", SERVICE)
    # A descriptor limit the attacker can reach in a test's time; the daemon sizes its caps from it.
    daemon.start(wrap=("prlimit", "--nofile=2048:2048"))
    daemon.wait_state(WEB, "online")
    sock = str(daemon.root / "run" / "svcmgr.sock")
    flood = attacker.spawn(_HOLD, sock, "4000")
    try:
        line = flood.stdout.readline()
        assert line, flood.stderr.read()
        got = json.loads(line)
        latency = _timed_list(sock)
        pid = daemon.pids(WEB)[0]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: (p := daemon.pids(WEB)) and p != [pid] and daemon.state(WEB) == "online", 15,
                   what="the killed service to run again during the flood")
    finally:
        flood.stdin.close()
        try:
            flood.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(flood.pid, signal.SIGKILL)
            flood.wait()
    assert got["held"] <= 32, f"one user holds {got['held']} connections of the daemon"
    assert latency < 5, f"root's svcs took {latency:.1f}s during the flood"
    assert "Too many open files" not in daemon.log_text()


def test_finding_6_endless_requests_are_cut_at_1_mib_and_their_memory_given_back(daemon, attacker):
    daemon.manifest("web.toml", SERVICE)
    daemon.start()
    daemon.wait_state(WEB, "online")
    sock = str(daemon.root / "run" / "svcmgr.sock")
    time.sleep(0.5)
    before = _rss_mb(daemon.pid)
    r = attacker.python(_ENDLESS, sock, "50", str(15 << 20), timeout=120)
    assert r.returncode == 0, r.stderr
    assert _timed_list(sock) < 5
    after = _rss_mb(daemon.pid)
    assert after - before < 100, f"the daemon grew from {before:.0f} MB to {after:.0f} MB and kept it"
    refused = attacker.call(daemon.root, "ping", pad="x" * (1 << 20))
    assert not refused["ok"] and "larger than 1048576 bytes" in refused["error"]


def test_finding_6_validating_a_huge_manifest_never_blocks_the_daemon(daemon, attacker):
    daemon.manifest("web.toml", SERVICE)
    daemon.start()
    daemon.wait_state(WEB, "online")
    sock = str(daemon.root / "run" / "svcmgr.sock")
    huge = attacker.work / "huge.toml"  # 3.7 MB: what the command sends, more than a request may be
    huge.write_text('name = "a/b"\n[methods.start]\nexec=":true"\n' +
                    "".join(f'[properties.g{i}]\nx = 1\n' for i in range(150000)))
    r = attacker.cli(daemon.root, "svccfg", "import", "-n", str(huge))
    assert r.returncode == 1 and "larger than 1048576 bytes" in r.stderr, r.stderr  # svccfg: a failed subcommand
    # Under the bound, but slow to check: 25,000 instances. Root's requests go on meanwhile.
    slow = attacker.work / "slow.toml"
    slow.write_text('name = "a/b"\n[methods.start]\nexec=":true"\n' +
                    "".join(f'[instances.i{i}.properties.c]\nx = 1\n' for i in range(25000)))
    checks = attacker.spawn(f"""
        import subprocess, sys, time
        for _ in range(3):
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "svcmgr.cli.svccfg", "--root", {str(daemon.root)!r},
                                "import", "-n", {str(slow)!r}], capture_output=True, text=True)
            print(r.returncode, time.monotonic() - t0, r.stderr.strip()[-200:], flush=True)
        """)
    worst = 0.0
    while checks.poll() is None:
        t0 = time.monotonic()
        assert raw_call(sock, {"op": "ping"}, timeout=15)["ok"]
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.02)
    out = checks.stdout.read().splitlines()
    assert [line.split()[0] for line in out] == ["0", "0", "0"], (out, checks.stderr.read())
    # Blocked, a ping waited for a whole validation (2.2 s alone); free, for a thread switch. Under
    # load both stretch, so the bound is a share of the validation as long as it took in this run.
    validation = min(float(line.split()[1]) for line in out)
    assert worst < max(1.0, validation / 2), (
        f"a ping waited {worst:.2f}s behind the attacker's validation ({validation:.2f}s)")


def test_operands_are_matched_once_each_and_capped(daemon, attacker):
    """An unprivileged ``list`` naming one glob 100,000 times, or 1,025 different operands: every operand was
    matched against every instance, the first cost the event loop seconds. An operand given again is matched
    once; more than MAX_OPERANDS different ones are refused, root's far larger lists still answered."""
    names = "\n".join(f"[instances.i{n}]" for n in range(200))
    daemon.manifest("many.toml", f'name = "site/many"\nduration = "child"\nenabled = false\n'
                                 f'[methods.start]\nexec = ["/bin/sleep", "1000"]\n{names}\n')
    daemon.start()
    daemon.wait_state("svc:/site/many:i0", "disabled")
    sock = str(daemon.root / "run" / "svcmgr.sock")
    t0 = time.monotonic()
    reply = attacker.call(daemon.root, "list", fmris=["*many*"] * 100_000, fields=["fmri"])
    assert reply["ok"] and len(reply["result"]) == 200, str(reply)[:300]
    assert time.monotonic() - t0 < 10
    reply = attacker.call(daemon.root, "list", fmris=[f"*i{n}" for n in range(1025)], fields=["fmri"])
    assert not reply["ok"] and reply["code"] == 2 and "more than 1024 operands" in reply["error"], reply
    reply = attacker.call(daemon.root, "timings", fmris=[f"*i{n}" for n in range(1025)])
    assert not reply["ok"] and "more than 1024 operands" in reply["error"], reply
    operands = [f"*:i{n % 200}" + "*" * (n // 200) for n in range(1025)]  # different, and each names some
    reply = raw_call(sock, {"op": "list", "fmris": operands, "fields": ["fmri"]})
    assert reply["ok"] and len(reply["result"]) == 200  # root: 16 times more
    assert raw_call(sock, {"op": "ping"})["ok"]


def test_a_hostile_glob_costs_the_event_loop_little(daemon, attacker):
    """fnmatch makes a glob a regular expression in time quadratic in its unclosed brackets, and compiles each
    different glob: one operand of 100,000 ``[`` held the event loop for a quarter of an hour (no restart, no
    root ``svcs``, not even SIGTERM), 1,024 different globs of 500 ``*a`` each half a minute. A glob longer than
    256 characters matches nothing; the globs of one request hold at most 8,192 characters (root: 16 times)."""
    daemon.manifest("web.toml", SERVICE)
    daemon.start()
    daemon.wait_state(WEB, "online")
    sock = str(daemon.root / "run" / "svcmgr.sock")
    for op, args in (("show", {"fmri": "[" * 100_000}), ("list", {"fmris": ["[" * 100_000]}),
                     ("match", {"patterns": ["*a" * 50_000]}), ("timings", {"fmris": ["[!" * 50_000]})):
        t0 = time.monotonic()
        reply = attacker.call(daemon.root, op, **args)
        assert time.monotonic() - t0 < 5, f"{op} of a 100,000-character glob took {time.monotonic() - t0:.1f} s"
        assert reply.get("result", {}).get("fmris", []) == [] if op == "match" else not reply["ok"], reply
    t0 = time.monotonic()
    reply = attacker.call(daemon.root, "list", fmris=[f"*a{n}" + "*a" * 120 for n in range(1024)])
    assert time.monotonic() - t0 < 5 and not reply["ok"] and reply["code"] == 2, str(reply)[:300]
    assert "globs of more than 8192 characters" in reply["error"], reply["error"]
    reply = attacker.call(daemon.root, "list", fmris=["*web*", "[s]ite/w[e]b:*"], fields=["fmri"])
    assert reply["ok"] and reply["result"] == [{"fmri": WEB}], reply  # ordinary globs match as before
    many = ["*w*e*b" + "*" * n for n in range(1, 250)]  # 32 KB of globs, each naming the service
    reply = raw_call(sock, {"op": "list", "fmris": many, "fields": ["fmri"]})
    assert reply["ok"] and reply["result"] == [{"fmri": WEB}], str(reply)[:300]  # root's: 16 times more
    assert raw_call(sock, {"op": "ping"})["ok"]
