"""A broker that wants a password, TLS and a client certificate: the bridge and the fleet view use
the ``[mqtt]`` credentials and TLS files; wrong credentials are reported and survived."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from export_helpers import SLEEP_MANIFEST, make_tls_files, mqtt_status, start_node, wait_for


def _secure_broker(mosquitto, files: dict):
    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("openssl or mosquitto_passwd not installed")

    def setup(folder):
        files.update(make_tls_files(folder))
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(folder / "pw"), "svcmgr", "s3cret"], check=True,
                       capture_output=True, timeout=30)
        return (f"password_file {folder / 'pw'}\ncafile {files['ca.crt']}\ncertfile {files['server.crt']}\n"
                f"keyfile {files['server.key']}\nrequire_certificate true\n")

    return mosquitto(anonymous=False, setup=setup)


def test_tls_with_password_and_client_certificate(svcmgrd, mosquitto):
    files: dict = {}
    broker = _secure_broker(mosquitto, files)
    d = svcmgrd()
    d.manifest("a.toml", SLEEP_MANIFEST.format(name="site/a"))
    cfg = d.root / "node.toml"
    cfg.write_text(f"""
[mqtt]
url = "mqtts://localhost:{broker.port}"
username = "svcmgr"
password = "s3cret"
ca_file = "{files['ca.crt']}"
cert_file = "{files['client.crt']}"
key_file = "{files['client.key']}"
""")
    start_node(d, "--node", "secure", "--metrics", "", "--config", str(cfg))
    d.wait_state("svc:/site/a:default", "online")
    wait_for(lambda: mqtt_status(d)["connected"] and mqtt_status(d)["outbox"]["depth"] == 0, 20, "connected")
    # the fleet view reads the same credentials and TLS files from the configuration
    r = d.cli("svcs", "--fleet", "--config", str(cfg), "-H", check=True)
    assert [line.split()[0::3] for line in r.stdout.splitlines()] == [["secure", "svc:/site/a:default"]]
    # and without them the broker refuses the fleet view
    r = d.cli("svcs", "--fleet", "--mqtt", f"mqtt://127.0.0.1:{broker.port}")
    assert r.returncode == 1 and "cannot read from the broker" in r.stderr


def test_wrong_password_is_reported_and_survived(svcmgrd, mosquitto):
    files: dict = {}
    broker = _secure_broker(mosquitto, files)
    d = svcmgrd()
    cfg = d.root / "node.toml"
    cfg.write_text(f"""
[mqtt]
url = "mqtts://localhost:{broker.port}"
username = "svcmgr"
password = "wrong"
ca_file = "{files['ca.crt']}"
cert_file = "{files['client.crt']}"
key_file = "{files['client.key']}"
reconnect_max = "1s"
""")
    start_node(d, "--node", "denied", "--metrics", "", "--config", str(cfg))
    wait_for(lambda: mqtt_status(d)["last_error"], 20, "the refusal")
    st = mqtt_status(d)
    assert not st["connected"] and "authori" in st["last_error"].lower(), st
    d.call("test.emit", **{"class": "ereport.test.kept", "count": 3})
    assert mqtt_status(d)["outbox"]["depth"] >= 3  # kept for when the credentials are fixed
    assert d.call("ping")["node"] == "denied"


def test_untrusted_server_certificate_is_refused(svcmgrd, mosquitto, tmp_path):
    files: dict = {}
    broker = _secure_broker(mosquitto, files)
    other = make_tls_files(tmp_path)  # a CA that did not sign the broker's certificate
    d = svcmgrd()
    cfg = d.root / "node.toml"
    cfg.write_text(f"""
[mqtt]
url = "mqtts://localhost:{broker.port}"
username = "svcmgr"
password = "s3cret"
ca_file = "{other['ca.crt']}"
cert_file = "{files['client.crt']}"
key_file = "{files['client.key']}"
reconnect_max = "1s"
""")
    start_node(d, "--node", "wary", "--metrics", "", "--config", str(cfg))
    wait_for(lambda: mqtt_status(d)["last_error"], 20, "the refusal")
    assert "certificate verify failed" in mqtt_status(d)["last_error"]
    assert not mqtt_status(d)["connected"]
