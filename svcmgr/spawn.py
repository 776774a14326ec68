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
import ctypes
import errno
import marshal
import os
import selectors
import signal
import socket
import struct
import threading
from collections.abc import Callable, Mapping, Sequence

__all__ = ["CLONE_INTO_CGROUP", "CLONE_PARENT", "MAX_REQUEST", "CloneSpawner", "candidates_for", "clone3", "exec_child",
           "serve"]

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


def serve(fd: int) -> None:
    """The spawn helper's loop (``svcmgr.forkserver``) until the daemon's end of the socket pair
    closes. Each request is cloned at once; its reply goes out when its child has exec'd (the report
    pipe closes) or failed to, so that children of a burst exec side by side on the CPUs. Replies
    carry the request's number. Runs in ``python -I -S``: standard library only."""
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
    while True:
        for key, _ in sel.select():
            if key.data is not None:  # a child's report pipe: its errno, or closed by its exec
                number, pid, report = key.data
                chunk = os.read(key.fd, 64)
                if chunk:
                    report += chunk
                    continue
                sel.unregister(key.fd)
                os.close(key.fd)
                code = int(report.split(b":", 1)[0] or errno.ENOENT) if report else 0
                sock.send(marshal.dumps((number, pid, "exec" if report else "ok", code)))
                continue
            try:
                msg, anc, _flags, _addr = sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(2 * 4))
            except InterruptedError:
                continue
            if not msg:
                os._exit(0)
            fds: list[int] = []
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(data[: len(data) - len(data) % a.itemsize])
                    fds.extend(a)
            try:
                number, started = _clone_one(syscall, msg, fds, devnull)
            finally:
                for f in fds:
                    os.close(f)
            if isinstance(started, tuple):
                pid, pipe = started
                sel.register(pipe, selectors.EVENT_READ, (number, pid, bytearray()))
            else:
                sock.send(marshal.dumps((number, 0, "clone", started)))


def _clone_one(syscall: Callable[..., int], msg: bytes, fds: list[int],
               devnull: int) -> tuple[int, tuple[int, int] | int]:
    """Clone one request's child: (number, (pid, its report pipe)), or (number, errno) when it could not be."""
    try:
        number, args, env, candidates, cwd, pgrp, has_out, has_cg = marshal.loads(msg)
    except (EOFError, ValueError, TypeError):
        return -1, errno.EINVAL
    if len(fds) != int(has_out) + int(has_cg):
        return number, errno.EBADF
    out = fds[0] if has_out else devnull
    cg = fds[-1] if has_cg else None
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = clone3(syscall, CLONE_PARENT | (CLONE_INTO_CGROUP if cg is not None else 0), 0, cg)
        if pid == 0:
            exec_child(candidates, args, env, cwd, devnull, out, w, pgrp, None, signals=False)
    finally:
        os.close(w)
    if pid < 0:
        os.close(r)
        return number, -pid
    return number, (pid, r)
