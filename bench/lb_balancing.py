"""Load balancing under change: failed requests and gaps while backends and balancers stop, die and move.

    sudo .venv/bin/python -m bench.lb_balancing [--repeat 3] [--rate 1200] [--requests 2000] [--no-write]

Two balancer nodes in network namespaces (``lb.cluster``), each a real svcmgrd running
real HAProxy and keepalived, three backend instances per node answering after 20 ms. A
client in the bridge's namespace sends ``--requests`` requests at ``--rate`` a second
(keep-alive off) to the virtual address while, a third of the way in, one of these happens
on the master node:

- ``svcadm disable`` of a backend (svcmgr drains it before its stop method);
- ``kill -9`` of a backend, on the plain frontend and on the idempotent one (svcmgr sets it
  ``maint`` the moment the restarter sees it die; the idempotent frontend retries);
- ``svcadm disable`` of the dependency of a backend (drained, then stopped);
- the node's link cut (keepalived at advert 100 ms: the backup takes over);
- ``svcadm disable`` of HAProxy on the master (a planned move: priority lowered first).

Beside each, the same without svcmgr following the backends, for the backend scenarios:
HAProxy alone with its health checks (``inter 1s fall 2``, HAProxy's default ``retries``),
measured on this kind of machine (REFERENCE.md): 13-14 failed requests for a killed
backend. Results go to the "Load balancing" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lb.cluster import APP, DEP, HAPROXY, Cluster, cluster
from lb.haproxy import find_haproxy
from vrrp.lab import missing, wait_for

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- lb-balancing:begin -->", "<!-- lb-balancing:end -->"
B = APP[1]
#: HAProxy alone, health checks inter 1s fall 2, 2,000 requests at about 1,200/s (REFERENCE.md).
PEER_KILL = "13-14"


_KILLED = itertools.cycle(APP)


def _kill9(c: Cluster) -> Any:
    """kill -9 of the next backend in turn (three kills of one in a row is flapping: the fault manager
    would retire it, a scenario of its own)."""
    os.kill(c.d[1].pids(next(_KILLED))[0], signal.SIGKILL)


def scenarios(c: Cluster) -> list[tuple[str, int, Callable[[], Any], Callable[[], None]]]:
    """(what, port, act, restore)."""
    n1 = c.d[1]

    def back(*fmris: str) -> Callable[[], None]:
        def restore() -> None:
            if fmris:
                n1.call("enable", fmris=list(fmris))
            c.wait_ready(1)
        return restore

    def heal() -> None:
        c.lab.heal(1)
        c.wait_vip([1])
        c.wait_ready(1)
        # n1's gratuitous ARPs on the way back (now, and keepalived's second round 5 s later) update the
        # client's neighbour entry; Linux ignores another update within locktime (1 s), which would hide
        # the next cut's takeover from the client until n2's own second round.
        time.sleep(6.5)

    def haproxy_back() -> None:
        wait_for(lambda: n1.state(HAPROXY) == "disabled", 60, "HAProxy stopped")
        n1.call("enable", fmris=[HAPROXY])
        wait_for(lambda: n1.state(HAPROXY) == "online", 30, "HAProxy online")
        c.wait_vip([1])
        c.wait_ready(1)

    return [
        ("`svcadm disable` of a backend", 80, lambda: n1.call("disable", fmris=[B]), back(B)),
        ("`kill -9` of a backend", 80, lambda: _kill9(c), back()),
        ("`kill -9` of a backend, idempotent frontend", 81, lambda: _kill9(c), back()),
        ("`svcadm disable` of a backend's dependency", 80, lambda: n1.call("disable", fmris=[DEP]), back(DEP)),
        ("master's link cut (advert 100 ms)", 80, lambda: c.lab.cut(1), heal),
        ("`svcadm disable` of HAProxy on the master (planned move)", 80,
         lambda: n1.call("disable", fmris=[HAPROXY]), haproxy_back),
    ]


def run(repeat: int, rate: float, requests: int) -> list[dict[str, Any]]:
    out = []
    seconds = requests / rate
    with cluster() as c:
        for what, port, act, restore in scenarios(c):
            runs = []
            for _ in range(repeat):
                res, _, t_act = c.load(act, at=seconds / 3, port=port, rate=rate, seconds=seconds)
                runs.append({"failed": len(res.failures), "in_flight": res.in_flight(t_act),
                             "gap": res.gap(), "slowest": res.slowest(), "requests": res.total,
                             "rate": res.summary()["rate"]})
                print(f"{what}: {runs[-1]}", file=sys.stderr)
                restore()
            out.append({"what": what, "runs": runs})
    return out


def section(results: list[dict[str, Any]], repeat: int, rate: float, requests: int) -> str:
    hp = subprocess.run([find_haproxy() or "haproxy", "-v"], capture_output=True, text=True, check=False)
    version = hp.stdout.split()[2] if hp.stdout.startswith("HAProxy") else "?"
    lines = [
        "## Load balancing: failed requests while backends and balancers change (issue 16)",
        "",
        BEGIN,
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Linux {platform.release()}, HAProxy {version}, keepalived 2.2.7, by `sudo .venv/bin/python -m "
        f"bench.lb_balancing --repeat {repeat} --rate {rate:g} --requests {requests}`: two balancer nodes in "
        "network namespaces, each a real svcmgrd running HAProxy (master-worker) and keepalived (advert 100 ms, "
        "the address follows HAProxy's service), three backend instances per node answering after 20 ms; a "
        f"client in the bridge's namespace sends {requests} requests at about {rate:g} a second (keep-alive off) "
        f"to the virtual address, and the change happens a third of the way in. {repeat} runs of each: failed "
        "requests (min / median / max), the requests in flight (all backends) at the moment of the change, "
        "the longest time without a successful answer, and the slowest successful answer.",
        "",
        "| change on the master node | failed (min / median / max) | in flight at the change (median) "
        "| longest gap, ms (median / max) | slowest answer, ms (median) | HAProxy alone (health checks) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        f = [x["failed"] for x in r["runs"]]
        g = [x["gap"] * 1000 for x in r["runs"]]
        peer = f"{PEER_KILL} failed" if r["what"].startswith("`kill -9` of a backend") else \
            f"{PEER_KILL} failed (a stop unseen until the checks fail)" if "backend" in r["what"] else ""
        lines.append(f"| {r['what']} | {min(f)} / {statistics.median(f):g} / {max(f)} "
                     f"| {statistics.median(x['in_flight'] for x in r['runs']):g} "
                     f"| {statistics.median(g):.0f} / {max(g):.0f} "
                     f"| {statistics.median(x['slowest'] * 1000 for x in r['runs']):.0f} | {peer} |")
    lines += [
        "",
        "Reading it: a planned stop of a backend (disable, a lost dependency) is drained before its stop "
        "method runs, so nothing fails; a killed backend fails the requests that were on it when it died "
        "(a third of those in flight), because svcmgr sets it `maint` the moment the restarter sees it die "
        "instead of waiting for HAProxy's checks; an idempotent frontend retries those on another backend. "
        "A cut link costs the backup's master-down interval (3 adverts + skew, about 360 ms) and the requests "
        "in flight on the cut node; a planned move of the balancer has no gap (the backup holds the address "
        "before HAProxy stops) but resets the connections in flight at the moment the clients' ARP entry "
        "switches: nothing carries TCP state between balancers.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write(text: str, path: Path) -> None:
    doc = path.read_text()
    heading = text.split("\n", 1)[0]
    if BEGIN in doc and END in doc:
        start = doc.rfind("\n## ", 0, doc.index(BEGIN)) + 1
        doc = doc[:start] + text + doc[doc.index(END) + len(END) + 1:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)
    print(f"wrote the section {heading!r} of {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lb_balancing", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rate", type=float, default=1200)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--json")
    args = p.parse_args(argv)
    why = missing() or (None if find_haproxy() else "HAProxy is not installed")
    if why:
        print(f"bench.lb_balancing: {why}", file=sys.stderr)
        return 1
    results = run(args.repeat, args.rate, args.requests)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    text = section(results, args.repeat, args.rate, args.requests)
    print(text)
    if not args.no_write:
        write(text, REPO / "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
