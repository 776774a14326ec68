"""svcprop as svcprop.c answers (issue 12, gap 1): a service with one instance resolves to it, the views
(-c, -C, -s snapshot), -f, -q, -t, -w, several operands and patterns, property operands, quoting,
missing names, and protected values for a user without the read grant."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from svctest import Daemon, private_daemon, wait_until

NOTES = "svc:/site/notes:default"


@pytest.fixture(scope="module")
def notes() -> Iterator[Daemon]:
    with private_daemon() as d:
        d.manifest("notes.toml", """
            name = "site/notes"
            duration = "child"
            [methods.start]
            exec = ["sleep", "1000"]
            [properties.config]
            port = { type = "count", values = [8080] }
            motd = "a b;c"
            empty = ""
            [instances.default.properties.mine]
            colour = "blue"
            """)
        d.manifest("pair.toml", textwrap.dedent("""
            name = "site/pair"
            duration = "child"
            [methods.start]
            exec = ["sleep", "1000"]
            [instances.a]
            [instances.b]
            """))
        d.start()
        d.wait_state(NOTES, "online")
        d.wait_state("svc:/site/pair:b", "online")
        yield d


def test_a_service_with_one_instance_resolves_to_it(notes):
    assert notes.cli("svcprop", "-p", "restarter/state", "site/notes", check=True).stdout == "online\n"
    r = notes.cli("svcprop", "-p", "restarter/state", "svc:/site/notes")  # the service itself: no state
    assert r.returncode == 1
    assert r.stderr == "svcprop: Couldn't find property group `restarter' for service `svc:/site/notes'.\n"
    assert notes.cli("svcprop", "-p", "config/port", "svc:/site/notes", check=True).stdout == "8080\n"


def test_output_formats(notes):
    assert notes.cli("svcprop", "-p", "config/motd", "notes", check=True).stdout == "a\\ b\\;c\n"
    assert notes.cli("svcprop", "-p", "config/empty", "notes", check=True).stdout == '""\n'
    assert notes.cli("svcprop", "-t", "-p", "config/port", "notes", check=True).stdout == "config/port count 8080\n"
    assert notes.cli("svcprop", "-f", "-p", "config/port", "notes", check=True).stdout == \
        f"{NOTES}/:properties/config/port count 8080\n"
    group = notes.cli("svcprop", "-p", "config", "notes", check=True).stdout.splitlines()
    assert "config/port count 8080" in group and "config/motd astring a\\ b\\;c" in group
    mixed = notes.cli("svcprop", "-p", "config/port", "-p", "mine", "notes", check=True).stdout.splitlines()
    assert mixed == ["config/port count 8080", "mine/colour astring blue"]
    every = notes.cli("svcprop", "notes", check=True).stdout.splitlines()
    assert "restarter/state astring online" in every and "general/enabled boolean true" in every


def test_several_instances_are_designated_by_their_fmris(notes):
    out = notes.cli("svcprop", "-p", "restarter/state", "pair", check=True).stdout.splitlines()
    assert out == ["svc:/site/pair:a/:properties/restarter/state astring online",
                   "svc:/site/pair:b/:properties/restarter/state astring online"]
    both = notes.cli("svcprop", "-p", "restarter/state", "site/p*", "notes", check=True).stdout.splitlines()
    assert len(both) == 3 and all(line.endswith(" astring online") for line in both)


def test_property_operands(notes):
    assert notes.cli("svcprop", f"{NOTES}/:properties/config/port", check=True).stdout == "8080\n"
    r = notes.cli("svcprop", "-p", "config/port", f"{NOTES}/:properties/config/port")
    assert r.returncode == 2 and "cannot be used with property operands" in r.stderr
    # -w says it as svcprop.c's do_wait does
    r = notes.cli("svcprop", "-w", "-p", "config/port", f"{NOTES}/:properties/config/port")
    assert (r.returncode, r.stderr) == (2, "svcprop: -p cannot be used with property FMRIs.\n")


def test_property_group_operands(notes):
    """svcprop(1): an operand may name a property group: its properties, with names and types; a -p then
    names properties in it (one component), as process_pg() in svcprop.c does."""
    group = f"{NOTES}/:properties/config"
    assert notes.cli("svcprop", group, check=True).stdout == \
        'config/empty astring ""\nconfig/motd astring a\\ b\\;c\nconfig/port count 8080\n'
    assert notes.cli("svcprop", "-p", "port", group, check=True).stdout == "8080\n"
    r = notes.cli("svcprop", "-p", "nope", group)
    assert (r.returncode, r.stderr) == (1, f"svcprop: Couldn't find property `nope' in property group `{group}'.\n")
    r = notes.cli("svcprop", "-p", "config/port", group)
    assert (r.returncode, r.stderr) == (2, "svcprop: -p argument `config/port' has too many components for "
                                           f"property group `{group}'.\n")
    r = notes.cli("svcprop", f"{NOTES}/:properties/nosuch")
    assert (r.returncode, r.stderr) == (1, f"svcprop: Couldn't find property group `nosuch' for instance "
                                           f"`{NOTES}'.\n")


def test_a_snapshot_reads_the_restarters_group_as_it_is_now(notes):
    """svcprop.c: a -p group a snapshot lacks is read from the instance as it is now when it is
    non-persistent (the restarter's), so -s running -p restarter/state says the state; a whole listing of
    a snapshot still leaves it out."""
    for snap in ("running", "initial"):
        assert notes.cli("svcprop", "-s", snap, "-p", "restarter/state", NOTES, check=True).stdout == "online\n"
        listing = notes.cli("svcprop", "-s", snap, NOTES, check=True).stdout
        assert "restarter/" not in listing and "config/port count 8080" in listing
    r = notes.cli("svcprop", "-s", "initial", "-p", "nosuch/x", NOTES)
    assert r.returncode == 1 and "Couldn't find property group `nosuch'" in r.stderr


def test_missing_names_and_quiet(notes):
    assert notes.cli("svcprop", "-q", "-p", "config/port", "notes").returncode == 0
    r = notes.cli("svcprop", "-q", "-p", "config/nope", "notes")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    r = notes.cli("svcprop", "-q", "-v", "-p", "config/nope", "notes")
    assert r.returncode == 1 and r.stderr == f"svcprop: Couldn't find property `config/nope' for instance `{NOTES}'.\n"
    r = notes.cli("svcprop", "-p", "config/port", "nosuch", "notes")
    assert r.returncode == 1 and r.stdout == "8080\n"
    assert r.stderr == "svcprop: Pattern 'nosuch' doesn't match any entities\n"
    assert notes.cli("svcprop", "-p", "a/b/c", "notes").returncode == 2
    r = notes.cli("svcprop", "-p", "bad name", "notes")
    assert r.returncode == 2 and "Invalid component name `bad name'." in r.stderr


@pytest.mark.parametrize("argv", [["-c", "-C"], ["-c", "-s", "running"], ["-w", "-c"], ["-w", "-p", "a", "-p", "b"]])
def test_views_exclude_one_another(notes, argv):
    assert notes.cli("svcprop", *argv, "notes").returncode == 2


@pytest.fixture
def counter(daemon: Daemon) -> Daemon:
    """A daemon running site/v, whose config/port is a count, 1."""
    daemon.manifest("v.toml", """
        name = "site/v"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [properties.config]
        port = { type = "count", values = [1] }
        """)
    daemon.start()
    daemon.wait_state("svc:/site/v:default", "online")
    return daemon


def test_views_and_snapshots(counter):
    daemon = counter
    daemon.cli("svccfg", "-s", "site/v", "setprop", "config/port", "=", "count:", "2", check=True)
    prop = ["-p", "config/port", "site/v"]
    assert daemon.cli("svcprop", *prop, check=True).stdout == "1\n"  # running
    assert daemon.cli("svcprop", "-c", *prop, check=True).stdout == "2\n"  # editing
    daemon.cli("svcadm", "refresh", "site/v", check=True)
    assert daemon.cli("svcprop", *prop, check=True).stdout == "2\n"
    assert daemon.cli("svcprop", "-s", "initial", *prop, check=True).stdout == "1\n"
    assert daemon.cli("svcprop", "-s", "running", *prop, check=True).stdout == "2\n"
    daemon.cli("svccfg", "-s", "site/v:default", "revert", "initial", check=True)  # keeps "previous"
    assert daemon.cli("svcprop", "-c", *prop, check=True).stdout == "1\n"
    assert daemon.cli("svcprop", "-s", "previous", *prop, check=True).stdout == "2\n"
    for snap, said in (("nosuch", "No such snapshot."), ("bad name", "Invalid snapshot name.")):
        r = daemon.cli("svcprop", "-s", snap, *prop)
        assert r.returncode == 1 and said in r.stderr
    r = daemon.cli("svcprop", "-s", "initial", "-p", "config/port", "svc:/site/v")
    assert r.returncode == 1 and "Only instances have snapshots." in r.stderr
    attached = daemon.cli("svcprop", "-C", "site/v", check=True).stdout
    assert "restarter/state astring online" in attached and "config/port" not in attached


def _between_looks(p: subprocess.Popen[str]) -> bool:
    """svcprop -w sleeps only between two looks at the group: asleep (in clock_nanosleep, where the kernel says
    where a process sleeps) it has looked; ended, it will not."""
    try:
        with open(f"/proc/{p.pid}/wchan") as f:
            return "nanosleep" in f.read() or p.poll() is not None
    except OSError:
        return p.poll() is not None


def test_w_waits_for_the_group_to_change(counter):
    daemon = counter
    cmd = [sys.executable, "-m", "svcmgr.cli.svcprop", "--root", str(daemon.root), "-w", "-p", "config/port", "v"]
    waiter = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=daemon.env)
    try:
        # its first look at the group: 2 s of python's start-up and one request were not always enough under load
        wait_until(lambda: _between_looks(waiter), 30, what="svcprop -w's first look at the group")
        assert waiter.poll() is None  # nothing changed yet
        daemon.cli("svccfg", "-s", "site/v", "setprop", "config/port", "=", "7", check=True)
        out, err = waiter.communicate(timeout=20)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert (waiter.returncode, out) == (0, "7\n"), err
    r = daemon.cli("svcprop", "-w", "site/v")
    assert r.returncode == 2 and "Cannot wait for an instance." in r.stderr
