"""SMF XML manifests run end to end: the demo's notes.xml, method tokens and environment, path
dependencies, a delegated restarter's placeholder, validate/import/export through the commands."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path

import pytest

from svctest import REPO, wait_until

pytestmark = pytest.mark.xdist_group("demo-ports")  # make test runs modules in parallel: this group runs on one worker

NOTES = REPO / "manifests" / "examples" / "notes.xml"


def test_demo_notes_xml_runs_and_shows_its_properties(daemon):
    daemon.start("--manifests", str(REPO / "manifests" / "examples"))
    daemon.wait_state("svc:/site/notes:default", "online", timeout=30)
    daemon.wait_state("svc:/milestone/demo:default", "online", timeout=30)
    # Its privileges are applied, not warned about: the process holds net_privaddr's capability alone.
    log = daemon.log_text()
    assert not [line for line in log.splitlines() if "WARNING" in line and "notes" in line]
    (pid,) = daemon.pids("svc:/site/notes:default")
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    if os.geteuid() == 0:
        assert int(status["CapEff"], 16) == 1 << 10 and int(status["CapAmb"], 16) == 1 << 10  # NET_BIND_SERVICE
    else:
        assert int(status["CapEff"], 16) == 0  # a daemon without capabilities grants none
    assert re.search(r"^privileges\s+basic,net_privaddr: ", daemon.cli("svcs", "-l", "notes", check=True).stdout,
                     re.M)
    # svcs -l: the template's common name, the dependency and the dependent it declares.
    text = daemon.cli("svcs", "-l", "notes", check=True).stdout
    assert re.search(r"^name\s+demo notes service \(SMF XML\)$", text, re.M)
    assert re.search(r"^dependency\s+require_all/none svc:/site/app:default \(online\)$", text, re.M)
    assert re.search(r"^dependent\s+optional_all svc:/milestone/demo:default$", text, re.M)
    assert re.search(r"^manifest\s+.*notes\.xml$", text, re.M)
    # svcprop: the manifest's property group with its value list, and the mapped SMF groups.
    assert daemon.cli("svcprop", "-p", "notes/tags", "notes", check=True).stdout.split() == ["smf", "xml", "demo"]
    assert daemon.cli("svcprop", "-p", "notes/port", "notes", check=True).stdout.strip() == "17090"
    props = json.loads(daemon.cli("svcprop", "--json", "notes", check=True).stdout)
    assert props["notes/tags"] == {"type": "astring", "values": ["smf", "xml", "demo"]}
    assert props["general/action_authorization"]["values"] == ["solaris.smf.manage.notes"]
    assert props["general/entity_stability"]["values"] == ["Unstable"]
    assert props["startd/ignore_error"]["values"] == ["core"]
    assert props["method_context/privileges"]["values"] == ["basic,net_privaddr"]
    assert props["stop/exec"]["values"] == [":kill"]  # SIGTERM is :kill's own default
    stored = json.loads(daemon.cli("svccfg", "export", "--json", "notes", check=True).stdout)
    assert stored["methods"]["stop"]["exec"] == ":kill -TERM"  # as written in the XML
    assert stored["methods"]["start"]["exec"].startswith("python3 bin/notes.py --port %{notes/port} ")
    # The process got its configuration through tokens, <method_environment> and SMF_*.
    with urllib.request.urlopen("http://127.0.0.1:17090/", timeout=5) as r:
        info = json.load(r)
    assert info["greeting"] == "hello from svc:/site/notes" and info["tags"] == ["smf", "xml", "demo"]
    assert info["title"] == "notes from an SMF manifest"
    assert (info["method_token"], info["fmri_token"]) == ("start", "svc:/site/notes:default")
    assert info["env"] == {"SMF_FMRI": "svc:/site/notes:default", "SMF_METHOD": "start",
                           "SMF_RESTARTER": "svc:/system/svc/restarter:default"}
    assert info["cwd"] == str(NOTES.parent)
    # A property change reaches the process after refresh and restart, as in SMF.
    daemon.cli("svccfg", "-s", "notes", "setprop", "notes/greeting", "=", "astring:", "changed", check=True)
    daemon.cli("svcadm", "refresh", "notes", check=True)
    daemon.cli("svcadm", "restart", "notes", check=True)

    def greeting() -> str | None:
        try:
            with urllib.request.urlopen("http://127.0.0.1:17090/", timeout=2) as r:
                return json.load(r)["greeting"]
        except OSError:
            return None

    wait_until(lambda: greeting() == "changed", 20, what="the new greeting")
    # :kill -TERM stops the whole contract.
    pids = daemon.pids("svc:/site/notes:default")
    daemon.cli("svcadm", "disable", "-s", "notes", check=True)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]


XML = """<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type='manifest' name='t'>
<service name='site/tokens' type='service' version='1'>
  <instance name='one' enabled='true'>
    <dependency name='flag' grouping='require_all' restart_on='none' type='path'>
      <service_fmri value='file://localhost{flag}'/>
    </dependency>
  </instance>
  <method_context working_directory='{wd}'>
    <method_environment><envvar name='WHO' value='%i of %s'/></method_environment>
  </method_context>
  <exec_method type='method' name='start'
      exec='/bin/sh -c "echo %r %m %s %i %f %{{app/word}} $WHO $SMF_FMRI $SMF_METHOD $SMF_RESTARTER &gt; out.%i"'
      timeout_seconds='0'/>
  <exec_method type='method' name='stop' exec=':true' timeout_seconds='-1'/>
  <property_group name='startd' type='framework'><propval name='duration' type='astring' value='transient'/>
  </property_group>
  <property_group name='app' type='application'><propval name='word' type='astring' value='hello'/>
  </property_group>
</service>
<service name='network/echo' type='service' version='1'>
  <restarter><service_fmri value='svc:/network/inetd:default'/></restarter>
  <instance name='stream' enabled='true'>
    <exec_method type='method' name='inetd_start' exec='/usr/lib/inet/in.echod -s' timeout_seconds='0'/>
  </instance>
</service>
</service_bundle>
"""


def test_xml_methods_tokens_and_path_dependency(daemon, tmp_path: Path):
    wd = daemon.root / "work"
    wd.mkdir()
    flag = daemon.root / "flag"
    xml = daemon.root / "tokens.xml"
    xml.write_text(XML.format(wd=wd, flag=flag))
    daemon.start()
    r = daemon.cli("svccfg", "validate", str(xml))
    assert r.returncode == 0, r.stderr
    assert "delegated restarter svc:/network/inetd:default" in r.stderr
    assert "method 'inetd_start'" in r.stderr
    daemon.cli("svccfg", "import", str(xml), check=True)
    # The path dependency holds the instance back until the file exists.
    daemon.wait_state("svc:/site/tokens:one", "offline")
    x = json.loads(daemon.cli("svcs", "-x", "--json", "tokens", check=True).stdout)[0]
    assert x["reason"] == f"Dependency file://localhost{flag} is absent."
    flag.write_text("")
    daemon.wait_state("svc:/site/tokens:one", "online", timeout=20)
    out = (wd / "out.one").read_text().split()
    assert out == ["svc.startd", "start", "site/tokens", "one", "svc:/site/tokens:one", "hello",
                   "one", "of", "site/tokens", "svc:/site/tokens:one", "start", "svc:/system/svc/restarter:default"]
    # A service run by a delegated restarter goes to maintenance and says why.
    daemon.wait_state("svc:/network/echo:stream", "maintenance", timeout=20)
    assert "delegated restarter svc:/network/inetd:default" in daemon.log("svc:/network/echo:stream")
    # export --xml writes a bundle that imports to the same manifest.
    exported = daemon.cli("svccfg", "export", "--xml", "svc:/site/tokens", check=True).stdout
    assert exported.startswith('<?xml version="1.0"?>\n<!DOCTYPE service_bundle SYSTEM')
    again = daemon.root / "again.xml"
    again.write_text(exported)
    before = json.loads(daemon.cli("svccfg", "export", "--json", "svc:/site/tokens", check=True).stdout)
    daemon.cli("svccfg", "import", str(again), check=True)
    after = json.loads(daemon.cli("svccfg", "export", "--json", "svc:/site/tokens", check=True).stdout)
    assert before == after


def test_hostile_xml_is_refused_and_the_daemon_keeps_its_state(daemon, tmp_path: Path):
    daemon.start("--manifests", str(NOTES))
    daemon.wait_state("svc:/site/notes:default", "offline")  # waits for site/app, which is absent
    before = daemon.instances()
    secret = daemon.root / "secret"
    secret.write_text("TOP-SECRET-0815")
    bomb = daemon.root / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE service_bundle [<!ENTITY a "aaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
                    "<service_bundle type='manifest' name='x'>&c;</service_bundle>")
    xxe = daemon.root / "xxe.xml"
    xxe.write_text(f'<?xml version="1.0"?><!DOCTYPE service_bundle [<!ENTITY s SYSTEM "file://{secret}">]>'
                   "<service_bundle type='manifest' name='x'>&s;</service_bundle>")
    for f in (bomb, xxe):
        r = daemon.cli("svccfg", "import", str(f))
        assert r.returncode == 1
        assert f"{f}: line 1: refused:" in r.stderr and "nothing was imported" in r.stderr
        assert "TOP-SECRET" not in r.stderr + r.stdout
        r = daemon.cli("svccfg", "validate", str(f))
        assert r.returncode == 1 and f"{f}: line 1: refused:" in r.stderr
    assert daemon.instances().keys() == before.keys()
    assert daemon.call("ping")["instances"] == len(before)
