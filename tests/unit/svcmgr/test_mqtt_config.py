"""``[mqtt]`` and ``[metrics]`` in the node's configuration: good values read, each bad one named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from svcmgr.config import load_config
from svcmgr.metrics import DEFAULT_LISTEN, MetricsConfig
from svcmgr.mqtt_config import MqttConfig
from svcmgr.schema import FieldErrors


def _load(tmp_path, text: str, **flags):
    p = tmp_path / "node.toml"
    p.write_text(text)
    return load_config(str(p), overrides={"mqtt": {"url": flags.get("mqtt")},
                                          "metrics": {"listen": flags.get("metrics")}})


def _errors(tmp_path, text: str, **flags) -> str:
    with pytest.raises(FieldErrors) as e:
        _load(tmp_path, text, **flags)
    return str(e.value)


def test_mqtt_section_read(tmp_path):
    cfg = _load(tmp_path, """
[mqtt]
url = "mqtt://broker.example:1884"
client_id = "node-1"
username = "svc"
password = "secret"
telemetry = ["telemetry/#", "sensors/+/alarm", "telemetry/#"]
outbox_limit = 500
keepalive = "15s"
qos = 0
window = 50
reconnect_min = "200ms"
reconnect_max = "10s"
""")
    m = cfg.section("mqtt")
    assert isinstance(m, MqttConfig)
    assert (m.host, m.port, m.tls) == ("broker.example", 1884, False)
    assert m.telemetry == ("telemetry/#", "sensors/+/alarm")  # duplicates once
    assert (m.outbox_limit, m.keepalive, m.qos, m.window) == (500, 15, 0, 50)
    assert (m.reconnect_min, m.reconnect_max) == (0.2, 10.0)
    assert m.broker == "broker.example:1884"


def test_flag_wins_and_default_ports(tmp_path):
    cfg = _load(tmp_path, '[mqtt]\nurl = "mqtt://a:1"\n', mqtt="mqtts://[::1]")
    m = cfg.section("mqtt")
    assert (m.host, m.port, m.tls, m.broker) == ("::1", 8883, True, "[::1]:8883")
    assert _load(tmp_path, "", mqtt="mqtt://h").section("mqtt").port == 1883


def test_no_broker_means_no_bridge(tmp_path):
    assert _load(tmp_path, "").section("mqtt") is None
    assert _load(tmp_path, '[mqtt]\ntelemetry = ["t/#"]\n').section("mqtt").url == ""


@pytest.mark.parametrize(("text", "words"), [
    ('[mqtt]\nurl = "http://h:1883"', "mqtt.url: 'http://h:1883': the scheme must be mqtt:// or mqtts://"),
    ('[mqtt]\nurl = "mqtt://user:pw@h"', "mqtt.url: 'mqtt://user:pw@h': put credentials in username"),
    ('[mqtt]\nurl = "mqtt://h:99999"', "mqtt.url: 'mqtt://h:99999' is not a valid URL"),
    ('[mqtt]\nurl = "mqtt://h/x"', "mqtt.url: 'mqtt://h/x': a broker URL has no path"),
    ('[mqtt]\nurl = "mqtt://"', "mqtt.url: 'mqtt://': no host"),
    ('[mqtt]\nurl = 1883', "mqtt.url: expected a string, got an integer"),
    ('[mqtt]\nbroker = "h"', "mqtt.broker: unknown field"),
    ('[mqtt]\npassword = "x"', "mqtt.password: needs a username"),
    ('[mqtt]\nclient_id = "a b"', "mqtt.client_id: 'a b' is not a valid name"),
    ('[mqtt]\ntelemetry = "t/#"', "mqtt.telemetry: expected a list of strings"),
    ('[mqtt]\ntelemetry = ["a/#/b"]', "mqtt.telemetry: '#' must be a whole level and the last one"),
    ('[mqtt]\ntelemetry = ["a/b+"]', "mqtt.telemetry: '+' must be a whole level"),
    ('[mqtt]\ntelemetry = [""]', "mqtt.telemetry: a topic filter must not be empty"),
    ('[mqtt]\ntelemetry = ["svcmgr/+/ereport/#"]', "names the bridge's own topics"),
    ('[mqtt]\noutbox_limit = 0', "mqtt.outbox_limit: 0 is out of range 10..100000000"),
    ('[mqtt]\nqos = 2', "mqtt.qos: 2 is out of range 0..1"),
    ('[mqtt]\nkeepalive = "soon"', "mqtt.keepalive: cannot parse duration 'soon'"),
    ('[mqtt]\nca_file = "/nonexistent/ca.pem"', "mqtt.ca_file: /nonexistent/ca.pem: no such file"),
    ('[mqtt]\nurl = "mqtt://h"\nca_file = "/etc/hostname"', "mqtt.ca_file: TLS files need an mqtts:// url"),
    ('[mqtt]\nurl = "mqtts://h"\nca_file = "/etc/hostname"', "mqtt.ca_file: TLS files refused"),
    ("mqtt = 3", "mqtt: expected a table, got an integer"),
    ('[metrics]\nlisten = "9464"', "metrics.listen: '9464': expected host:port"),
    ('[metrics]\nlisten = "127.0.0.1:http"', "port must be a number from 0 (any free port) to 65535"),
    ('[metrics]\nlisten = "127.0.0.1:65536"', "port must be a number from 0 (any free port) to 65535"),
    ('[metrics]\nport = 9464', "metrics.port: unknown field"),
])
def test_bad_values_are_named(tmp_path, text, words):
    err = _errors(tmp_path, text)
    assert str(tmp_path / "node.toml") in err, err
    assert words in err, err


def test_every_problem_is_reported_at_once(tmp_path):
    err = _errors(tmp_path, '[mqtt]\nurl = "ftp://h"\nqos = 5\nnope = 1\n[metrics]\nlisten = "x"\n')
    for field in ("mqtt.url", "mqtt.qos", "mqtt.nope", "metrics.listen"):
        assert field in err


def test_bad_flag_is_named(tmp_path):
    err = _errors(tmp_path, "", mqtt="mqtt//nohost")
    assert "(flags)" in err or "node.toml" in err
    assert "mqtt.url" in err


def test_metrics_section(tmp_path):
    assert _load(tmp_path, "").section("metrics") is None  # default applies in create(): DEFAULT_LISTEN
    assert DEFAULT_LISTEN == "127.0.0.1:9464"
    m = _load(tmp_path, '[metrics]\nlisten = "[::1]:9500"\n').section("metrics")
    assert m == MetricsConfig("[::1]:9500", "::1", 9500)
    assert _load(tmp_path, "", metrics="").section("metrics").listen == ""
    # port 0: any free port, as a socket binds it (the daemon logs the one chosen; the metrics request says it)
    assert _load(tmp_path, "", metrics="127.0.0.1:0").section("metrics") == MetricsConfig("127.0.0.1:0", "127.0.0.1", 0)


def test_daemon_refuses_a_bad_config_with_exit_2(tmp_path):
    p = tmp_path / "node.toml"
    p.write_text('[mqtt]\nurl = "mqtt://h"\nwindow = 0\n')
    r = subprocess.run([sys.executable, "-m", "svcmgr.daemon", "--root", str(tmp_path / "r"), "--no-register",
                        "--config", str(p)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "mqtt.window: 0 is out of range 1..1000" in r.stderr
