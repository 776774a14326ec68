"""fminject: post ereports by hand (root only), to test rules and responses.

    fminject [-r RESOURCE] [-n COUNT] CLASS [resource=FMRI] [key=value ...]
    fminject -f FILE|-

The first form posts one ereport (``-n``: that many) of CLASS on RESOURCE (an FMRI,
or a service abbreviation such as ``db``) with a payload of ``key=value`` pairs;
values that read as numbers, ``true``/``false`` or JSON (``[...]``, ``{...}``) are
posted as such, others as strings. The second reads JSON lines, one ereport each:
``{"class": ..., "resource": ..., "payload": {...}}``; options may follow the
class. A class that no rule consumes is posted (it goes to the error log) with a
warning. A file is all or nothing: when it takes more than one request, each is
checked first, and a refusal names the file's line.

Socket request: ``fm.inject`` (``{"ereports": [...], "check": bool?}``, at most 10000 a
request; ``check``: validate them, post nothing).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from svcmgr.cli.common import EXIT_USAGE, Parser, add_root, die, run
from svcmgr.client import Client, ClientError

BATCH = 5000
_NUM = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?\Z")
#: the daemon's refusal of one ereport of a request: ``ereports[N]: field: reason``
_ITEM = re.compile(r"^ereports\[(\d+)\]: ")


def parser() -> Parser:
    p = Parser(prog="fminject", description="Post ereports to the fault manager by hand.")
    add_root(p)
    p.add_argument("-r", "--resource", default="", metavar="FMRI", help="the resource the ereport concerns")
    p.add_argument("-n", type=int, default=1, metavar="COUNT", help="post COUNT copies (default 1)")
    p.add_argument("-f", metavar="FILE", help="read ereports as JSON lines from FILE ('-': standard input)")
    p.add_argument("-q", action="store_true", help="say nothing on success")
    p.add_argument("cls", nargs="?", metavar="CLASS", help="the ereport class, e.g. ereport.io.disk.error")
    p.add_argument("pairs", nargs="*", metavar="key=value", help="payload")
    return p


def value(text: str) -> Any:
    if _NUM.match(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    if text in ("true", "false"):
        return text == "true"
    if text[:1] in "[{\"":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def payload(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            die("fminject", f"{p!r}: expected key=value", EXIT_USAGE)
        out[k] = value(v)
    return out


def read_lines(path: str) -> tuple[list[Any], list[int]]:
    """The ereports of a file of JSON lines (``-``: standard input) and the line of each; exits 2 naming the line
    that is not UTF-8 or not JSON."""
    try:
        f = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        die("fminject", f"{path}: {e.strerror}")
    items: list[Any] = []
    numbers: list[int] = []
    with f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                die("fminject", f"{path}:{n}: not UTF-8: byte {raw[e.start]:#04x} at column {e.start + 1}", EXIT_USAGE)
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError as e:
                die("fminject", f"{path}:{n}: not JSON: {e}", EXIT_USAGE)
            except RecursionError:
                die("fminject", f"{path}:{n}: not JSON: nested too deeply", EXIT_USAGE)
            numbers.append(n)
    return items, numbers


def _send(c: Client, items: list[Any], *, check: bool, path: str | None, numbers: list[int], first: int) -> Any:
    """One ``fm.inject`` request of ``items`` (from ``first`` on); a refusal of one of them from a file names its
    line there."""
    try:
        return c.call("fm.inject", ereports=items, **({"check": True} if check else {}))
    except ClientError as e:
        m = _ITEM.match(str(e))
        if path is None or m is None:
            raise
        raise ClientError(f"{path}:{numbers[first + int(m.group(1))]}: {str(e)[m.end():]}", e.code) from None


def execute(args: Any) -> int:
    if args.f:
        if args.cls:
            die("fminject", "give either -f FILE or CLASS, not both", EXIT_USAGE)
        items, numbers = read_lines(args.f)
    else:
        if not args.cls:
            die("fminject", "a CLASS (or -f FILE) is required", EXIT_USAGE)
        if args.n < 1:
            die("fminject", f"-n {args.n}: expected a positive count", EXIT_USAGE)
        pl = payload(args.pairs)
        resource = args.resource
        if not resource and isinstance(pl.get("resource"), str):
            resource = pl.pop("resource")  # ``resource=FMRI`` names the resource, as -r does
        item: dict[str, Any] = {"class": args.cls, "payload": pl}
        if resource:
            item["resource"] = resource
        items, numbers = [item] * args.n, []
    c = Client(args.root)
    posted = 0
    unmatched: set[str] = set()
    batches = range(0, len(items), BATCH)
    if args.f and len(batches) > 1:  # a file is all or nothing: a refusal in a later request would leave half of it
        for i in batches:
            _send(c, items[i:i + BATCH], check=True, path=args.f, numbers=numbers, first=i)
    for i in batches:
        res = _send(c, items[i:i + BATCH], check=False, path=args.f, numbers=numbers, first=i)
        posted += res["posted"]
        unmatched.update(res["unmatched"])
    for cls in sorted(unmatched):
        on = items[0].get("resource") if len(items) == 1 else None
        where = f" on {on}" if on else (" without a resource" if len(items) == 1 else "")
        print(f"fminject: warning: no rule consumes {cls}{where}: it is logged (fmdump -e), not diagnosed",
              file=sys.stderr)
    if not args.q:
        what = f"{items[0]['class']} on {items[0].get('resource') or 'this node'}" if len(items) == 1 else \
            f"{posted} ereports"
        print(f"fminject: posted {what}")
    return 0


def arguments(argv: list[str] | None) -> Any:
    """The command line; options may come after the class and among the payload's pairs."""
    return parser().parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    return run("fminject", lambda: execute(args))


if __name__ == "__main__":
    sys.exit(main())
