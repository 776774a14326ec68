"""The VRRP declaration: valid values in normal form, and every bad value refused with source, field and reason.

Injection attempts are the heart of it: nothing a manifest or the node's
configuration holds may reach keepalived.conf as syntax.
"""

from __future__ import annotations

import textwrap

import pytest

from svcmgr.config import load_config
from svcmgr.loader import load_bytes
from svcmgr.manifest import ManifestErrors
from svcmgr.schema import FieldErrors
from vrrp.config import Source, VrrpConfig, merge
from vrrp.model import Declaration, Follow, track_name

BASE = """
name = "site/web"
[methods.start]
exec = ["sleep", "1000"]
"""


def manifest(vrrp: str, source: str = "/m/web.toml"):
    return load_bytes((BASE + textwrap.dedent(vrrp)).encode(), source)[0]


def refused(vrrp: str) -> str:
    with pytest.raises(ManifestErrors) as e:
        manifest(vrrp)
    return str(e.value)


GOOD = """
[vrrp.instances.web]
interface = "eth0"
router_id = 51
addresses = ["192.0.2.10/255.255.255.0", "2001:db8:0:0::10/64"]
"""


def test_valid_declaration_is_normalised():
    spec = manifest("""
        [vrrp.instances.web]
        interface = "eth0"
        router_id = 51
        addresses = ["192.0.2.10/255.255.255.0", "192.0.2.11/24"]
        advert_interval = "250ms"
        priority = 120
        preempt_delay = "2.5s"
        follows = ["site/web:default", { fmri = "svc://localhost/site/db:main", weight = -40 }]
    """)
    decl = spec.extensions["vrrp"]
    assert isinstance(decl, Declaration)
    web = decl.tables["web"]
    assert [str(a) for a in web["addresses"]] == ["192.0.2.10/24", "192.0.2.11/24"]
    assert web["advert_interval"] == 0.25 and web["priority"] == 120 and web["preempt_delay"] == 2.5
    assert web["follows"] == (Follow("svc:/site/web:default", 0), Follow("svc:/site/db:main", -40))


def test_ipv6_addresses_are_compressed():
    spec = manifest("""
        [vrrp.instances.v6]
        interface = "eth0"
        router_id = 7
        addresses = ["2001:DB8:0:0:0:0:0:10/64"]
    """)
    assert [str(a) for a in spec.extensions["vrrp"].tables["v6"]["addresses"]] == ["2001:db8::10/64"]


def test_mixed_families_are_refused():
    assert "mixes IPv4 and IPv6" in refused(GOOD)


@pytest.mark.parametrize("bad, what", [
    ('web\nnotify_master "/bin/sh -c id"', "a newline"),
    ("web{", "'{'"),
    ("web}", "'}'"),
    ('web"', "a double quote"),
    ("web'", "a quote"),
    ("web#x", "'#'"),
    ("web!x", "'!'"),
    ("web$X", "'$'"),
    ("@web", "'@'"),
    ("web x", "a space"),
    ("web\\", "a backslash"),
])
def test_injection_in_instance_name_is_refused(bad, what):
    import json

    text = refused(f"""
        [vrrp.instances.{json.dumps(bad)}]
        interface = "eth0"
        router_id = 51
        addresses = ["192.0.2.10/24"]
    """)
    assert "/m/web.toml" in text and "vrrp.instances." in text
    assert what in text and "keepalived" in text


@pytest.mark.parametrize("bad", ["eth0\n}\nvrrp_script x {", "eth0\n", "eth0 }", "eth0#", "eth0!", "$IF",
                                 "@n1 eth0", 'eth"0', "eth0{"])
def test_injection_in_interface_is_refused(bad):
    import json

    text = refused(f"""
        [vrrp.instances.web]
        interface = {json.dumps(bad)}
        router_id = 51
        addresses = ["192.0.2.10/24"]
    """)
    assert "vrrp.instances.web.interface" in text and "keepalived" in text


def test_interface_pattern_and_length():
    assert "not a valid interface name" in refused("""
        [vrrp.instances.web]
        interface = "a-very-long-interface-name"
        router_id = 51
        addresses = ["192.0.2.10/24"]
    """)
    assert "not a valid interface name" in refused("""
        [vrrp.instances.web]
        interface = "eth0/1"
        router_id = 51
        addresses = ["192.0.2.10/24"]
    """)


@pytest.mark.parametrize("address, why", [
    ("192.0.2.10/24 dev eth1", "keepalived"),          # a space: would add an option
    ("fe80::1%x}y/64", "keepalived"),                   # ipaddress accepts scope ids: refused before it
    ("fe80::1%eth0/64", "scoped addresses"),
    ("192.0.2.10", "needs a prefix length"),
    ("192.0.2.300/24", "not an IP address"),
    ("224.0.0.18/4", "multicast"),
    ("127.0.0.5/8", "loopback"),
    ("0.0.0.0/0", "unspecified"),
    ("192.0.2.10/24\n}", "keepalived"),
])
def test_bad_addresses_are_refused(address, why):
    import json

    text = refused(f"""
        [vrrp.instances.web]
        interface = "eth0"
        router_id = 51
        addresses = [{json.dumps(address)}]
    """)
    assert "vrrp.instances.web.addresses[0]" in text and why in text


@pytest.mark.parametrize("follow, why", [
    ('"svc:/site/web:default\\n}"', "keepalived"),
    ('"svc:/site/web:def{ault"', "keepalived"),
    ('"svc:/site/web"', "an instance is required"),
    ('{ fmri = "svc:/site/web:default", weight = 5 }', "out of range"),
    ('{ fmri = "svc:/site/web:default", weight = -255 }', "out of range"),
    ('{ fmri = "svc:/site/web:default", notify = "x" }', "unknown field"),
    ("42", "expected an FMRI or a table"),
])
def test_bad_follows_are_refused(follow, why):
    text = refused(f"""
        [vrrp.instances.web]
        interface = "eth0"
        router_id = 51
        addresses = ["192.0.2.10/24"]
        follows = [{follow}]
    """)
    assert "vrrp.instances.web.follows[0]" in text and why in text


@pytest.mark.parametrize("lines, field, why", [
    ('priority = 0', "priority", "out of range 1..254"),
    ('priority = 255', "priority", "out of range 1..254"),
    ('version = 4', "version", "must be 2 or 3"),
    ('version = 2\nadvert_interval = "500ms"', "advert_interval", "whole seconds"),
    ('version = 2\nadvert_interval = 256', "advert_interval", "whole seconds"),
    ('advert_interval = "5ms"', "advert_interval", "steps of 10ms"),
    ('advert_interval = "15ms"', "advert_interval", "steps of 10ms"),
    ('advert_interval = "41s"', "advert_interval", "steps of 10ms"),
    ('advert_interval = "soon"', "advert_interval", "cannot parse duration"),
    ('advert_interval = 0', "advert_interval", "greater than zero"),
    ('preempt = false\npreempt_delay = "5s"', "preempt_delay", "no meaning"),
    ('preempt_delay = "1001s"', "preempt_delay", "out of range"),
    ('preempt = "yes"', "preempt", "expected true or false"),
    ('unicast_src = "192.0.2.1"\nunicast_peers = ["192.0.2.1"]', "unicast_peers", "no peer other"),
    ('unicast_peers = ["2001:db8::2"]', "unicast_peers", "must be IPv4"),
    ('unicast_peers = ["192.0.2.2/24"]', "unicast_peers[0]", "without a prefix"),
    ('unicast_peers = ["192.0.2.2", "192.0.2.2"]', "unicast_peers[1]", "listed twice"),
    ('notify_master = "/bin/sh"', "notify_master", "unknown field"),
])
def test_bad_values_are_refused(lines, field, why):
    text = refused(f"""
        [vrrp.instances.web]
        interface = "eth0"
        router_id = 51
        addresses = ["192.0.2.10/24"]
        {lines}
    """)
    assert f"vrrp.instances.web.{field}" in text and why in text, text


@pytest.mark.parametrize("value, why", [("0", "out of range 1..255"), ("256", "out of range 1..255"),
                                        ('"51"', "expected an integer"), ("true", "expected an integer")])
def test_bad_router_id_is_refused(value, why):
    text = refused(f"""
        [vrrp.instances.web]
        interface = "eth0"
        router_id = {value}
        addresses = ["192.0.2.10/24"]
    """)
    assert "vrrp.instances.web.router_id" in text and why in text


def test_version_2_with_ipv6_is_refused():
    assert "version 2 carries IPv4 only" in refused("""
        [vrrp.instances.web]
        interface = "eth0"
        router_id = 51
        version = 2
        addresses = ["2001:db8::10/64"]
    """)


def test_every_error_of_a_file_is_reported_at_once():
    text = refused("""
        [vrrp.instances.web]
        interface = "eth0}"
        router_id = 300
        addresses = ["192.0.2.10"]
    """)
    assert "interface" in text and "router_id" in text and "addresses[0]" in text


def test_manifest_without_instances_is_refused():
    assert "declares no instance" in refused("[vrrp]\n")


def test_manifest_needs_router_id_and_addresses_but_not_interface():
    spec = manifest("""
        [vrrp.instances.web]
        router_id = 51
        addresses = ["192.0.2.10/24"]
    """)
    assert "interface" not in spec.extensions["vrrp"].tables["web"]
    assert "router_id: is required" in refused("""
        [vrrp.instances.web]
        addresses = ["192.0.2.10/24"]
    """)


def test_declaration_round_trips_through_the_repository_form():
    import json

    from svcmgr.manifest import parse_service

    spec = manifest(GOOD.replace(', "2001:db8:0:0::10/64"', ""))
    stored = json.loads(json.dumps(spec.to_dict()))  # as the repository keeps it
    assert parse_service(stored, "/m/web.toml").extensions["vrrp"] == spec.extensions["vrrp"]


def test_track_names_are_plain_tokens_and_unique():
    a = track_name("svc:/site/web-x:default")
    b = track_name("svc:/site/web_x:default")
    assert a != b
    for n in (a, b):
        assert n.replace("_", "").isalnum()


# ------------------------------------------------------------------ the node's configuration


def node_config(tmp_path, text: str):
    p = tmp_path / "node.toml"
    p.write_text(textwrap.dedent(text))
    return load_config(str(p)), str(p)


def test_node_config_may_set_only_what_it_changes(tmp_path):
    cfg, _ = node_config(tmp_path, """
        [vrrp.instances.web]
        priority = 150
        interface = "eth1"
    """)
    v = cfg.section("vrrp")
    assert isinstance(v, VrrpConfig)
    assert dict(v.instances["web"]) == {"priority": 150, "interface": "eth1"}


@pytest.mark.parametrize("text, field", [
    ('[vrrp.instances.web]\npriority = 300', "vrrp.instances.web.priority"),
    ('[vrrp.instances.web]\ninterface = "eth0\\n}"', "vrrp.instances.web.interface"),
    ('[vrrp.instances."we b"]\npriority = 10', "vrrp.instances.we b"),
    ('[vrrp]\nkeepalived = "/usr/sbin/keepalived; id"', "vrrp.keepalived"),
    ('[vrrp]\nmanifest = "relative.toml"', "vrrp.manifest"),
    ('[vrrp]\nbogus = 1', "vrrp.bogus"),
    ('[vrrp]\ncrash_hold = "11m"', "vrrp.crash_hold"),
    ('[vrrp]\ncrash_hold = "later"', "vrrp.crash_hold"),
])
def test_bad_node_config_is_refused_with_file_and_field(tmp_path, text, field):
    p = tmp_path / "node.toml"
    p.write_text(text)
    with pytest.raises(FieldErrors) as e:
        load_config(str(p))
    assert str(p) in str(e.value) and field in str(e.value)


def test_merge_node_values_win_and_follows_default_to_the_declaring_service(tmp_path):
    spec = manifest("""
        [vrrp.instances.web]
        interface = "eth0"
        router_id = 51
        addresses = ["192.0.2.10/24"]
        priority = 100
    """)
    cfg, _path = node_config(tmp_path, '[vrrp.instances.web]\npriority = 150\ninterface = "eth1"\n')
    src = Source("svc:/site/web", ("svc:/site/web:default",), spec.extensions["vrrp"])
    instances, errors = merge(cfg.section("vrrp"), [src])
    assert errors == []
    (web,) = instances
    assert web.priority == 150 and web.interface == "eth1" and web.router_id == 51
    assert web.follows == (Follow("svc:/site/web:default", 0),)
    assert web.origin == ("svc:/site/web", "node configuration")


def test_merge_reports_incomplete_node_instances_and_conflicts(tmp_path):
    a = manifest('[vrrp.instances.web]\ninterface = "eth0"\nrouter_id = 51\naddresses = ["192.0.2.10/24"]\n',
                 "/m/a.toml")
    b = manifest('[vrrp.instances.web]\ninterface = "eth0"\nrouter_id = 52\naddresses = ["192.0.2.11/24"]\n',
                 "/m/b.toml")
    cfg, path = node_config(tmp_path, """
        [vrrp.instances.lonely]
        priority = 150
        [vrrp.instances.api]
        interface = "eth0"
        router_id = 51
        addresses = ["192.0.2.10/24"]
    """)
    _, errors = merge(cfg.section("vrrp"), [Source("svc:/site/a", ("svc:/site/a:default",), a.extensions["vrrp"]),
                                            Source("svc:/site/b", ("svc:/site/b:default",), b.extensions["vrrp"])])
    text = "\n".join(map(str, errors))
    assert "/m/b.toml: vrrp.instances.web: is also declared by svc:/site/a" in text
    assert f"{path}: vrrp.instances.lonely.interface: is required" in text
    assert "vrrp.instances.web.router_id: 51 on eth0 (inet) is also used by instance api" in text
    assert "192.0.2.10 is also an address of instance api" in text


def test_merge_leaves_this_nodes_own_address_out_of_shared_peers(tmp_path):
    spec = manifest("""
        [vrrp.instances.web]
        interface = "eth0"
        router_id = 51
        addresses = ["192.0.2.10/24"]
        unicast_peers = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    """)
    cfg, _ = node_config(tmp_path, '[vrrp.instances.web]\nunicast_src = "192.0.2.2"\n')
    (web,), errors = merge(cfg.section("vrrp"), [Source("svc:/site/web", (), spec.extensions["vrrp"])])
    assert errors == []
    assert [str(p) for p in web.unicast_peers] == ["192.0.2.1", "192.0.2.3"] and web.mode == "unicast"


def test_merged_instance_is_checked_in_full(tmp_path):
    spec = manifest("""
        [vrrp.instances.web]
        interface = "eth0"
        router_id = 51
        addresses = ["192.0.2.10/24"]
        unicast_src = "192.0.2.1"
        advert_interval = "500ms"
    """)
    cfg, _path = node_config(tmp_path, '[vrrp.instances.web]\nversion = 2\n')
    _, errors = merge(cfg.section("vrrp"), [Source("svc:/site/web", (), spec.extensions["vrrp"])])
    text = "\n".join(map(str, errors))
    assert "vrrp.instances.web.unicast_src: needs unicast_peers" in text
    assert "vrrp.instances.web.advert_interval: 500ms: VRRP version 2 takes whole seconds" in text
