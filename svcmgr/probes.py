"""Readiness and health checks: TCP connect, HTTP GET, a command, and the notify socket.

A check answers ``(ok, detail)``. Readiness polls a check with a short, growing
interval until it passes; health runs one every ``interval`` for as long as the
instance runs. The notify socket speaks the sd_notify protocol (``READY=1``,
``STATUS=...``) and knows each sender by its credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

from svcmgr import hostport
from svcmgr.reaper import Reaper

__all__ = ["NotifySocket", "check_command", "check_http", "check_tcp", "poll_intervals"]


async def check_tcp(target: str, timeout: float) -> tuple[bool, str]:
    host, port = hostport.split(target)
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return False, f"connect to {target} timed out"
    except OSError as e:
        return False, f"connect to {target}: {e.strerror or e}"
    w.close()
    with contextlib.suppress(OSError):
        await w.wait_closed()
    return True, f"connected to {target}"


async def check_http(url: str, timeout: float) -> tuple[bool, str]:
    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    ctx = ssl.create_default_context() if u.scheme == "https" else None
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    try:
        async with asyncio.timeout(timeout):
            r, w = await asyncio.open_connection(u.hostname, port, ssl=ctx)
            try:
                w.write(f"GET {path} HTTP/1.0\r\nHost: {u.netloc}\r\nUser-Agent: svcmgrd\r\n"
                        "Connection: close\r\n\r\n".encode())
                await w.drain()
                line = await r.readline()
            finally:
                w.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await w.wait_closed()
    except TimeoutError:
        return False, f"GET {url} timed out"
    except (OSError, ssl.SSLError) as e:
        return False, f"GET {url}: {getattr(e, 'strerror', None) or e}"
    parts = line.decode(errors="replace").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"GET {url}: not an HTTP reply"
    code = int(parts[1])
    return 200 <= code < 400, f"GET {url}: {code}"


async def check_command(reaper: Reaper, argv: list[str], timeout: float, *, env: dict[str, str],
                        cwd: str | None, preexec: Callable[[], None] | None = None) -> tuple[bool, str]:
    try:
        status, out = await reaper.run(argv, timeout=timeout, env=env, cwd=cwd, preexec_fn=preexec)
    except OSError as e:
        return False, f"{argv[0]}: {e.strerror or e}"
    if status is None:
        return False, f"command timed out after {timeout:g}s"
    text = out.decode(errors="replace").strip().splitlines()
    last = text[-1][:200] if text else ""
    if status.code == 0:
        return True, last or "command succeeded"
    return False, f"command {status.describe()}" + (f": {last}" if last else "")


def poll_intervals(first: float = 0.005, cap: float = 0.25):
    """5 ms, 10 ms, 20 ms ... up to ``cap``: quick for fast services, cheap for slow ones."""
    d = first
    while True:
        yield d
        d = min(d * 2, cap)


SO_PASSCRED = getattr(socket, "SO_PASSCRED", 16)
SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", 2)


class NotifySocket:
    """One datagram socket for every service's sd_notify messages."""

    def __init__(self, path: str, on_message: Callable[[int, dict[str, str]], None]) -> None:
        self.path = path
        self.on_message = on_message
        self.sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.received = 0
        self.rejected = 0

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        s.bind(self.path)
        os.chmod(self.path, 0o777)
        s.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
        self.sock = s
        self._loop = loop
        loop.add_reader(s.fileno(), self._readable)

    def _readable(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            pid = 0
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == SCM_CREDENTIALS and len(cdata) >= 12:
                    pid = struct.unpack("iII", cdata[:12])[0]
            fields: dict[str, str] = {}
            for line in data.decode(errors="replace").splitlines():
                k, sep, v = line.partition("=")
                if sep and k and k.isupper():
                    fields[k] = v[:1024]
            if not pid or not fields:
                self.rejected += 1
                continue
            self.received += 1
            self.on_message(pid, fields)

    def close(self) -> None:
        if self.sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
