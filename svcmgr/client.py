"""The commands' side of the control socket: one request, one reply. Standard library only.

``Client.call(op, **args)`` returns the result or raises ``ClientError`` with the
daemon's message and exit code; a missing daemon is one clear line.
"""

from __future__ import annotations

import json
import os
import socket
import time

from svcmgr.paths import Paths, resolve_root

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2-4 ms of each command's start)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Client", "ClientError", "collect_manifest_files", "recv_all"]


def recv_all(s: socket.socket) -> bytes:
    """Everything the peer sends until it closes the connection."""
    chunks = []
    while True:
        b = s.recv(1 << 16)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


class ClientError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Client:
    def __init__(self, root: str | None = None, *, timeout: float | None = 60.0) -> None:
        self.paths: Paths = resolve_root(root)
        self.timeout = timeout

    @property
    def socket_path(self) -> str:
        return self.paths.socket

    def _connect(self, s: socket.socket) -> None:
        """Connect, waiting while the daemon's backlog is full (a burst of connections from others)."""
        deadline = time.monotonic() + (self.timeout or 60.0)
        delay = 0.005
        while True:
            try:
                s.connect(self.socket_path)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def call(self, op: str, **args: Any) -> Any:
        req = {"op": op, **args}
        data = json.dumps(req).encode() + b"\n"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.settimeout(self.timeout)
        try:
            try:
                self._connect(s)
            except (FileNotFoundError, ConnectionRefusedError):
                where = self.paths.root or self.paths.run
                raise ClientError(f"svcmgrd is not running (no daemon answers at {self.socket_path}; "
                                  f"start it, or name its state folder with --root or SVCMGR_ROOT; looked in {where})",
                                  1) from None
            except PermissionError:
                raise ClientError(f"permission denied connecting to {self.socket_path}", 1) from None
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon refused the request before reading it all: its reply says why
            raw = recv_all(s)
        except TimeoutError:
            raise ClientError(f"svcmgrd did not answer within {self.timeout:g}s", 1) from None
        except OSError as e:
            raise ClientError(f"cannot talk to svcmgrd: {e.strerror or e}", 1) from None
        finally:
            s.close()
        if not raw:
            raise ClientError("svcmgrd closed the connection without a reply", 1)
        try:
            reply = json.loads(raw)
        except json.JSONDecodeError:
            raise ClientError("svcmgrd sent a malformed reply", 1) from None
        if not reply.get("ok"):
            raise ClientError(reply.get("error", "request failed"), int(reply.get("code", 1)))
        return reply.get("result")


def collect_manifest_files(paths: list[str]) -> list[str]:
    """Files named directly, and the ``*.toml`` / ``*.xml`` files found under folders (sorted)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                for name in sorted(filenames):
                    if name.endswith((".toml", ".xml")) and not name.startswith("."):
                        out.append(os.path.join(dirpath, name))
        else:
            out.append(p)
    return out
