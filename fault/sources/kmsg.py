"""The kernel log as a source of ereports: OOM kills and disk I/O errors.

Reads ``/dev/kmsg`` (one record ``PRIO,SEQ,USEC,FLAGS;text`` per read) from its
end, so a restart does not report old messages again; or follows a file (lines in
kmsg's format, dmesg's ``[  12.345678] text``, or plain text), which may not exist
yet and may be truncated or replaced.

* ``Killed process PID (COMM) ...`` (the OOM killer, global or in a memory cgroup)
  gives ``ereport.kernel.oom``. The resource is the service that owned the process
  (found by the caller from the cgroup named in the preceding ``oom-kill:`` line, or
  the pid), else ``sw:///COMM``.
* ``<kind> error, dev DEV, sector N`` (the block layer) gives
  ``ereport.io.disk.error`` on ``dev:///dev/DISK`` (partitions count for their
  disk). File system lines that follow (``Buffer I/O error on dev ...``) are the
  same failure seen again and are not counted twice.

The payloads are the kernel log's, which the kernel gives an ordinary user only while
``kernel.dmesg_restrict`` is 0: ``fault.disclosure`` withholds them (and the texts of the
cases that may quote them) from whoever the kernel would refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable
from typing import Any

__all__ = ["KmsgParser", "KmsgSource", "disk_of"]

log = logging.getLogger("fault.kmsg")

_KMSG_RE = re.compile(r"^\d+,\d+,\d+,[^;]*;")
_DMESG_RE = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_SYSLOG_RE = re.compile(r"^<\d+>")
_OOM_INFO_RE = re.compile(r"oom-kill:(\S+)")
_OOM_KILL_RE = re.compile(
    r"(?P<kind>Memory cgroup out of memory|Out of memory)(?: \([a-z_]+\))?: Killed process (?P<pid>\d+) "
    r"\((?P<comm>[^)]*)\)(?: total-vm:(?P<vm>\d+)kB, anon-rss:(?P<anon>\d+)kB, file-rss:(?P<file>\d+)kB)?")
_IO_RE = re.compile(
    r"^(?:[\w.-]+: )?(?P<kind>[A-Za-z][A-Za-z /]{0,40}?) error, dev (?P<dev>[A-Za-z0-9_!.-]+), sector (?P<sector>\d+)"
    r"(?: op 0x[0-9a-fA-F]+:\((?P<op>[A-Z_]+)\))?")
_COMM_SAFE_RE = re.compile(r"[^A-Za-z0-9_.+-]")
_PART_RES = (re.compile(r"^(nvme\d+n\d+|mmcblk\d+|loop\d+|md\d+|nbd\d+)(?:p\d+)?\Z"),
             re.compile(r"^((?:s|h|v|xv)d[a-z]+)\d*\Z"))

Emit = Callable[[str, str, dict[str, Any]], None]
#: (pid, memory cgroup or None) -> the FMRI of the service that owned the process, or None
Resolve = Callable[[int, str | None], str | None]


def disk_of(dev: str) -> str:
    """``sda1`` -> ``sda``, ``nvme0n1p2`` -> ``nvme0n1``; other names unchanged."""
    for r in _PART_RES:
        m = r.match(dev)
        if m:
            return m.group(1)
    return dev


def text_of(line: str) -> str | None:
    """The message of a kernel log line, or None for a continuation line."""
    if not line or line[0] in " \t":
        return None
    line = line.rstrip("\n")
    m = _KMSG_RE.match(line) or _DMESG_RE.match(line) or _SYSLOG_RE.match(line)
    return line[m.end():] if m else line


class KmsgParser:
    """Kernel log lines in, (class, resource, payload) out. Remembers the last ``oom-kill:`` details."""

    def __init__(self, resolve: Resolve | None = None) -> None:
        self.resolve = resolve
        self._oom: dict[int, dict[str, str]] = {}

    def parse(self, line: str) -> list[tuple[str, str, dict[str, Any]]]:
        text = text_of(line)
        if text is None:
            return []
        if "oom-kill:" in text:
            m = _OOM_INFO_RE.search(text)
            if m:
                info = dict(kv.split("=", 1) for kv in m.group(1).split(",") if "=" in kv)
                pid = info.get("pid", "")
                if pid.isdigit():
                    self._oom[int(pid)] = info
                    if len(self._oom) > 64:
                        self._oom.pop(next(iter(self._oom)))
            return []
        if "Killed process" in text:
            m = _OOM_KILL_RE.search(text)
            if m:
                return [self._oom_kill(m, text)]
            return []
        if " error, dev " in text:
            m = _IO_RE.match(text)
            if m:
                dev = m.group("dev")
                disk = disk_of(dev)
                payload: dict[str, Any] = {"device": dev, "disk": disk, "sector": int(m.group("sector")),
                                           "kind": m.group("kind"), "line": text[:300]}
                if m.group("op"):
                    payload["op"] = m.group("op")
                return [("ereport.io.disk.error", f"dev:///dev/{disk}", payload)]
        return []

    def _oom_kill(self, m: re.Match[str], text: str) -> tuple[str, str, dict[str, Any]]:
        pid = int(m.group("pid"))
        comm = m.group("comm")
        info = self._oom.pop(pid, {})
        memcg = info.get("task_memcg")
        payload: dict[str, Any] = {"pid": pid, "comm": comm, "line": text[:300],
                                   "scope": "cgroup" if m.group("kind").startswith("Memory cgroup") else "global"}
        for key, group in (("total_vm_kb", "vm"), ("anon_rss_kb", "anon"), ("file_rss_kb", "file")):
            if m.group(group):
                payload[key] = int(m.group(group))
        if memcg:
            payload["memcg"] = memcg
        if info.get("constraint"):
            payload["constraint"] = info["constraint"]
        resource = self.resolve(pid, memcg) if self.resolve is not None else None
        if not resource:
            resource = "sw:///" + (_COMM_SAFE_RE.sub("_", comm)[:64] or "unknown")
        payload["summary"] = f"process {pid} ({comm}) killed for lack of memory" + (f" in {memcg}" if memcg else "")
        return "ereport.kernel.oom", resource, payload


class KmsgSource:
    """Follows /dev/kmsg or a file and hands ereports to ``emit``."""

    def __init__(self, path: str, emit: Emit, resolve: Resolve | None = None, *, poll: float = 0.2) -> None:
        self.path = path
        self.emit = emit
        self.parser = KmsgParser(resolve)
        self.poll = poll
        self.counters = {"lines": 0, "ereports": 0, "lost": 0, "errors": 0}
        self.device = path == "/dev/kmsg"

    def feed(self, line: str) -> None:
        self.counters["lines"] += 1
        try:
            found = self.parser.parse(line)
        except (ValueError, KeyError) as e:
            self.counters["errors"] += 1
            log.debug("kernel log line not understood: %s: %r", e, line[:200])
            return
        for cls, resource, payload in found:
            self.counters["ereports"] += 1
            self.emit(cls, resource, payload)

    async def run(self) -> None:
        if self.device:
            await self._run_device()
        else:
            await self._run_file()

    async def _run_device(self) -> None:
        loop = asyncio.get_running_loop()
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.lseek(fd, 0, os.SEEK_END)
            wake = asyncio.Event()
            loop.add_reader(fd, wake.set)
            try:
                while True:
                    await wake.wait()
                    wake.clear()
                    self._drain(fd)
            finally:
                loop.remove_reader(fd)
        finally:
            os.close(fd)

    def _drain(self, fd: int) -> None:
        for _ in range(10_000):
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:
                self.counters["lost"] += 1  # the ring buffer overwrote records we had not read
                continue
            if not rec:
                return
            self.feed(rec.decode(errors="replace"))

    async def _run_file(self) -> None:
        f = None
        ino = None
        pos = 0
        buf = b""
        first = True
        try:
            while True:
                try:
                    st = os.stat(self.path)
                except FileNotFoundError:
                    st = None
                if st is not None and (f is None or st.st_ino != ino or st.st_size < pos):
                    if f is not None:
                        f.close()
                    f = open(self.path, "rb")  # noqa: SIM115, ASYNC230 - kept open while followed
                    ino = st.st_ino
                    pos = st.st_size if first else 0  # an existing file: from its end; a new one: all of it
                    f.seek(pos)
                    buf = b""
                first = False
                if f is not None:
                    chunk = f.read(1 << 20)
                    if chunk:
                        pos = f.tell()
                        buf += chunk
                        *lines, buf = buf.split(b"\n")
                        for line in lines:
                            self.feed(line.decode(errors="replace"))
                        if len(buf) > 65536:
                            buf = b""
                        await asyncio.sleep(0)
                        continue
                await asyncio.sleep(self.poll)
        finally:
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
