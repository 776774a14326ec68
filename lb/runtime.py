"""A client of HAProxy's Runtime API (the stats socket, level admin): one command per connection.

Every command is built here from checked tokens (proxy and server names from
``lb.model``, states from a fixed set), so nothing a manifest says can add a second
command to the line. Replies are read to the end, bounded in size and time.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re

__all__ = ["ADMIN_STATES", "RuntimeApi", "RuntimeApiError", "ServerStat"]

ADMIN_STATES = ("ready", "drain", "maint")
HEALTH = ("up", "stopping", "down")
MAX_REPLY = 4 * 1024 * 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")


class RuntimeApiError(Exception):
    """HAProxy refused a command, or cannot be reached."""


class ServerStat:
    """One server's line of ``show stat``: the fields the agent uses."""

    __slots__ = ("backend", "check", "scur", "server", "status", "weight")

    def __init__(self, row: dict[str, str]) -> None:
        self.backend = row.get("pxname", "")
        self.server = row.get("svname", "")
        self.scur = _int(row.get("scur"))
        self.status = row.get("status", "")  # UP, DOWN, MAINT, DRAIN, NOLB, "no check" ...
        self.weight = _int(row.get("weight"))
        self.check = row.get("check_status", "")

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "scur": self.scur, "weight": self.weight, "check": self.check}


def _int(v: str | None) -> int:
    try:
        return int(v or 0)
    except ValueError:
        return 0


def _name(text: str) -> str:
    if not _NAME_RE.match(text):
        raise ValueError(f"{text!r} is not a proxy or server name")
    return text


class RuntimeApi:
    def __init__(self, path: str, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout
        self.commands = 0
        self.failures = 0

    async def command(self, line: str) -> str:
        """Send one command; HAProxy's reply. Raises RuntimeApiError when the socket cannot be used."""
        if "\n" in line or ";" in line:
            raise ValueError("one command per call")
        self.commands += 1
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(self.path)
                writer.write(line.encode() + b"\n")
                await writer.drain()
                data = await reader.read(MAX_REPLY)
                while True:
                    more = await reader.read(MAX_REPLY)
                    if not more or len(data) > MAX_REPLY:
                        break
                    data += more
        except (OSError, TimeoutError) as e:
            self.failures += 1
            raise RuntimeApiError(f"HAProxy's Runtime API at {self.path}: {e or 'timed out'}") from None
        finally:
            if writer is not None:
                writer.close()
        return data.decode(errors="replace")

    async def set_state(self, backend: str, server: str, state: str) -> None:
        """``set server BE/SRV state ready|drain|maint``."""
        if state not in ADMIN_STATES:
            raise ValueError(f"{state!r} is not an admin state")
        await self._expect_empty(f"set server {_name(backend)}/{_name(server)} state {state}")

    async def set_health(self, backend: str, server: str, health: str) -> None:
        """``set server BE/SRV health up|stopping|down``."""
        if health not in HEALTH:
            raise ValueError(f"{health!r} is not a health state")
        await self._expect_empty(f"set server {_name(backend)}/{_name(server)} health {health}")

    async def _expect_empty(self, line: str) -> None:
        reply = (await self.command(line)).strip()
        if reply:
            raise RuntimeApiError(f"{line!r}: {reply}")

    async def stats(self) -> dict[tuple[str, str], ServerStat]:
        """``show stat`` for servers only: (backend, server) -> its line."""
        text = await self.command("show stat -1 4 -1")
        if not text.startswith("# "):
            raise RuntimeApiError(f"show stat: unexpected reply {text[:200]!r}")
        out = {}
        for row in csv.DictReader(io.StringIO(text[2:])):
            s = ServerStat(row)
            out[(s.backend, s.server)] = s
        return out

    async def servers_state(self) -> str:
        """``show servers state``: what the server-state file holds."""
        text = await self.command("show servers state")
        if not text.lstrip().startswith("1\n") and not text.startswith("1"):
            raise RuntimeApiError(f"show servers state: unexpected reply {text[:200]!r}")
        return text

    async def worker_pid(self) -> int | None:
        """The pid of the worker answering on the socket (``show info``)."""
        for line in (await self.command("show info")).splitlines():
            if line.startswith("Pid: "):
                return _int(line[5:].strip()) or None
        return None
