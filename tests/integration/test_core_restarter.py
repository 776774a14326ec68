"""The restarter with real processes: durations, timeouts, SMF exit codes, the rate limit, probes, logs."""

import datetime as dt
import itertools
import os
import re
import signal
import socket
import sys
from pathlib import Path

from svctest import wait_until


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_transient_service_runs_once_and_stays_online(daemon, tmp_path):
    count = tmp_path / "count"
    daemon.manifest("once.toml", f"""
        name = "t/once"
        duration = "transient"
        [methods.start]
        exec = "echo run >> {count}"
        [methods.stop]
        exec = "echo stop >> {count}"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/once:default", "online")
    assert daemon.pids("svc:/t/once:default") == []
    daemon.cli("svcadm", "disable", "-s", "once", check=True)
    assert count.read_text().split() == ["run", "stop"]


def test_contract_service_whose_processes_all_exit_at_start_is_not_left_online(daemon, tmp_path):
    # A contract service whose start method returns 0 and leaves nothing running has failed to
    # start: it is retried and ends in maintenance, never shown online with no process to watch.
    runs = tmp_path / "runs"
    daemon.manifest("gone.toml", f"""
        name = "t/gone"
        [methods.start]
        exec = "echo run >> {runs}"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/gone:default", "maintenance")
    assert len(runs.read_text().split()) == 3
    out = daemon.cli("svcs", "-x", "gone", check=True).stdout
    assert "exited as soon as it started" in out


def test_child_is_restarted_on_every_exit_at_most_once_a_second(daemon, tmp_path):
    runs = tmp_path / "runs"
    daemon.manifest("child.toml", f"""
        name = "t/child"
        duration = "child"
        [methods.start]
        exec = "date +%%s.%%N >> {runs}; exit 0"
        [restart]
        limit = 100
        """)
    daemon.start()
    wait_until(lambda: runs.exists() and len(runs.read_text().split()) >= 3, 15)
    stamps = [float(x) for x in runs.read_text().split()][:3]
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(stamps)), stamps


def test_start_timeout_kills_the_method_and_retries_then_maintenance(daemon):
    daemon.manifest("slow.toml", """
        name = "t/slow"
        [methods.start]
        exec = ["sleep", "30"]
        timeout = "300ms"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/slow:default", "maintenance")
    x = daemon.cli("svcs", "-x", "slow", check=True).stdout
    assert "Start method failed repeatedly, last timed out after 0.3s." in x
    assert daemon.log("svc:/t/slow:default").count("Killing contract") == 3


def test_timeout_retry_false_goes_to_maintenance_at_the_first_timeout(daemon):
    daemon.manifest("slow.toml", """
        name = "t/slow"
        [methods.start]
        exec = ["sleep", "30"]
        timeout = "300ms"
        [restart]
        timeout_retry = false
        """)
    daemon.start()
    daemon.wait_state("svc:/t/slow:default", "maintenance")
    assert daemon.log("svc:/t/slow:default").count("Executing start method") == 1


def test_config_error_exit_code_means_maintenance_at_once(daemon):
    daemon.manifest("bad.toml", """
        name = "t/bad"
        [methods.start]
        exec = "echo missing config >&2; exit 96"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/bad:default", "maintenance")
    log = daemon.log("svc:/t/bad:default")
    assert log.count("Executing start method") == 1 and "missing config" in log
    assert "Reason: Start method exited with status 96 (SMF_EXIT_ERR_CONFIG)." in daemon.cli("svcs", "-x", "bad").stdout


def test_temp_disable_exit_code(daemon):
    daemon.manifest("off.toml", """
        name = "t/off"
        [methods.start]
        exec = "exit 101"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/off:default", "disabled")
    assert "enabled      false (temporary)" in daemon.cli("svcs", "-l", "off", check=True).stdout


def test_three_start_failures_in_a_row_mean_maintenance(daemon):
    daemon.manifest("fail.toml", """
        name = "t/fail"
        [methods.start]
        exec = "exit 1"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/fail:default", "maintenance")
    assert daemon.log("svc:/t/fail:default").count("Executing start method") == 3
    assert "Start method failed repeatedly, last exited with status 1." in daemon.cli("svcs", "-x").stdout


def test_restart_rate_limit_puts_a_flapping_service_in_maintenance_and_clear_brings_it_back(daemon):
    daemon.manifest("flap.toml", """
        name = "t/flap"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [restart]
        limit = 3
        period = "60s"
        """)
    daemon.start()
    for _ in range(3):
        daemon.wait_state("svc:/t/flap:default", "online")
        (pid,) = wait_until(lambda: daemon.pids("svc:/t/flap:default"))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda pid=pid: pid not in daemon.pids("svc:/t/flap:default"))
    daemon.wait_state("svc:/t/flap:default", "maintenance")
    x = daemon.cli("svcs", "-x", check=True).stdout
    assert "Reason: Restarting too quickly (3 failures within 60s), last died on Killed (9)." in x
    assert "See: " in x and "Log:" in x and "Executing start method" in x
    daemon.cli("svcadm", "clear", "flap", check=True)
    daemon.wait_state("svc:/t/flap:default", "online")


def test_svcs_x_shows_the_escape_sequences_a_service_logged_and_sends_none_to_the_terminal(daemon):
    # the log's tail is what the service wrote (a delegated user's service, say): set the window title, clear
    daemon.manifest("esc.toml", r"""
        name = "t/esc"
        duration = "transient"
        [methods.start]
        exec = "printf 'before \\033]0;owned\\007\\033[2J after\\n'; exit 95"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/esc:default", "maintenance")
    x = daemon.cli("svcs", "-x", "esc", check=True).stdout
    assert "\x1b" not in x and "\x07" not in x
    assert r"before \x1b]0;owned\x07\x1b[2J after" in x


def test_svcs_x_and_l_show_the_escape_sequences_a_health_probe_printed_and_send_none_to_the_terminal(daemon):
    # a failed probe's last line of output is the reason svcs -x and svcs -l give: what the service's own files
    # (or a delegated user's property value, svcs -lv) say is text, not a command to the operator's terminal
    daemon.manifest("probed.toml", r"""
        name = "t/probed"
        duration = "child"
        [methods.start]
        exec = ["sleep", "100000"]
        [health]
        command = ["sh", "-c", "printf 'down \\033]0;owned\\007\\033[2J'; exit 1"]
        interval = "0.2s"
        failures = 1
        action = "degrade"
        [authorizations.value]
        users = ["nobody"]
        [properties.config]
        motd = "hello"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/probed:default", "degraded")
    daemon.cli("svccfg", "-s", "t/probed", "setprop", "config/motd", "=", "astring:", "hi\x1b]0;owned\x07",
               check=True)
    daemon.cli("svcadm", "refresh", "t/probed", check=True)
    shown = r"down \x1b]0;owned\x07\x1b[2J"
    for argv in (("svcs", "-x", "probed"), ("svcs", "-lv", "probed")):
        out = daemon.cli(*argv, check=True).stdout
        assert "\x1b" not in out and "\x07" not in out, (argv, out)
        assert shown in out, (argv, out)
    assert r"hi\x1b]0;owned\x07" in daemon.cli("svcs", "-lv", "probed", check=True).stdout


def test_tcp_readiness(daemon, tmp_path):
    port = free_port()
    daemon.manifest("web.toml", f"""
        name = "t/web"
        [methods.start]
        exec = "sleep 0.5; exec {sys.executable} -m http.server --bind 127.0.0.1 {port}"
        [readiness]
        tcp = "127.0.0.1:{port}"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/web:default", "online")
    socket.create_connection(("127.0.0.1", port), timeout=2).close()  # online means it answers


def test_http_and_command_readiness(daemon, tmp_path):
    port = free_port()
    flag = tmp_path / "ready"
    daemon.manifest("web.toml", f"""
        name = "t/web"
        [methods.start]
        exec = ["{sys.executable}", "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
        [readiness]
        http = "http://127.0.0.1:{port}/"
        """)
    daemon.manifest("cmd.toml", f"""
        name = "t/cmd"
        duration = "child"
        [methods.start]
        exec = "sleep 0.5; touch {flag}; exec sleep 1000"
        [readiness]
        command = ["test", "-e", "{flag}"]
        """)
    daemon.start()
    daemon.wait_state("svc:/t/web:default", "online")
    daemon.wait_state("svc:/t/cmd:default", "online")
    assert flag.exists()


NOTIFIER = (
    "import os, socket, sys, time\n"
    "time.sleep(0.4)\n"
    "open(sys.argv[1], 'w').close()\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "s.sendto(b'READY=1\\nSTATUS=serving', os.environ['NOTIFY_SOCKET'])\n"
    "time.sleep(1000)\n"
)


def test_notify_readiness(daemon, tmp_path):
    flag = tmp_path / "ready"
    daemon.manifest("n.toml", f"""
        name = "t/notify"
        [methods.start]
        exec = [{sys.executable!r}, "-c", {NOTIFIER!r}, "{flag}"]
        [readiness]
        notify = true
        """)
    daemon.manifest("after.toml", """
        name = "t/after"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [[dependencies]]
        name = "n"
        fmris = ["svc:/t/notify"]
        """)
    daemon.start()
    daemon.wait_state("svc:/t/after:default", "online")
    assert flag.exists()  # the dependent started only after READY=1
    assert "status       serving" in daemon.cli("svcs", "-l", "notify", check=True).stdout


def test_notify_from_a_foreign_process_is_ignored(daemon, tmp_path):
    daemon.manifest("n.toml", """
        name = "t/notify"
        [methods.start]
        exec = ["sleep", "1000"]
        timeout = "1s"
        [readiness]
        notify = true
        [restart]
        timeout_retry = false
        """)
    daemon.start()
    daemon.wait_state("svc:/t/notify:default", "offline", settled=False)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", str(daemon.root / "run" / "notify.sock"))
    s.close()
    daemon.wait_state("svc:/t/notify:default", "maintenance")


def test_health_probe_degrades_and_recovers(daemon, tmp_path):
    ok = tmp_path / "healthy"
    ok.touch()
    daemon.manifest("h.toml", f"""
        name = "t/h"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [health]
        command = ["test", "-e", "{ok}"]
        interval = "100ms"
        failures = 2
        action = "degrade"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/h:default", "online")
    pid = daemon.pids("svc:/t/h:default")
    ok.unlink()
    daemon.wait_state("svc:/t/h:default", "degraded")
    assert "Health probe failed" in daemon.cli("svcs", "-x", "h").stdout
    ok.touch()
    daemon.wait_state("svc:/t/h:default", "online")
    assert daemon.pids("svc:/t/h:default") == pid  # degraded, not restarted


def test_health_probe_restarts(daemon, tmp_path):
    port = free_port()
    daemon.manifest("h.toml", f"""
        name = "t/h"
        [methods.start]
        exec = ["{sys.executable}", "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
        [readiness]
        tcp = "127.0.0.1:{port}"
        [methods.stop]
        exec = ":kill"
        timeout = "1s"
        [health]
        http = "http://127.0.0.1:{port}/"
        interval = "100ms"
        timeout = "300ms"
        failures = 2
        [restart]
        limit = 50
        """)
    daemon.start()
    daemon.wait_state("svc:/t/h:default", "online")
    (pid,) = daemon.pids("svc:/t/h:default")
    os.kill(pid, signal.SIGSTOP)  # hung: the port accepts, nothing answers
    try:
        wait_until(lambda: (p := daemon.pids("svc:/t/h:default")) and pid not in p, 20,
                   what="the hung server to be replaced")
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    daemon.wait_state("svc:/t/h:default", "online")
    assert "Health probe failed (2/2)" in daemon.log("svc:/t/h:default")


def test_logs_are_timestamped_with_framework_lines(daemon):
    daemon.manifest("talk.toml", """
        name = "t/talk"
        duration = "transient"
        [methods.start]
        exec = "echo to stdout; echo to stderr >&2; printf 'no newline'"
        """)
    daemon.start()
    daemon.wait_state("svc:/t/talk:default", "online")
    path = daemon.cli("svcs", "-L", "talk", check=True).stdout.strip()
    assert path.endswith("/log/t-talk:default.log")
    lines = Path(path).read_text().splitlines()
    assert re.match(r"\[ \w{3} \d\d \d\d:\d\d:\d\d Executing start method \(\"echo to stdout", lines[0])
    body = [line for line in lines if not line.startswith("[")]
    today = dt.date.today().isoformat()
    assert any(line.startswith(today) and line.endswith(" to stdout") for line in body)
    assert any(line.endswith(" to stderr") for line in body)


def test_logs_rotate_by_size(daemon):
    daemon.manifest("chatty.toml", """
        name = "t/chatty"
        duration = "transient"
        [methods.start]
        exec = "i=0; while [ $i -lt 400 ]; do echo line $i of chatter chatter chatter; i=$((i+1)); done"
        [log]
        max_size = "4KiB"
        keep = 2
        """)
    daemon.start()
    daemon.wait_state("svc:/t/chatty:default", "online")
    path = daemon.call("log", fmri="chatty")["path"]
    wait_until(lambda: any("line 399" in Path(p).read_text() for p in (path, path + ".1") if os.path.exists(p)))
    assert os.path.exists(path + ".1") and os.path.exists(path + ".2") and not os.path.exists(path + ".3")
    assert os.path.getsize(path) < 8192


def test_the_log_says_why_a_service_stopped(daemon):
    daemon.manifest("db.toml", 'name = "t/db"\nduration = "child"\n[methods.start]\nexec = ["sleep", "1000"]\n')
    daemon.manifest("app.toml", """
        name = "t/app"
        duration = "child"
        [methods.start]
        exec = ["sleep", "1000"]
        [[dependencies]]
        name = "db"
        restart_on = "restart"
        fmris = ["svc:/t/db"]
        """)
    daemon.start()
    daemon.wait_state("svc:/t/app:default", "online")
    daemon.cli("svcadm", "restart", "db", check=True)
    wait_until(lambda: "Stopping: Dependency svc:/t/db:default stopped (restart_on=restart)." in
               daemon.log("svc:/t/app:default"))
    assert "Stopping: Restarting on request of an administrator." in daemon.log("svc:/t/db:default")
    daemon.wait_state("svc:/t/app:default", "online")
    daemon.cli("svcadm", "disable", "-s", "app", check=True)
    assert "Stopping: Disabled by an administrator." in daemon.log("svc:/t/app:default")
