"""Bad VRRP input to a real daemon: refused with source, field and reason, and the daemon keeps running.

These daemons run in the host's namespace, so none of them is ever given an
instance keepalived could run: they name a keepalived that does not exist (the
daemon then runs without VRRP) or carry only refused declarations. keepalived
itself runs in the namespace tests (tests/integration/vrrp_netns/).
"""

from __future__ import annotations

import json
import signal
import textwrap

from svcmgr.client import ClientError

NO_KEEPALIVED = '[vrrp]\nkeepalived = "/nonexistent/keepalived"\n'

WEB = """
name = "site/web"
duration = "child"
[methods.start]
exec = ["sleep", "1000"]
"""


def config(daemon, text: str):
    p = daemon.root / "node.toml"
    p.write_text(textwrap.dedent(text))
    return p


def test_injection_in_a_manifest_is_refused_at_import_and_nothing_changes(daemon):
    cfg = config(daemon, NO_KEEPALIVED)
    daemon.start("--config", str(cfg))
    bad = daemon.manifest("evil.toml", WEB + textwrap.dedent("""
        [vrrp.instances.web]
        interface = "eth0\\n}\\nvrrp_script x {\\n script \\"/bin/sh -c id\\""
        router_id = 51
        addresses = ["192.0.2.10/24 dev lo"]
        follows = ["svc:/site/web:default}"]
    """))
    try:
        daemon.import_(bad)
        raise AssertionError("the manifest was imported")
    except ClientError as e:
        text = str(e)
    assert "import refused, nothing was imported" in text
    for field in ("vrrp.instances.web.interface", "vrrp.instances.web.addresses[0]", "vrrp.instances.web.follows[0]"):
        assert f"{bad}: {field}" in text
    assert "keepalived" in text
    assert daemon.call("ping")["instances"] == 0
    r = daemon.cli("svccfg", "import", str(bad))
    assert r.returncode == 1 and "vrrp.instances.web.interface" in r.stderr


def test_bad_vrrp_configuration_stops_the_start_with_file_and_field(daemon):
    cfg = config(daemon, """
        [vrrp.instances."web}"]
        priority = 300
    """)
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "svcmgr.daemon", "--root", str(daemon.root), "--no-register",
                        "--config", str(cfg)], capture_output=True, text=True, env=daemon.env, timeout=30)
    assert r.returncode == 2
    assert f"{cfg}: vrrp.instances.web}}" in r.stderr and "keepalived" in r.stderr


def test_bad_vrrp_configuration_on_reload_keeps_the_daemon_and_its_configuration(daemon):
    cfg = config(daemon, NO_KEEPALIVED)
    daemon.start("--config", str(cfg))
    cfg.write_text(NO_KEEPALIVED + '[vrrp.instances.web]\ninterface = "eth0 }"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    import time

    deadline = time.monotonic() + 10
    while "configuration refused" not in daemon.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "SIGHUP: configuration refused, keeping the running one" in daemon.log_text()
    assert "vrrp.instances.web.interface" in daemon.log_text()
    assert daemon.call("vrrp.show")["available"] is False  # still the old configuration, still answering


def test_without_keepalived_the_daemon_runs_and_vrrpadm_says_so_in_one_line(daemon):
    cfg = config(daemon, NO_KEEPALIVED + """
        [vrrp.instances.web]
        interface = "eth0"
        router_id = 51
        addresses = ["192.0.2.10/24"]
    """)
    daemon.manifest("web.toml", WEB)
    daemon.start("--config", str(cfg))
    daemon.wait_state("svc:/site/web:default", "online")
    for args in (["show-router"], ["show-router", "--json"], ["show-config"]):
        r = daemon.cli("vrrp.cli.vrrpadm", *args)
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith("vrrpadm: VRRP is not available on node ") and "keepalived is not installed" \
            in r.stderr
    assert "VRRP instance(s) declared, but keepalived is not installed" in daemon.log_text()
    assert "svc:/network/vrrp:default" not in {i["fmri"] for i in daemon.call("list")}


def test_vrrpadm_bad_usage_and_bad_requests(daemon):
    cfg = config(daemon, NO_KEEPALIVED)
    daemon.start("--config", str(cfg))
    r = daemon.cli("vrrp.cli.vrrpadm")
    assert r.returncode == 2 and "a subcommand is required" in r.stderr
    r = daemon.cli("vrrp.cli.vrrpadm", "create-router", "x")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = daemon.cli("vrrp.cli.vrrpadm", "show-router", "--bogus")
    assert r.returncode == 2
    for req, why in ((dict(names="web"), "argument 'names' must be list"),
                     (dict(names=[1]), "must be a list of strings")):
        try:
            daemon.call("vrrp.show", **req)
            raise AssertionError("accepted")
        except ClientError as e:
            assert e.code == 2 and why in str(e)
    try:
        daemon.call("vrrp.config", rejected="yes")
        raise AssertionError("accepted")
    except ClientError as e:
        assert e.code == 2
    assert json.loads(json.dumps(daemon.call("ping")))["pid"] == daemon.pid
