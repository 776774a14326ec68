"""Resource controls for real: a service killed at its memory limit becomes one diagnosed case and
``svcs -x`` names the limit; limits a daemon cannot apply, and bad names and values, are refused at
import with the file, the field and the reason."""

from __future__ import annotations

import os
import re

import pytest

from svctest import wait_until

HOG = """
name = "site/hog"
duration = "child"
[methods.start]
exec = ["python3", "-c", "x = bytearray(256 * 1024 * 1024); x[::4096] = b'x' * len(x[::4096])"]
[resources]
memory = "32Mi"
tasks = 64
[restart]
limit = 2
period = "60s"
"""


def _v1_memory_writable() -> bool:
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line.split(":", 2)[2].strip() for line in f if ":memory:" in line), None)
    except OSError:
        return False
    return own is not None and os.access(f"/sys/fs/cgroup/memory{own}", os.W_OK)


def _unified_has_memory() -> bool:
    try:
        with open("/sys/fs/cgroup/unified/cgroup.controllers") as f:
            return "memory" in f.read().split()
    except OSError:
        return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


@pytest.mark.skipif(os.geteuid() != 0 or not (_v1_memory_writable() or _unified_has_memory()),
                    reason="needs root and a writable memory controller (cgroup v2 delegated, or v1)")
def test_a_service_killed_at_its_memory_limit_is_one_case_and_svcs_x_names_the_limit(daemon):
    daemon.manifest("hog.toml", HOG)
    daemon.start()
    f = "svc:/site/hog:default"
    daemon.wait_state(f, "maintenance", timeout=30)
    ereports = daemon.call("fm.dump", errlog=True, limit=1000, **{"class": "ereport.svc.oom"})["entries"]
    assert ereports and ereports[0]["resource"] == f and ereports[0]["payload"]["limit"] == 32 * 1024 * 1024
    assert "memory limit of 32 MiB" in ereports[0]["payload"]["summary"]
    cases = wait_until(lambda: [c for c in daemon.call("fm.faulty") if c["suspects"][0]["resource"] == f], 15)
    assert len(cases) == 1 and cases[0]["class"] == "fault.svc.memory.limit" and cases[0]["msgid"] == "SVC-8000-8K"
    text = daemon.cli("svcs", "-x", "hog", check=True).stdout
    assert re.search(r"^Reason: .*killed by the kernel at the memory limit of 32 MiB \(resources\.memory\)",
                     text, re.M), text
    shown = daemon.cli("svcs", "-l", "hog", check=True).stdout
    assert re.search(r"^resource\s+memory 32 MiB \(cgroup v[12]", shown, re.M)
    assert re.search(r"^resource\s+tasks 64 \(cgroup v[12]", shown, re.M)


def test_limits_without_cgroups_are_refused_at_import_with_file_field_and_reason(daemon):
    daemon.start("--no-cgroup")
    path = daemon.manifest("hog.toml", HOG)
    r = daemon.cli("svccfg", "import", str(path))
    assert r.returncode == 1
    assert (f"{path}: resources.memory: svc:/site/hog:default: cannot be applied here: svcmgrd runs without "
            "cgroups (--no-cgroup)") in r.stderr
    assert f"{path}: resources.tasks:" in r.stderr
    assert daemon.call("list") == []  # nothing imported


def test_bad_privileges_and_limits_are_refused_with_file_field_and_reason(daemon):
    daemon.start()
    bad = daemon.manifest("bad.toml", """
        name = "site/bad"
        user = "nobody"
        privileges = "basic,net_privadr"
        limit_privileges = "basic,CAP_NOPE"
        umask = "999"
        [rlimits]
        nofiles = 10
        core = [10, 5]
        [resources]
        memory = "12k"
        cpu = "0%"
        [methods.start]
        exec = "sleep 1"
        """)
    xml = daemon.manifest("bad.xml", """<?xml version="1.0"?>
        <service_bundle type='manifest' name='t'>
        <service name='site/badxml' type='service' version='1'>
          <create_default_instance enabled='false'/>
          <exec_method type='method' name='start' exec='sleep 1' timeout_seconds='5'>
            <method_context><method_credential user='nobody' privileges='basic,proc_fokr'/></method_context>
          </exec_method>
          <exec_method type='method' name='stop' exec=':kill' timeout_seconds='5'>
            <method_context><method_profile name='Network Management'/></method_context>
          </exec_method>
        </service>
        </service_bundle>
        """)
    r = daemon.cli("svccfg", "import", str(bad))
    assert r.returncode == 1
    for text in (f"{bad}: privileges: 'net_privadr' is not an illumos privilege",
                 f"{bad}: limit_privileges: 'CAP_NOPE' is not an illumos privilege",
                 f"{bad}: umask: expected an octal mode", f"{bad}: rlimits.nofiles: unknown resource limit",
                 f"{bad}: rlimits.core: the soft limit 10 is above the hard limit 5",
                 f"{bad}: resources.memory: 12000 bytes is below", f"{bad}: resources.cpu: '0%' is out of range"):
        assert text in r.stderr, (text, r.stderr)
    r = daemon.cli("svccfg", "import", str(xml))
    assert r.returncode == 1
    assert f"{xml}: svc:/site/badxml: methods.start.privileges: 'proc_fokr' is not an illumos privilege" in r.stderr
    assert re.search(re.escape(str(xml)) + r": line \d+ <method_profile>: method_profile 'Network Management': "
                     "RBAC execution profiles are not supported", r.stderr)
    assert daemon.call("list") == []
