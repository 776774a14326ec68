"""``python -m bench``: run every scenario against svcmgr and its peers, write BENCHMARKS.md.

    python -m bench [--runs 3] [--sizes 100,500,1000] [--kills 20] [--tools a,b] [--scenarios ...]
                    [--quick] [--no-write] [--json FILE]

The first step makes the peers available: supervisor and circus from PyPI into
a venv of the harness's own (``bench/.work/venv``), runit and s6 from Debian
(installed with apt-get when missing and run as root). The harness then runs
again inside that venv (it speaks circus' ZeroMQ protocol with circus' client).
svcmgr is the project's: ``.venv/bin/svcmgrd`` (or ``$SVCMGR_BENCH_BIN``).

Every process started is ended on the way out, on failure and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from bench.harness import Options, default_work_dir, fs_type, run_all
from bench.peers import TOOLS, make_tools
from bench.procs import Tracked, reap_orphans, set_subreaper, track_signals
from bench.report import render, update_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".work", "venv")
PEERS = ["supervisor==4.3.0", "circus==0.19.0"]
HEADING = "## Side by side with supervisord, circus, runit and s6 (issue 7)"
INTRO = ("Reproduce with `make bench` (`.venv/bin/python -m bench`). The analysis below the tables is "
         "written by hand; the tables are rewritten by each run.")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs of every scenario (default 3)")
    p.add_argument("--sizes", default="100,500,1000", help="service counts for the start scenario")
    p.add_argument("--kills", type=int, default=20, help="kill -9 per run in the restart scenario (default 20)")
    p.add_argument("--listing-reps", type=int, default=10, help="listing commands per run (default 10)")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, from: {', '.join(TOOLS)}")
    p.add_argument("--scenarios", default="start,warm,dag,restart,memory,listing,diagnosis,mqtt")
    p.add_argument("--quick", action="store_true", help="one run, 50 services, 5 kills: a smoke test")
    p.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md alone")
    p.add_argument("--out", default=os.path.join(REPO, "BENCHMARKS.md"))
    p.add_argument("--json", help="also write the raw results to this file")
    p.add_argument("--no-install", action="store_true", help="use the peers found, install nothing")
    p.add_argument("--work-dir", default=default_work_dir(), metavar="DIR",
                   help="where each launch's folder is made (default: /dev/shm when it is a tmpfs, as /run is; "
                        "else the temp folder)")
    p.add_argument("--compare", metavar="REV", help="also run svcmgr as of this git revision (before/after)")
    return p.parse_args(argv)


def ensure_venv(install: bool) -> str | None:
    """The bench venv's python, creating it with the peers when missing; None if that fails."""
    py = os.path.join(VENV, "bin", "python")
    if all(os.path.exists(os.path.join(VENV, "bin", exe)) for exe in ("circusd", "supervisord")):
        return py
    if not install:
        return py if os.path.exists(py) else None
    print(f"bench: installing {', '.join(PEERS)} into {VENV}", file=sys.stderr)
    base = getattr(sys, "_base_executable", sys.executable)
    try:
        subprocess.run([base, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", *PEERS], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"bench: cannot install the Python peers: {e}", file=sys.stderr)
        return py if os.path.exists(py) else None
    return py


def ensure_debian(install: bool) -> None:
    missing = [pkg for pkg, exe in (("runit", "runsvdir"), ("s6", "s6-svscan"),
                                                 ("mosquitto-clients", "mosquitto_sub")) if not shutil.which(exe)]
    if missing and install and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"bench: apt-get install {' '.join(missing)}", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=False, env=env)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if os.environ.get("SVCMGR_BENCH_IN_VENV") != "1":
        ensure_debian(not args.no_install)
        py = ensure_venv(not args.no_install)
        if py is not None:
            os.environ["SVCMGR_BENCH_IN_VENV"] = "1"
            os.environ.setdefault("SVCMGR_BENCH_BIN", os.path.dirname(sys.executable))
            os.chdir(REPO)
            os.execv(py, [py, "-m", "bench", *argv])
    return run(args)


def run(args: argparse.Namespace) -> int:
    opts = Options(runs=args.runs, sizes=tuple(int(x) for x in args.sizes.split(",")), kills=args.kills,
                   listing_reps=args.listing_reps, scenarios=tuple(args.scenarios.split(",")))
    if args.quick:
        opts.runs, opts.sizes, opts.kills, opts.listing_reps, opts.quick = 1, (50,), 5, 3, True
    svcmgr_bin = os.environ.get("SVCMGR_BENCH_BIN") or os.path.join(REPO, ".venv", "bin")
    if not os.path.exists(os.path.join(svcmgr_bin, "svcmgrd")):
        svcmgr_bin = os.path.join(REPO, ".venv", "bin")
    set_subreaper()
    track_signals()
    work = tempfile.mkdtemp(prefix="svcbench-", dir=args.work_dir)
    compare = export_revision(args.compare) if args.compare else None
    compile_packages(REPO, compare)
    tools = make_tools(work, svcmgr_bin, os.path.join(VENV, "bin"), [t.strip() for t in args.tools.split(",")],
                       compare)

    def log(msg: str) -> None:
        print(msg, flush=True)

    try:
        res = run_all(tools, opts, log)
        res.machine["work"] = f"{args.work_dir or tempfile.gettempdir()} ({fs_type(work)})"
    except KeyboardInterrupt:
        print("bench: interrupted; ending every process it started", file=sys.stderr)
        return 130
    finally:
        for t in tools:
            try:
                t.stop()
            except Exception as e:  # noqa: BLE001 - cleanup goes on whatever happens
                print(f"bench: stopping {t.name}: {e}", file=sys.stderr)
        Tracked.kill_all()
        reap_orphans()
        shutil.rmtree(work, ignore_errors=True)
    command = "make bench" if not argv_given(args) else "python -m bench " + " ".join(sys.argv[1:])
    block = render(res, command)
    print(block)
    if args.json:
        with open(args.json, "w") as f:
            f.write(res.to_json())
    if not args.no_write and not args.quick:
        update_file(args.out, block, HEADING, INTRO)
        print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0


def export_revision(rev: str) -> str:
    """The svcmgr, fault and vrrp packages as of ``rev``, with the files they ship (``manifests/``: the fault
    manager's rules among them), exported to bench/.work/REV."""
    sha = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    dest = os.path.join(HERE, ".work", sha)
    if not os.path.isdir(os.path.join(dest, "manifests")):  # an export made before manifests/ was included
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        archive = subprocess.run(["git", "-C", REPO, "archive", sha, "svcmgr", "fault", "vrrp", "manifests"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest


def compile_packages(*roots: str | None) -> None:
    """Byte-compile the packages measured, as ``pip install`` does: an editable install run with
    PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module from source at each launch."""
    for root in roots:
        if root is None:
            continue
        dirs = [os.path.join(root, d) for d in ("svcmgr", "fault", "vrrp", "lb")]
        dirs = [d for d in dirs if os.path.isdir(d)]
        subprocess.run([sys.executable, "-m", "compileall", "-q", *dirs], check=False, stdout=subprocess.DEVNULL)


def argv_given(args: argparse.Namespace) -> bool:
    return len(sys.argv) > 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
