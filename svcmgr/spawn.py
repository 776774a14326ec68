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

``serve`` is the loop of the spawn helper (``svcmgr.forkserver``), the same clone3 run
from a small process instead of the daemon: this module imports only the standard
library so that the helper stays small.
"""

from __future__ import annotations

import array
import collections
import contextlib
import ctypes
import errno
import fcntl
import marshal
import os
import selectors
import signal
import socket
import struct
import threading
from collections.abc import Callable, Mapping, Sequence

from svcmgr.safefs import open_own

__all__ = ["CLONE_INTO_CGROUP", "CLONE_PARENT", "FIFO_MODE", "LOG_FLAGS", "MAX_REQUEST", "PIPE_SIZE", "CloneSpawner",
           "candidates_for", "clone3", "exec_child", "open_fifo", "serve"]

SYS_CLONE3 = 435  # the same number on every architecture Linux added clone3 to
CLONE_PARENT = 0x00008000
CLONE_INTO_CGROUP = 0x200000000
_ARGS = struct.Struct("=11Q")  # struct clone_args, version 2 (with .cgroup): 88 bytes


def clone3(syscall: Callable[..., int], flags: int, exit_signal: int, cgroup: int | None) -> int:
    """``clone3`` with these flags (and ``CLONE_INTO_CGROUP``'s group descriptor): the pid in the
    parent, 0 in the child, minus the errno on failure."""
    buf = ctypes.create_string_buffer(_ARGS.pack(flags, 0, 0, 0, exit_signal, 0, 0, 0, 0, 0,
                                                 cgroup if cgroup is not None else 0), _ARGS.size)
    pid = syscall(SYS_CLONE3, buf, _ARGS.size)
    return pid if pid >= 0 else -(ctypes.get_errno() or errno.EINVAL)


def candidates_for(program: bytes, path: bytes) -> list[bytes]:
    """Where execvp would look for ``program`` along ``path`` (a colon-separated PATH)."""
    if b"/" in program:
        return [program]
    return [os.path.join(d or b".", program) for d in path.split(b":")]


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


def _default_signals() -> None:
    """No signal may reach the parent's handlers from a child (asyncio's would write to the
    parent's wakeup socket): block them all, give every one its default action, then unblock;
    one that was pending now acts as it would on the program itself."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _ALL)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    for s in _CAUGHT:
        try:
            if signal.getsignal(s) not in (signal.SIG_DFL, None):
                signal.signal(s, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


_ALL = set(signal.valid_signals())
_CAUGHT = tuple(s for s in sorted(_ALL) if s not in (signal.SIGKILL, signal.SIGSTOP))
_MAXFD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536


def exec_child(candidates: list[bytes], args: list[bytes], env: dict[bytes, bytes], cwd: str | bytes, stdin: int,
               out: int, report: int, process_group: bool, credentials: Callable[[], None] | None,
               *, signals: bool = True) -> None:
    """In a new child: default signal dispositions (unless the parent has only those: ``signals``
    false), its own process group, stdin, stdout and stderr, no other descriptor but ``report``,
    ``cwd``, ``credentials``; then exec the first candidate that can be, else write the errno to
    ``report`` and exit 127. Never returns."""
    code = 0
    try:
        if signals:
            _default_signals()
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
        # A first pass execs only where something exists (as this user): a miss costs an access()
        # instead of a failed execve and its exception in copied pages. Only if that finds nothing
        # to run does the pass below try every candidate, to fail with execvp's own errno.
        for path in candidates:
            if len(candidates) > 1 and os.access(path, os.F_OK):
                try:
                    os.execve(path, args, env)
                except OSError as e:
                    if e.errno != errno.EACCES:
                        break  # execvp stops here too: the pass below says why
        for path in candidates:
            try:
                os.execve(path, args, env)
            except OSError as e:
                # As execvp: a folder of PATH this user may not search is passed over
                # (remembered, in case nothing else is found).
                if e.errno == errno.EACCES:
                    code = e.errno
                elif e.errno not in (errno.ENOENT, errno.ENOTDIR):
                    code = e.errno or errno.ENOEXEC
                    break
                elif not code:
                    code = e.errno
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
PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1
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


def serve(fd: int) -> None:
    """The spawn helper's loop (``svcmgr.forkserver``) until the daemon's end of the socket pair
    closes. A spawn is cloned at once and answered when its child has exec'd (the report pipe
    closes) or failed to, so that children of a burst exec side by side on the CPUs. A log file is
    opened (made) when no spawn waits, its descriptor sent back then (its lines wait in the daemon).
    Replies carry the request's number, and the descriptors asked for (``SCM_RIGHTS``).
    Runs in ``python -I -S``: standard library and ``svcmgr.safefs`` only."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(b"svcmgr-spawn"), 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(0)  # the daemon died before the death signal was armed
    _default_signals()  # so that a child needs no signal work of its own
    sock = socket.socket(fileno=fd)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    syscall = ctypes.PyDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, None)
    # One buffer for every request: recvmsg's own, of MAX_REQUEST bytes, would be mapped, faulted in,
    # shrunk and unmapped at each request (three system calls more, and a larger copy at each clone).
    inbox = memoryview(bytearray(MAX_REQUEST))

    def reply(answer: tuple[int, int, str, int], give: int | None = None) -> None:
        try:
            sock.sendmsg([marshal.dumps(answer)],
                         [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [give]))] if give is not None else [])
        except (BrokenPipeError, ConnectionResetError):
            os._exit(0)  # the daemon closed its end
        finally:
            if give is not None:
                os.close(give)

    files: collections.deque[tuple[int, tuple]] = collections.deque()  # log files to open when nothing else waits
    while True:
        events = sel.select(0 if files else None)
        if not events and files:
            number, answer = files.popleft()
            given = _open_log(*answer)
            reply((number, 0, "log", 0 if given is not None else errno.EPERM), given)
            continue
        for key, _ in events:
            if key.data is not None:  # a child's report pipe: its errno, or closed by its exec
                number, pid, report, reader = key.data
                chunk = os.read(key.fd, 64)
                if chunk:
                    report += chunk
                    continue
                sel.unregister(key.fd)
                os.close(key.fd)
                code = int(report.split(b":", 1)[0] or errno.ENOENT) if report else 0
                reply((number, pid, "exec" if report else "ok", code), reader)
                continue
            try:
                size, anc, _flags, _addr = sock.recvmsg_into([inbox], socket.CMSG_SPACE(2 * 4),
                                                             socket.MSG_CMSG_CLOEXEC)
            except InterruptedError:
                continue
            if not size:
                os._exit(0)
            msg = inbox[:size]
            fds: list[int] = []
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(data[: len(data) - len(data) % a.itemsize])
                    fds.extend(a)
            try:
                number, answer = _serve_one(syscall, msg, fds, devnull)
            finally:
                for f in fds:
                    os.close(f)
            if answer[0] == "child":  # answered once it has exec'd
                _, pid, pipe, reader = answer
                sel.register(pipe, selectors.EVENT_READ, (number, pid, bytearray(), reader))
            elif answer[0] == "log":  # after the spawns asked meanwhile: its lines wait in the daemon
                files.append((number, answer[1:]))
            else:
                reply((number, 0, answer[0], answer[1]))


def _open_log(path: str, mode: int) -> int | None:
    """A log file opened for appending, made with ``mode`` if need be; None when it cannot be (the daemon
    opens it itself then, and says why it cannot)."""
    try:
        return open_own(path, LOG_FLAGS, mode)
    except OSError:
        return None


def _serve_one(syscall: Callable[..., int], msg: bytes | memoryview, fds: list[int], devnull: int) -> tuple[int, tuple]:
    """Carry out one request: its number and ("child", pid, its report pipe, the FIFO's reading end or
    None) for a child cloned, ("log", path, mode) for a log file to open, ("fifo", errno) when the
    FIFO could not be opened, ("clone", errno) when the child could not be cloned."""
    try:
        request = marshal.loads(msg)
        kind, number = request[0], request[1]
    except (EOFError, ValueError, TypeError, IndexError, KeyError):
        return -1, ("clone", errno.EINVAL)
    if kind == "log":  # ("log", number, path, mode): opened later (_open_log)
        try:
            return number, ("log", os.fsdecode(request[2]), int(request[3]))
        except (TypeError, ValueError, IndexError):
            return number, ("clone", errno.EINVAL)
    try:
        _, number, args, env, candidates, cwd, pgrp, has_out, has_cg, fifo, make = request
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
        started = _clone_one(syscall, args, env, candidates, cwd, pgrp, devnull,
                             out if out is not None else fds[0] if has_out else devnull, cg)
    finally:
        if out is not None:
            os.close(out)
    if isinstance(started, int):
        if reader is not None:
            os.close(reader)
        return number, ("clone", started)
    return number, ("child", *started, reader)


def _clone_one(syscall: Callable[..., int], args: list[bytes], env: dict[bytes, bytes], candidates: list[bytes],
               cwd: bytes, pgrp: bool, devnull: int, out: int, cg: int | None) -> tuple[int, int] | int:
    """Clone one request's child: (pid, its report pipe), or the errno when it could not be."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = clone3(syscall, CLONE_PARENT | (CLONE_INTO_CGROUP if cg is not None else 0), 0, cg)
        if pid == 0:
            exec_child(candidates, args, env, cwd, devnull, out, w, pgrp, None, signals=False)
    finally:
        os.close(w)
    if pid < 0:
        os.close(r)
        return -pid
    return pid, r
