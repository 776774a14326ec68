"""``/metrics`` from a real daemon: what it says, that ``promtool check metrics`` accepts it, and that
bad HTTP requests are answered and survived."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from export_helpers import SLEEP_MANIFEST, free_port, mqtt_status, start_node, wait_for, wait_metrics

BROKEN = """
name = "site/broken"
duration = "transient"
[instances.default]
enabled = true
[methods.start]
exec = "exit 95"
"""

BLINK = """
name = "site/blink"
duration = "child"
[instances.default]
enabled = true
[methods.start]
exec = ["sleep", "0.2"]
[restart]
limit = 1000
period = "1s"
"""

REPO = Path(__file__).resolve().parents[3]
# A case of a class of its own: the fault manager's own diagnosis of site/broken (defect.svc.maintenance) may be
# open by the time of the scrape, or not yet, as the machine's load has it; this one is counted apart from it.
CASE = {"uuid": "9b3c0f43-8f2e-4a8b-9e51-3c6f1d2a7b10", "class": "defect.test.scraped", "severity": "major",
        "msgid": "SVC-8000-2X", "suspects": [{"resource": "svc:/site/broken:default", "certainty": 100}],
        "affected": ["svc:/site/broken:default"], "state": "open"}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in an exposition (None if absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)


@pytest.fixture
def node(svcmgrd, mosquitto):
    broker = mosquitto()
    d = svcmgrd()
    d.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
    d.manifest("broken.toml", BROKEN)
    d.manifest("blink.toml", BLINK)
    port = free_port()
    start_node(d, "--node", "m1", "--mqtt", broker.url, "--metrics", f"127.0.0.1:{port}")
    wait_metrics(d)
    d.wait_state("svc:/site/a:default", "online")
    d.wait_state("svc:/site/broken:default", "maintenance")
    wait_for(lambda: mqtt_status(d)["connected"], 15, "connected")
    d.metrics_port = port
    return d


def test_live_scrape_passes_promtool_and_says_what_happened(node):
    d = node
    port = d.metrics_port
    d.call("test.emit", **{"class": "list.suspect", "data": CASE})
    d.call("test.emit", **{"class": "vrrp.state.master", "data": {"instance": "web", "state": "master",
                                                                   "priority": 150}})
    d.call("test.emit", **{"class": "ereport.io.disk.error", "resource": "dev:/sda", "count": 3})
    # the bridge counts what the broker acknowledged once its window of publishes drains: waited for too
    text = wait_for(lambda: (t := scrape(port)) and value(t, "svcmgr_instance_restarts_total",
                                                           fmri="svc:/site/blink:default")
                    and value(t, "svcmgr_mqtt_sent_messages_total") and t, 20,
                    "the blinking service to be restarted and the broker to acknowledge a message")

    r = promtool_check(text)
    assert r.returncode == 0, f"promtool check metrics:\n{r.stdout}{r.stderr}"
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr

    assert value(text, "svcmgr_build_info", node="m1") == 1
    assert value(text, "svcmgr_instance_state", fmri="svc:/site/a:default", state="online") == 1
    assert value(text, "svcmgr_instance_state", fmri="svc:/site/a:default", state="offline") == 0
    assert value(text, "svcmgr_instance_state", fmri="svc:/site/broken:default", state="maintenance") == 1
    assert sum(value(text, "svcmgr_instance_state", fmri="svc:/site/a:default", state=s) for s in
               ("uninitialized", "offline", "online", "degraded", "maintenance", "disabled")) == 1
    assert value(text, "svcmgr_instance_state_seconds", fmri="svc:/site/a:default") >= 0
    assert value(text, "svcmgr_instance_starts_total", fmri="svc:/site/a:default") == 1
    assert value(text, "svcmgr_instance_start_duration_seconds_count", fmri="svc:/site/a:default") == 1
    assert value(text, "svcmgr_instance_dependency_wait_seconds_count", fmri="svc:/site/a:default") == 1
    started = value(text, "svcmgr_instance_start_time_seconds", fmri="svc:/site/a:default")
    assert started is not None and 0 <= time.time() - started < 120
    assert value(text, "svcmgr_ereports_total", **{"class": "ereport.io.disk.error"}) == 3
    assert value(text, "svcmgr_ereports_total", **{"class": "ereport.svc.maintenance"}) == 1
    assert value(text, "svcmgr_fault_cases_open", **{"class": "defect.test.scraped", "severity": "major"}) == 1
    assert value(text, "svcmgr_vrrp_state", instance="web", state="master") == 1
    assert value(text, "svcmgr_vrrp_state", instance="web", state="backup") == 0
    assert value(text, "svcmgr_vrrp_priority", instance="web") == 150
    assert value(text, "svcmgr_mqtt_connected") == 1
    assert value(text, "svcmgr_mqtt_outbox_messages") is not None
    assert value(text, "svcmgr_mqtt_sent_messages_total") > 0
    # every svcmgr_ series the shipped alert rules use is in this exposition
    rules = (REPO / "manifests" / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\b(svcmgr_[a-z_]+)", rules))
    exposed = {m.group(1) for m in re.finditer(r"^(svcmgr_[a-z_]+)[{ ]", text, re.M)}
    assert used and used <= exposed, f"rules use series the daemon does not expose: {used - exposed}"
    # bounded labels only: no pid, uuid or free text in any label
    assert CASE["uuid"] not in text
    assert "pid=" not in text

    d.call("test.emit", **{"class": "list.repaired", "data": {**CASE, "state": "repaired"}})
    d.call("test.emit", **{"class": "vrrp.state.backup", "data": {"instance": "web", "state": "backup",
                                                                   "priority": 100}})
    text = scrape(port)
    assert value(text, "svcmgr_fault_cases_open", **{"class": "defect.test.scraped", "severity": "major"}) \
        is None
    assert value(text, "svcmgr_vrrp_state", instance="web", state="backup") == 1
    assert value(text, "svcmgr_vrrp_state", instance="web", state="master") == 0
    assert promtool_check(text).returncode == 0


def test_outbox_depth_grows_while_the_broker_is_away(svcmgrd, mosquitto):
    broker = mosquitto()
    d = svcmgrd()
    d.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
    port = free_port()
    start_node(d, "--node", "m2", "--mqtt", broker.url, "--metrics", f"127.0.0.1:{port}")
    wait_metrics(d)
    d.wait_state("svc:/site/a:default", "online")
    wait_for(lambda: value(scrape(port), "svcmgr_mqtt_connected") == 1, 15, "connected")
    broker.stop()
    wait_for(lambda: value(scrape(port), "svcmgr_mqtt_connected") == 0, 15, "disconnected")
    d.call("test.emit", **{"class": "ereport.test.burst", "count": 25})
    text = scrape(port)
    assert value(text, "svcmgr_mqtt_outbox_messages") >= 25
    assert promtool_check(text).returncode == 0


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_bad_http_requests_are_answered_and_survived(svcmgrd):
    d = svcmgrd()
    port = free_port()
    start_node(d, "--node", "m3", "--metrics", f"127.0.0.1:{port}")
    wait_metrics(d)
    assert _raw(port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert _raw(port, b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert _raw(port, b"GET /metrics").startswith(b"HTTP/1.1 400 ")  # the client hung up mid-request
    assert _raw(port, b"GET /x HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431 ")
    r = _raw(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in r
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=10)
    assert e.value.code == 404
    head = _raw(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    # OpenMetrics when asked for
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        assert r.read().decode().rstrip().endswith("# EOF")
    assert "svcmgr_build_info" in scrape(port)
    assert d.call("metrics")["bad_requests"] >= 4
    # without a broker there is no MQTT series at all
    assert value(scrape(port), "svcmgr_mqtt_connected") is None


def test_a_taken_port_leaves_the_daemon_running(svcmgrd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        d = svcmgrd()
        d.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
        start_node(d, "--node", "m4", "--metrics", f"127.0.0.1:{port}")
        d.wait_state("svc:/site/a:default", "online")
        wait_for(lambda: "cannot listen on" in d.log_text(), 10, "the error in the log")
        assert d.call("metrics")["address"] is None


def test_port_0_listens_on_a_free_port_and_says_which(svcmgrd):
    """``--metrics HOST:0``: the kernel chooses the port; the log and the ``metrics`` request name it."""
    d = svcmgrd()
    start_node(d, "--node", "m6", "--metrics", "127.0.0.1:0")
    wait_metrics(d)
    host, _, port = d.call("metrics")["address"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert "svcmgr_build_info" in scrape(int(port))
    assert f"metrics: serving /metrics on 127.0.0.1:{port}" in d.log_text()


def test_labels_stay_bounded_whatever_the_events_say(svcmgrd):
    d = svcmgrd()
    port = free_port()
    start_node(d, "--node", "m5", "--metrics", f"127.0.0.1:{port}")
    wait_metrics(d)
    for i in range(230):
        d.call("test.emit", **{"class": f"ereport.flood.c{i}"})
    # VRRP events that do not fit the contract are ignored, not turned into series
    d.call("test.emit", **{"class": "vrrp.state.master", "data": {"instance": "bad name", "state": "master"}})
    d.call("test.emit", **{"class": "vrrp.state.weird", "data": {"instance": "web", "state": "weird"}})
    d.call("test.emit", **{"class": "vrrp.state.master", "data": {"instance": "web", "priority": "high"}})
    # a case whose class and severity are not label-safe gets "unknown", never the raw text
    d.call("test.emit", **{"class": "list.suspect", "data": {"uuid": "u1", "class": "fault x\n",
                                                             "severity": "Major\"}"}})
    text = scrape(port)
    classes = {m for m in re.findall(r'^svcmgr_ereports_total\{class="([^"]+)"\}', text, re.M)}
    assert len(classes) == 201 and "other" in classes  # 200 classes of their own, the rest together
    assert value(text, "svcmgr_ereports_total", **{"class": "other"}) == 30
    assert value(text, "svcmgr_vrrp_state", instance="web", state="master") == 1
    assert value(text, "svcmgr_vrrp_priority", instance="web") is None
    assert "bad name" not in text and "weird" not in text
    assert value(text, "svcmgr_fault_cases_open", **{"class": "unknown", "severity": "unknown"}) == 1
    assert promtool_check(text).returncode == 0
    assert d.call("metrics")["vrrp_ignored"] == 2
