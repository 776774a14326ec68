"""The illumos man pages' own examples (svcs(1), svcprop(1), svcadm(8), svccfg(8)), typed as an operator types
them into a shell, against a daemon holding the services they name; the output is compared with the output the
man pages document, line by line, but for times, contract ids, process ids and paths (tests/transcript.py).
Where svcmgr prints something else on purpose the transcript says so in a comment and docs/smf-differences.md
says why (issue 12)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from transcript import commands, play

from svctest import private_daemon


def _svc(name: str, extra: str = "", deps: tuple[str, ...] = (), exec_: str = '["sleep", "1000"]',
         duration: str = "child") -> str:
    text = f'name = "{name}"\nduration = "{duration}"\n{extra}\n[methods.start]\nexec = {exec_}\n'
    for n, dep in enumerate(deps):
        text += f'\n[[dependencies]]\nname = "dep{n}"\ngrouping = "require_all"\nfmris = {json.dumps([dep])}\n'
    return text


#: the services the examples name, as a default installation has them (in the states the examples find them)
SERVICES = {
    "service1": _svc("service1") + "\n[instances.instance1]\n[instances.instance2]\nenabled = false\n",
    "bind": _svc("network/rpc/bind"),
    "rstat": _svc("network/rpc/rstat", deps=("svc:/network/rpc/bind",)) + "\n[instances.udp]\n",
    # svcs sorts by state, then by the time of the last change: the man page's listing has sendmail online before
    # cron, which two services started together give only by chance (a CI run had cron first), so cron waits for it
    "cron": _svc("system/cron", deps=("svc:/network/smtp:sendmail",)),
    "smtp": _svc("network/smtp") + "\n[instances.sendmail]\n",
    "ntp": _svc("network/ntp"),
    "identity": _svc("system/identity", duration="transient", exec_='["true"]') +
    "\n[instances.node]\n[instances.domain]\n",
    "lp": _svc("application/print/server", 'enabled = false\ndescription = "LP print server"'),
    "rfc1179": _svc("application/print/rfc1179", deps=("svc:/application/print/server",)),
    "ipp": _svc("application/print/ipp-listener", deps=("svc:/application/print/server",)),
    # nfs/status fails at once, three times: maintenance, the root cause of nlockmgr, client and cbd
    "status": _svc("network/nfs/status", 'description = "NFS status monitor"', exec_='["false"]',
                   duration="transient"),
    "nlockmgr": _svc("network/nfs/nlockmgr", deps=("svc:/network/nfs/status",)),
    "client": _svc("network/nfs/client", 'description = "NFS client"', deps=("svc:/network/nfs/nlockmgr",)),
    "cbd": _svc("network/nfs/cbd", deps=("svc:/network/nfs/status",)),
    "server": _svc("network/nfs/server"),
    "http": _svc("network/http") + "\n[instances.apache]\n",
    "foo": _svc("foo", "enabled = false", deps=("svc:/baz",)) + "\n[instances.bar]\nenabled = false\n",
    "baz": _svc("baz", "enabled = false"),
    "single": _svc("milestone/single-user", deps=("svc:/system/cron",), duration="transient", exec_='["true"]'),
    "telnet": _svc("network/telnet", "enabled = false"),
    "dumpadm": _svc("system/dumpadm"),
    "upgrade": _svc("network/inetd-upgrade", duration="transient", exec_='["true"]'),
    "console": _svc("system/console-login") + '\n[properties.ttymon]\ndevice = "/dev/console"\nlabel = "console"\n',
}

SEISMIC = """\
<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="seismic">
  <service name="site/seismic" type="service" version="1">
    <create_default_instance enabled="true"/>
    <single_instance/>
    <exec_method type="method" name="start" exec="sleep 1000" timeout_seconds="60"/>
    <exec_method type="method" name="stop" exec=":kill" timeout_seconds="60"/>
    <property_group name="startd" type="framework">
      <propval name="duration" type="astring" value="child"/>
    </property_group>
  </service>
</service_bundle>
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """The environment the transcripts run in (a daemon's), and their working folder."""
    with private_daemon() as d:
        for name, text in SERVICES.items():
            d.manifest(f"{name}.toml", text)
        # no diagnosis rules: svcs -x as SMF alone prints it (a fault case would be named beside the reason)
        (d.root / "svcmgr.toml").write_text("[fault]\nbuiltin_rules = false\n")
        d.start("--config", str(d.root / "svcmgr.toml"))
        for fmri, state in (("svc:/network/nfs/status:default", "maintenance"), ("svc:/system/cron:default", "online"),
                            ("svc:/network/smtp:sendmail", "online"), ("svc:/network/rpc/rstat:udp", "online"),
                            ("svc:/network/nfs/server:default", "online"), ("svc:/network/http:apache", "online"),
                            ("svc:/application/print/ipp-listener:default", "offline")):
            d.wait_state(fmri, state, timeout=30)
        folder = tmp_path_factory.mktemp("transcripts")
        (folder / "seismic.xml").write_text(SEISMIC)
        yield commands(folder, d.root, d.env), folder


def test_svcs_examples(site):
    env, cwd = site
    play(env, cwd, """
        $ svcs
        STATE          STIME    FMRI
        ...
        online         {time} svc:/network/smtp:sendmail
        ...
        online         {time} svc:/system/cron:default
        ...
        $ svcs -o state,nstate,fmri service1
        STATE          NSTATE        FMRI
        online         -             svc:/service1:instance1
        disabled       -             svc:/service1:instance2
        $ svcs -v network/rpc/rstat:udp
        STATE          NSTATE        STIME    CTID   FMRI
        online         -             {time} {ctid} svc:/network/rpc/rstat:udp
        $ svcs -l network/rpc/rstat:udp
        fmri         svc:/network/rpc/rstat:udp
        enabled      true
        state        online
        next_state   none
        ...
        restarter    svc:/system/svc/restarter:default
        contract_id  {n}
        ...
        dependency   require_all/none svc:/network/rpc/bind (online)
        ...
        $ svcs -p sendmail
        STATE          STIME    FMRI
        online         {time} svc:/network/smtp:sendmail
                       {time} {pid} sleep
        $ svcs -x
        svc:/network/nfs/status:default (NFS status monitor)
         State: maintenance since {date}
        Reason: Start method failed repeatedly, last exited with status 1.
           See: {path}/log/network-nfs-status:default.log
        Impact: 3 dependent services are not running.  (Use -v for list.)
        ...

        svc:/application/print/server:default (LP print server)
         State: disabled since {date}
        Reason: Disabled by an administrator.
           See: {path}/log/application-print-server:default.log
        Impact: 2 dependent services are not running.  (Use -v for list.)
        $ svcs nfs/client
        STATE          STIME    FMRI
        offline        {time} svc:/network/nfs/client:default
        $ svcs -xv nfs/client
        svc:/network/nfs/client:default (NFS client)
         State: offline since {date}
        Reason: Service svc:/network/nfs/status:default
                is not running because a method failed repeatedly.
          Path: svc:/network/nfs/client:default
                  svc:/network/nfs/nlockmgr:default
                    svc:/network/nfs/status:default
           See: {path}/log/network-nfs-client:default.log
        Impact: This service is not running.
        """)


def test_svcprop_examples(site):
    env, cwd = site
    (cwd / "getval").write_text(textwrap.dedent("""\
        #!/bin/sh

        svcprop -p $1 $2 | (
                 read value v2
                 if [ -n "$v2" ]; then echo "Multiple values!"; exit; fi
                 echo $value
               )
        """))
    (cwd / "enabled").write_text(textwrap.dedent("""\
        set -- `svcprop -c -t -p general/enabled service1:instance2`
        code=$?
        if [ $code -ne 0 ]; then
                echo "svcprop failed with exit code $code"
                exit 1
        fi
        if [ $2 != boolean ]; then
                 echo "general/enabled has unexpected type $2"
                 exit 2
        fi
        if [ $# -ne 3 ]; then
                  echo "general/enabled has wrong number of values"
                  exit 3
        fi
        value=$3
        echo $value
        """))
    play(env, cwd, """
        $ svcprop -p restarter/state system/cron:default
        online
        $ svcprop -c -p general/enabled system/cron:default
        true
        $ svcprop -p general ntp
        ...
        general/enabled boolean true
        ...
        $ svcprop -q -p general/enabled identity:
        $ echo $?
        0
        $ sh enabled
        false
        $ sh getval restarter/state cron
        online
        """)


def test_svccfg_examples(site):
    env, cwd = site
    play(env, cwd, """
        $ svccfg import seismic.xml
        imported svc:/site/seismic
        $ svcadm enable -s seismic
        $ svcs -H -o state seismic
        online
        $ svccfg export dumpadm >dump.toml
        $ head -2 dump.toml
        # svc:/system/dumpadm, imported from {path}/manifests/dumpadm.toml
        name = "system/dumpadm"
        $ svccfg export --xml dumpadm >dump.xml
        $ head -5 dump.xml
        <?xml version="1.0"?>
        <!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
        <!-- svc:/system/dumpadm as exported by svcmgr (svccfg export with the xml option) -->
        <service_bundle type="manifest" name="system-dumpadm">
        {any}<service name="system/dumpadm" type="service" version="1">
        $ svccfg delete network/inetd-upgrade:default
        $ svcs network/inetd-upgrade:default
        STATE          STIME    FMRI
        2> svcs: Pattern 'network/inetd-upgrade:default' doesn't match any instances
        [exit 1]
        $ svccfg <<EOF
        > repository /etc/svc/repository-boot
        > EOF
        2> svccfg (<stdin>, line 1): svcmgr keeps one repository, its daemon's (choose another daemon with --root)
        [exit 1]
        $ svccfg <<EOF
        > select telnet:default
        > listprop general/enabled
        > exit
        > EOF
        general/enabled  boolean  false
        $ svccfg -s system/console-login setenv LD_PRELOAD libumem.so
        2> svccfg: method environments are declared in the manifest: change [methods.NAME.environment] {any}
        [exit 1]
        $ svccfg -s console-login describe ttymon
        ttymon         application
        ttymon/device  astring  /dev/console
        ttymon/label   astring  console
        """)


def test_svcadm_examples(site):
    env, cwd = site
    play(env, cwd, """
        $ svcadm restart nfs/server
        $ svcadm disable -c "OPS-1000" -s http
        $ svcs -l http
        fmri         svc:/network/http:apache
        enabled      false
        comment      OPS-1000
        state        disabled
        ...
        $ svcadm enable -r foo:bar
        $ svcadm enable -s foo:bar
        $ svcs -H -o state,fmri foo:bar baz
        online         svc:/baz:default
        online         svc:/foo:bar
        $ svcadm milestone milestone/single-user
        $ until svcs -H -o state ntp | grep -qx disabled; do sleep 0.1; done
        $ svcs -H -o state,fmri system/cron ntp
        disabled       svc:/network/ntp:default
        online         svc:/system/cron:default
        $ svcadm milestone all
        $ svcadm enable -s ntp
        $ svcs -H -o state ntp
        online
        """)
