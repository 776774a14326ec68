"""What least privilege costs on the restart path: kill -9 to a new process, by what a method asks for.

    .venv/bin/python bench/privileges.py [--kills 15]

One real ``svcmgrd`` (root: it switches users and grants capabilities) runs three
``child`` services side by side, each ``sleep``: one that asks for nothing (the fast
path: nothing runs in the child between fork and exec), one as ``nobody`` with
``privileges``, ``limit_privileges``, ``umask`` and an rlimit (the child applies them
through prctl and capset), and one with ``[resources]`` memory and task limits (on
cgroup v1 here: the child joins two groups before it execs). Each is killed in turn,
``--kills`` times; the figure is the median time until ``list`` reports a new live pid.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from svcmgr.client import Client, ClientError

KINDS = {
    "asks nothing": "",
    "nobody, privileges, limit, umask, rlimit": ('user = "nobody"\nprivileges = "basic,net_privaddr"\n'
                                                 'limit_privileges = "basic,net_privaddr"\numask = "027"\n'
                                                 '[rlimits]\nnofile = 1024\n'),
    "memory and tasks limits": '[resources]\nmemory = "64MiB"\ntasks = 32\n',
}


def _manifest(i: int, ctx: str) -> str:
    return (f'name = "bench/p{i}"\nduration = "child"\n{ctx}\n[methods.start]\nexec = ["sleep", "100000"]\n'
            '[restart]\nlimit = 100000\nperiod = "1s"\n')


def _pid(c: Client, f: str) -> int | None:
    pids = c.call("list", fmris=[f], pids=True)[0]["pids"]
    return pids[0] if pids else None


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=15)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/privileges.py: needs root (users and capabilities)", file=sys.stderr)
        return 2
    root = tempfile.mkdtemp(prefix="svcbench-priv-", dir="/tmp")
    mdir = os.path.join(root, "m")
    os.mkdir(mdir)
    for i, ctx in enumerate(KINDS.values()):
        with open(os.path.join(mdir, f"p{i}.toml"), "w") as f:
            f.write(_manifest(i, ctx))
    # The fault manager would degrade services killed this often; rules off, it only measures.
    with open(os.path.join(root, "node.toml"), "w") as f:
        f.write("[fault]\nbuiltin_rules = false\n")
    log = open(os.path.join(root, "daemon.log"), "wb")  # noqa: SIM115 - kept for the daemon's life
    d = subprocess.Popen([sys.executable, "-m", "svcmgr.daemon", "--root", root, "--manifests", mdir, "--metrics", "",
                          "--config", os.path.join(root, "node.toml")],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    c = Client(root)
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    try:
        fmris = [f"svc:/bench/p{i}:default" for i in range(len(KINDS))]
        deadline = time.monotonic() + 30
        while True:
            try:
                if all(_pid(c, f) for f in fmris):
                    break
            except ClientError:
                pass
            if time.monotonic() > deadline or d.poll() is not None:
                with open(os.path.join(root, "daemon.log"), errors="replace") as f:
                    raise SystemExit(f"bench/privileges.py: services did not come up:\n{f.read()[-2000:]}")
            time.sleep(0.05)
        for _ in range(args.kills):
            for kind, f in zip(KINDS, fmris, strict=True):
                old = _pid(c, f)
                assert old is not None
                os.kill(old, signal.SIGKILL)
                t0 = time.perf_counter()
                while _pid(c, f) in (None, old):
                    if time.perf_counter() - t0 > 10:
                        raise SystemExit(f"bench/privileges.py: {f} not back after 10 s")
                    time.sleep(0.0005)
                times[kind].append((time.perf_counter() - t0) * 1000)
                time.sleep(1.1 / len(KINDS))  # a child service restarts at most once a second
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(30)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
        log.close()
        subprocess.run(["rm", "-rf", root], check=False)
    print(f"| method asks for | kills | median (ms) | min (ms) |  (load average {os.getloadavg()[0]:.2f})")
    print("| --- | ---: | ---: | ---: |")
    for kind, v in times.items():
        print(f"| {kind} | {len(v)} | {statistics.median(v):.1f} | {min(v):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
