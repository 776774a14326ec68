"""The spawn helper's loop (``svcmgr.forkserver`` starts it): children made vfork-style, their ends relayed.

It runs in ``python -I -S`` (standard library, ``svcmgr.spawn``, ``svcmgr.safefs`` and
``svcmgr.procfs`` only), and makes each child with ``os.posix_spawn``: glibc's
``clone(CLONE_VM|CLONE_VFORK)``, which copies no page table and runs no Python in the child.
The child gets its own process group, stdin ``/dev/null``, stdout and stderr the request's
descriptor, the request's directory (the helper ``chdir``s there for the spawn, then back to
``/``), default signal dispositions and an empty signal mask; every descriptor the helper
holds is close-on-exec (the socket it was started with too), so the child inherits no other.
PATH's candidates are tried in order and a failure reports execvp's errno (``spawn.run_first``;
glibc reaps a child whose exec failed).

*Its group.* glibc 2.36's ``posix_spawn`` cannot place a child in a cgroup, so the helper stands
in the contract's group while it spawns (writes ``0`` to the group's ``cgroup.procs``, through
the group descriptor that came with the request), and moves back to its own group as soon as
``posix_spawn`` returns: the child is born in the group, the helper never stays in one (a helper
that cannot move back exits: the daemon then spawns in-process). A move costs about 0.01 ms while
the kernel's RCU sync is hot (a burst of starts), but an RCU grace period (5-15 ms measured)
after a pause. So a spawn into a group when no other request waits and more than ``HOT`` seconds
after the last move (a restart, say) is made by clone3 as before (``CLONE_INTO_CGROUP`` and
``CLONE_PARENT``: ``spawn.exec_child`` runs in the child, which is the daemon's), as is one whose
group cannot be entered. A contract signalled while the helper stands in it (its members are read
from ``cgroup.procs``) signals the helper too: it catches and drops the catchable signals a stop sends, but
``cgroup.kill`` (SIGKILL) ends it, and the child it was making. The daemon then finds the helper
gone and spawns in-process from then on (``HelperUnavailable``), as after any death of the
helper: a spawn cut short is made again there.

*Its priority.* It runs at nice ``PRIORITY`` (-5), ahead of the daemon and of the children it has just
made, whose exec it would otherwise wait behind for a CPU; ``SCHED_RESET_ON_FORK`` has the kernel give
every child nice 0 and the normal policy, however it is made.

*Its replies.* A child spawned is answered with its pid and its start time as ``/proc/PID/stat`` gives
it (``born``: from CLOCK_BOOTTIME read around the spawn, mostly with no read of /proc), which the
daemon's record of the contract keeps (a daemon restarted after a crash checks it against the pid's).

*Its children.* A ``posix_spawn`` child's parent is the helper: it reaps them (SIGCHLD through a
wakeup pipe) and relays each ``(pid, raw wait status)`` on the socket, always after that
child's reply, so the daemon's reaper has it registered. When the daemon closes its end (a stop,
a restart in place), the helper relays what it has reaped and exits; the children still running
are re-parented to the daemon, a child subreaper, and reaped there as before. The relay is a hop
(the helper wakes, reaps, sends; the daemon reads): so that it is not in the way of every later
restart, a helper idle for ``HANDOVER`` seconds with children of its own forks a successor and
exits (``_hand_over``): its children are re-parented to the daemon, which reaps them directly from
then on, and the successor serves the same socket, named in the old helper's last message.
*Its spares* (``_fork_spare``): asked with one end of a new socket pair, it forks a spare serving it.
"""

from __future__ import annotations

import array
import collections
import contextlib
import ctypes
import errno
import marshal
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable

from svcmgr.procfs import find_cgroup2_mount, own_cgroup, read_stat
from svcmgr.safefs import open_own
from svcmgr.spawn import (
    CLONE_CLEAR_SIGHAND,
    CLONE_INTO_CGROUP,
    CLONE_PARENT,
    FIFO_MODE,
    LOG_FLAGS,
    MAX_REQUEST,
    clone3,
    default_signals,
    exec_child,
    open_fifo,
    run_first,
)

__all__ = ["CHANGED", "EXIT", "HANDOVER", "HOT", "IGNORED", "Spawner", "born", "posix_spawn_child", "serve"]

PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1
#: A move into a group within this many seconds of the last finds the kernel's RCU sync hot.
HOT = 0.01
#: The helper's nice value: ahead of the daemon and of the children it makes (``_ahead``).
PRIORITY = -5
#: What a stop sends to a contract's members: the helper catches and drops them (it may stand in that group).
#: Caught, not ignored: a disposition that is handled is the default again in a clone3 child at no cost
#: (``CLONE_CLEAR_SIGHAND``), in a posix_spawn child (glibc resets handled ones) and at any exec, whereas
#: one ignored would have to be reset by the child, in Python, before its exec (about 0.8 ms a restart).
IGNORED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGPIPE)
#: After this many idle seconds with children of its own, the helper hands over to a fork of itself.
HANDOVER = 0.25
#: The signals whose dispositions the helper changes (the others are at their defaults).
CHANGED = (*IGNORED, signal.SIGCHLD)
#: The number a relayed exit's message carries (requests are numbered from 0).
EXIT = -1
#: A clock tick of the start times /proc gives, in nanoseconds of CLOCK_BOOTTIME (None where it is not a whole number).
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_TICK_NS = 10**9 // _CLK_TCK if 10**9 % _CLK_TCK == 0 else None


def born(pid: int, before: int, after: int) -> int:
    """A child's start time as ``/proc/PID/stat`` gives it (clock ticks since boot), for a child made between
    ``before`` and ``after`` (CLOCK_BOOTTIME, in nanoseconds): the kernel takes that clock while it makes the
    child and truncates it to a clock tick, so when both fall in one tick that tick is the start time (no read
    of /proc: most spawns take well under a tick); else it is read. 0 when it cannot be read."""
    if _TICK_NS is not None and before // _TICK_NS == after // _TICK_NS:
        return before // _TICK_NS
    info = read_stat(pid)
    return info.starttime if info is not None else 0


def posix_spawn_child(candidates: list[bytes], args: list[bytes], env: dict[bytes, bytes], stdin: int, out: int,
                      process_group: bool) -> int:
    """``posix_spawn`` the first candidate that runs, set up as ``spawn.exec_child`` sets a child up (in the
    caller's directory, its dispositions at their defaults but ``IGNORED``'s): its pid, or OSError."""
    actions = [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, out, 2)]
    group = {"setpgroup": 0} if process_group else {}
    return run_first(candidates, lambda path: os.posix_spawn(
        path, args, env, file_actions=actions, setsigmask=(), setsigdef=CHANGED, **group))


def _nothing(signum: int, frame: object) -> None:
    """SIGCHLD's handler (its wakeup byte is what the loop waits for), and ``IGNORED``'s."""


def _cloexec_all() -> None:
    """Every descriptor above stderr close-on-exec (the socket the helper was started with was not)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


def _home() -> int | None:
    """The helper's own group's ``cgroup.procs``, open for writing, or None (no cgroup v2 here)."""
    mount = find_cgroup2_mount()
    if mount is None:
        return None
    try:
        return os.open(os.path.join(mount, own_cgroup().lstrip("/"), "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None


class Spawner:
    """Makes the children: posix_spawn (standing in the group in a burst), else clone3."""

    def __init__(self, devnull: int) -> None:
        self.devnull = devnull
        self.home = _home()
        self.moved = -1.0  # when the helper last moved between groups
        self.syscall = ctypes.PyDLL(None, use_errno=True).syscall
        self.syscall.restype = ctypes.c_long

    def spawn(self, args: list[bytes], env: dict[bytes, bytes], candidates: list[bytes], cwd: bytes, pgrp: bool,
              out: int, cg: int | None, *, burst: bool) -> tuple:
        """("ok", pid) spawned, ("exec", errno) not, ("child", pid, report pipe) cloned, ("clone", errno)
        when it could not be. Into a group, it stands in only within a burst (``burst``: more requests
        wait) or while the last move is recent: a lone spawn after a pause is cloned."""
        if cg is not None and not (self.home is not None and (burst or time.monotonic() - self.moved < HOT)
                                   and self._enter(cg)):
            return self._clone(args, env, candidates, cwd, pgrp, out, cg)
        try:
            os.chdir(cwd)
            return "ok", posix_spawn_child(candidates, args, env, self.devnull, out, pgrp)
        except OSError as e:
            return "exec", e.errno or errno.EINVAL
        finally:
            if cg is not None:
                self._leave()
            with contextlib.suppress(OSError):
                os.chdir("/")

    def _enter(self, cg: int) -> bool:
        try:
            procs = os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=cg)
        except OSError:
            return False
        try:
            os.write(procs, b"0")
        except OSError:
            return False
        finally:
            os.close(procs)
        self.moved = time.monotonic()
        return True

    def _leave(self) -> None:
        assert self.home is not None
        try:
            os.write(self.home, b"0")
        except OSError:
            os._exit(70)  # never stay in a service's group: the daemon spawns in-process from now on
        self.moved = time.monotonic()

    def _clone(self, args: list[bytes], env: dict[bytes, bytes], candidates: list[bytes], cwd: bytes, pgrp: bool,
               out: int, cg: int) -> tuple:
        """Clone the child into its group (the daemon's child): ("child", pid, its report pipe)."""
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = clone3(self.syscall, CLONE_PARENT | CLONE_INTO_CGROUP | CLONE_CLEAR_SIGHAND, 0, cg)
            if pid == 0:  # every disposition the helper changed is a handler: the kernel reset them
                exec_child(candidates, args, env, cwd, self.devnull, out, w, pgrp, None, signals=())
        finally:
            os.close(w)
        if pid < 0:
            os.close(r)
            return "clone", -pid
        return "child", pid, r


def _ahead() -> None:
    """Run ahead of the daemon and of the children just made (nice ``PRIORITY``), so that a request does not
    wait for a CPU behind them; ``SCHED_RESET_ON_FORK`` has every child born at nice 0 under the normal policy,
    whichever way it is made (posix_spawn, clone3, a successor's fork). Left as it is when the kernel refuses
    (no ``CAP_SYS_NICE``): the nice value is never raised without the reset."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)


def serve(fd: int, spare: bool = False) -> None:
    """The spawn helper's loop until the daemon's end of the socket pair closes. A spawn is answered
    as soon as ``posix_spawn`` returns (a clone3 child: when it has exec'd, its report pipe closed,
    or failed to); a child's end after its reply. A log file is opened (made) when no spawn waits,
    its descriptor sent back then (its lines wait in the daemon). Replies carry the request's
    number (``EXIT`` for an end), and the descriptors asked for (``SCM_RIGHTS``). A ``spare`` says when it
    is ready, and when idle for ``HANDOVER`` seconds (it does not hand over): the daemon then closes its end."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(b"svcmgr-spawn"), 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(0)  # the daemon died before the death signal was armed
    _ahead()
    default_signals()
    for s in IGNORED:
        signal.signal(s, _nothing)
    wake, woken = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    signal.signal(signal.SIGCHLD, _nothing)
    signal.set_wakeup_fd(woken, warn_on_full_buffer=False)
    _cloexec_all()
    sock = socket.socket(fileno=fd)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    spawner = Spawner(devnull)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, None)
    sel.register(wake, selectors.EVENT_READ, "ended")
    # One buffer for every request: recvmsg's own, of MAX_REQUEST bytes, would be mapped, faulted in,
    # shrunk and unmapped at each request (three system calls more, and a larger copy at each clone).
    inbox = memoryview(bytearray(MAX_REQUEST))

    def reply(answer: tuple[int, int, str, int] | tuple[int, int, str, int, int], give: int | None = None) -> None:
        try:
            sock.sendmsg([marshal.dumps(answer)],
                         [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [give]))] if give is not None else [])
        except (BrokenPipeError, ConnectionResetError):
            os._exit(0)  # the daemon closed its end
        finally:
            if give is not None:
                os.close(give)

    owned = 0  # children of the helper's own (posix_spawn's) not relayed yet
    spares: set[int] = set()  # spare helpers forked from this one (its children too, not relayed)

    def relay_ends() -> None:
        nonlocal owned
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in spares:
                spares.discard(pid)  # a spare's exit is not relayed
            else:
                owned -= 1
                reply((EXIT, pid, "exit", status))

    def last_words(successor: int) -> None:
        relay_ends()
        reply((EXIT, successor, "helper", 0))

    idle = _handover_after()
    daemon = os.getppid()
    files: collections.deque[tuple[int, tuple]] = collections.deque()  # log files to open when nothing else waits
    told_idle = False  # a spare has said it is idle, and nothing was asked since
    if spare:
        idle = idle or HANDOVER
        reply((EXIT, os.getpid(), "ready", 0))
    while True:
        events = sel.select(0 if files else idle if (owned > 0 or (spare and not told_idle)) and idle else None)
        if not events:
            if files:
                number, answer = files.popleft()
                given = _open_log(*answer)
                reply((number, 0, "log", 0 if given is not None else errno.EPERM), given)
            elif spare:
                if not told_idle:
                    reply((EXIT, os.getpid(), "idle", 0))
                    told_idle = True
            elif owned > 0 and not spares and _hand_over(libc, daemon, last_words):
                owned = 0  # the successor: they are the daemon's now
            continue
        for key, _ in events:
            if key.data == "ended":
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 512)
                relay_ends()
                continue
            if key.data is not None:  # a clone3 child's report pipe: its errno, or closed by its exec
                number, pid, report, reader, start = key.data
                chunk = os.read(key.fd, 64)
                if chunk:
                    report += chunk
                    continue
                sel.unregister(key.fd)
                os.close(key.fd)
                code = int(report.split(b":", 1)[0] or errno.ENOENT) if report else 0
                reply((number, pid, "exec", code) if report else (number, pid, "ok", 0, start), reader)
                continue
            try:
                size, anc, _flags, _addr = sock.recvmsg_into([inbox], socket.CMSG_SPACE(2 * 4),
                                                             socket.MSG_CMSG_CLOEXEC)
            except InterruptedError:
                continue
            if not size:  # the daemon is done: what has ended goes back first, the rest is re-parented to it
                relay_ends()
                os._exit(0)
            told_idle = False
            msg = inbox[:size]
            fds: list[int] = []
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(data[: len(data) - len(data) % a.itemsize])
                    fds.extend(a)
            try:
                sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                burst = True
            except OSError:
                burst = False
            try:
                number, answer = _serve_one(spawner, msg, fds, burst=burst)
            finally:
                for f in fds:
                    os.close(f)
            if answer[0] == "child":  # answered once it has exec'd
                _, pid, pipe, reader, start = answer
                sel.register(pipe, selectors.EVENT_READ, (number, pid, bytearray(), reader, start))
            elif answer[0] == "log":  # after the spawns asked meanwhile: its lines wait in the daemon
                files.append((number, answer[1:]))
            elif answer[0] == "spare":  # not answered: the spare says it is ready on its own socket
                if answer[1] is not None:
                    made = _fork_spare(answer[1])
                    if made is not None:
                        spares.add(made)
            elif answer[0] in ("ok", "exec"):
                _, code_or_pid, reader, start = answer
                owned += answer[0] == "ok"
                reply((number, code_or_pid, "ok", 0, start) if answer[0] == "ok" else (number, 0, "exec", code_or_pid),
                      reader)
            else:
                reply((number, 0, answer[0], answer[1]))


def _fork_spare(fd: int) -> int | None:
    """Fork a spare helper serving the socket ``fd`` (its end of a pair the daemon made): its pid, or None. It
    keeps no other descriptor of this helper's and dies with it (``PR_SET_PDEATHSIG``); this helper does not
    hand over while a spare lives, nor relay its exit (``serve``)."""
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        pid = None
    if pid != 0:  # this helper (or no fork): the spare's end is the spare's alone
        os.close(fd)
        return pid
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(0)  # the helper died before the death signal was armed
        os.closerange(3, fd)  # as a child's set-up closes them (``spawn.exec_child``)
        os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
        serve(fd, spare=True)
    finally:
        os._exit(0)


def _handover_after() -> float | None:
    """After how many idle seconds the helper hands over to a fork of itself (``HANDOVER``, or
    ``SVCMGR_HELPER_HANDOVER``'s, for tests; 0: never)."""
    try:
        idle = float(os.environ.get("SVCMGR_HELPER_HANDOVER", HANDOVER))
    except ValueError:
        idle = HANDOVER
    return idle if idle > 0 else None


def _hand_over(libc: ctypes.CDLL, daemon: int, last_words: Callable[[int], None]) -> bool:
    """Fork a successor and exit, so that the children made so far are re-parented to the daemon
    (the subreaper), which then reaps them itself, with no relay: the old helper relays what it has
    reaped and names its successor, its last messages; the successor serves once the old one is gone
    (a pipe's end of file, then its parent the daemon: its death signal armed again). True in the
    successor; False when there is none (this helper goes on)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    old = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return False
    if pid:
        os.close(r)
        last_words(pid)
        os._exit(0)
    os.close(w)
    while os.read(r, 1):
        pass
    os.close(r)
    while os.getppid() == old:  # the old helper is past closing its files: re-parented in a moment
        time.sleep(0.0001)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != daemon:
        os._exit(0)  # the daemon is gone
    _ahead()  # a fork's child is born at nice 0 (SCHED_RESET_ON_FORK): ahead again
    return True


def _open_log(path: str, mode: int) -> int | None:
    """A log file opened for appending, made with ``mode`` if need be; None when it cannot be (the daemon
    opens it itself then, and says why it cannot)."""
    try:
        return open_own(path, LOG_FLAGS, mode)
    except OSError:
        return None


def _serve_one(spawner: Spawner, msg: bytes | memoryview, fds: list[int], *, burst: bool) -> tuple[int, tuple]:
    """Carry out one request: its number and ("ok", pid, the FIFO's reading end or None, its start time:
    ``born``) for a child spawned, ("exec", errno, reading end, 0) for one that could not be executed,
    ("child", pid, its report pipe, reading end, its start time) for a child cloned (answered "ok" with that
    start time once it has exec'd), ("log", path, mode) for a log file to open, ("fifo", errno) when the FIFO
    could not be opened, ("clone", errno) when the child could not be made."""
    try:
        request = marshal.loads(msg)
        kind, number = request[0], request[1]
    except (EOFError, ValueError, TypeError, IndexError, KeyError):
        return -1, ("clone", errno.EINVAL)
    if kind == "spare":  # ("spare", number) with the spare's end of a new socket pair: forked by the loop
        return number, ("spare", fds.pop() if len(fds) == 1 else None)
    if kind == "log":  # ("log", number, path, mode): opened later (_open_log)
        try:
            return number, ("log", os.fsdecode(request[2]), int(request[3]))
        except (TypeError, ValueError, IndexError):
            return number, ("clone", errno.EINVAL)
    try:
        _, number, args, env, candidates, cwd, pgrp, has_out, has_cg, fifo, make, hot = request
    except (TypeError, ValueError):
        return number, ("clone", errno.EINVAL)
    if len(fds) != int(has_out) + int(has_cg):
        return number, ("clone", errno.EBADF)
    cg = fds[-1] if has_cg else None
    reader = out = None
    try:
        if fifo:  # the child's stdout and stderr: the instance's FIFO, by name
            if make:
                reader = open_fifo(fifo, make=True)
            out = open_own(os.fsdecode(fifo), os.O_RDWR, FIFO_MODE)
    except OSError as e:
        if reader is not None:
            os.close(reader)
        return number, ("fifo", e.errno or errno.EPERM)  # safefs.UnsafePath has none: the daemon says why
    try:
        before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        started = spawner.spawn(args, env, candidates, cwd, pgrp,
                                out if out is not None else fds[0] if has_out else spawner.devnull, cg,
                                burst=burst or bool(hot))
        after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    finally:
        if out is not None:
            os.close(out)
    if started[0] == "clone":
        if reader is not None:
            os.close(reader)
        return number, started
    if started[0] == "ok":
        return number, ("ok", started[1], reader, born(started[1], before, after))
    if started[0] == "exec":
        return number, ("exec", started[1], reader, 0)
    return number, (*started, reader, born(started[1], before, after))

