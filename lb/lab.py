"""Load-balancing lab parts: a small HTTP backend and a bounded client loop, for the tests and the benchmark.

    python -m lb.lab backend --port P --name N [--delay S]
        An HTTP/1.0 server on 127.0.0.1:P answering every GET with ``N`` after ``delay``
        seconds (so requests are in flight long enough to be cut).
    python -m lb.lab client --url http://HOST:PORT/ --rate R --count N [--seconds T] --out FILE
        Starts R requests a second (keep-alive off), N in all or for at most T seconds,
        and writes every request's start, end, outcome and answering server to FILE (JSON).
        Started by a test inside a network namespace; ``summary`` reads the result.

A request fails when it gets no complete 200 answer (a reset, a 502/503 from HAProxy, a
timeout). ``Result.in_flight(t)`` counts the requests started before ``t`` and not yet
finished at ``t``; ``Result.gap()`` is the longest time without a successful answer, and
``Result.slowest()`` the longest a successful request took.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

__all__ = ["Result", "load_result"]

REQUEST_TIMEOUT = 5.0


# --------------------------------------------------------------------------- backend


async def _backend(port: int, name: str, delay: float) -> None:
    body = f"{name}\n".encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                if delay:
                    await asyncio.sleep(delay)
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\nX-Server: %s\r\n\r\n%s" % (len(body), name.encode(), body))
                await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512, reuse_address=True)
    async with server:
        await server.serve_forever()


# --------------------------------------------------------------------------- client


async def _one(host: str, port: int, path: str, rec: list[Any]) -> None:
    writer = None
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read()
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "none"
        rec[2] = "ok" if status == "200" and body.endswith(b"\n") else f"http {status}"
        rec[3] = body.decode(errors="replace").strip()[:40] if status == "200" else ""
    except (OSError, TimeoutError, IndexError) as e:
        rec[2] = type(e).__name__
    finally:
        rec[1] = time.time()
        if writer is not None:
            writer.close()


async def _client(url: str, rate: float, count: int, seconds: float) -> list[list[Any]]:
    u = urllib.parse.urlsplit(url)
    host, port, path = u.hostname or "127.0.0.1", u.port or 80, u.path or "/"
    records: list[list[Any]] = []
    t0 = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        for i in range(count):
            due = t0 + i / rate
            now = time.monotonic()
            if now - t0 > seconds:
                break
            if due > now:
                await asyncio.sleep(due - now)
            rec: list[Any] = [time.time(), None, "pending", ""]
            records.append(rec)
            tg.create_task(_one(host, port, path, rec))
    return records


@dataclass
class Result:
    """What a client loop saw: one (start, end, outcome, server) per request, wall-clock times."""

    records: list[list[Any]]

    @property
    def total(self) -> int:
        return len(self.records)

    @property
    def failures(self) -> list[list[Any]]:
        return [r for r in self.records if r[2] != "ok"]

    def in_flight(self, t: float) -> int:
        return sum(1 for r in self.records if r[0] <= t and (r[1] or 0) > t)

    def most_in_flight(self) -> int:
        """The most requests in flight at once during the run."""
        return max((self.in_flight(r[0]) for r in self.records), default=0)

    def servers(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            if r[2] == "ok":
                out[r[3]] = out.get(r[3], 0) + 1
        return out

    def gap(self) -> float:
        """The longest time between two successful answers (completion times)."""
        ends = sorted(r[1] for r in self.records if r[2] == "ok")
        return max((b - a for a, b in itertools.pairwise(ends)), default=0.0)

    def slowest(self) -> float:
        """The longest a successful request took (a connection attempt retransmitted shows here)."""
        return max((r[1] - r[0] for r in self.records if r[2] == "ok"), default=0.0)

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for r in self.failures:
            kinds[r[2]] = kinds.get(r[2], 0) + 1
        span = (max(r[1] for r in self.records) - self.records[0][0]) if self.records else 0.0
        return {"requests": self.total, "failed": len(self.failures), "failures": kinds,
                "servers": self.servers(), "gap_seconds": round(self.gap(), 4),
                "slowest_seconds": round(self.slowest(), 4), "seconds": round(span, 3),
                "rate": round(self.total / span, 1) if span else 0.0}


def load_result(path: str) -> Result:
    with open(path) as f:
        return Result(json.load(f))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lb.lab")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("backend")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--name", required=True)
    b.add_argument("--delay", type=float, default=0.0)
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--rate", type=float, default=500)
    c.add_argument("--count", type=int, default=1000)
    c.add_argument("--seconds", type=float, default=30)
    c.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.cmd == "backend":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_backend(args.port, args.name, args.delay))
        return 0
    records = asyncio.run(_client(args.url, args.rate, args.count, args.seconds))
    with open(args.out + ".tmp", "w") as f:
        json.dump(records, f)
    os.replace(args.out + ".tmp", args.out)
    print(json.dumps(Result(records).summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
