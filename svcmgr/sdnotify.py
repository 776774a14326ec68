"""The daemon's side of systemd's notify protocol: READY=1, STATUS=, RELOADING=1, STOPPING=1, WATCHDOG=1.

Without ``NOTIFY_SOCKET`` every call does nothing, so the daemon behaves the same
with and without systemd. ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, when set, naming
this process) asks for a ping at least that often; the daemon sends one every half
period from its event loop, so a hung loop stops the pings and systemd acts.

Reading the variables removes them from the process environment (as
``sd_notify(unset_environment=1)`` does): nothing the daemon starts, a service or a
helper command, may talk to systemd in the daemon's name.
"""

from __future__ import annotations

import os
import select
import socket
import time

__all__ = ["ENV_KEYS", "Notifier"]

ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
SEND_TIMEOUT = 1.0


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        own = env is None
        env = dict(os.environ if env is None else env)
        if own:
            for k in ENV_KEYS:
                os.environ.pop(k, None)
        addr = env.get("NOTIFY_SOCKET") or None
        # systemd hands out an absolute path or an abstract name (@...); anything else is not its socket.
        self.address = addr if addr and (addr.startswith("/") or addr.startswith("@")) else None
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6
        self._sock: socket.socket | None = None
        self._status: str | None = None
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def _target(self) -> str | bytes:
        assert self.address is not None
        if self.address.startswith("@"):
            return b"\0" + self.address[1:].encode()
        return self.address

    def notify(self, *lines: str, wait: bool = False) -> bool:
        """Send one datagram of ``KEY=value`` lines; False when there is no socket or it failed.

        The daemon's event loop must never block on a slow reader: a ping or a status line
        is dropped when the socket's queue is full; READY, RELOADING and STOPPING ``wait``
        up to ``SEND_TIMEOUT`` for room."""
        if self.address is None:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        data = "\n".join(lines).encode()
        try:
            try:
                self._sock.sendto(data, self._target())
            except BlockingIOError:
                if not wait or not select.select([], [self._sock], [], SEND_TIMEOUT)[1]:
                    raise
                self._sock.sendto(data, self._target())
        except OSError:
            self.failed += 1
            return False
        self.sent += 1
        return True

    def _with_status(self, first: str, status: str) -> bool:
        lines = [first]
        if status:
            lines.append(f"STATUS={_one_line(status)}")
            self._status = status
        return self.notify(*lines, wait=True)

    def ready(self, status: str = "") -> bool:
        return self._with_status("READY=1", status)

    def reloading(self, status: str = "") -> bool:
        """Configuration is being re-read; ``ready()`` must follow when it is done."""
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", wait=True)
        return self.status(status) if status else True

    def status(self, text: str) -> bool:
        """A one-line status for ``systemctl status``; repeated text is not sent again."""
        if text == self._status:
            return False
        self._status = text
        return self.notify(f"STATUS={_one_line(text)}")

    def stopping(self, status: str = "") -> bool:
        return self._with_status("STOPPING=1", status)

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())
