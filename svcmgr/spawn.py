"""Spawning a child directly into a cgroup: ``clone3(CLONE_INTO_CGROUP)``, Linux 5.7 and later.

Moving a process into a cgroup (writing ``cgroup.procs``) makes the kernel wait for an
RCU grace period (the write side of ``cgroup_threadgroup_rwsem``): several milliseconds,
more under load, on every start and every restart. A child created by ``clone3`` with
``CLONE_INTO_CGROUP`` is born in the group: no move, no wait.

Python has no ``clone3``, so it is called through ctypes (with the GIL held, as
``os.fork`` does in effect). The child is a copy of the daemon like a fork's; between
the clone and ``execve`` it runs a few system calls only (process group, descriptors,
directory, credentials, signal dispositions) and reports a failure to exec through a
close-on-exec pipe, as ``subprocess`` does. It is used only while the daemon has a single
thread: a copy of a process whose other threads hold locks could deadlock before exec.
Where any of this is unavailable, ``probe`` says so and the caller keeps its other path.

The spawn helper (``svcmgr.spawnhelper``) uses the same clone3 and child set-up for a lone
spawn into a group, and ``run_first``'s PATH search for its ``posix_spawn``: this module
imports only the standard library and ``svcmgr.safefs``, so that the helper stays small.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import signal
import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from svcmgr.safefs import open_own

__all__ = ["CLONE_INTO_CGROUP", "CLONE_PARENT", "FIFO_MODE", "LOG_FLAGS", "MAX_REQUEST", "PIPE_SIZE", "CloneSpawner",
           "candidates_for", "clone3", "default_signals", "exec_child", "open_fifo", "run_first"]

SYS_CLONE3 = 435  # the same number on every architecture Linux added clone3 to
CLONE_PARENT = 0x00008000
CLONE_INTO_CGROUP = 0x200000000
#: the child's handled signals at their defaults (Linux 5.5, before CLONE_INTO_CGROUP's 5.7): ignored ones stay so
CLONE_CLEAR_SIGHAND = 0x100000000
_ARGS = struct.Struct("=11Q")  # struct clone_args, version 2 (with .cgroup): 88 bytes


def clone3(syscall: Callable[..., int], flags: int, exit_signal: int, cgroup: int | None) -> int:
    """``clone3`` with these flags (and ``CLONE_INTO_CGROUP``'s group descriptor): the pid in the
    parent, 0 in the child, minus the errno on failure."""
    buf = ctypes.create_string_buffer(_ARGS.pack(flags, 0, 0, 0, exit_signal, 0, 0, 0, 0, 0,
                                                 cgroup if cgroup is not None else 0), _ARGS.size)
    pid = syscall(SYS_CLONE3, buf, _ARGS.size)
    return pid if pid >= 0 else -(ctypes.get_errno() or errno.EINVAL)


@functools.lru_cache(maxsize=64)
def _path_prefixes(path: bytes) -> tuple[bytes, ...]:
    """Each directory of ``path`` as ``os.path.join`` would put it before a relative name (one PATH's
    split and joins made once, not at every spawn: a daemon has few PATHs)."""
    return tuple(os.path.join(d or b".", b"") for d in path.split(b":"))


def candidates_for(program: bytes, path: bytes) -> list[bytes]:
    """Where execvp would look for ``program`` along ``path`` (a colon-separated PATH)."""
    if b"/" in program:
        return [program]
    return [d + program for d in _path_prefixes(path)]


class CloneSpawner:
    """Starts children inside a given cgroup with clone3."""

    def __init__(self) -> None:
        self._syscall = ctypes.PyDLL(None, use_errno=True).syscall
        self._syscall.restype = ctypes.c_long
        self.spawned = 0

    def probe(self, cgroup: str) -> str | None:
        """None when clone3 can place a child in ``cgroup`` here, else why not."""
        try:
            pid = self.spawn(["/bin/true"], cgroup=cgroup, env={}, cwd="/", stdout=None)
        except OSError as e:
            return f"clone3 into a cgroup: {e.strerror or e}"
        while True:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                return None  # reaped by someone else: it ran
            except InterruptedError:
                continue
            return None if os.waitstatus_to_exitcode(status) == 0 else "clone3 probe child failed"

    def usable(self) -> bool:
        return threading.active_count() == 1

    def spawn(self, argv: Sequence[str], *, cgroup: str, env: Mapping[str, str], cwd: str,
              stdout: int | None, process_group: bool = True,
              credentials: Callable[[], None] | None = None) -> int:
        """Start ``argv`` (searched in ``env``'s PATH) in ``cgroup``; return its pid.

        Raises OSError when the clone fails or the program cannot be executed (with the
        child's errno), like ``subprocess.Popen``."""
        if not self.usable():
            raise OSError(errno.EAGAIN, "clone3 spawn needs a single-threaded daemon")
        args = [os.fsencode(a) for a in argv]
        envb = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
        candidates = candidates_for(args[0], envb.get(b"PATH", os.defpath.encode()))
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        out = stdout if stdout is not None else os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        cg = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = clone3(self._syscall, CLONE_INTO_CGROUP, signal.SIGCHLD, cg)
            if pid == 0:  # the child: system calls only, then exec or _exit
                exec_child(candidates, args, envb, cwd, devnull, out, w, process_group, credentials)
            if pid < 0:
                raise OSError(-pid, os.strerror(-pid))
            os.close(w)
            w = -1
            report = b""
            while True:
                chunk = os.read(r, 64)
                if not chunk:
                    break
                report += chunk
            if report:
                try:
                    os.waitpid(pid, 0)  # it has exited already: reap it here, not as a stranger
                except ChildProcessError:
                    pass
                code = int(report.split(b":", 1)[0] or b"0")
                raise OSError(code, f"{os.strerror(code)}: {argv[0]}")
            self.spawned += 1
            return pid
        finally:
            os.close(r)
            if w != -1:
                os.close(w)
            os.close(cg)
            os.close(devnull)
            if stdout is None:
                os.close(out)


def default_signals(which: Iterable[int] | None = None) -> None:
    """No signal may reach the parent's handlers from a child (asyncio's would write to the
    parent's wakeup socket): block them all, give every one (or those ``which`` names: all the
    parent changed) its default action, then unblock; one that was pending now acts as it would
    on the program itself."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _ALL)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    for s in _CAUGHT if which is None else which:
        try:
            if signal.getsignal(s) not in (signal.SIG_DFL, None):
                signal.signal(s, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


_ALL = set(signal.valid_signals())
_CAUGHT = tuple(s for s in sorted(_ALL) if s not in (signal.SIGKILL, signal.SIGSTOP))
_MAXFD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536


def run_first(candidates: list[bytes], run: Callable[[bytes], int]) -> int:
    """``run`` (an ``execve``, or a ``posix_spawn``) the first of ``candidates`` that can be, as execvp
    chooses: what ``run`` returns, else OSError with execvp's errno.

    A first pass runs only what exists (as this user): a miss costs an access() instead of a failed
    exec. Only if that finds nothing to run does the second try every candidate, to fail with
    execvp's own errno: a folder of PATH this user may not search is passed over (remembered, in
    case nothing else is found), any error but ENOENT/ENOTDIR/EACCES ends the search."""
    for path in candidates:
        if len(candidates) > 1 and os.access(path, os.F_OK):
            try:
                return run(path)
            except OSError as e:
                if e.errno != errno.EACCES:
                    break  # execvp stops here too: the pass below says why
    code = 0
    for path in candidates:
        try:
            return run(path)
        except OSError as e:
            if e.errno == errno.EACCES:
                code = e.errno
            elif e.errno not in (errno.ENOENT, errno.ENOTDIR):
                code = e.errno or errno.ENOEXEC
                break
            elif not code:
                code = e.errno
    code = code or errno.ENOENT
    raise OSError(code, os.strerror(code))


def exec_child(candidates: list[bytes], args: list[bytes], env: dict[bytes, bytes], cwd: str | bytes, stdin: int,
               out: int, report: int, process_group: bool, credentials: Callable[[], None] | None,
               *, signals: Iterable[int] | None = None) -> None:
    """In a new child: default signal dispositions (``signals``: for those only, the others' being
    the default in the parent already; none when empty), its own process group, stdin, stdout and
    stderr, no other descriptor but ``report``, ``cwd``, ``credentials``; then exec the first
    candidate that can be, else write the errno to ``report`` and exit 127. Never returns."""
    code = 0
    try:
        if signals is None or signals:
            default_signals(signals)
        if process_group:
            os.setpgid(0, 0)
        os.dup2(stdin, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.closerange(3, report)
        os.closerange(report + 1, _MAXFD)
        os.chdir(cwd)
        if credentials is not None:
            credentials()
        run_first(candidates, lambda path: os.execve(path, args, env))
    except OSError as e:
        code = e.errno or errno.EINVAL
    except BaseException:  # noqa: BLE001 - the child must reach _exit whatever happened
        code = errno.EINVAL
    try:
        os.write(report, f"{code or errno.ENOENT}:".encode())
    finally:
        os._exit(127)


# ------------------------------------------------------------------------------------------ the helper
#: The largest request (argv and environment); a larger one is spawned in the daemon.
MAX_REQUEST = 192 * 1024
#: How a log file is opened (``safefs.open_own`` adds no-follow and close-on-exec).
LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT
#: An instance's FIFO: the daemon's and its children's only.
FIFO_MODE = 0o600
#: The FIFO's pipe is made this large (the kernel's default is 64 KiB), so a burst of output waits in it.
PIPE_SIZE = 256 * 1024


def open_fifo(path: str | bytes, *, make: bool) -> int:
    """The reading end of an instance's FIFO (``make``: made first, 0600, if it is not there): opened
    read-write (it never sees an end of file) and non-blocking, as ``safefs.open_own`` opens (no link
    followed, the daemon's own), its pipe enlarged to ``PIPE_SIZE`` where the kernel allows."""
    if make:
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, FIFO_MODE)
    fd = open_own(os.fsdecode(path), os.O_RDWR | os.O_NONBLOCK, FIFO_MODE)
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return fd
