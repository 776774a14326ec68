"""svccfg as illumos operators script it (issue 12, gaps 2 and 3): setprop's types, quotes and groups,
and the command mode: one command, a file (-f), standard input and a terminal, with svccfg.c's
messages, line numbers and exit statuses; the entity, property, snapshot and profile commands."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from svctest import Daemon

NOTES = """
    name = "site/notes"
    duration = "child"
    description = "notes"
    [methods.start]
    exec = ["sleep", "1000"]
    [properties.config]
    port = { type = "count", values = [8080] }
    greeting = "hi"
    [instances.default]
    [instances.b]
    """


@pytest.fixture
def notes(daemon: Daemon) -> Daemon:
    daemon.manifest("notes.toml", NOTES)
    daemon.start()
    daemon.wait_state("svc:/site/notes:b", "online")
    return daemon


def _cfg(d: Daemon, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svcmgr.cli.svccfg", "--root", str(d.root), *args],
                          input=stdin, capture_output=True, text=True, env=d.env, timeout=60, check=False)


# ---------------------------------------------------------------- gap 2: setprop

def test_setprop_keeps_a_type_strips_quotes_and_needs_the_group(notes):
    notes.cli("svccfg", "-s", "notes", "setprop", "config/port", "=", "9090", check=True)
    assert notes.cli("svcprop", "-c", "-t", "-p", "config/port", "notes:b", check=True).stdout == \
        "config/port count 9090\n"  # a count stays a count
    notes.cli("svccfg", "-s", "notes", "setprop", "config/greeting", "=", '"hello world"', check=True)
    assert notes.cli("svcprop", "-c", "-p", "config/greeting", "notes:b", check=True).stdout == "hello\\ world\n"
    r = notes.cli("svccfg", "-s", "notes", "setprop", "config/greeting", "=", "hello world")
    assert (r.returncode, r.stderr) == (1, 'svccfg: Unknown type "hello".\n')  # two words: the first a type
    r = notes.cli("svccfg", "-s", "notes", "setprop", "tuning/level", "=", "count:", "3")
    assert (r.returncode, r.stderr) == (1, 'svccfg: No such property group "tuning".\n')
    r = notes.cli("svccfg", "-s", "notes", "setprop", "config/new", "=", "x")
    assert (r.returncode, r.stderr) == (1, "svccfg: Type required for new properties.\n")
    r = notes.cli("svccfg", "-s", "notes", "setprop", "config/new", "=", "bogus:", "x")
    assert (r.returncode, r.stderr) == (1, 'svccfg: Unknown type "bogus:".\n')
    r = notes.cli("svccfg", "-s", "notes", "setprop", "noslash", "=", "x")
    assert (r.returncode, r.stderr) == (1, "svccfg: Property names must contain a `/'.\n")
    notes.cli("svccfg", "-s", "notes", "addpg", "tuning", "application", check=True)
    notes.cli("svccfg", "-s", "notes", "setprop", "tuning/level", "=", "count:", "3", check=True)
    r = notes.cli("svccfg", "-s", "notes", "addpg", "tuning", "application")
    assert (r.returncode, r.stderr) == (1, "svccfg: Property group already exists.\n")
    # an instance takes the type of its service's property, and a group it has of its own
    notes.cli("svccfg", "-s", "notes:b", "addpg", "config", "application", check=True)
    notes.cli("svccfg", "-s", "notes:b", "setprop", "config/port", "=", "7", check=True)
    assert notes.cli("svcprop", "-c", "-t", "-p", "config/port", "notes:b", check=True).stdout == \
        "config/port count 7\n"


def test_value_lists_and_their_quotes(notes):
    notes.cli("svccfg", "-s", "notes", "setprop", "config/hosts", "=", "astring:", '("a b"', '"c")', check=True)
    assert notes.cli("svcprop", "-c", "-p", "config/hosts", "notes:b", check=True).stdout == "a\\ b c\n"
    r = notes.cli("svccfg", "-s", "notes", "setprop", "config/hosts", "=", "astring:", "(a", "b)")
    assert r.returncode == 1
    assert "Multiple string values or string values with spaces must be quoted with '\"'." in r.stderr
    notes.cli("svccfg", "-s", "notes", "setprop", "config/ports", "=", "count:", "(1", "2)", check=True)
    assert notes.cli("svcprop", "-c", "-p", "config/ports", "notes:b", check=True).stdout == "1 2\n"


# ---------------------------------------------------------------- gap 3: the command mode

def test_commands_from_a_file_stop_at_the_first_error_with_its_line(notes, tmp_path):
    f = tmp_path / "cmds"
    f.write_text("select notes:b\n# a comment\naddpg mine application\nsetprop mine/x = astring: hi\n"
                 "bogus\nsetprop mine/y = astring: never\n")
    r = _cfg(notes, "-f", str(f))
    assert r.returncode == 1 and r.stderr == f'svccfg ({f}, line 5): Unknown command "bogus".\n'
    out = notes.cli("svccfg", "-s", "notes:b", "listprop", "mine", check=True).stdout
    assert out == "mine    application\nmine/x  astring  hi\n"  # the line after the error was not run
    r = _cfg(notes, stdin="select notes\nlistprop config/port\n")
    assert (r.returncode, r.stdout) == (0, "config/port  count    8080\n")
    r = _cfg(notes, stdin="select notes\nselect nosuch\n")
    assert r.returncode == 1
    assert r.stderr == "svccfg (<stdin>, line 2): Pattern 'nosuch' doesn't match any instances or services\n"
    assert _cfg(notes, "-f", str(tmp_path / "absent")).returncode == 1


def test_a_terminal_gets_a_prompt_and_errors_do_not_end_it(notes):
    lines = ["select notes:default", "listprop general/enabled", "unselect", "unselect", "unselect",
             "setprop x/y = 1", "select nosuch", "exit"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: svccfg at a terminal
        os.execve(sys.executable, [sys.executable, "-m", "svcmgr.cli.svccfg", "--root", str(notes.root)],
                  notes.env)
    out = b""

    def read(seconds: float) -> None:
        nonlocal out
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    try:
        for line in lines:
            deadline = time.monotonic() + 20
            while not out.rstrip().endswith(b">") and time.monotonic() < deadline:
                read(0.1)
            os.write(fd, (line + "\n").encode())
            out += b"\0"  # the next prompt is awaited after this mark
        read(1.0)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = out.replace(b"\0", b"").decode().replace("\r\n", "\n")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "svc:> select notes:default\nsvc:/site/notes:default> listprop general/enabled\n" \
           "general/enabled  boolean  true\nsvc:/site/notes:default> unselect\nsvc:/site/notes> unselect\n" \
           "svc:> unselect\nCannot unselect at scope level.\nsvc:> setprop x/y = 1\nAn entity is not selected.\n" \
           "svc:> select nosuch\nPattern 'nosuch' doesn't match any instances or services\nsvc:> exit\n" in text


def test_entities_snapshots_and_deletion(notes):
    assert notes.cli("svccfg", "list", check=True).stdout.split() == ["site/notes"]
    assert notes.cli("svccfg", "-s", "notes", "list", check=True).stdout.split() == ["b", "default", ":properties"]
    pgs = notes.cli("svccfg", "-s", "notes:b", "listpg", check=True).stdout.splitlines()
    assert pgs == ["general    framework", "restarter  framework\tNONPERSISTENT"]
    assert notes.cli("svccfg", "-s", "notes:b", "listsnap", check=True).stdout.split() == [
        "initial", "last-import", "running"]
    assert notes.cli("svccfg", "-s", "notes", "listsnap").stderr == "svccfg: Instance not selected.\n"
    notes.cli("svccfg", "-s", "notes", "setprop", "config/port", "=", "1", check=True)
    notes.cli("svccfg", "-s", "notes:b", "revert", "initial", check=True)
    assert notes.cli("svcprop", "-c", "-p", "config/port", "notes:b", check=True).stdout == "8080\n"
    r = _cfg(notes, stdin="select notes:b\nselectsnap previous\nlistprop config/port\nsetprop config/port = 2\n")
    assert r.stdout == "config/port  count    1\n" and "Cannot modify snapshots." in r.stderr
    notes.cli("svccfg", "delete", "notes:b", check=True)  # one instance of two
    assert set(notes.instances()) == {"svc:/site/notes:default"}
    assert "[instances.b]" not in notes.cli("svccfg", "export", "notes", check=True).stdout


def test_profiles_archive_and_inventory(notes, tmp_path):
    extracted = notes.cli("svccfg", "extract", check=True).stdout
    assert "<service name='site/notes' type='service' version='0'>" in extracted
    assert "<instance name='b' enabled='true'/>" in extracted
    profile = tmp_path / "p.xml"
    profile.write_text("""<?xml version='1.0'?>
        <service_bundle type='profile' name='p'>
          <service name='site/notes' version='1' type='service'>
            <instance name='b' enabled='false'>
              <property_group name='tuning' type='application'>
                <propval name='level' type='count' value='3'/>
              </property_group>
            </instance>
          </service>
          <service name='site/absent' version='1' type='service'><instance name='default' enabled='true'/></service>
        </service_bundle>""")
    assert notes.cli("svccfg", "apply", "-n", str(profile), check=True).stdout == ""
    assert notes.state("svc:/site/notes:b") == "online"
    notes.cli("svccfg", "apply", str(profile), check=True)
    notes.wait_state("svc:/site/notes:b", "disabled")
    assert notes.cli("svcprop", "-p", "tuning/level", "notes:b", check=True).stdout == "3\n"
    manifest = tmp_path / "m.xml"
    notes.cli("svccfg", "export", "--xml", "notes", ">", str(manifest), check=True)
    assert notes.cli("svccfg", "inventory", str(manifest), check=True).stdout.split() == [
        "svc:/site/notes:default", "svc:/site/notes:b", "svc:/site/notes"]
    archive = notes.cli("svccfg", "archive", check=True).stdout
    assert "<service_bundle type=\"archive\" name=\"none\">" in archive and 'name="site/notes"' in archive
    r = notes.cli("svccfg", "apply", str(manifest))
    assert r.returncode == 1 and "is not a service profile" in r.stderr


def test_editprop_runs_what_the_editor_leaves(notes, tmp_path):
    editor = tmp_path / "editor"
    edit = "s|^# setprop config/port = count: 8080|setprop config/port = count: 77|"
    editor.write_text(f"#!/bin/sh\nsed -i '{edit}' \"$1\"\n")
    editor.chmod(0o755)
    r = subprocess.run([sys.executable, "-m", "svcmgr.cli.svccfg", "--root", str(notes.root), "-s", "notes",
                        "editprop"], capture_output=True, text=True, env={**notes.env, "EDITOR": str(editor)},
                       check=False)
    assert r.returncode == 0, r.stderr
    assert notes.cli("svcprop", "-c", "-p", "config/port", "notes:b", check=True).stdout == "77\n"


def test_editprop_lines_run_as_they_are_keep_every_value(notes, tmp_path):
    """Every setprop line editprop writes, run unchanged, sets the value it shows: an empty string is
    written "" (left bare, "astring:" became the value), quotes and backslashes are escaped."""
    for value in ('""', '"a \\"b\\\\c"', '("x y" "")'):
        notes.cli("svccfg", "-s", "notes", "setprop", "config/greeting", "=", "astring:", value, check=True)
        before = notes.cli("svccfg", "-s", "notes", "listprop", "config/greeting", check=True).stdout
        editor = tmp_path / "editor"
        editor.write_text("#!/bin/sh\nsed -i 's|^# setprop config/greeting |setprop config/greeting |' \"$1\"\n")
        editor.chmod(0o755)
        r = subprocess.run([sys.executable, "-m", "svcmgr.cli.svccfg", "--root", str(notes.root), "-s", "notes",
                            "editprop"], capture_output=True, text=True, env={**notes.env, "EDITOR": str(editor)},
                           check=False)
        assert r.returncode == 0, r.stderr
        assert notes.cli("svccfg", "-s", "notes", "listprop", "config/greeting", check=True).stdout == before


def test_a_refused_deletion_names_what_was_deleted(notes):
    """delpg start (a method the manifest needs) is refused naming the group, not as some "delprop"."""
    for cmd, what in ((["delpg", "start"], "start"), (["delprop", "start/exec"], "start/exec")):
        r = notes.cli("svccfg", "-s", "notes", *cmd)
        assert r.returncode == 1 and r.stderr.startswith(f"svccfg: deleting {what} refused:\n"), r.stderr
    assert notes.state("svc:/site/notes:b") == "online"


def test_what_has_no_meaning_here_says_why(notes):
    for cmd in (["repository", "x"], ["setenv", "A", "b"], ["add", "x"]):
        r = notes.cli("svccfg", *cmd)
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and r.stderr.startswith("svccfg: "), r.stderr
    assert notes.cli("svccfg", "-z", "global", "list").returncode == 1


PROFILE = """<?xml version="1.0"?>
<service_bundle type="profile" name="p">
  <service name="site/notes" version="1" type="service"><instance name="b" enabled="false"/></service>
</service_bundle>
"""


@pytest.mark.parametrize(("command", "module"), [
    (["export", "notes"], "tomli_w"), (["export", "--xml", "notes"], "defusedxml"), (["archive"], "defusedxml"),
    (["apply", "{profile}"], "defusedxml"), (["inventory", "{profile}"], "defusedxml"),
    (["validate", "{profile}"], "defusedxml")])
def test_a_writer_library_missing_is_named_not_a_traceback(notes, tmp_path, command, module):
    """The commands run under a plain python3 (another user's): a library it lacks (the TOML writer, the
    hardened XML parser) is an error that names it, with status 1, not a traceback; nothing is changed."""
    profile = tmp_path / "profile.xml"
    profile.write_text(PROFILE)
    command = [w.format(profile=profile) for w in command]
    root = notes.root if command[0] != "validate" else tmp_path / "no-daemon"  # validated here, not by svcmgrd
    code = (f"import sys; sys.modules[{module!r}] = None; from svcmgr.cli.svccfg import main; "
            "sys.exit(main())")
    r = subprocess.run([sys.executable, "-c", code, "--root", str(root), *command], capture_output=True,
                       text=True, env=notes.env, timeout=60, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"svccfg: {command[0]} needs the Python module {module}, "), r.stderr
    assert ("export --json" in r.stderr) == (command[0] in ("export", "archive"))
    assert notes.state("svc:/site/notes:b") == "online"


def test_a_manifest_that_is_not_utf8_is_refused_not_mangled(notes, tmp_path):
    """svccfg import (and validate) refuse bytes that are not UTF-8, naming the file and the byte, as svcmgrd
    --manifests does, rather than import U+FFFD in their place."""
    bad = tmp_path / "bad.toml"
    blob = b'name = "site/latin"\nduration = "child"\n[methods.start]\nexec = ["echo", "caf\xe9"]\n'
    bad.write_bytes(blob)
    offset = blob.index(b"\xe9")
    for verb in ("import", "validate"):
        r = notes.cli("svccfg", verb, str(bad))
        assert r.returncode == 1, r
        assert r.stderr == f"svccfg: {bad}: not UTF-8 text: byte 0xe9 at offset {offset}\n"
    assert "latin" not in notes.cli("svcs", "-a", check=True).stdout


def test_a_command_file_that_is_not_utf8_names_its_line_as_stdin_does(notes, tmp_path):
    """svccfg -f reads a file's bytes as standard input is read: a byte that is not UTF-8 is an error of
    that line (status 1), the lines before it run, and no traceback."""
    cmds = b"select notes\naddpg mine application\nsetprop mine/x = astring: \"caf\xe9\"\n"
    f = tmp_path / "cmds"
    f.write_bytes(cmds)
    r = _cfg(notes, "-f", str(f))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"svccfg ({f}, line 3): ")
    assert "not Unicode" in r.stderr
    assert "mine" in notes.cli("svccfg", "-s", "notes", "listprop", "mine", check=True).stdout
