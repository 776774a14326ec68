"""The load-balancing declaration: valid values in normal form, and every hostile value refused at import
with the file, the field and the reason. Nothing a manifest, the node's configuration or a backend's
property holds may reach haproxy.cfg (or keepalived's LVS rendering) as syntax."""

from __future__ import annotations

import json
import textwrap

import pytest

from lb import haproxy as hp
from lb import lvs
from lb.config import LbConfig, Source, merge
from lb.model import Backend, parse_address, server_name
from svcmgr.config import load_config
from svcmgr.loader import load_bytes
from svcmgr.manifest import ManifestErrors
from svcmgr.schema import FieldErrors

BASE = """
name = "site/app"
[methods.start]
exec = ["sleep", "1000"]
[instances.a.properties.lb]
address = "127.0.0.1:8081"
[instances.b.properties.lb]
address = "[2001:db8::2]:8082"
[instances.c.properties.lb]
address = "backend-c.example.com:8083"
"""

GOOD = """
[lb.frontends.web]
bind = "192.0.2.10:80"
mode = "http"
balance = "leastconn"
idempotent = true
drain_timeout = "10s"
slowstart = "2s"
check = "http"
check_path = "/health"
check_interval = "500ms"
rise = 3
fall = 2
timeout_server = "1m"
"""


def manifest(lb: str, source: str = "/m/app.toml"):
    return load_bytes((BASE + textwrap.dedent(lb)).encode(), source)[0]


def refused(lb: str) -> str:
    with pytest.raises(ManifestErrors) as e:
        manifest(lb)
    return str(e.value)


def props(spec):
    from svcmgr.spec import resolve_instance

    table = {str(spec.fmri.with_instance(n)): resolve_instance(spec, n) for n in spec.instances}

    def read(fmri, ref):
        cfg = table.get(fmri)
        p = cfg.properties.get(ref[0], {}).get(ref[1]) if cfg else None
        return p.values[0] if p and p.values else None

    return read


def plan(spec, node: LbConfig | None = None):
    src = Source(str(spec.fmri), tuple(str(f) for f in spec.instance_fmris()), spec.extensions["lb"])
    return merge(node, [src], props(spec))


def test_a_good_declaration_in_normal_form_with_the_manifest_instances_as_backends():
    spec = manifest(GOOD)
    (fe,), errors = plan(spec)
    assert errors == []
    assert fe.listen == "192.0.2.10:80" and fe.balance == "leastconn" and fe.idempotent
    assert fe.drain_timeout == 10.0 and fe.slowstart == 2.0 and fe.check_interval == 0.5
    assert [b.fmri for b in fe.backends] == ["svc:/site/app:a", "svc:/site/app:b", "svc:/site/app:c"]
    assert [(s.name, s.address) for s in fe.servers] == [
        ("site.app:a", "127.0.0.1:8081"), ("site.app:b", "[2001:db8::2]:8082"),
        ("site.app:c", "backend-c.example.com:8083")]
    assert fe.to_dict()["servers"][0]["fmri"] == "svc:/site/app:a"
    json.dumps(fe.to_dict())


@pytest.mark.parametrize("line, field, words", [
    # bind
    ('bind = "192.0.2.10:80\\n    stats socket /tmp/s level admin"', "bind", "white space"),
    ('bind = "192.0.2.10:80 #"', "bind", "white space"),
    ('bind = "192.0.2.10:80#x"', "bind", "'#'"),
    ('bind = "www.example.com:80"', "bind", "not an IP address"),
    ('bind = "192.0.2.10:0"', "bind", "port"),
    ('bind = "192.0.2.10:65536"', "bind", "port"),
    ('bind = "2001:db8::1:80"', "bind", "brackets"),
    ('bind = "224.0.0.1:80"', "bind", "multicast"),
    ('bind = 80', "bind", "expected a string"),
    ('bind = "${HOME}:80"', "bind", "'$'"),
    # mode, balance, idempotent, check
    ('mode = "http\\nbackend evil"', "mode", "must be one of"),
    ('mode = "udp"', "mode", "must be one of"),
    ('balance = "roundrobin\\n    server x 1.2.3.4:1"', "balance", "must be one of"),
    ('balance = "uri"', "balance", "must be one of"),
    ('idempotent = "yes"', "idempotent", "true or false"),
    ('check = "ssh"', "check", "must be one of"),
    # backends
    ('backends = ["svc:/site/app:a\\n    server evil 6.6.6.6:80"]', "backends[0]", "white space"),
    ('backends = "svc:/site/app:a"', "backends", "non-empty list"),
    ('backends = []', "backends", "non-empty list"),
    ('backends = ["svc:/site/app"]', "backends[0]", "instance"),
    ('backends = ["svc:/site/app:a", "svc:/site/app:a"]', "backends[1]", "twice"),
    ('backends = [{ fmri = "svc:/site/app:a", weight = 999 }]', "backends[0].weight", "out of range"),
    ('backends = [{ fmri = "svc:/site/app:a", check = "x" }]', "backends[0].check", "unknown field"),
    ('backends = [7]', "backends[0]", "expected an FMRI"),
    ("backends = [\"svc:/site/app:a'\"]", "backends[0]", "a quote"),
    # address
    ('address = "lb/address extra"', "address", "white space"),
    ('address = "lb"', "address", "not a valid property"),
    ('address = "../etc/passwd"', "address", "not a valid property"),
    ('address = 5', "address", "expected a string"),
    # durations and counts
    ('drain_timeout = "-1s"', "drain_timeout", ""),
    ('drain_timeout = "2h"', "drain_timeout", "out of range"),
    ('slowstart = "5000s"', "slowstart", "out of range"),
    ('check_interval = "0s"', "check_interval", "out of range"),
    ('timeout_server = "100d"', "timeout_server", "out of range"),
    ('timeout_client = "1s\\n    option evil"', "timeout_client", ""),
    ('rise = 0', "rise", "out of range"),
    ('fall = "2"', "fall", "expected an integer"),
    # check_path
    ('check_path = "/ok\\r\\nX-Evil: 1"', "check_path", "white space"),
    ('check_path = "/a b"', "check_path", "white space"),
    ('check_path = "health"', "check_path", "not a valid HTTP path"),
    ('check_path = "/$HOME"', "check_path", "'$'"),
    ('check_path = "/\\"x"', "check_path", "double quote"),
    ('check_path = "/a\\\\b"', "check_path", "backslash"),
    # anything else
    ('extra = "option external-check"', "extra", "unknown field"),
])
def test_hostile_values_in_every_field_are_refused_at_import(line, field, words):
    text = refused(f'[lb.frontends.web]\nbind = "192.0.2.10:80"\n{line}\n' if not line.startswith("bind")
                   else f"[lb.frontends.web]\n{line}\n")
    assert f"/m/app.toml: lb.frontends.web.{field}" in text, text
    assert words in text, text


@pytest.mark.parametrize("name", ["web app", "web\\n", "1web", "w" * 40, "web{", "web#"])
def test_hostile_frontend_names_are_refused(name):
    text = refused(f'[lb.frontends."{name}"]\nbind = "192.0.2.10:80"\n')
    assert "lb.frontends" in text and ("refused" in text or "not a valid frontend name" in text), text


def test_rules_between_fields():
    assert "needs mode = \"http\"" in refused('[lb.frontends.web]\nbind = "192.0.2.10:80"\nmode = "tcp"\n'
                                               'idempotent = true\n')
    assert "needs mode = \"http\"" in refused('[lb.frontends.web]\nbind = "192.0.2.10:80"\nmode = "tcp"\n'
                                               'check = "http"\n')
    assert "declares no frontend" in refused("[lb]\n")


@pytest.mark.parametrize("value, words", [
    ("1.2.3.4:80\n    server evil 6.6.6.6:80", "white space"),
    ("host name:80", "white space"),
    ("0.0.0.0:80", "unspecified"),
    ("10.0.0.1:0", "port"),
    ("10.0.0.1", "host:port"),
    ("[10.0.0.1]:80", "IPv6"),
    ("a_b.example:80", "neither"),
    ("$(id):80", "'$'"),
    ("fe80::1%eth0:80", "brackets"),
    ("999.1.1.1:80", "neither"),
    (123, "expected a string"),
])
def test_hostile_backend_addresses_in_properties_are_refused(value, words):
    with pytest.raises(ValueError) as e:
        parse_address(value)
    assert words in str(e.value)
    spec = manifest(GOOD.replace("[lb.frontends.web]", "[instances.a.properties.lb2]\n[lb.frontends.web]"))
    bad = {"svc:/site/app:a": value}

    def read(fmri, ref):
        return bad.get(fmri, props(spec)(fmri, ref))

    src = Source(str(spec.fmri), tuple(str(f) for f in spec.instance_fmris()), spec.extensions["lb"])
    frontends, errors = merge(None, [src], read)
    assert frontends == [] and len(errors) == 1
    assert str(errors[0]).startswith("svc:/site/app:a property lb/address: backend of frontend web")


def test_a_missing_address_property_names_the_instance_and_the_property():
    spec = manifest('[lb.frontends.web]\nbind = "192.0.2.10:80"\naddress = "cfg/listen"\n')
    frontends, errors = plan(spec)
    assert frontends == [] and len(errors) == 3
    assert "svc:/site/app:a property cfg/listen: is not set" in str(errors[0])


def test_the_node_overrides_a_manifest_and_is_validated_the_same_way(tmp_path):
    f = tmp_path / "node.toml"
    f.write_text('[lb]\nhaproxy = "/usr/sbin/haproxy"\n[lb.frontends.web]\nbind = "198.51.100.7:8080"\n'
                 'backends = ["svc:/site/app:a", { fmri = "svc:/site/app:b", weight = 0 }]\n')
    node = load_config(str(f)).section("lb")
    (fe,), errors = plan(manifest(GOOD), node)
    assert errors == [] and fe.listen == "198.51.100.7:8080" and fe.origin == ("svc:/site/app", "node configuration")
    assert [(b.fmri, b.weight) for b in fe.backends] == [("svc:/site/app:a", 100), ("svc:/site/app:b", 0)]
    for text, field in (('[lb]\nhaproxy = "haproxy; rm -rf /"\n', "lb.haproxy"),
                        ('[lb]\nmanifest = "relative.toml"\n', "lb.manifest"),
                        ('[lb.frontends.web]\nbind = "1.2.3.4:80 backlog 1"\n', "lb.frontends.web.bind"),
                        ('[lb]\nextra = 1\n', "lb.extra")):
        f.write_text(text)
        with pytest.raises(FieldErrors) as e:
            load_config(str(f))
        assert f"{f}: {field}" in str(e.value), str(e.value)


def test_rules_between_frontends_and_declarations():
    spec = manifest(GOOD + '\n[lb.frontends.api]\nbind = "192.0.2.10:80"\n')
    _, errors = plan(spec)
    assert any("also the address of frontend" in str(e) for e in errors)
    other = manifest(GOOD, "/m/other.toml")
    s1 = Source("svc:/site/app", ("svc:/site/app:a",), spec.extensions["lb"])
    s2 = Source("svc:/site/zzz", ("svc:/site/app:a",), other.extensions["lb"])
    _, errors = merge(None, [s1, s2], props(spec))
    assert any("is also declared by svc:/site/app" in str(e) for e in errors)


def test_server_names_are_tokens_and_unique():
    assert server_name("svc:/site/app:a") == "site.app:a"
    long = server_name("svc:/" + "x" * 60 + ":y")
    assert len(long) <= 48 and long != server_name("svc:/" + "x" * 60 + ":z")
    assert Backend("svc:/a:b").weight == 100


def test_render_is_accepted_by_haproxy_and_every_server_starts_in_maintenance(tmp_path):
    binary = hp.find_haproxy()
    spec = load_bytes((BASE.replace("backend-c.example.com", "127.0.0.3") + GOOD).encode(), "/m/app.toml")[0]
    (fe,), _ = plan(spec)
    layout = hp.Layout(str(tmp_path / "lib"), str(tmp_path / "run"))
    text = hp.render([fe], node="n1", layout=layout)
    assert "    bind 192.0.2.10:80 transparent\n" in text and "    retry-on all-retryable-errors\n" in text
    assert "    option httpchk GET /health\n" in text and "slowstart 2000ms" in text
    assert "    server site.app:b [2001:db8::2]:8082 weight 100 check disabled\n" in text
    assert f"stats socket {layout.socket} mode 600 level admin" in text
    assert f"server-state-file {layout.state_file}" in text
    if binary is None:
        pytest.skip("haproxy is not installed (the render was checked as text only)")
    import subprocess

    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    r = subprocess.run(hp.check_argv(binary, str(path)), capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    path.write_text(text.replace("balance leastconn", "balance leastconn\n    bogus-keyword"))
    r = subprocess.run(hp.check_argv(binary, str(path)), capture_output=True, text=True, check=False)
    assert r.returncode != 0 and "bogus-keyword" in hp.check_output(r.stdout + r.stderr)


def test_a_value_that_slipped_past_validation_still_cannot_reach_the_file(tmp_path):
    from dataclasses import replace

    (fe,), _ = plan(manifest(GOOD))
    evil = replace(fe, servers=(replace(fe.servers[0], host="1.2.3.4\n    server x"),))
    with pytest.raises(hp.RenderError):
        hp.render([evil], node="n1", layout=hp.Layout(str(tmp_path), str(tmp_path)))
    with pytest.raises(ValueError):
        lvs.render([evil], node="n1\n}")


def test_lvs_rendering_maps_the_same_frontends_to_virtual_servers():
    (fe,), _ = plan(manifest(GOOD))
    text = lvs.render([fe], node="n1")
    assert "virtual_server 192.0.2.10 80 {" in text and "lb_algo lc" in text
    assert "real_server 127.0.0.1 8081 {" in text and "real_server 2001:db8::2 8082 {" in text
    assert "backend-c" not in text  # LVS takes addresses only
