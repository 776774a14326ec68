"""``python -m bench.durability``: what it costs to have an operator's command on disk before the reply.

Two measures, on the filesystem of ``--dir`` (default: a folder beside the checkout, on its disk):

* one SQLite commit of an instance record, WAL, ``synchronous=NORMAL`` (the daemon's own records) against
  ``FULL`` (an operator's acknowledged setting: the WAL fdatasync'ed before the commit returns);
* end to end, a real svcmgrd: ``svcadm enable``/``disable`` of one instance through the socket, persistent
  (written FULL before the reply) against temporary (``-t``, nothing written), and one persistent disable of
  every instance in one request (one FULL commit for all).

Prints a Markdown table (docs/durability.md keeps the figures of a run).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from svcmgr.client import Client, ClientError
from svcmgr.db import transaction

REPO = Path(__file__).resolve().parent.parent


def commits(folder: Path, n: int) -> dict[str, float]:
    """Median microseconds per commit of one instance record, for each synchronous setting."""
    out = {}
    for mode in ("NORMAL", "FULL"):
        path = folder / f"commit-{mode}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE instances (fmri TEXT PRIMARY KEY, state TEXT, contract TEXT)")
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            with transaction(conn, durable=mode == "FULL") as c:
                c.execute("INSERT INTO instances VALUES(?, ?, ?) ON CONFLICT(fmri) DO UPDATE SET "
                          "state=excluded.state", (f"svc:/b/s{i % 50}:default", "online", "{}"))
            times.append(time.perf_counter() - t0)
        conn.close()
        out[mode] = statistics.median(times) * 1e6
    return out


def end_to_end(folder: Path, n: int, services: int, tree: str | None = None) -> dict[str, float]:
    """Median milliseconds per request through a real daemon (run from the source ``tree``, if given)."""
    root = Path(tempfile.mkdtemp(prefix="svcdur-", dir=folder))
    os.chmod(root, 0o755)
    mdir = root / "manifests"
    mdir.mkdir()
    for i in range(services):
        (mdir / f"s{i}.toml").write_text(f'name = "b/s{i}"\nduration = "child"\n[methods.start]\n'
                                         'exec = "exec sleep 1000"\n')
    env = dict(os.environ, XDG_RUNTIME_DIR=str(root / "xdg"))
    if tree:
        env["PYTHONPATH"] = tree
    proc = subprocess.Popen([sys.executable, "-m", "svcmgr.daemon", "--root", str(root), "--no-register",
                             "--metrics", "", "--manifests", str(mdir), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    client = Client(str(root), timeout=30)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.call("ping")
                break
            except ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        every = [f"svc:/b/s{i}:default" for i in range(services)]

        def timed(op: str, fmris: list[str], temporary: bool) -> float:
            t0 = time.perf_counter()
            client.call(op, fmris=fmris, temporary=temporary)
            return time.perf_counter() - t0

        out = {}
        for label, temporary in (("temporary (-t), nothing written", True), ("persistent, FULL before the reply",
                                                                               False)):
            times = []
            for i in range(n):
                f = every[i % services]
                times.append(timed("disable", [f], temporary))
                times.append(timed("enable", [f], temporary))
            out[f"enable/disable of one instance, {label}"] = statistics.median(times) * 1e3
        times = []
        for _ in range(max(3, n // 20)):
            times.append(timed("disable", every, False))
            times.append(timed("enable", every, False))
        out[f"enable/disable of all {services} in one request, persistent"] = statistics.median(times) * 1e3
        return out
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.durability", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=str(REPO / "bench" / ".work"), help="where the files go (its disk is measured)")
    p.add_argument("--commits", type=int, default=500)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--services", type=int, default=50)
    p.add_argument("--before", metavar="TREE", help="also measure the daemon of this source tree (e.g. a "
                   "git worktree of the commit before), for the difference")
    args = p.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="durability-", dir=folder))
    try:
        c = commits(work, args.commits)
        e = end_to_end(folder, args.requests, args.services)
        before = end_to_end(folder, args.requests, args.services, args.before) if args.before else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fs = subprocess.run(["df", "-T", str(folder)], capture_output=True, text=True).stdout.splitlines()[-1].split()
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, Linux {platform.release()}, {fs[1]} on {fs[0]}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}.\n")
    print(f"| measure | median |{' before |' if before else ''}\n| --- | ---: |{' ---: |' if before else ''}")
    print(f"| one commit, synchronous=NORMAL | {c['NORMAL']:.0f} µs |{' |' if before else ''}")
    print(f"| one commit, synchronous=FULL (fdatasync of the WAL) | {c['FULL']:.0f} µs |{' |' if before else ''}")
    for k, v in e.items():
        was = f" {before[k]:.2f} ms |" if k in before else (" |" if before else "")
        print(f"| {k} | {v:.2f} ms |{was}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
