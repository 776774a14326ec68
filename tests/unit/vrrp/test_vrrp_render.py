"""Rendering keepalived.conf: golden output, a second safety net against injection, and keepalived's own check.

The golden file holds the exact text for three representative instances
(multicast v3 with weighted follows, unicast v2 with nopreempt, IPv6 with a
preempt delay); set SVCMGR_UPDATE_GOLDEN=1 to rewrite it after a deliberate change.
``keepalived --config-test`` runs on the rendered text inside a network namespace
this module creates (with the interfaces the configuration names), as the agent
runs it where the interfaces exist.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from vrrp import keepalived as ka
from vrrp.model import Follow, VrrpInstance, track_name

GOLDEN = Path(__file__).parent / "golden" / "keepalived.conf"
LAYOUT = ka.Layout.for_paths("/var/lib/svcmgr", "/run/svcmgr")


def ip(text: str):
    return ipaddress.ip_interface(text) if "/" in text else ipaddress.ip_address(text)


def sample() -> list[VrrpInstance]:
    return [
        VrrpInstance("web", "eth0", 51, (ip("192.0.2.10/24"), ip("192.0.2.11/24")), version=3,
                     advert_interval=0.1, priority=150,
                     follows=(Follow("svc:/site/web:default", 0), Follow("svc:/site/db:default", -60))),
        VrrpInstance("api", "eth1", 52, (ip("198.51.100.7/24"),), version=2, advert_interval=1.0, priority=90,
                     preempt=False, unicast_src=ip("198.51.100.2"),
                     unicast_peers=(ip("198.51.100.3"), ip("198.51.100.4")),
                     follows=(Follow("svc:/site/web:default", -20),)),
        VrrpInstance("v6", "eth0", 53, (ip("2001:db8::10/64"),), version=3, advert_interval=2.5, priority=100,
                     preempt_delay=4.5),
    ]


def test_render_matches_golden_output():
    text = ka.render(sample(), node="node1", layout=LAYOUT)
    if os.environ.get("SVCMGR_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_render_shares_one_track_file_per_followed_service():
    text = ka.render(sample(), node="node1", layout=LAYOUT)
    web = track_name("svc:/site/web:default")
    assert text.count(f"track_file {web} {{") == 1
    assert f"{web} weight 0" in text and f"{web} weight -20" in text
    assert f'file "{LAYOUT.track_file("svc:/site/web:default")}"' in text


def test_every_instance_follows_the_crash_hold_with_weight_0():
    text = ka.render(sample(), node="node1", layout=LAYOUT)
    assert f'track_file {ka.HOLD} {{\n    file "{LAYOUT.hold}"\n    init_file 0\n}}' in text
    assert text.count(f"        {ka.HOLD} weight 0") == 3


def test_render_without_instances_is_a_global_section_only():
    text = ka.render([], node="node1", layout=LAYOUT)
    assert "vrrp_instance" not in text and "vrrp_notify_fifo" in text


@pytest.mark.parametrize("field, value", [
    ("interface", "eth0\n}\nvrrp_script evil {\n script \"/bin/sh -c id\"\n}"),
    ("interface", "eth0 #"),
    ("name", 'web"'),
    ("name", "web{"),
])
def test_render_refuses_a_value_that_slipped_past_validation(field, value):
    """The model refuses these first; this is the second net: the template prints plain tokens only."""
    import dataclasses

    bad = dataclasses.replace(sample()[0], **{field: value})
    with pytest.raises(ka.RenderError, match="refusing to render"):
        ka.render([bad], node="node1", layout=LAYOUT)


def test_render_refuses_a_state_folder_keepalived_cannot_read_safely():
    with pytest.raises(ka.RenderError, match="refusing to render"):
        ka.render(sample(), node="node1", layout=ka.Layout.for_paths("/srv/my state", "/run/x"))
    with pytest.raises(ka.RenderError):
        ka.render(sample(), node="node1", layout=ka.Layout.for_paths('/srv/a"b', "/run/x"))


@pytest.mark.parametrize("seconds, text", [(1.0, "1"), (0.1, "0.1"), (0.25, "0.25"), (40.95, "40.95"), (3.0, "3"),
                                           (0.01, "0.01"), (2.5, "2.5")])
def test_advert_interval_is_written_as_keepalived_reads_it(seconds, text):
    assert ka._interval(seconds) == text


def test_write_atomic_replaces_in_one_rename(tmp_path):
    p = tmp_path / "f"
    p.write_text("old")
    ino = p.stat().st_ino
    ka.write_atomic(str(p), "new\n")
    assert p.read_text() == "new\n" and p.stat().st_ino != ino
    assert [x.name for x in tmp_path.iterdir()] == ["f"]


# ------------------------------------------------------------------ keepalived --config-test


@pytest.fixture(scope="module")
def netns():
    """A namespace with eth0 and eth1 (veth ends), where keepalived's check finds the interfaces."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    binary = ka.find_keepalived()
    if binary is None:
        pytest.skip("keepalived not installed")
    name = f"svt{os.getpid()}{uuid.uuid4().hex[:4]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for i in (0, 1):
            subprocess.run(["ip", "-n", name, "link", "add", f"eth{i}", "type", "veth", "peer", "name", f"x{i}"],
                           check=True)
            subprocess.run(["ip", "-n", name, "link", "set", f"eth{i}", "up"], check=True)
        yield name, binary
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def config_test(netns, text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    name, binary = netns
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text)
    return subprocess.run(["ip", "netns", "exec", name, *ka.check_argv(binary, str(conf))], capture_output=True,
                          text=True, timeout=30, check=False)


def layout_in(tmp_path: Path) -> ka.Layout:
    lay = ka.Layout.for_paths(str(tmp_path / "lib"), str(tmp_path / "run"))
    lay.make()
    return lay


def test_keepalived_accepts_the_rendered_configuration(netns, tmp_path):
    r = config_test(netns, ka.render(sample(), node="node1", layout=layout_in(tmp_path)), tmp_path)
    assert r.returncode == 0, r.stderr


def test_keepalived_accepts_an_empty_configuration(netns, tmp_path):
    r = config_test(netns, ka.render([], node="node1", layout=layout_in(tmp_path)), tmp_path)
    assert r.returncode == 0, r.stderr


def test_keepalived_check_refuses_an_interface_that_does_not_exist(netns, tmp_path):
    """What makes a validated configuration fail on a node: the agent relies on this check."""
    import dataclasses

    inst = dataclasses.replace(sample()[0], interface="eth9")
    r = config_test(netns, ka.render([inst], node="node1", layout=layout_in(tmp_path)), tmp_path)
    assert r.returncode != 0 and "eth9" in r.stdout + r.stderr


def test_keepalived_check_refuses_what_an_injection_would_have_written(netns, tmp_path):
    """Had a brace got through, keepalived would have read a directive: the check sees the broken file."""
    text = ka.render(sample()[:1], node="node1", layout=layout_in(tmp_path))
    r = config_test(netns, text.replace("advert_int 0.1", "advert_int 0.1 }\n}\nvrrp_instance x {"), tmp_path)
    assert r.returncode != 0


def test_check_of_a_missing_file_fails(netns, tmp_path):
    name, binary = netns
    r = subprocess.run(["ip", "netns", "exec", name, *ka.check_argv(binary, str(tmp_path / "absent.conf"))],
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode != 0
