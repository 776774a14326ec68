"""Helpers for the MQTT and metrics tests: a mosquitto broker, a recording subscriber, starting nodes.

Imported by this folder's conftest (fixtures) and tests; named uniquely because
test folders have no ``__init__.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from svcmgr.polling import wait_for

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "export_daemon.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One mosquitto process on 127.0.0.1:port; ``stop()`` and ``start()`` keep the port and the data."""

    def __init__(self, folder: Path, port: int, extra: str = "", *, anonymous: bool = True) -> None:
        self.folder = folder
        self.port = port
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        lines = [
            f"listener {port} 127.0.0.1",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            "persistence true",
            f"persistence_location {folder}/",
            "autosave_interval 0",
            "max_queued_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n" + extra)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        out = open(self.log, "ab")  # noqa: SIM115 - kept for the broker's life
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            with socket.socket() as s:
                s.settimeout(0.2)
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, 10, "mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Subscriber:
    """A real MQTT client (paho, in its own thread) that records every message it gets, in order."""

    def __init__(self, port: int, topics: list[str], *, client_id: str | None = None, persistent: bool = False):
        import paho.mqtt.client as mqtt

        self.topics = topics
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                                  clean_session=not persistent)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber did not get its SUBACK"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client: Any, userdata: Any, m: Any) -> None:
        with self.lock:
            self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))

    def snapshot(self) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return list(self.messages)

    def payloads(self, topic: str) -> list[Any]:
        return [json.loads(p) if p else None for t, p, _ in self.snapshot() if t == topic]

    def latest(self) -> dict[str, bytes]:
        """The last payload seen on each topic (the retained picture, for retained topics)."""
        out: dict[str, bytes] = {}
        for t, p, _ in self.snapshot():
            out[t] = p
        return out

    def events(self, node: str) -> list[dict[str, Any]]:
        """Event messages of a node (not the retained ones), in arrival order, parsed."""
        out = []
        for t, p, _ in self.snapshot():
            parts = t.split("/")
            if len(parts) > 2 and parts[1] == node and parts[2] not in ("state", "cases", "status") and p:
                out.append(json.loads(p))
        return out

    def wait(self, pred: Callable[[Subscriber], Any], timeout: float = 20, what: str = "") -> Any:
        return wait_for(lambda: pred(self), timeout, what or "messages")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_node(d: Any, *args: str, wait: bool = True) -> Any:
    """Start the fixture's daemon ``d`` (from ``svcmgrd()``) through the launcher with the test emitter;
    the ``svcmgrd`` fixture still stops it and checks for leftovers."""
    cmd = [sys.executable, str(LAUNCHER), "--root", str(d.root), "--no-register", "--log-level", "debug"]
    if any(d.mdir.iterdir()):
        cmd += ["--manifests", str(d.mdir)]
    cmd += list(args)
    d.args = list(args)
    out = open(d.output, "ab")  # noqa: SIM115 - kept for the daemon's life
    d.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=d.env, start_new_session=True)
    out.close()
    if wait:
        wait_for(d._answers, 15, f"svcmgrd to answer (log: {d.log_text()[-2000:]})")
    return d


def wait_metrics(d: Any) -> None:
    """Wait until the daemon ``d`` serves /metrics: its component listens after the control socket answers."""
    wait_for(lambda: d.call("metrics")["address"], 15, f"/metrics to listen (log: {d.log_text()[-2000:]})")


def write_config(d: Any, text: str) -> Path:
    p = d.root / "node.toml"
    p.write_text(text)
    return p


def mqtt_status(d: Any) -> dict[str, Any]:
    return d.call("mqtt")


SLEEP_MANIFEST = """
name = "{name}"
duration = "child"
[instances.default]
enabled = true
[methods.start]
exec = ["sleep", "600"]
[methods.stop]
exec = ":kill"
"""


def make_tls_files(folder: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for localhost/127.0.0.1 and a client certificate (openssl)."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=svcmgr test CA")
    (folder / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, cn, ext in (("server", "localhost", ["-extfile", "server.ext"]), ("client", "node-tls", [])):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={cn}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", *ext)
    return {n: folder / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}
