"""The fault commands: argument parsing, layouts, and that they import only the client and the standard library."""

import datetime as dt
import subprocess
import sys

import pytest

from fault.cases import Case, CaseEv, Suspect
from fault.cli import fmadm, fmdump, fminject
from fault.knowledge import load_knowledge
from fault.views import case_view


def test_since_forms():
    now = dt.datetime(2026, 3, 4, 12, 0, 0).timestamp()
    assert fmdump.parse_since("10m", now) == now - 600
    assert fmdump.parse_since("2h", now) == now - 7200
    assert fmdump.parse_since("1d", now) == now - 86400
    assert fmdump.parse_since("09:30", now) == dt.datetime(2026, 3, 4, 9, 30).timestamp()
    assert fmdump.parse_since("2026-03-01", now) == dt.datetime(2026, 3, 1).timestamp()
    assert fmdump.parse_since("1767323045", now) == 1767323045.0
    for bad in ("yesterday", "25:00", "10x", ""):
        with pytest.raises(ValueError, match="is not a time"):
            fmdump.parse_since(bad, now)


def test_fminject_values():
    assert fminject.payload(["a=1", "b=1.5", "c=true", "d=text", "e=[1,2]", 'f={"x":1}', "g=", "h=1e3"]) == \
        {"a": 1, "b": 1.5, "c": True, "d": "text", "e": [1, 2], "f": {"x": 1}, "g": "", "h": 1000.0}
    with pytest.raises(SystemExit) as ei:
        fminject.payload(["novalue"])
    assert ei.value.code == 2


def test_fmadm_layout_is_fmds():
    kb, _ = load_knowledge()
    c = Case.new("svc-flapping", "fault.svc.flapping", "SVC-8000-3Q", "major", "node1", "degrade")
    c.suspects = [Suspect("fault.svc.flapping", "svc:/site/db:default", 100)]
    c.impacted = ["svc:/site/app:default"]
    c.detail = "a process (pid 7) died on SIGKILL (9)"
    c.window, c.fires_at, c.ereport_count = "30m", 3, 3
    c.apply(CaseEv.SOLVE, "solved")
    view = case_view(c, kb, lambda f, s: "faulted and taken out of service" if s else "not running")
    text = fmadm.render(view)
    lines = text.splitlines()
    assert lines[0] == lines[2] == fmadm.RULE
    assert lines[1].split() == ["TIME", "EVENT-ID", "MSG-ID", "SEVERITY"]
    assert lines[3].split()[3:] == [c.uuid, "SVC-8000-3Q", "Major"]
    for want in ("Host        : node1", "Fault class : fault.svc.flapping",
                 "Affects     : svc:/site/db:default", "                  faulted and taken out of service",
                 "              svc:/site/app:default (impacted)", "Problem in  : svc:/site/db:default",
                 "Description : svc:/site/db:default failed 3 times; 3 failures within 30m"):
        assert want in text, want
    assert "Action      :" in text and "Response    :" in text and "Impact      :" in text


def test_fleet_without_a_broker_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fault.cli.fmadm", "--root", str(tmp_path), "faulty", "--fleet"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("fmadm: no MQTT broker: give --mqtt URL or --config FILE")


def test_commands_without_a_daemon_say_so(tmp_path):
    for mod in ("fmadm", "fmdump", "fmstat"):
        args = ["faulty"] if mod == "fmadm" else []
        r = subprocess.run([sys.executable, "-m", f"fault.cli.{mod}", "--root", str(tmp_path), *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "svcmgrd is not running" in r.stderr


def test_bad_usage_exits_2(tmp_path):
    for argv in (["fmadm", "nonsense"], ["fmadm", "repair"], ["fmdump", "-n", "x"], ["fminject"]):
        r = subprocess.run([sys.executable, "-m", f"fault.cli.{argv[0]}", "--root", str(tmp_path), *argv[1:]],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (argv, r.stderr)


def test_commands_import_only_the_client_and_the_standard_library():
    heavy = ("networkx", "jinja2", "aiomqtt", "prometheus_client", "sqlite3", "fault.diagnosis", "fault.daemon",
             "svcmgr.engine", "asyncio")
    code = ("import sys\nimport fault.cli.fmadm, fault.cli.fmdump, fault.cli.fmstat, fault.cli.fminject\n"
            f"print([m for m in sys.modules if m.split('.')[0] in {heavy!r} or m in {heavy!r}])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert r.stdout.strip() == "[]"
