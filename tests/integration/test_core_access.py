"""Delegation through SO_PEERCRED and manifest authorizations; every class of bad request."""

import json
import os
import socket

import pytest

from svctest import wait_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="running commands as another user needs root")


def _child(name, auth=""):
    return f"""
        name = "{name}"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        {auth}
        """


@needs_root
def test_delegation_to_a_non_root_user(daemon):
    daemon.manifest("mine.toml", _child("a/mine", '[authorizations.action]\nusers = ["nobody"]'))
    daemon.manifest("team.toml", _child("a/team", '[authorizations.action]\ngroups = ["nogroup"]'))
    daemon.manifest("values.toml", _child("a/values", '[authorizations.value]\nusers = ["nobody"]'))
    daemon.manifest("theirs.toml", _child("a/theirs"))
    daemon.start()
    for n in ("mine", "team", "values", "theirs"):
        daemon.wait_state(f"svc:/a/{n}:default", "online")
    # Reading is open to everyone.
    r = daemon.cli("svcs", "-a", user="nobody")
    assert r.returncode == 0 and "svc:/a/theirs:default" in r.stdout
    # Allowed by name, and by group.
    before = daemon.pids("svc:/a/mine:default")
    assert daemon.cli("svcadm", "restart", "mine", user="nobody").returncode == 0
    wait_until(lambda: (p := daemon.pids("svc:/a/mine:default")) and p != before)
    assert daemon.cli("svcadm", "disable", "-t", "team", user="nobody").returncode == 0
    daemon.wait_state("svc:/a/team:default", "disabled")
    # An action grant does not allow a persistent change; a value grant does.
    r = daemon.cli("svcadm", "disable", "mine", user="nobody")
    assert r.returncode == 1
    assert "permission denied: uid 65534 (nobody) may not disable svc:/a/mine:default" in r.stderr
    assert "[authorizations.value]" in r.stderr
    assert daemon.cli("svcadm", "disable", "values", user="nobody").returncode == 0
    # Refused: no grant at all.
    r = daemon.cli("svcadm", "restart", "theirs", user="nobody")
    assert r.returncode == 1 and "may not restart svc:/a/theirs:default" in r.stderr
    r = daemon.cli("svccfg", "import", str(daemon.mdir / "theirs.toml"), user="nobody")
    assert r.returncode == 1 and "only root" in r.stderr
    assert daemon.state("svc:/a/theirs:default") == "online"


def _raw(daemon, payload: bytes) -> dict:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(daemon.root / "run" / "svcmgr.sock"))
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon answered and closed before reading everything

    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return json.loads(data)


@pytest.mark.parametrize("payload,words", [
    (b"this is not json\n", "not JSON"),
    (b"[1, 2, 3]\n", "expected a JSON object"),
    (b'{"op": "frobnicate"}\n', "unknown operation"),
    (b'{"op": 5}\n', "unknown operation"),
    (b'{"op": "enable"}\n', "missing argument 'fmris'"),
    (b'{"op": "enable", "fmris": "svc:/x"}\n', "'fmris' must be list"),
    (b'{"op": "enable", "fmris": [1]}\n', "list of strings"),
    (b'{"op": "enable", "fmris": ["svc:/a/s:default"], "temporary": "yes"}\n', "'temporary' must be bool"),
    (b'{"op": "mark", "fmris": ["svc:/a/s:default"], "state": "sleepy"}\n', "must be one of"),
    (b'{"op": "wait", "fmris": ["svc:/a/s:default"], "want": "online", "timeout": "soon"}\n', "must be"),
    # a timer at NaN breaks the order of the event loop's heap of timers (every other service's timeouts)
    (b'{"op": "wait", "fmris": ["svc:/a/s:default"], "want": "online", "timeout": NaN}\n', "finite"),
    (b'{"op": "wait", "fmris": ["svc:/a/s:default"], "want": "online", "timeout": Infinity}\n', "finite"),
    (b'{"op": "wait", "fmris": ["svc:/a/s:default"], "want": "online", "timeout": 1e400}\n', "finite"),
    (b'{"op": "import", "files": [{"path": 1}]}\n', "needs string"),
    (b'{"op": "setprop", "fmri": "svc:/a/s", "prop": "nopg", "values": ["x"]}\n', "expected pg/name"),
    (b'{"op": "show", "fmri": "svc:/::"}\n', "bad"),
    (b'\xff\xfe\n', "not JSON"),
    # JSON escapes of unpaired surrogates: not Unicode, so nothing can store or print them
    (b'{"op": "setprop", "fmri": "svc:/a/s", "prop": "app/x", "values": ["a\\ud800"]}\n', "not Unicode"),
    (b'{"op": "disable", "fmris": ["svc:/a/s:default"], "comment": "\\uDFFF"}\n', "not Unicode"),
])
def test_bad_requests_get_a_clear_error_and_change_nothing(daemon, payload, words):
    daemon.manifest("s.toml", _child("a/s"))
    daemon.start()
    daemon.wait_state("svc:/a/s:default", "online")
    reply = _raw(daemon, payload)
    assert reply["ok"] is False and words in reply["error"] and reply["code"] in (1, 2), reply
    assert daemon.state("svc:/a/s:default") == "online"
    assert daemon.call("ping")["instances"] == 1


def test_oversized_request_is_refused(daemon):
    daemon.start()
    reply = _raw(daemon, b'{"op": "ping", "pad": "' + b"x" * (17 * 1024 * 1024) + b'"}\n')
    assert reply["ok"] is False and "larger than" in reply["error"]
    assert daemon.call("ping")


def test_unknown_and_ambiguous_fmris(daemon):
    daemon.manifest("h1.toml", _child("net/http"))
    daemon.manifest("h2.toml", _child("site/http"))
    daemon.start()
    r = daemon.cli("svcadm", "restart", "http")
    assert r.returncode == 1
    assert "Partial FMRI matches multiple instances" in r.stderr
    assert "svc:/net/http" in r.stderr and "svc:/site/http" in r.stderr
    r = daemon.cli("svcadm", "restart", "nosuch")
    assert r.returncode == 1 and "Pattern 'nosuch' doesn't match any instances" in r.stderr
    assert daemon.cli("svcadm", "restart", "net/http").returncode == 0


def test_bad_imports_leave_nothing_behind(daemon):
    daemon.manifest("s.toml", _child("a/s"))
    daemon.start()
    good = daemon.manifest("good.toml", _child("a/good"))
    bad = daemon.manifest("bad.toml", 'name = "a/bad"\n[methods.start]\nexec = ":nope"\n')
    r = daemon.cli("svccfg", "import", str(good), str(bad))
    assert r.returncode == 1
    assert "nothing was imported" in r.stderr and "bad.toml: methods.start.exec: unknown method token" in r.stderr
    assert set(daemon.instances()) == {"svc:/a/s:default"}
    # A cycle across files, named in full; exclude_all edges would not count.
    c1 = daemon.manifest("c1.toml", _child("cy/one") + '[[dependencies]]\nname="n"\nfmris=["svc:/cy/two"]\n')
    c2 = daemon.manifest("c2.toml", _child("cy/two") + '[[dependencies]]\nname="n"\nfmris=["svc:/cy/one"]\n')
    r = daemon.cli("svccfg", "import", str(c1), str(c2))
    assert r.returncode == 1
    assert "dependency cycle: svc:/cy/one:default -> svc:/cy/two:default -> svc:/cy/one:default" in r.stderr
    # The same FMRI twice.
    dup = daemon.manifest("dup.toml", _child("a/good"))
    r = daemon.cli("svccfg", "import", str(good), str(dup))
    assert r.returncode == 1 and "svc:/a/good is also declared in" in r.stderr
    assert set(daemon.instances()) == {"svc:/a/s:default"}
    # validate names the same problems without a daemon round trip changing anything.
    r = daemon.cli("svccfg", "validate", str(c1), str(c2))
    assert r.returncode == 1 and "dependency cycle" in r.stderr


def test_bad_edits_are_refused_and_refresh_keeps_running_config(daemon):
    daemon.manifest("s.toml", _child("a/s"))
    daemon.start()
    daemon.wait_state("svc:/a/s:default", "online")
    r = daemon.cli("svccfg", "-s", "s", "setprop", "start/timeout_seconds", "=", "count:", "soon")
    assert r.returncode == 1 and "expected a count of seconds" in r.stderr
    r = daemon.cli("svccfg", "-s", "s", "setprop", "start/exec", "=", ":frob")
    assert r.returncode == 1 and "unknown method token" in r.stderr
    r = daemon.cli("svccfg", "-s", "s", "setprop", "pg/n", "=", "count:", "-3")
    assert r.returncode == 1 and 'No such property group "pg".' in r.stderr
    daemon.cli("svccfg", "-s", "s", "addpg", "pg", "application", check=True)
    r = daemon.cli("svccfg", "-s", "s", "setprop", "pg/n", "=", "count:", "-3")
    assert r.returncode == 1 and "negative" in r.stderr
    r = daemon.cli("svccfg", "-s", "s", "setprop", "general/enabled", "=", "false")
    assert r.returncode == 1 and "use svcadm" in r.stderr
    assert daemon.state("svc:/a/s:default") == "online"


def test_a_bad_manifest_at_daemon_start_is_reported_and_the_rest_runs(daemon):
    daemon.manifest("ok.toml", _child("a/ok"))
    daemon.manifest("broken.toml", 'name = "a/broken"\nduration = "eternal"\n')
    daemon.start()
    daemon.wait_state("svc:/a/ok:default", "online")
    assert "broken.toml: duration: must be one of" in daemon.log_text()
    assert "svc:/a/broken:default" not in daemon.instances()
