"""Hostile: anyone who can write to /tmp, and anyone who can read a file (docs/security.md, "files").

Findings 8 and 9 of issue 10. The attacker (uid 65534) prepares folders before a victim
uses them: the per-user registration folder in ``/tmp`` that tells a user's commands
where their daemon is, and a ``--root`` state folder with links planted where the
daemon writes. Then it tries to read what it should not: a service's secrets in the
repository, the logs, ``svcprop`` and ``svccfg export``; an OOM of its own process in the
root memory group; a private ``--root`` folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostile import SYSTEM_PYTHON, raw_call
from svctest import Daemon, remove_cgroups, wait_until

WEB = "svc:/site/web:default"
SECRET = "s3cret-db-password-4711"


@pytest.fixture
def victim() -> Iterator[int]:
    """An unprivileged uid with no account and no /tmp/svcmgr-UID yet; that folder is removed afterwards."""
    if os.path.exists("/run/svcmgr/svcmgr.sock"):
        pytest.skip("a system svcmgrd runs here: the commands would find it before any registration")
    for uid in range(41000 + os.getpid() % 5000, 50000):
        with contextlib.suppress(KeyError):
            pwd.getpwuid(uid)
            continue
        if not os.path.lexists(f"/tmp/svcmgr-{uid}"):
            break
    yield uid
    shutil.rmtree(f"/tmp/svcmgr-{uid}", ignore_errors=True)


#: The attacker's stand-in for a daemon: notes every client that talks to it.
_FAKE = r"""
import json, os, socket, sys
path, note = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(path), exist_ok=True)
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    request = c.recv(65536)
    with open(note, "ab") as f:
        f.write(request)
    c.sendall(json.dumps({"ok": True, "result": []}).encode() + b"\n")
    c.close()
"""


def _plant(attacker, uid: int, files: dict[str, str], links: dict[str, str]) -> None:
    """As the attacker: make /tmp/svcmgr-UID/svcmgr (open to all) with these files and links in it."""
    r = attacker.python(f"""
        import os
        d = "/tmp/svcmgr-{uid}/svcmgr"
        os.makedirs(d)
        os.chmod(os.path.dirname(d), 0o777)
        os.chmod(d, 0o777)
        for name, text in {files!r}.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        for name, target in {links!r}.items():
            os.symlink(target, os.path.join(d, name))
        """)
    assert r.returncode == 0, r.stderr


def test_finding_8_a_planted_registration_does_not_redirect_a_users_commands(attacker, victim):
    fake_root = attacker.work / f"fake-{victim}"
    note = attacker.work / f"heard-{victim}"
    fake = attacker.spawn(_FAKE, str(fake_root / "run" / "svcmgr.sock"), str(note))
    try:
        assert fake.stdout.readline().strip() == "ready", fake.stderr.read()
        _plant(attacker, victim, {"root": f"{fake_root}\n"}, {})
        r = attacker.run(SYSTEM_PYTHON, "-m", "svcmgr.cli.svcadm", "restart", "site/web", uid=victim)
    finally:
        os.killpg(fake.pid, signal.SIGKILL)
        fake.wait()
    assert not note.exists(), f"the victim's svcadm talked to the attacker's socket: {note.read_bytes()[:200]!r}"
    assert r.returncode == 1 and "svcmgrd is not running" in r.stderr, r.stderr


def test_finding_8_planted_links_do_not_make_a_daemon_write_for_another_user(attacker, victim):
    home = Path(tempfile.mkdtemp(prefix="svcmgr-victim-", dir="/tmp"))
    try:
        os.chown(home, victim, victim)
        precious = home / "precious"
        precious.write_text("the victim's own data\n")
        os.chown(precious, victim, victim)
        with open("/proc/sys/kernel/ns_last_pid") as f:
            last = int(f.read())
        # Where the daemon writes its registration before renaming it: root.PID, for every pid it may get.
        _plant(attacker, victim, {}, {f"root.{pid}": str(precious) for pid in range(last, last + 3000)})
        env = {**attacker.env(), "HOME": str(home)}
        env.pop("XDG_RUNTIME_DIR", None)
        d = subprocess.Popen(attacker.argv(SYSTEM_PYTHON, "-m", "svcmgr.daemon", "--root", str(home / "state"),
                                           "--metrics", "", uid=victim),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd="/")
        try:
            sock = str(home / "state" / "run" / "svcmgr.sock")
            wait_until(lambda: d.poll() is not None or (os.path.exists(sock) and raw_call(sock, {"op": "ping"})), 20,
                       what="the victim's daemon to answer")
        finally:
            d.send_signal(signal.SIGTERM)
            out = d.communicate(timeout=20)[0]
        assert precious.read_text() == "the victim's own data\n", "the daemon wrote through a planted link"
        assert f"/tmp/svcmgr-{victim}: belongs to uid {attacker.uid}, not to uid {victim}" in out, out[-2000:]
        assert "--root" in out and "is not recorded for the commands" in out
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_finding_8_a_state_folder_another_user_made_is_refused(attacker, tmp_path):
    # Files of root that the planted links point at.
    targets = {name: tmp_path / name for name in ("pidfile", "logfile", "database")}
    for p in targets.values():
        p.write_text("root's own data\n")
    trap = Path(f"/tmp/svcmgr-trap-{os.getpid()}")  # in /tmp, where anyone may make a folder first
    r = attacker.python(f"""
        import os
        t = {str(trap)!r}
        os.mkdir(t, 0o755)
        for d in ("run", "log", "lib"):
            os.makedirs(os.path.join(t, d))
        os.symlink({str(targets["pidfile"])!r}, os.path.join(t, "run", "svcmgrd.pid"))
        os.symlink({str(targets["logfile"])!r}, os.path.join(t, "log", "site-web:default.log"))
        os.symlink({str(targets["database"])!r}, os.path.join(t, "lib", "repository.db"))
        """)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
    d = Daemon(trap, env)
    d.manifest("web.toml", 'name = "site/web"\nduration = "child"\n[methods.start]\nexec = ["/bin/sleep", "1000"]\n')
    try:
        d.start(wait=False)
        code = d.proc.wait(20)
        said = d.log_text()
    finally:
        d.stop()
        remove_cgroups(trap)
        shutil.rmtree(trap, ignore_errors=True)
    for name, p in targets.items():
        assert p.read_text() == "root's own data\n", f"the daemon wrote its {name} through a planted link"
    assert code != 0
    assert f"{trap}: belongs to uid {attacker.uid}, not to uid 0" in said


def test_finding_9_secrets_stay_with_root(daemon, attacker):
    daemon.manifest("web.toml", f"""
        name = "site/web"
        duration = "child"
        [methods.start]
        exec = "echo connecting with $DB_PASSWORD; exec /bin/sleep 100000"
        [methods.start.environment]
        DB_PASSWORD = "{SECRET}"
        [properties.secrets]
        read_authorization = "solaris.smf.read.web"
        api_key = "{SECRET}-key"
        """)
    daemon.start()
    daemon.wait_state(WEB, "online")
    log = Path(daemon.call("log", fmri=WEB)["path"])
    wait_until(lambda: SECRET in log.read_text(), 10, what="the service to print its secret")
    repo = daemon.root / "lib" / "repository.db"
    r = attacker.python(f"""
        import sys
        for path in ({str(repo)!r}, {str(repo)!r} + "-wal", {str(log)!r}):
            try:
                data = open(path, "rb").read()
            except OSError as e:
                print(path, type(e).__name__)
            else:
                print(path, "READ", {SECRET!r}.encode() in data)
        """)
    assert "READ" not in r.stdout, r.stdout
    shown = [attacker.cli(daemon.root, "svcprop", "site/web"),
             attacker.cli(daemon.root, "svccfg", "-s", "site/web", "listprop")]
    for r in shown:
        assert r.returncode == 0 and SECRET not in r.stdout, r.stdout
        assert "[authorizations.read]" in r.stderr
    assert "secrets/api_key astring \n" in shown[0].stdout  # svcprop: as if it had no values
    assert "secrets/api_key             astring \n" in shown[1].stdout  # svccfg listprop: the same
    exported = attacker.call(daemon.root, "export", fmri="site/web")
    assert exported["ok"] and SECRET not in json.dumps(exported)
    tails = [attacker.call(daemon.root, "log", fmri=WEB, lines=50),
             attacker.call(daemon.root, "explain", fmris=[WEB], verbose=True)]
    assert all(t["ok"] and SECRET not in json.dumps(t) for t in tails), tails
    # root still sees everything
    assert SECRET in json.dumps(daemon.call("export", fmri="site/web"))
    assert oct(repo.stat().st_mode & 0o777) == "0o600" and oct(log.stat().st_mode & 0o777) == "0o640"


def test_finding_9_an_oom_in_the_root_memory_group_names_no_service(daemon, attacker):
    kern = daemon.root / "kern.log"
    kern.write_text("")
    daemon.manifest("web.toml", 'name = "site/web"\nduration = "child"\n[methods.start]\n'
                                'exec = ["/bin/sleep", "100000"]\n')
    cfg = daemon.root / "node.toml"
    cfg.write_text(f'[fault]\nkmsg = "{kern}"\ncorrelation_skew = "0s"\n')
    daemon.start("--config", str(cfg))
    daemon.wait_state(WEB, "online")
    wait_until(lambda: daemon.call("fm.stat")["kmsg"] == str(kern), 10)
    # The attacker's own process dies of a global OOM; the kernel names the root memory group.
    hog = attacker.spawn("import time\ntime.sleep(100000)\n")
    pid = hog.pid
    os.kill(pid, signal.SIGKILL)
    hog.wait()
    with kern.open("a") as f:
        f.write(f"[ 9.000000] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,"
                f"global_oom,task_memcg=/,task=python3,pid={pid},uid={attacker.uid}\n")
        f.write(f"[ 9.000001] Out of memory: Killed process {pid} (python3) total-vm:1000kB, anon-rss:900kB, "
                "file-rss:0kB, shmem-rss:0kB, UID:65534 pgtables:40kB oom_score_adj:0\n")
    (e,) = wait_until(lambda: daemon.call("fm.dump", errlog=True, **{"class": "ereport.kernel.oom"})["entries"],
                      10, what="the OOM ereport")
    assert e["resource"] == "sw:///python3", e
    time.sleep(0.5)
    assert not [c for c in daemon.call("fm.faulty") if c["suspects"][0]["resource"] == WEB]


def test_finding_9_an_existing_root_folder_keeps_its_mode(attacker, tmp_path):
    root = Path(tempfile.mkdtemp(prefix="svcmgr-", dir="/tmp"))  # 0700: its owner's alone
    d = Daemon(root, {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "xdg")})
    try:
        d.start()
        assert root.stat().st_mode & 0o777 == 0o700
        r = attacker.run("/bin/ls", str(root / "lib"))
        assert r.returncode != 0 and "Permission denied" in r.stderr
    finally:
        d.stop()
        remove_cgroups(root)
        shutil.rmtree(root, ignore_errors=True)
