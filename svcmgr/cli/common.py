"""What every command shares: ``--root``, running a request, printing errors, exit codes.

Exit status: 0 success, 1 an error the command reports, 2 bad usage.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable

from svcmgr.client import Client, ClientError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2-4 ms of each command's start)
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "add_root", "call_component", "die", "print_json", "run", "select", "stime",
           "table", "usage"]

EXIT_ERROR = 1
EXIT_USAGE = 2


def terminal_width() -> int:
    """The width ``shutil.get_terminal_size`` gives (``$COLUMNS``, else standard output's terminal, else 80),
    without importing shutil: argparse makes a help formatter for every ``add_argument`` and, given no width,
    each one imports shutil (and bz2, lzma and zlib with it) to ask; that was a tenth of ``svcs -a``."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line error, as SMF's commands do; its help is as wide as the terminal,
    measured once (``terminal_width``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kind = kwargs.pop("formatter_class", argparse.HelpFormatter)
        super().__init__(*args, formatter_class=functools.partial(kind, width=terminal_width() - 2), **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", metavar="DIR", help="the daemon's state folder (default: $SVCMGR_ROOT, "
                   "the system daemon, or the one you started last)")


def usage(p: argparse.ArgumentParser, why: str) -> NoReturn:
    """Bad usage: the usage line and why, exit 2 (as SMF's commands do)."""
    p.error(why)
    raise SystemExit(EXIT_USAGE)  # pragma: no cover - error() exits


def select(prog: str, c: Client, patterns: list[str], *, services: bool = False,
           entities: str = "instances") -> dict[str, Any]:
    """What the operands name (the ``match`` operation): ``fmris``, ``unmatched``, ``ambiguous``; says
    ``Pattern '...' doesn't match any instances`` (or ``entities``) for each operand naming nothing."""
    res = c.call("match", patterns=patterns, services=services)
    for p in res["unmatched"]:
        print(f"{prog}: Pattern '{p}' doesn't match any {entities}", file=sys.stderr)
    return res


def die(prog: str, message: str, code: int = EXIT_ERROR) -> NoReturn:
    print(f"{prog}: {message}", file=sys.stderr)
    raise SystemExit(code)


def run(prog: str, fn: Callable[[], int | None]) -> int:
    try:
        return fn() or 0
    except ClientError as e:
        for line in str(e).splitlines() or [""]:
            print(f"{prog}: {line}", file=sys.stderr)
        return e.code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


def client(args: argparse.Namespace) -> Client:
    return Client(args.root)


def call_component(prog: str, args: argparse.Namespace, op: str, what: str, **kw: Any) -> dict[str, Any]:
    """A component's operation (``vrrp.show``, ``lb.show``, ...); exits 1 saying why when this daemon has no such
    component or it is not available on the node (``available`` false, ``reason``)."""
    try:
        out = client(args).call(op, **kw)
    except ClientError as e:
        if "unknown operation" in str(e):
            die(prog, f"this svcmgrd has no {what} agent")
        raise
    if not out.get("available"):
        die(prog, f"{what} is not available on node {out.get('node')}: {out.get('reason')}")
    return out


def note_protected(prog: str, reply: dict[str, Any], shown: str = "as (protected)") -> None:
    """Say on stderr that some values were hidden (``svcmgr.authz``: protected values need a read grant)."""
    hidden = reply.get("protected") or []
    if hidden:
        print(f"{prog}: {len(hidden)} protected value(s) shown {shown}: reading them needs root or "
              f"the service's [authorizations.read] ({', '.join(hidden[:4])}{', ...' if len(hidden) > 4 else ''})",
              file=sys.stderr)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def stime(epoch: float | None, now: float | None = None) -> str:
    """SMF's STIME: HH:MM:SS within the last 24 hours, else Mon_DD."""
    if epoch is None:
        return "-"
    now = time.time() if now is None else now
    return time.strftime("%H:%M:%S" if now - epoch < 86400 else "%b_%d", time.localtime(epoch))


def table(rows: list[list[str]], headers: list[str] | None, *, widths: dict[int, int] | None = None) -> str:
    """Columns separated by white space; the last column is not padded."""
    all_rows = ([headers] if headers else []) + rows
    if not all_rows:
        return ""
    n = max(len(r) for r in all_rows)
    w = [0] * n
    for r in all_rows:
        for i, c in enumerate(r):
            w[i] = max(w[i], len(c))
    for i, mw in (widths or {}).items():
        if i < n:
            w[i] = max(w[i], mw)
    lines = []
    for r in all_rows:
        cells = [c.ljust(w[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)
