"""Every SMF XML element svcmgr maps, what it keeps without acting on, and the errors it names."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from svcmgr.loader import load_bytes
from svcmgr.manifest import ManifestErrors, parse_service
from svcmgr.smfxml.export import export_xml
from svcmgr.spec import resolve_instance

HEAD = '<?xml version="1.0"?>\n<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">\n'

FULL = HEAD + """
<service_bundle type='manifest' name='test:full'>
<service name='site/full' type='service' version='2'>
  <create_default_instance enabled='true'/>
  <single_instance/>
  <dependency name='net' grouping='require_any' restart_on='error' type='service'>
    <service_fmri value='svc:/network/loopback'/>
    <service_fmri value='svc:/network/physical:default'/>
  </dependency>
  <dependency name='conf' grouping='require_all' restart_on='refresh' type='path'>
    <service_fmri value='file://localhost/etc/full.conf'/>
  </dependency>
  <dependent name='full_multi-user' grouping='optional_all' restart_on='none'>
    <service_fmri value='svc:/milestone/multi-user'/>
  </dependent>
  <method_context working_directory='/var/tmp' project='default' resource_pool='pool_default'>
    <method_credential user='nobody' group='nogroup' privileges='basic,net_privaddr'/>
    <method_environment>
      <envvar name='LANG' value='C'/>
    </method_environment>
  </method_context>
  <exec_method type='method' name='start' exec='/lib/svc/method/full %m %{app/port}' timeout_seconds='60'>
    <method_context working_directory='/srv'>
      <method_credential user='daemon' group=':default' limit_privileges=':default'/>
      <method_environment><envvar name='PORT' value='%{app/port}'/></method_environment>
    </method_context>
    <propval name='verbose' type='boolean' value='true'/>
  </exec_method>
  <exec_method type='method' name='stop' exec=':kill -TERM' timeout_seconds='-1'/>
  <exec_method type='method' name='refresh' exec=':kill -HUP' timeout_seconds='0'/>
  <exec_method type='method' name='inetd_offline' exec=':kill_process' timeout_seconds='0'/>
  <property_group name='startd' type='framework'>
    <propval name='duration' type='astring' value='wait'/>
    <propval name='ignore_error' type='astring' value='core,signal'/>
    <propval name='timeout_retry' type='boolean' value='false'/>
    <propval name='critical_failure_count' type='count' value='7'/>
    <propval name='critical_failure_period' type='count' value='120'/>
    <propval name='utmpx_prefix' type='astring' value='fu'/>
  </property_group>
  <property_group name='general' type='framework'>
    <propval name='action_authorization' type='astring' value='solaris.smf.manage.full'/>
    <property name='value_authorization' type='astring'>
      <astring_list>
        <value_node value='solaris.smf.value.full'/>
        <value_node value='user:alice'/>
        <value_node value='group:ops'/>
      </astring_list>
    </property>
  </property_group>
  <property_group name='app' type='application'>
    <stability value='Evolving'/>
    <propval name='port' type='count' value='8080'/>
    <property name='hosts' type='host'>
      <host_list><value_node value='a.example'/><value_node value='b.example'/></host_list>
    </property>
    <property name='weights' type='integer'>
      <integer_list><value_node value='-1'/><value_node value='3'/></integer_list>
    </property>
    <property name='flags' type='boolean'>
      <boolean_list><value_node value='true'/><value_node value='false'/></boolean_list>
    </property>
    <property name='counts' type='count'><count_list><value_node value='4'/></count_list></property>
    <property name='empty' type='astring'/>
  </property_group>
  <stability value='Unstable'/>
  <template>
    <common_name><loctext xml:lang='C'> Full   example </loctext></common_name>
    <description><loctext xml:lang='C'>
      Everything an SMF manifest can say.
    </loctext></description>
  </template>
</service>
</service_bundle>
"""


def _load(text: str, name: str = "/m/full.xml"):
    return load_bytes(text.encode(), name)


def test_service_elements_map_to_the_manifest_vocabulary() -> None:
    (spec,) = _load(FULL)
    assert str(spec.fmri) == "svc:/site/full"
    assert list(spec.instances) == ["default"]
    cfg = resolve_instance(spec, "default")
    assert cfg.enabled is True
    assert cfg.duration == "child"  # startd/duration wait
    assert cfg.restart.ignore_error == ("core", "signal")
    assert cfg.restart.timeout_retry is False
    assert (cfg.restart.limit, cfg.restart.period) == (7, 120.0)
    net, conf = cfg.dependencies
    assert (net.grouping, net.restart_on, net.fmris) == ("require_any", "error",
                                                         ("svc:/network/loopback", "svc:/network/physical:default"))
    assert (conf.type, conf.fmris) == ("path", ("file://localhost/etc/full.conf",))
    (dep,) = spec.dependents
    assert (dep.name, dep.grouping, dep.fmris) == ("full_multi-user", "optional_all", ("svc:/milestone/multi-user",))
    # Contexts: service level, with the method's own values on top.
    assert (spec.context.user, spec.context.group, spec.context.working_directory) == ("nobody", "nogroup", "/var/tmp")
    ctx = cfg.method_context("start")
    assert (ctx.user, ctx.group, ctx.working_directory) == ("daemon", "nogroup", "/srv")
    assert ctx.environment == {"LANG": "C", "PORT": "%{app/port}"}
    # Exec strings arrive intact; timeouts 0 and -1 mean none.
    start = cfg.methods["start"]
    assert start.exec.shell == "/lib/svc/method/full %m %{app/port}" and start.timeout == 60
    assert cfg.methods["stop"].exec.kind == "kill" and cfg.methods["stop"].exec.signal == signal.SIGTERM
    assert cfg.methods["refresh"].exec.signal == signal.SIGHUP
    assert cfg.methods["stop"].timeout is None and cfg.methods["refresh"].timeout is None
    assert "inetd_offline" not in cfg.methods


def test_properties_keep_value_lists_and_types() -> None:
    (spec,) = _load(FULL)
    p = resolve_instance(spec, "default").properties
    assert p["app"]["port"].type == "count" and p["app"]["port"].values == (8080,)
    assert p["app"]["hosts"].values == ("a.example", "b.example") and p["app"]["hosts"].type == "host"
    assert p["app"]["weights"].values == (-1, 3)
    assert p["app"]["flags"].values == (True, False)
    assert p["app"]["counts"].values == (4,)
    assert p["app"]["empty"].values == ()
    assert p["app"]["stability"].values == ("Evolving",)
    assert p["startd"]["utmpx_prefix"].values == ("fu",)
    assert p["general"]["single_instance"].values == (True,)
    # Nested propvals of a method, and what Linux cannot do, are properties of the method's group.
    assert p["start"]["verbose"].values == (True,)
    assert p["method_context"]["project"].values == ("default",)
    assert p["inetd_offline"]["exec"].values == (":kill_process",)


def test_method_credential_privileges_are_applied_not_kept() -> None:
    (spec,) = _load(FULL)
    cfg = resolve_instance(spec, "default")
    assert cfg.context.security.privileges == "basic,net_privaddr"
    start = cfg.method_context("start").security
    assert start.privileges == "basic,net_privaddr" and start.limit_privileges is None  # ':default'
    assert "privileges" not in cfg.properties.get("method_context", {})


def test_authorizations_template_and_stability() -> None:
    (spec,) = _load(FULL)
    a = spec.authorizations
    assert a.action.names == ("solaris.smf.manage.full",) and not a.action
    assert a.value.names == ("solaris.smf.value.full",)
    assert a.value.users == ("alice",) and a.value.groups == ("ops",)
    assert spec.description == "Full example"
    assert spec.template == {"common_name": "Full example", "description": "Everything an SMF manifest can say."}
    assert spec.stability == "Unstable"
    assert spec.type == "service"


def test_what_linux_cannot_do_is_reported_once_per_service() -> None:
    (spec,) = _load(FULL)
    assert len(spec.warnings) == 1
    w = spec.warnings[0]
    assert w.startswith("/m/full.xml: svc:/site/full: kept as properties, not acted on:")
    for item in ("method_context/project = 'default'", "method_context/resource_pool = 'pool_default'",
                 "method 'inetd_offline'"):
        assert item in w
    assert "privileges" not in w  # applied, as capabilities


def test_instances_override_the_service() -> None:
    text = HEAD + """
<service_bundle type='manifest' name='t'>
<service name='site/multi' type='service' version='1'>
  <dependency name='fs' grouping='require_all' restart_on='none' type='service'>
    <service_fmri value='svc:/system/filesystem/local'/>
  </dependency>
  <exec_method type='method' name='start' exec='/bin/true' timeout_seconds='10'/>
  <instance name='a' enabled='true'>
    <dependency name='peer' grouping='optional_all' restart_on='restart' type='service'>
      <service_fmri value='svc:/site/multi:b'/>
    </dependency>
    <method_context><method_credential user='root' group='root'/></method_context>
    <exec_method type='method' name='start' exec='/bin/echo %i' timeout_seconds='5'/>
    <property_group name='startd' type='framework'><propval name='duration' type='astring' value='transient'/>
    </property_group>
    <property_group name='app' type='application'><propval name='role' type='astring' value='primary'/>
    </property_group>
    <template><common_name><loctext xml:lang='C'>instance a</loctext></common_name></template>
  </instance>
  <instance name='b' enabled='false'/>
</service>
</service_bundle>
"""
    (spec,) = _load(text, "/m/multi.xml")
    a = resolve_instance(spec, "a")
    b = resolve_instance(spec, "b")
    assert (a.enabled, b.enabled) == (True, False)
    assert [d.name for d in a.dependencies] == ["fs", "peer"] and [d.name for d in b.dependencies] == ["fs"]
    assert a.methods["start"].exec.shell == "/bin/echo %i" and b.methods["start"].exec.shell == "/bin/true"
    assert (a.context.user, a.duration, b.duration) == ("root", "transient", "contract")
    assert a.properties["app"]["role"].values == ("primary",) and "app" not in b.properties
    assert a.description == "instance a"
    assert spec.warnings == ()


def test_restarter_and_milestone_types() -> None:
    text = HEAD + """
<service_bundle type='manifest' name='t'>
<service name='network/inetd' type='restarter' version='1'>
  <create_default_instance enabled='false'/>
  <exec_method type='method' name='start' exec='/usr/lib/inet/inetd %m' timeout_seconds='60'/>
</service>
<service name='milestone/site' type='milestone' version='1'>
  <create_default_instance enabled='true'/>
  <dependency name='inetd' grouping='require_all' restart_on='none' type='service'>
    <service_fmri value='svc:/network/inetd'/>
  </dependency>
</service>
</service_bundle>
"""
    inetd, ms = _load(text, "/m/two.xml")
    assert inetd.type == "restarter" and ms.type == "milestone"
    assert resolve_instance(ms, "default").methods["start"].exec.kind == "true"


def test_delegated_restarter_gets_a_start_that_fails_with_the_reason() -> None:
    text = HEAD + """
<service_bundle type='manifest' name='t'>
<service name='network/echo' type='service' version='1'>
  <restarter><service_fmri value='svc:/network/inetd:default'/></restarter>
  <instance name='stream' enabled='false'>
    <exec_method type='method' name='inetd_start' exec='/usr/lib/inet/in.echod -s' timeout_seconds='0'/>
  </instance>
</service>
</service_bundle>
"""
    (spec,) = _load(text, "/m/echo.xml")
    cfg = resolve_instance(spec, "stream")
    start = cfg.methods["start"].exec.shell
    assert "delegated restarter svc:/network/inetd:default" in start and start.endswith("exit 96\"")
    assert cfg.properties["general"]["restarter"].values == ("svc:/network/inetd:default",)
    assert "delegated restarter svc:/network/inetd:default" in spec.warnings[0]
    # Export leaves the placeholder out: the bundle says what the author wrote.
    out = export_xml(spec.to_dict())
    assert "exit 96" not in out and "inetd_start" in out


@pytest.mark.parametrize(("snippet", "message"), [
    ("<dependency name='x' restart_on='none' type='service'><service_fmri value='svc:/a/b'/></dependency>",
     "line 7 <dependency>: attribute 'grouping' is required"),
    ("<instance name='i' enabled='maybe'/>", "attribute 'enabled' must be 'true' or 'false'"),
    ("<exec_method type='method' name='start' exec='/bin/x' timeout_seconds='soon'/>",
     "timeout_seconds must be an integer"),
    # ASCII digits, as svccfg's strtoull reads them: Python's int() took 1_000 and a fullwidth 5
    ("<exec_method type='method' name='start' exec='/bin/x' timeout_seconds='1_000'/>",
     "timeout_seconds must be an integer, not '1_000'"),
    ("<exec_method type='method' name='refresh' exec='/bin/x' timeout_seconds='\uff15'/>",
     "timeout_seconds must be an integer, not '\uff15'"),
    # beyond 64 bits: strtoull's ERANGE, which svccfg refuses (it was kept, shown by svcprop as 1.0e26 rounded)
    ("<exec_method type='method' name='start' exec='/bin/x' timeout_seconds='18446744073709551616'/>",
     "timeout_seconds must be an integer of at most 64 bits, not '18446744073709551616'"),
    ("<exec_method type='method' name='inetd_start' exec='/bin/x' timeout_seconds='-18446744073709551616'/>",
     "timeout_seconds must be an integer of at most 64 bits, not '-18446744073709551616'"),
    ("<property_group name='p' type='application'><propval name='n' type='count' value='-3'/></property_group>",
     "property p/n: a count cannot be negative"),
    ("<property_group name='p' type='application'><propval name='n' type='integer' value='1.5'/></property_group>",
     "property p/n: expected an integer, got '1.5'"),
    ("<property_group name='p' type='application'><property name='n' type='count'>"
     "<count_list><value_node value='2.0'/></count_list></property></property_group>",
     "property p/n: expected an integer, got '2.0'"),
    ("<property_group name='p' type='application'><propval name='n' type='decimal' value='1'/></property_group>",
     "unknown property type 'decimal'"),
    ("<property_group name='p' type='application'><property name='n' type='integer'>"
     "<astring_list><value_node value='x'/></astring_list></property></property_group>",
     "a property of type integer holds a <integer_list>"),
    ("<dependency name='x' grouping='sometimes' restart_on='none' type='service'>"
     "<service_fmri value='svc:/a/b'/></dependency>",
     "dependencies[0].grouping: must be one of"),
])
def test_bad_manifest_errors_name_file_line_and_field(snippet: str, message: str) -> None:
    text = HEAD + f"""<service_bundle type='manifest' name='t'>
<service name='site/bad' type='service' version='1'>
  <create_default_instance enabled='true'/>
  {snippet}
  <exec_method type='method' name='stop' exec=':kill' timeout_seconds='1'/>
</service>
</service_bundle>
"""
    text = text.replace("<create_default_instance enabled='true'/>",
                        "<exec_method type='method' name='start' exec='/bin/true' timeout_seconds='1'/>\n"
                        "  <create_default_instance enabled='true'/>")
    with pytest.raises(ManifestErrors) as e:
        _load(text, "/m/bad.xml")
    assert str(e.value).startswith("/m/bad.xml: ")
    assert message in str(e.value)


def test_structural_refusals() -> None:
    with pytest.raises(ManifestErrors, match="declares no instance"):
        _load(HEAD + "<service_bundle type='manifest' name='t'><service name='a/b' type='service' version='1'>"
                     "<exec_method type='method' name='start' exec='/bin/true' timeout_seconds='1'/>"
                     "</service></service_bundle>")
    with pytest.raises(ManifestErrors, match="type 'profile' is not supported"):
        _load("<service_bundle type='profile' name='p'/>")
    with pytest.raises(ManifestErrors, match="document element must be <service_bundle>"):
        _load("<?xml version='1.0'?><html/>")
    with pytest.raises(ManifestErrors, match=r"svc:/site/nostart: methods\.start: is required"):
        _load("<service_bundle type='manifest' name='t'><service name='site/nostart' type='service' version='1'>"
              "<create_default_instance enabled='true'/></service></service_bundle>")


def test_export_round_trips_to_the_same_manifest() -> None:
    (spec,) = _load(FULL)
    again = load_bytes(export_xml(spec.to_dict()).encode(), "/m/full.xml")
    assert again[0].to_dict() == spec.to_dict()


def test_toml_only_sections_survive_export(tmp_path: Path) -> None:
    data = {"name": "site/t", "description": "toml service", "working_directory": "/srv",
            "methods": {"start": {"exec": ["python3", "-m", "http.server", "8099"], "timeout": "10s"},
                        "stop": {"exec": ":kill -INT"}},
            "readiness": {"tcp": "127.0.0.1:8099"},
            "health": {"command": ["true"], "interval": "5s", "failures": 2, "action": "degrade"},
            "log": {"max_size": "64k", "patterns": [{"match": "ERROR (.*)", "class": "ereport.app.error"}]},
            "properties": {"app": {"n": 3}}}
    spec = parse_service(data, "/m/t.toml")
    (back,) = load_bytes(export_xml(spec.to_dict()).encode(), str(tmp_path / "t.xml"))
    cfg = resolve_instance(back, "default")
    assert cfg.readiness.kind == "tcp" and cfg.readiness.target == "127.0.0.1:8099"
    assert cfg.health is not None and cfg.health.target == ("true",) and cfg.health.action == "degrade"
    assert cfg.log.max_size == 64000 and cfg.log.patterns[0].cls == "ereport.app.error"
    assert cfg.methods["start"].exec.shell == "python3 -m http.server 8099"
    assert cfg.methods["start"].timeout == 10 and cfg.methods["stop"].exec.signal == signal.SIGINT
    assert cfg.properties["app"]["n"].values == (3,)
    assert back.description == "toml service"


def test_smf_section_in_toml_is_validated() -> None:
    bad = {"name": "site/x", "methods": {"start": {"exec": ":true"}},
           "smf": {"template_xml": "<!DOCTYPE t [<!ENTITY a 'b'>]><template>&a;</template>", "colour": "red"}}
    with pytest.raises(ManifestErrors) as e:
        parse_service(bad, "/m/x.toml")
    text = str(e.value)
    assert "/m/x.toml: smf.template_xml:" in text and "internal subset" in text
    assert "/m/x.toml: smf.colour: unknown field" in text


def test_privileges_and_limits_survive_export_both_ways(tmp_path: Path) -> None:
    data = {"name": "site/p", "user": "nobody", "privileges": "basic,net_privaddr", "capabilities": ["CAP_NET_RAW"],
            "supplemental_groups": ["adm", "nogroup"], "umask": "027", "no_new_privileges": False,
            "rlimits": {"nofile": [256, 512], "core": 0}, "resources": {"memory": 1 << 26, "tasks": 8},
            "methods": {"start": {"exec": "sleep 1", "limit_privileges": "basic,net_privaddr,net_rawaccess",
                                  "rlimits": {"stack": "unlimited"}, "umask": "077"}},
            "instances": {"default": {"no_new_privileges": True}}}
    spec = parse_service(data, "/m/p.toml")
    xml = export_xml(spec.to_dict())
    assert "privileges=\"basic,net_privaddr\"" in xml and "supp_groups=\"adm,nogroup\"" in xml
    assert "<property_group name=\"context\" type=\"svcmgr\">" in xml
    (back,) = load_bytes(xml.encode(), str(tmp_path / "p.xml"))
    a, b = resolve_instance(spec, "default"), resolve_instance(back, "default")
    assert a.resources == b.resources and a.context.security == b.context.security
    assert a.method_context("start").security == b.method_context("start").security
    assert b.method_context("start").security.rlimits["core"] == (0, 0)
    assert back.warnings == ()
