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
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct
import threading
from collections.abc import Callable, Mapping, Sequence

__all__ = ["CloneSpawner"]

SYS_CLONE3 = 435  # the same number on every architecture Linux added clone3 to
CLONE_INTO_CGROUP = 0x200000000
_ARGS = struct.Struct("=11Q")  # struct clone_args, version 2 (with .cgroup): 88 bytes


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
        path = envb.get(b"PATH", os.defpath.encode()).split(b":")
        program = args[0]
        candidates = [program] if b"/" in program else [os.path.join(d or b".", program) for d in path]
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        out = stdout if stdout is not None else os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        cg = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        r, w = os.pipe2(os.O_CLOEXEC)
        buf = ctypes.create_string_buffer(_ARGS.pack(CLONE_INTO_CGROUP, 0, 0, 0, signal.SIGCHLD, 0, 0, 0, 0, 0, cg),
                                          _ARGS.size)
        try:
            pid = self._syscall(SYS_CLONE3, buf, _ARGS.size)
            if pid == 0:  # the child: system calls only, then exec or _exit
                _child(candidates, args, envb, cwd, devnull, out, w, process_group, credentials)
            if pid < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
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


_ALL = set(signal.valid_signals())
_CAUGHT = tuple(s for s in sorted(_ALL) if s not in (signal.SIGKILL, signal.SIGSTOP))
_MAXFD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536


def _child(candidates: list[bytes], args: list[bytes], env: dict[bytes, bytes], cwd: str, stdin: int,
           out: int, report: int, process_group: bool, credentials: Callable[[], None] | None) -> None:
    code = 0
    try:
        # No signal may reach the daemon's handlers from here (asyncio's would write to the
        # parent's wakeup socket): block them all, give every one its default action, then
        # unblock; one that was pending now acts as it would on the program itself.
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
