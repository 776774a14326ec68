"""Manifest validation: every class of bad input is refused with the file, the field and the problem."""

import pytest

from svcmgr.loader import load_bytes
from svcmgr.manifest import ManifestErrors, parse_service
from svcmgr.spec import (
    Authorizations,
    Context,
    InstanceOverride,
    LogPolicy,
    Readiness,
    RestartPolicy,
    resolve_instance,
)

GOOD = """
name = "site/app"
description = "demo application"
duration = "contract"

[instances.default]
enabled = true

[methods.start]
exec = ["python3", "-m", "http.server", "8081"]
timeout = "30s"

[methods.stop]
exec = ":kill"

[[dependencies]]
name = "database"
grouping = "require_all"
restart_on = "error"
fmris = ["svc:/site/db:default"]

[readiness]
tcp = "127.0.0.1:8081"

[restart]
limit = 5
period = "600s"
"""


def load(text, source="m.toml"):
    return load_bytes(text.encode(), source)


def errors_of(text):
    with pytest.raises(ManifestErrors) as e:
        load(text)
    return [str(x) for x in e.value.errors]


def test_the_design_example_is_valid():
    (s,) = load(GOOD)
    cfg = resolve_instance(s, "default")
    assert str(cfg.fmri) == "svc:/site/app:default"
    assert cfg.methods["start"].timeout == 30.0
    assert cfg.methods["stop"].exec.kind == "kill"
    assert cfg.dependencies[0].fmris == ("svc:/site/db:default",)
    assert cfg.readiness.kind == "tcp" and cfg.restart.period == 600.0


def test_normal_form_round_trips():
    (s,) = load(GOOD)
    again = parse_service(s.to_dict(), "stored")
    assert again.to_dict() == s.to_dict()
    a, b = resolve_instance(again, "default"), resolve_instance(s, "default")
    assert (a.methods, a.dependencies, a.readiness, a.restart) == (b.methods, b.dependencies, b.readiness,
                                                                   b.restart)


@pytest.mark.parametrize("text,field,words", [
    ('name = "a/b"\ncolour = "red"\n[methods.start]\nexec=":true"', "colour", "unknown field"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\ntimout="3s"', "methods.start.timout", "unknown field"),
    ('name = 5\n[methods.start]\nexec=":true"', "name", "expected a string"),
    ('name = "a/b"\nenabled = "yes"\n[methods.start]\nexec=":true"', "enabled", "true or false"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\ntimeout="soon"', "methods.start.timeout",
     "cannot parse duration"),
    ('name = "a b/c"\n[methods.start]\nexec=":true"', "name", "bad service name"),
    ('name = "a/b:inst"\n[methods.start]\nexec=":true"', "name", "names an instance"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[dependencies]]\nname="x"\nfmris=["svc:/q::"]',
     "dependencies[0].fmris[0]", "bad instance"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[dependencies]]\nname="x"\ngrouping="require_some"'
     '\nfmris=["c/d"]', "dependencies[0].grouping", "must be one of"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[dependencies]]\nname="x"\nrestart_on="always"'
     '\nfmris=["c/d"]', "dependencies[0].restart_on", "must be one of"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[dependencies]]\nname="x"\nfmris=[]',
     "dependencies[0].fmris", "must not be empty"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[dependencies]]\nname="x"\nfmris=["svc:/a/b"]',
     "dependencies[0].fmris", "depends on itself"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[dependencies]]\nname="x"\nfmris=["c/d"]\n'
     '[[dependencies]]\nname="x"\nfmris=["e/f"]', "dependencies[1].name", "used twice"),
    ('name = "a/b"', "methods.start", "is required"),
    ('name = "a/b"\n[methods.start]\nexec=":frobnicate"', "methods.start.exec", "unknown method token"),
    ('name = "a/b"\n[methods.start]\nexec=":kill -SIGFOO"', "methods.start.exec", "unknown signal"),
    ('name = "a/b"\n[methods.start]\nexec=[]', "methods.start.exec", "non-empty list"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[methods.reload]\nexec=":true"', "methods.reload",
     "unknown method"),
    ('name = "a/b"\nduration = "forever"\n[methods.start]\nexec=":true"', "duration", "must be one of"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[readiness]\ntcp = "localhost"', "readiness.tcp",
     "host:port"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[readiness]\ntcp = "h:1"\nhttp = "http://h/"', "readiness",
     "exactly one"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[readiness]\nnotify = false', "readiness.notify",
     "must be true"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[health]\nhttp = "ftp://x/"', "health.http", "URL"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[health]\ntcp = "h:1"\naction = "reboot"', "health.action",
     "must be one of"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[health]\ntcp = "h:1"\nfailures = 0', "health.failures",
     "out of range"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[restart]\nlimit = -1', "restart.limit", "out of range"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[restart]\nignore_error = ["oops"]', "restart.ignore_error",
     "core"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[log]\nmax_size = "huge"', "log.max_size",
     "cannot parse size"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[log.patterns]]\nmatch = "("\nclass = "ereport.x"',
     "log.patterns[0].match", "regular expression"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[environment]\n"BAD-NAME" = "x"', "environment.BAD-NAME",
     "environment variable"),
    ('name = "a/b"\nuser = "root; rm"\n[methods.start]\nexec=":true"', "user", "not a valid name"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nmixed = [1, "a"]', "properties.pg.mixed",
     "mixes value types"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "count", values = [-1] }',
     "properties.pg.v.values", "negative"),
    # the same encoding of each type svccfg setprop checks (libscf's valid_encoded_value), at import too
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\n'
     'v = { type = "count", values = [18446744073709551616] }',
     "properties.pg.v.values", "a count is at most 18446744073709551615"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "time", values = ["soon"] }',
     "properties.pg.v.values", "seconds[.nanoseconds]"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "opaque", values = ["abc"] }',
     "properties.pg.v.values", "hexadecimal digits"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "count", values = ["1_000"] }',
     "properties.pg.v.values", "expected an integer"),
    # a TOML float is no integer, even with no fraction (libscf's integer and count take digits only): not
    # truncated by int(); nor a bool, though Python's bool is an int
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "integer", values = [1.5] }',
     "properties.pg.v.values", "expected an integer, got 1.5"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "integer", values = [2.0] }',
     "properties.pg.v.values", "expected an integer, got 2.0"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "count", values = [1, 2.5] }',
     "properties.pg.v.values", "expected an integer, got 2.5"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "integer", values = [true] }',
     "properties.pg.v.values", "expected an integer, got True"),
    # an integer beyond a float given for a float (float() raised OverflowError: an internal error of the
    # daemon for any user's svccfg validate)
    pytest.param('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "float", values = ['
                 + "9" * 400 + '] }', "properties.pg.v.values", "beyond a float", id="float-of-400-digits"),
    # int(inf) raised OverflowError, which no caller caught: a traceback where the file and field are said
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[properties.pg]\nv = { type = "count", values = [inf] }',
     "properties.pg.v.values", "expected an integer, got inf"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[instances."bad name"]', 'instances.bad name',
     "not a valid instance name"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[instances.one]\nenabled = 1', "instances.one.enabled",
     "true or false"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[authorizations.action]\nusers = "alice"',
     "authorizations.action.users", "list of strings"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[log.patterns]]\nmatch = "x"\nclass = "ereport.svc.exit.signal"',
     "log.patterns[0].class", "belongs to the restarter source"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[log.patterns]]\nmatch = "x"\nclass = "ereport.telemetry.x"',
     "log.patterns[0].class", "belongs to the mqtt source"),
    ('name = "a/b"\n[methods.start]\nexec=":true"\n[[dependencies]]\nname = "app"\nfmris = ["svc:/c/d"]\n'
     '[properties.app]\ngen = "1"', "dependencies[0].name", "also a property group"),
])
def test_bad_manifests_name_file_field_and_problem(text, field, words):
    errs = errors_of(text)
    assert any(e.startswith(f"m.toml: {field}: ") and words in e for e in errs), errs


def test_all_problems_of_a_file_are_reported_together():
    errs = errors_of('name = "a/b"\nduration = "x"\nfoo = 1\n[methods.start]\nexec=":nope"\ntimeout="?"')
    assert len(errs) == 4


def test_toml_syntax_error_names_the_file():
    (e,) = errors_of('name = "a/b\n')
    assert e.startswith("m.toml: TOML syntax error")


def test_not_utf8_and_too_large():
    with pytest.raises(ManifestErrors, match="not UTF-8"):
        load_bytes(b"name = '\xff'", "m.toml")
    with pytest.raises(ManifestErrors, match="larger than 4 MiB"):
        load_bytes(b"#" * (4 * 1024 * 1024 + 1), "m.toml")


def test_read_file_reads_the_whole_file_and_one_byte_past_the_limit(tmp_path):
    from svcmgr.loader import MAX_SIZE, load_file, read_file

    p = tmp_path / "m.toml"
    for size in (0, 1, 150, MAX_SIZE - 1, MAX_SIZE):
        p.write_bytes(b"#" * size)
        assert read_file(str(p)) == b"#" * size
    p.write_bytes(b"#" * (MAX_SIZE + 10))
    assert len(read_file(str(p))) == MAX_SIZE + 1
    with pytest.raises(ManifestErrors, match="larger than 4 MiB"):
        load_file(str(p))
    assert read_file("/proc/self/status").startswith(b"Name:")  # a file whose size says 0 is read whole


def test_nul_characters_are_refused():
    errs = errors_of('name = "a/b"\n[methods.start]\nexec = ["sleep", "1\\u0000"]')
    assert any("NUL" in e for e in errs)


def test_instances_override_and_inherit():
    (s,) = load("""
name = "a/b"
[environment]
A = "1"
[methods.start]
exec = ":true"
[instances.one]
enabled = false
[instances.one.environment]
B = "2"
[instances.two.methods.start]
exec = ["sleep", "5"]
""")
    one, two = resolve_instance(s, "one"), resolve_instance(s, "two")
    assert not one.enabled and two.enabled
    assert one.context.environment == {"A": "1", "B": "2"}
    assert two.methods["start"].exec.argv == ("sleep", "5")
    assert one.methods["start"].exec.kind == "true"


def test_relative_working_directory_is_the_manifests_folder(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text('name = "a/b"\nworking_directory = "."\n[methods.start]\nexec = ":true"\n')
    from svcmgr.loader import load_file

    (s,) = load_file(str(p))
    assert s.context.working_directory == str(tmp_path)
    assert s.to_dict()["working_directory"] == str(tmp_path)


def test_milestones_need_no_methods():
    (s,) = load('name = "milestone/demo"\ntype = "milestone"')
    cfg = resolve_instance(s, "default")
    assert cfg.duration == "transient" and cfg.methods["start"].exec.kind == "true"


def test_a_context_with_no_field_set_reads_as_the_empty_one() -> None:
    """read_context skips its fields when the table sets none of them (most methods): the same Context as
    reading each; and a context with no security of its own keeps the one beneath it as merge would."""
    from svcmgr.schema import Reader
    from svcmgr.sections import CONTEXT_KEYS, read_context
    from svcmgr.security import NO_SECURITY, Security, merge
    from svcmgr.spec import Context

    for data in ({}, {"exec": ["true"], "timeout": "5s"}):
        errors: list = []
        assert read_context(Reader("m.toml", errors, dict(data), "methods.start"), "/etc") == Context()
        assert not errors
    # the slow path, forced by one field set to what it defaults to, gives the same values
    errors = []
    slow = read_context(Reader("m.toml", errors, {"environment": {}}, ""), "/etc")
    assert slow == Context() and slow.security == NO_SECURITY and not errors
    assert {"user", "group", "working_directory", "environment", "umask", "rlimits"} <= CONTEXT_KEYS
    under = Context("u", "g", "/w", {"A": "1"}, Security(privileges="basic", umask=0o22))
    assert Context().over(under) == Context("u", "g", "/w", {"A": "1"}, merge(NO_SECURITY, under.security))
    assert Context().over(under).security is under.security


def test_specs_share_their_strings_and_unset_parts_with_the_same_values() -> None:
    """A boot keeps a spec per service: the keys and short string values of every manifest are one object
    each, and what a manifest leaves unset is one shared value; the values, their order and the normal form
    are those of a plain tomllib read, and nothing a spec holds is changed by reading another."""
    import tomllib

    from svcmgr.loader import SHARED_MAX

    text = 'name = "a/b{}"\nduration = "child"\n[methods.start]\nexec = ["/bin/sleep", "{}"]\n'
    long = "x" * (SHARED_MAX + 1)
    (a,) = load(text.format(1, "60"))
    (b,) = load(text.format(2, "60"))
    (c,) = load(text.format(3, long))
    ra, rb = a.to_dict(), b.to_dict()
    assert ra == {"name": "a/b1", "duration": "child", "methods": {"start": {"exec": ["/bin/sleep", "60"]}}}
    assert ra == tomllib.loads(text.format(1, "60")) and list(ra) == ["name", "duration", "methods"]
    assert [x for x in ra if x in rb and next(k for k in rb if k == x) is x] == list(ra)  # the same key objects
    assert a.methods["start"].exec.argv[0] is b.methods["start"].exec.argv[0]
    assert ra["duration"] is rb["duration"] is a.duration
    assert c.methods["start"].exec.argv[1] == long
    # unset parts: equal to what they default to, and shared
    assert (a.context, a.authorizations, a.template, a.extensions, a.properties) == (
        Context(), Authorizations(), {}, {}, {})
    assert a.instances == {"default": InstanceOverride("default")} and a.instances is b.instances
    assert a.log is b.log and a.log == LogPolicy() and a.restart is b.restart and a.restart == RestartPolicy()
    ca, cb = resolve_instance(a, "default"), resolve_instance(b, "default")
    assert ca.methods == a.methods and ca.properties == {} and ca.readiness is cb.readiness
    assert ca.readiness == Readiness("spawn")
    # an instance of its own methods and properties gets merged copies, and the service's stay as they were
    (d,) = load('name = "a/d"\n[methods.start]\nexec = ":true"\n[properties.pg]\nx = 1\n'
                '[instances.one.methods.stop]\nexec = ":kill"\n[instances.one.properties.pg]\ny = 2\n')
    one = resolve_instance(d, "one")
    assert set(one.methods) == {"start", "stop"} and set(d.methods) == {"start"}
    assert set(one.properties["pg"]) == {"x", "y"} and set(d.properties["pg"]) == {"x"}
