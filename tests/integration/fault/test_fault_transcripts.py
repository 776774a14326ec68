"""fmdump(8)'s own examples, and fmadm(8) and fmstat(8) as their man pages and sources describe them (those pages
have no examples), typed into a shell against a daemon that diagnosed two disks; the output is compared with
the output illumos documents, line by line, but for times, UUIDs, ENAs and paths (tests/transcript.py).
These are also the tests of issue 12's gap 7: fmadm repaired, acquit FMRI UUID, faulty -r -f -v -i -n -p,
fmdump -V -T -m -n and the -t/-T forms, fmstat -m -a -z and interval/count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from transcript import commands, play

from fault_helpers import fault_config, rules_dir, wait_until
from svctest import private_daemon

DISK1 = "dev:///pci@0,0/pci1000,3060@3/disk@1,0"
DISK2 = "dev:///pci@0,0/pci1000,3060@3/disk@2,0"
RULE = """
[[rule]]
name = "disk-rqs"
match = ["ereport.io.scsi.disk.rqs"]
resources = ["dev"]
fault = "fault.io.disk.degraded"
msgid = "DISK-8000-3E"
"""


@pytest.fixture(scope="module")
def fmd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """A fault manager that logged ereport.io.ddi.context on dev:/// and diagnosed disk@1,0 then disk@2,0 (one
    ereport.io.scsi.disk.rqs each); the environment the transcripts run in and their working folder."""
    with private_daemon() as d:
        rules = rules_dir(d, {"disk.toml": RULE})
        d.start("--config", fault_config(d, f'[fault]\nbuiltin_rules = false\nrules = ["{rules}"]\n'))
        folder = tmp_path_factory.mktemp("fm-transcripts")
        env = commands(folder, d.root, d.env)
        play(env, folder, f"""
            $ fminject -r dev:/// ereport.io.ddi.context
            fminject: posted ereport.io.ddi.context on dev:///
            2> fminject: warning: no rule consumes ereport.io.ddi.context on dev:///: {{any}}
            $ fminject -r {DISK1} ereport.io.scsi.disk.rqs
            fminject: posted ereport.io.scsi.disk.rqs on {DISK1}
            """)
        wait_until(lambda: len(d.call("fm.faulty")) == 1, 10, what="disk@1,0 diagnosed")
        play(env, folder, f"""
            $ fminject -r {DISK2} ereport.io.scsi.disk.rqs
            fminject: posted ereport.io.scsi.disk.rqs on {DISK2}
            """)
        wait_until(lambda: len(d.call("fm.faulty")) == 2, 10, what="disk@2,0 diagnosed")
        yield env, folder


DDI_CONTEXT = """\
{vtime} ereport.io.ddi.context
nvlist version: 0
\tclass = ereport.io.ddi.context
\tena = {hex}
\tdetector = (embedded nvlist)
\tnvlist version: 0
\t\tversion = 0x0
\t\tscheme = dev
\t\tdevice-path = /
\t(end detector)

\tsource = inject
\t__ttl = 0x1
\t__tod = {hex} {hex}

"""


def test_fmdump_examples(fmd):
    env, cwd = fmd
    # Example 1: four ways of naming the class, one record (svcmgr adds the member "source")
    for argv in ("-Ve -c 'ereport.io.ddi.context'", "-Ve -c 'ereport.*.context'",
                 "-Ve -n 'class=ereport.io.ddi.context'", "-Ve -n 'class=ereport.*.context'"):
        play(env, cwd, f"$ fmdump {argv}\nTIME                           CLASS\n{DDI_CONTEXT}$ true\n")
    # Example 2: a detector's device path, by regular expression
    play(env, cwd, """
        $ fmdump -Ve -n 'detector.device-path=.*/disk@1,0$'
        TIME                           CLASS
        {vtime} ereport.io.scsi.disk.rqs
        nvlist version: 0
        \tclass = ereport.io.scsi.disk.rqs
        \tena = {hex}
        \tdetector = (embedded nvlist)
        \tnvlist version: 0
        \t\tversion = 0x0
        \t\tscheme = dev
        \t\tdevice-path = /pci@0,0/pci1000,3060@3/disk@1,0
        \t(end detector)

        \tsource = inject
        \t__ttl = 0x1
        \t__tod = {hex} {hex}

        $ true
        """)


def test_fmdump_fault_log_and_times(fmd):
    env, cwd = fmd
    play(env, cwd, """
        $ fmdump
        TIME                 UUID                                 SUNW-MSG-ID EVENT
        {fmtime} {uuid} DISK-8000-3E Diagnosed
        {fmtime} {uuid} DISK-8000-3E Diagnosed
        $ fmdump | awk 'NR == 2 { print $4 }' >case1
        $ fmdump -v -u $(cat case1)
        TIME                 UUID                                 SUNW-MSG-ID EVENT
        {fmtime} {uuid} DISK-8000-3E Diagnosed
          100%  fault.io.disk.degraded

                Problem in: dev:///pci@0,0/pci1000,3060@3/disk@1,0
                   Affects: dev:///pci@0,0/pci1000,3060@3/disk@1,0
                       FRU: -
                  Location: -

        $ fmdump -n 'fault-list.resource.device-path=disk@2,0$' | wc -l
        2
        $ fmdump -V -u $(cat case1)
        TIME                           UUID                                 SUNW-MSG-ID
        {vtime} {uuid} DISK-8000-3E

          TIME                 CLASS                                 ENA
          {fmtime} ereport.io.scsi.disk.rqs              {hex}

        nvlist version: 0
        \tversion = 0x0
        \tclass = list.suspect
        \tuuid = {uuid}
        \tcode = DISK-8000-3E
        ...
        \tfault-status = 0x1
        \t__ttl = 0x1
        \t__tod = {hex} {hex}

        $ fmdump -m -u $(cat case1) | head -5
        SUNW-MSG-ID: DISK-8000-3E, TYPE: Fault, VER: 1, SEVERITY: Major
        EVENT-TIME: {any}
        PLATFORM: {any}, CSN: -, HOSTNAME: {any}
        SOURCE: disk-rqs, REV: {any}
        EVENT-ID: {uuid}
        $ fmdump -t 10m | wc -l
        3
        $ fmdump --last 1 | wc -l
        2
        2> fmdump: warning: only the last record is shown (--last N for more)
        $ fmdump -T 02Dec03
        TIME                 UUID                                 SUNW-MSG-ID EVENT
        $ fmdump -t '12/31/99 23:59:59.5' -T 1ns | wc -l
        3
        $ fmdump -t yesterday
        2> fmdump: illegal time format -- yesterday
        [exit 2]
        $ fmdump -m -e
        2> fmdump: -m mode is not supported for log of type error: the error log
        [exit 2]
        """)


def _unit(disk: str) -> str:
    """What fmadm faulty -f prints of a disk diagnosed by one ereport: the unit, its case, the case's article."""
    return f"""\
------------------------------------------------------------------------------
{disk} faulty
{{uuid}} 1 suspects in this FRU total certainty 100%

Description : {disk} reports I/O errors. Errors
              counted: 1; the rule marks a disk degraded at 1 within -. Last:
              ereport.io.scsi.disk.rqs.

Response    : None: the disk stays in use.

Impact      : Reads and writes on the disk may fail; file systems on it may go
              read-only. Impacted: none.

Action      : Check the disk (smartctl -a, dmesg), plan to replace it, then run
              'fmadm replaced {disk}' (or
              'fmadm repair {{uuid}}' if it was a
              transient fault).
"""


def test_fmadm_subcommands(fmd):
    env, cwd = fmd
    play(env, cwd, """
        $ fmadm faulty -s
        --------------- ------------------------------------  -------------- ---------
        TIME            EVENT-ID                              MSG-ID         SEVERITY
        --------------- ------------------------------------  -------------- ---------
        {any} {uuid}  DISK-8000-3E   Major{any}
        {any} {uuid}  DISK-8000-3E   Major{any}
        $ fmadm faulty -r
        dev:///pci@0,0/pci1000,3060@3/disk@2,0                                degraded
        dev:///pci@0,0/pci1000,3060@3/disk@1,0                                degraded
        """)
    play(env, cwd, "$ fmadm faulty -f\n" + _unit(DISK2) + _unit(DISK1))
    play(env, cwd, """
        $ fmadm faulty -f -s
        dev:///pci@0,0/pci1000,3060@3/disk@2,0 faulty
        {uuid} 1 suspects in this FRU total certainty 100%
        dev:///pci@0,0/pci1000,3060@3/disk@1,0 faulty
        {uuid} 1 suspects in this FRU total certainty 100%
        $ fmadm faulty -i | grep -c CACHE-ID
        2
        $ fmadm faulty -v -n 1 | grep -A3 '^Affects'
        Affects     : dev:///pci@0,0/pci1000,3060@3/disk@2,0
                          faulted but still in service
        Problem in  : dev:///pci@0,0/pci1000,3060@3/disk@2,0
                          faulted but still in service
        --
        Affects     : dev:///pci@0,0/pci1000,3060@3/disk@1,0
                          faulted but still in service
        Problem in  : dev:///pci@0,0/pci1000,3060@3/disk@1,0
                          faulted but still in service
        $ PAGER=cat fmadm faulty -p | grep -c '^Host'
        2
        $ fmdump | awk 'NR == 2 { print $4 }' >case1
        $ fmadm acquit dev:///pci@0,0/pci1000,3060@3/disk@1,0 $(cat case1)
        fmadm: recorded acquital of dev:///pci@0,0/pci1000,3060@3/disk@1,0
        $ fmadm repaired dev:///pci@0,0/pci1000,3060@3/disk@2,0
        fmadm: recorded repair to of dev:///pci@0,0/pci1000,3060@3/disk@2,0
        $ fmadm faulty -r
        $ fmadm faulty -a -r
        dev:///pci@0,0/pci1000,3060@3/disk@2,0                                ok
        dev:///pci@0,0/pci1000,3060@3/disk@1,0                                ok
        $ fmadm repaired dev:///pci@0,0/pci1000,3060@3/disk@2,0
        2> fmadm: failed to record repair to dev:///pci@0,0/pci1000,3060@3/disk@2,0: {any}
        [exit 1]
        $ fmadm -q acquit $(cat case1)
        2> fmadm: failed to record acquital of {uuid}: {any}
        [exit 1]
        $ fmdump | awk '{ print $NF }'
        EVENT
        Diagnosed
        Diagnosed
        Repaired
        Resolved
        Repaired
        Resolved
        $ fmadm rotate errlog
        2> fmadm: rotate: {any}
        [exit 1]
        """)


def test_fmstat_reports(fmd):
    env, cwd = fmd
    play(env, cwd, """
        $ fmstat
        module             ev_recv ev_acpt wait  svc_t  %w  %b  open solve  memsz  bufsz
        disk-rqs                 2       2  0.0 {any}   0 {any}     {n}     2      -      -
        inject                   3       3  0.0    0.0   0   0     0     0      -      -
        $ fmstat -m disk-rqs -z
                        NAME VALUE            DESCRIPTION
                      opened 2                cases opened
                      engine first event      the engine
        $ fmstat -a -m disk-rqs -z | head -3
                        NAME VALUE            DESCRIPTION
                fmd.received 2                ereports received
                fmd.accepted 2                ereports accepted
        $ fmstat -a | grep errlog.received
             errlog.received 3                ereports received into the error log
        $ fmstat 1 2 | grep -c module
        2
        $ fmstat 1 2 | awk '$1 == "inject" { print $2 }'
        3
        0
        $ fmstat -s
        2> fmstat: -s requires -m <module>
        [exit 2]
        $ fmstat -m nosuch
        2> fmstat: failed to retrieve statistics for nosuch: {any}
        [exit 1]
        """)
