"""Events per second through the MQTT bridge to a real mosquitto and back to a subscriber.

    .venv/bin/python bench/mqtt_bridge.py [--events N] [--runs R] [--window W ...]

Starts a mosquitto on loopback and a real svcmgrd (through the test launcher
``tests/integration/export/export_daemon.py``, which adds the ``test.emit``
operation), and measures, each as the median of R runs:

* out:   N events emitted on the daemon's bus in one burst -> outbox -> bridge ->
         mosquitto -> a subscriber; from the request to the last event received;
* round: N telemetry messages published to mosquitto -> bridge (checked, turned
         into ereports, queued) -> mosquitto -> the subscriber;
* raw:   the peer in the same run: the same N messages from the same kind of
         publisher through the same broker straight to the subscriber (the broker's
         own relay rate: an upper bound for anything that goes through it).

Every publisher runs in a process of its own, as the bridge does (the peer and the
round trip's telemetry from a child that connects first, then publishes on a go):
the subscriber's reader is this process, and shares no interpreter with any of them.

Every run checks that all N events arrived, each once at least, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from svcmgr.client import Client, ClientError

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = REPO / "tests" / "integration" / "export" / "export_daemon.py"
SUBSCRIBER = "mosquitto_sub"  # Debian's mosquitto-clients


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise SystemExit(f"nothing listens on port {port}")


def start_broker(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_inflight_messages 0\n" + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def start_daemon(root: Path, port: int, window: int, qos: int) -> subprocess.Popen[bytes]:
    cfg = root / "node.toml"
    cfg.write_text(f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"\ntelemetry = ["bench/in/#"]\nwindow = {window}\n'
                   f"qos = {qos}\noutbox_limit = 10000000\n")
    # a PYTHONPATH given (another revision's packages, ``python -m bench --compare``) comes first
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p))
    proc = subprocess.Popen([sys.executable, str(LAUNCHER), "--root", str(root), "--no-register", "--node", "bench",
                             "--metrics", "", "--config", str(cfg), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=open(root / "daemon.err", "ab"), env=env)  # noqa: SIM115
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if Client(str(root), timeout=5).call("mqtt")["connected"]:
                return proc
        except ClientError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"svcmgrd did not connect: {(root / 'daemon.err').read_text()[-2000:]}")


def _index(key: str) -> Callable[[dict[str, Any]], int]:
    """Where a message's running number is: ``data.n`` (events), ``i`` (the bare peer), ``data.i`` (telemetry)."""
    if key == "n":
        return lambda b: b["data"]["n"]
    if key == "i":
        return lambda b: b["i"]
    return lambda b: b["data"]["i"]


async def collect(port: int, topic: str, n: int, key: str, ready: asyncio.Event,
                  done: asyncio.Future[float], seen: set[int]) -> None:
    """Subscribe, then record the time the n-th distinct message arrives (``seen``: those arrived); check order.

    The subscriber is mosquitto_sub (C, Debian's mosquitto-clients), the same for every publisher
    measured: a Python client cost a core of its own, as much as what it measured. Its lines are
    read here in chunks and each checked as it comes. It is ready once a probe published on the
    topic comes back (mosquitto_sub does not say when its subscription is acknowledged)."""
    last = -1
    index = _index(key)
    token = f"{os.getpid()}-{time.monotonic_ns()}"
    probe = json.dumps({"probe": token}).encode()
    proc = await asyncio.create_subprocess_exec(
        SUBSCRIBER, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "--nodelay",
        "-i", f"bench-sub-{token}", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None

    async def probing() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-probe-{token}") as c:
            while True:
                await c.publish(topic, probe, qos=0)
                await asyncio.sleep(0.05)

    prober = asyncio.create_task(probing())

    def take(line: bytes) -> None:
        nonlocal last
        body = json.loads(line)
        if "probe" in body:
            if body["probe"] == token and not ready.is_set():
                ready.set()
                prober.cancel()
            return
        i = index(body)
        if i in seen:
            return
        if i < last:
            done.set_exception(SystemExit(f"out of order on {topic}: {i} after {last}"))
            return
        seen.add(i)
        last = i
        if len(seen) == n:
            done.set_result(time.perf_counter())

    rest = b""
    try:
        while not done.done():
            chunk = await proc.stdout.read(1 << 16)
            if not chunk:
                if not done.done():
                    done.set_exception(SystemExit(f"mosquitto_sub ended (status {await proc.wait()})"))
                break
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                if not done.done():
                    take(line)
    finally:
        prober.cancel()
        with contextlib.suppress(BaseException):
            await prober
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def publish_many(port: int, topic: str, payloads: list[bytes], window: int,
                       go: Callable[[], Any] | None = None) -> None:
    """One aiomqtt client publishes ``payloads`` at QoS 1, ``window`` in flight; connected, it awaits ``go()`` first."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-pub-{os.getpid()}-{time.monotonic_ns()}",
                              max_inflight_messages=window) as c:
        if go is not None:
            await go()
        c.pending_calls_threshold = window + 8
        sem = asyncio.Semaphore(window)

        async def one(p: bytes) -> None:
            try:
                await c.publish(topic, p, qos=1)
            finally:
                sem.release()

        async with asyncio.TaskGroup() as tg:
            for p in payloads:
                await sem.acquire()
                tg.create_task(one(p))


def _payloads(kind: str, n: int) -> list[bytes]:
    """What the publisher of ``kind`` sends: telemetry for the round trip, bare numbered messages for the peer."""
    if kind == "round":
        return [json.dumps({"data": {"i": i}}).encode() for i in range(n)]
    return [json.dumps({"i": i}).encode() for i in range(n)]


async def publisher(port: int, topic: str, kind: str, n: int, window: int) -> None:
    """The child's part (``--publisher``): connect, say ``ready``, publish on the ``go`` line, say ``done``."""
    payloads = _payloads(kind, n)
    loop = asyncio.get_running_loop()

    async def go() -> None:
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)

    await publish_many(port, topic, payloads, window, go)
    print("done", flush=True)


async def publish_apart(port: int, topic: str, kind: str, n: int, window: int) -> tuple[float, Any]:
    """Publish from a process of its own, as the bridge does: the subscriber's reading (this process) does
    not share its interpreter. Returns the time of the go, and the process to wait for."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--publisher", str(port), topic, kind, str(n), str(window),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    if (await proc.stdout.readline()).strip() != b"ready":
        raise SystemExit(f"the {kind} publisher did not connect (status {await proc.wait()})")
    t0 = time.perf_counter()
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    return t0, proc


async def run_case(kind: str, port: int, root: Path, n: int, window: int) -> float:
    ready = asyncio.Event()
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    if kind == "out":
        topic, key = "svcmgr/bench/ereport/bench/out", "n"
    elif kind == "round":
        topic, key = "svcmgr/bench/ereport/telemetry/bench/in/tick", "d"
    else:
        topic, key = "bench/raw/tick", "i"
    seen: set[int] = set()
    sub = asyncio.create_task(collect(port, topic, n, key, ready, done, seen))
    await ready.wait()
    pub = None
    if kind == "out":
        t0 = time.perf_counter()
        await asyncio.to_thread(Client(str(root), timeout=120).call, "test.emit",
                                **{"class": "ereport.bench.out", "count": n})
    else:
        t0, pub = await publish_apart(port, "bench/in/tick" if kind == "round" else topic, kind, n, window)
    try:
        t1 = await asyncio.wait_for(done, 60 + n / 500)
    except TimeoutError:
        sub.cancel()
        raise SystemExit(f"{kind}: {len(seen)} of {n} events arrived (lost, or stuck)") from None
    finally:
        if pub is not None:
            if pub.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pub.wait(), 30)
            if pub.returncode is None:
                pub.kill()
                await pub.wait()
    await sub
    return n / (t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", type=int, action="append", help="bridge publishes in flight (default 20)")
    ap.add_argument("--qos", type=int, default=1, choices=(0, 1), help="QoS of plain events (default 1)")
    ap.add_argument("--json", help="also write every rate measured to this file ({window: {kind: [ev/s, ...]}})")
    ap.add_argument("--publisher", nargs=5, metavar=("PORT", "TOPIC", "KIND", "N", "WINDOW"),
                    help=argparse.SUPPRESS)  # the publisher's own process (publish_apart)
    args = ap.parse_args()
    if args.publisher:
        port, topic, kind, n, window = args.publisher
        asyncio.run(publisher(int(port), topic, kind, int(n), int(window)))
        return 0
    if shutil.which("mosquitto") is None:
        print("mosquitto not installed: nothing to measure", file=sys.stderr)
        return 1
    if shutil.which(SUBSCRIBER) is None:
        print(f"{SUBSCRIBER} not installed (Debian's mosquitto-clients): nothing to measure", file=sys.stderr)
        return 1
    windows = args.window or [20]
    print(f"# {args.events} events per run, median of {args.runs} runs, mosquitto on loopback, "
          f"events QoS {args.qos}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    raw: dict[int, dict[str, list[float]]] = {}
    print(f"{'window':>6}  {'out ev/s':>10}  {'round ev/s':>10}  {'raw msg/s':>10}  {'out/raw':>7}")
    for window in windows:
        folder = Path(tempfile.mkdtemp(prefix="svcmgr-bench-", dir="/tmp"))
        broker, port = start_broker(folder)
        daemon = start_daemon(folder, port, window, args.qos)
        try:
            res: dict[str, list[float]] = {"out": [], "round": [], "raw": []}
            raw[window] = res
            for _ in range(args.runs):
                for kind in ("raw", "out", "round"):
                    res[kind].append(asyncio.run(run_case(kind, port, folder, args.events, window)))
            med = {k: statistics.median(v) for k, v in res.items()}
            print(f"{window:>6}  {med['out']:>10.0f}  {med['round']:>10.0f}  {med['raw']:>10.0f}  "
                  f"{med['out'] / med['raw']:>7.2f}")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
            broker.send_signal(signal.SIGTERM)
            broker.wait(10)
            shutil.rmtree(folder, ignore_errors=True)
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
