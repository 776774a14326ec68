"""Hostile: a local user claims to belong to a service's contract (docs/security.md, "contracts").

Finding 7 of issue 10. Where the daemon tracks processes by process group (no writable
cgroup v2, or ``--no-cgroup``), a process that left its group is recognised by the
``SVCMGR_CONTRACT`` marker in its environment. Anyone can write that: the attacker
(uid 65534) starts a process carrying the marker of a running service, so that the
service would look alive after its real process died. The marker now only confirms a
process the kernel ties to the daemon (a child of the subreaper).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal

from svctest import wait_until

WEB = "svc:/site/web:default"

#: A double-forked process in a session of its own, the marker in its environment: prints its pid.
_CLAIM = r"""
import os, sys
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execve("/bin/sleep", ["sleep", "100000"], {"SVCMGR_CONTRACT": sys.argv[1]})
    os._exit(0)
os.close(w)
print(os.read(r, 32).decode(), flush=True)
"""


def test_finding_7_a_process_with_a_services_marker_is_not_its_member(daemon, attacker):
    # A classic daemon: the start method forks, the child leaves the session and the method exits.
    daemon.manifest("web.toml", """
        name = "site/web"
        [methods.start]
        exec = "/usr/bin/setsid /bin/sleep 100000 < /dev/null > /dev/null 2>&1 &"
        """)
    daemon.start("--no-cgroup")
    daemon.wait_state(WEB, "online")
    real = wait_until(lambda: daemon.pids(WEB), 10, what="the daemonized process to be tracked")
    ctid = daemon.info(WEB)["ctid"]
    marker = f"{hashlib.sha1(str(daemon.root).encode()).hexdigest()[:10]}.{ctid}"
    r = attacker.python(_CLAIM, marker)
    assert r.returncode == 0, r.stderr
    fake = int(r.stdout)
    try:
        assert fake not in daemon.pids(WEB)
        os.kill(real[0], signal.SIGKILL)
        wait_until(lambda: (p := daemon.pids(WEB)) and p != real and daemon.state(WEB) == "online", 15,
                   what="the service to be restarted once its real process died")
        assert fake not in daemon.pids(WEB)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(fake, signal.SIGKILL)
