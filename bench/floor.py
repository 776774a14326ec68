"""The floor: a bare asyncio supervisor that only spawns, respawns and answers "who is up".

Run as its own process, as the other supervisors are:

    python -m bench.floor SPEC.json STATUS.sock

SPEC is ``{"services": [{"name": ..., "argv": [...], "deps": [...]}, ...]}``. A
service without dependencies is spawned at once; with dependencies, once each of
them is ready. A service is ready when spawned, or, with ``"ready": "exit"``, when
its first process exits with status 0 (the DAG scenario). A process that dies is
spawned again at once. Children are watched with asyncio's pidfd child watcher.
It keeps no logs, no state, no contracts and checks nothing: what it costs is what
spawning and waiting cost in Python, the floor a supervisor's overhead is measured
against.

The status socket answers one line per connection: the request line is empty
(every service) or one name; the reply is ``{name: [up, pid]}`` in JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import warnings


class Floor:
    def __init__(self, spec: dict) -> None:
        self.services = {s["name"]: s for s in spec["services"]}
        self.ready_kind = spec.get("ready", "spawn")
        self.up: dict[str, tuple[bool, int]] = {n: (False, 0) for n in self.services}
        self.ready = {n: asyncio.Event() for n in self.services}
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def keep(self, name: str) -> None:
        s = self.services[name]
        for d in s.get("deps", []):
            await self.ready[d].wait()
        first = True
        while True:
            p = await asyncio.create_subprocess_exec(*s["argv"], stdin=subprocess.DEVNULL,
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                     start_new_session=True)
            self.procs[name] = p
            if self.ready_kind == "exit" and first:
                rc = await p.wait()
                if rc == 0:
                    self.up[name] = (True, p.pid)
                    self.ready[name].set()
                    return
                continue
            self.up[name] = (True, p.pid)
            self.ready[name].set()
            first = False
            await p.wait()
            self.up[name] = (False, 0)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).strip().decode()
            out = {line: self.up.get(line)} if line else self.up
            writer.write(json.dumps(out).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    async def run(self, sock: str) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)
        server = await asyncio.start_unix_server(self.serve, sock)
        tasks = [asyncio.create_task(self.keep(n)) for n in self.services]
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        server.close()


def main() -> int:
    spec_path, sock = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if sys.version_info < (3, 12):
        # 3.11's default watcher starts one thread per child; the pidfd watcher is the fast one.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            watcher = asyncio.PidfdChildWatcher()
            watcher.attach_loop(loop)
            asyncio.set_child_watcher(watcher)
    try:
        loop.run_until_complete(Floor(spec).run(sock))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
