"""The property table (svcmgr.properties) read one way and written the other: every standard property
``setprop`` may change, written with the value ``svcprop`` shows, reads back the same, with its type."""

from __future__ import annotations

import copy
import tomllib

import pytest

from svcmgr.manifest import parse_service
from svcmgr.properties import GROUPS, EditError, find, property_view, set_property
from svcmgr.spec import resolve_instance

MANIFEST = """
name = "site/app"
description = "an application"
duration = "child"
umask = "027"
privileges = "basic"
limit_privileges = "basic,file_chown"
no_new_privileges = false
supplemental_groups = ["daemon"]
capabilities = ["CAP_CHOWN"]
stability = "Evolving"

[template]
common_name = "the app"
description = "it serves"

[methods.start]
exec = ["sleep", "1000"]
timeout = "30s"
user = "nobody"
group = "nogroup"
working_directory = "/tmp"
supplemental_groups = ["users"]
no_new_privileges = true
capabilities = ["CAP_NET_BIND_SERVICE"]
limit_privileges = "basic,net_privaddr"

[methods.stop]
exec = ":kill"

[[dependencies]]
name = "db"
fmris = ["svc:/site/db:default"]

[restart]
limit = 4
period = "10m"
ignore_error = ["core", "signal"]
timeout_retry = false

[health]
tcp = "127.0.0.1:80"
interval = "5s"
failures = 2
action = "degrade"

[resources]
memory = 268435456
cpu = 0.5
tasks = 64

[properties.schema]
version = { type = "count", values = [3] }
name = "notes"
"""


def _config(data: dict) -> object:
    return resolve_instance(parse_service(data, "/m/app.toml"), "default")


def _writable() -> list[tuple[str, str, str]]:
    """(pg, name, type) of every standard property the sample has that setprop may write."""
    cfg = _config(tomllib.loads(MANIFEST))
    out = []
    for pg, props in property_view(cfg).items():
        for name, p in props.items():
            std = find(cfg, pg, name)
            if std is not None and std[1].key:
                out.append((pg, name, p["type"]))
    return out


def test_the_sample_covers_every_writable_row() -> None:
    """So that the round trip below tries each row of the table that setprop writes."""
    rows = {(g.name, p.name) for g in GROUPS for p in g.props if p.key}
    seen = {("method" if pg in ("start", "stop") else pg, name) for pg, name, _ in _writable()}
    assert rows <= seen, rows - seen


@pytest.mark.parametrize(("pg", "name", "ptype"), _writable())
def test_a_written_value_reads_back_the_same(pg: str, name: str, ptype: str) -> None:
    data = tomllib.loads(MANIFEST)
    cfg = _config(data)
    shown = property_view(cfg)[pg][name]
    edited = copy.deepcopy(data)
    as_typed = [str(v).lower() if isinstance(v, bool) else str(v) for v in shown["values"]]
    set_property(edited, cfg, pg, name, None, as_typed, None)  # as svccfg sends them: strings, no type
    again = property_view(_config(edited))[pg][name]
    assert again == shown and again["type"] == ptype


def test_setprop_without_a_type_keeps_an_existing_property_type() -> None:
    data = tomllib.loads(MANIFEST)
    cfg = _config(data)
    existing = cfg.properties["schema"]["version"]
    set_property(data, cfg, "schema", "version", None, ["4"], existing)
    assert property_view(_config(data))["schema"]["version"] == {"type": "count", "values": [4]}
    with pytest.raises(EditError, match=r"Type required for new properties\.") as e:  # as svccfg says
        set_property(data, cfg, "schema", "new", None, ["x"], None)
    assert e.value.code == 1
    set_property(data, cfg, "schema", "new", "astring", ["x"], None)
    assert property_view(_config(data))["schema"]["new"] == {"type": "astring", "values": ["x"]}


def test_standard_properties_keep_their_type_and_refuse_bad_values() -> None:
    data = tomllib.loads(MANIFEST)
    cfg = _config(data)
    with pytest.raises(EditError, match="is of type count, not astring") as e:
        set_property(data, cfg, "start", "timeout_seconds", "astring", ["5"], None)
    assert e.value.code == 2
    with pytest.raises(EditError, match="expected a count of seconds") as e:
        set_property(data, cfg, "start", "timeout_seconds", None, ["soon"], None)
    with pytest.raises(EditError, match="takes one value"):
        set_property(data, cfg, "restart", "limit", None, ["1", "2"], None)
    with pytest.raises(EditError, match="negative"):
        set_property(data, cfg, "restart", "limit", None, ["-1"], None)


@pytest.mark.parametrize(("pg", "name", "why"), [
    ("general", "enabled", "use svcadm"),
    ("restarter", "state", "use svcadm"),
    ("db", "entities", "declared in the manifest"),
    ("start", "environment", "declared in the manifest"),
    ("start", "colour", "not a property of a method group"),
])
def test_read_only_properties_say_where_they_are_changed(pg: str, name: str, why: str) -> None:
    data = tomllib.loads(MANIFEST)
    with pytest.raises(EditError, match=why) as e:
        set_property(data, _config(data), pg, name, None, ["x"], None)
    assert e.value.code == 1


def test_a_method_not_declared_yet_needs_its_exec_first() -> None:
    data = tomllib.loads(MANIFEST)
    cfg = _config(data)
    with pytest.raises(EditError, match="refresh has no exec"):
        set_property(data, cfg, "refresh", "timeout_seconds", None, ["5"], None)
    set_property(data, cfg, "refresh", "exec", None, ["/bin/true"], None)
    assert property_view(_config(data))["refresh"]["exec"]["values"] == ["/bin/true"]


@pytest.mark.parametrize(("ptype", "value", "why"), [
    ("count", "18446744073709551616", "at most 18446744073709551615"),
    ("integer", "9223372036854775808", "between -9223372036854775808 and 9223372036854775807"),
    ("integer", "-9223372036854775809", "between -9223372036854775808 and 9223372036854775807"),
    ("time", "abc", "seconds"),
    ("time", "12.5", "nine digits"),
    ("time", "12.", "nine digits"),
    ("opaque", "abc", "even number of hexadecimal digits"),
    ("opaque", "zz", "even number of hexadecimal digits"),
    ("count", "1_000", "expected an integer"),
    ("count", "\uff15", "expected an integer"),  # a fullwidth 5: int() takes it, strtoull does not
    ("integer", "\u0665", "expected an integer"),
])
def test_a_value_out_of_its_smf_types_encoding_is_refused(ptype: str, value: str, why: str) -> None:
    """As libscf's valid_encoded_value: a count is 64-bit unsigned, an integer signed, a time seconds with
    an optional nine-digit fraction, an opaque value hex pairs; nothing is written."""
    data = tomllib.loads(MANIFEST)
    before = copy.deepcopy(data)
    with pytest.raises(EditError, match=why) as e:
        set_property(data, _config(data), "schema", "x", ptype, [value], None)
    assert e.value.code == 2 and str(e.value).startswith("schema/x: ") and value in str(e.value)
    assert data == before
    with pytest.raises(EditError, match="at most 18446744073709551615"):
        set_property(data, _config(data), "restart", "limit", None, ["18446744073709551616"], None)


@pytest.mark.parametrize(("ptype", "value"), [("integer", 1.5), ("integer", 2.0), ("count", 2.0), ("count", True)])
def test_a_number_not_an_integer_is_refused_for_an_integer_type(ptype: str, value: object) -> None:
    """A JSON float (or bool) in a setprop request, as a client may send it: refused, not truncated by
    int(), nothing written."""
    data = tomllib.loads(MANIFEST)
    before = copy.deepcopy(data)
    with pytest.raises(EditError, match=f"schema/x: expected an integer, got {value!r}") as e:
        set_property(data, _config(data), "schema", "x", ptype, [value], None)
    assert e.value.code == 2 and data == before
    with pytest.raises(EditError, match="restart/limit: "):
        set_property(data, _config(data), "restart", "limit", None, [value], None)
    assert data == before


@pytest.mark.parametrize(("ptype", "value"), [
    ("count", "18446744073709551615"), ("integer", "-9223372036854775808"), ("count", "5"), ("integer", "-5"),
    ("time", "1796663251"), ("time", "1796663251.805586000"), ("time", "-5"), ("opaque", "00ffAB"), ("opaque", "")])
def test_a_value_within_its_smf_type_is_kept(ptype: str, value: str) -> None:
    data = tomllib.loads(MANIFEST)
    set_property(data, _config(data), "schema", "x", ptype, [value], None)
    assert [str(v) for v in property_view(_config(data))["schema"]["x"]["values"]] == [value]


def test_the_state_timestamp_has_nine_digits_as_an_smf_time() -> None:
    """svcprop shows restarter/state_timestamp as libscf encodes a time: seconds, a point, nine digits."""
    import time

    from svcmgr.instance import Instance
    from svcmgr.policy import RestartHistory

    cfg = _config(tomllib.loads(MANIFEST))
    inst = Instance(str(cfg.fmri), cfg, RestartHistory(3, 60.0, time.monotonic), stime=1796663251.805586)
    (shown,) = property_view(cfg, inst)["restarter"]["state_timestamp"]["values"]
    assert shown == "1796663251.805586000"
