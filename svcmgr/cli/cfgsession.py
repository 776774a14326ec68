"""One svccfg run (``svcmgr.cli.svccfg``): the daemon, the selection, and how messages are said.

Messages are svccfg.c's: at a terminal on standard output; otherwise on standard error,
``svccfg: ...`` or, for a file (standard input too), ``svccfg (FILE, line N): ...``. A
failed command ends svccfg with status 1 unless it runs at a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from svcmgr.cli.cfglex import LexError, Statement, Token, statements
from svcmgr.client import Client, ClientError

__all__ = ["Failed", "Handler", "Session", "redirect", "words", "write_out"]

Handler = Callable[["Session", list[Token]], None]


class Failed(Exception):
    """A command failed (its message was said); the session goes on only at a terminal."""


class Session:
    """One svccfg run: the daemon, the selection (an entity and maybe a snapshot) and how to say things."""

    def __init__(self, root: str | None, commands: Mapping[str, Handler], *, verbose: bool = False,
                 interactive: bool = False, filename: str | None = None) -> None:
        self.root = root
        self.commands = commands
        self.verbose = verbose
        self.interactive = interactive
        self.filename = filename
        self.line = 0
        self.service: str | None = None
        self.instance: str | None = None
        self.snapshot: str | None = None
        self._client: Client | None = None

    # ------------------------------------------------------------ talking
    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.root)
        return self._client

    def say(self, text: str) -> None:
        """A message: on standard output at a terminal, else on standard error with where it came from."""
        if self.interactive:
            print(text)
        elif self.filename is not None:
            print(f"svccfg ({self.filename}, line {self.line}): {text}", file=sys.stderr)
        else:
            print(f"svccfg: {text}", file=sys.stderr)

    def fail(self, text: str) -> NoReturn:
        """svccfg's ``semerr``: say it; the command fails (and, but at a terminal, svccfg with status 1)."""
        for line in text.splitlines() or [""]:
            self.say(line)
        raise Failed(text)

    def call(self, op: str, **kw: Any) -> Any:
        try:
            return self.client.call(op, **kw)
        except ClientError as e:
            self.fail(str(e))

    # ------------------------------------------------------------ the selection
    @property
    def selected(self) -> str | None:
        return self.instance or self.service

    def prompt(self) -> str:
        entity = self.selected or "svc:"
        return (f"[{self.snapshot}]{entity}" if self.snapshot else entity) + "> "

    def entity(self) -> str:
        if self.selected is None:
            self.fail("An entity is not selected.")
        return self.selected

    def modifiable(self) -> str:
        if self.snapshot is not None:
            self.fail("Cannot modify snapshots.")
        return self.entity()

    def need_instance(self) -> str:
        if self.instance is None:
            self.fail("Instance not selected.")
        return self.instance

    def select(self, name: str) -> None:
        """``select``: a child of the selection (an instance of the selected service, a service by its
        name), ``svc:`` for the top, else an FMRI or an abbreviation naming one service or instance."""
        self.snapshot = None
        if name == "svc:":
            self.service = self.instance = None
            return
        if name == ":properties":
            self.fail(":properties is not an entity.  Try 'listprop' to list properties.")
        if self.instance is None and not name.startswith("svc:"):
            child = f"{self.service}:{name}" if self.service else f"svc:/{name}"
            if child in self.call("match", patterns=[child], services=True)["fmris"]:
                self._set(child)
                return
        res = self.call("match", patterns=[name], services=True, prefer_services=True)
        if res["unmatched"]:
            self.fail(f"Pattern '{name}' doesn't match any instances or services")
        if len(res["fmris"]) > 1:
            self.fail("\n".join([f"Pattern '{name}' matches multiple instances:", *(f"\t{f}" for f in res["fmris"])]))
        self._set(res["fmris"][0])

    def _set(self, fmri: str) -> None:
        if fmri.count(":") > 1:
            self.instance, self.service = fmri, fmri.rsplit(":", 1)[0]
        else:
            self.instance, self.service = None, fmri

    def unselect(self) -> None:
        if self.snapshot is not None:
            self.fail("No parent levels.")
        if self.instance is not None:
            self.instance = None
        elif self.service is not None:
            self.service = None
        else:
            self.fail("Cannot unselect at scope level.")

    # ------------------------------------------------------------ running statements
    def run(self, stmt: Statement) -> bool:
        """Carry out one statement; False when it failed."""
        self.line = stmt.line
        first = stmt.tokens[0]
        handler = self.commands.get(first.text) if first.kind == "WORD" else None
        try:
            if handler is None:
                self.fail(f'Unknown command "{first.text}".' if first.kind == "WORD" else "Syntax error.")
            handler(self, list(stmt.tokens[1:]))
        except Failed:
            return False
        return True

    def source(self, text: str) -> int:
        """Run every statement of a text; outside a terminal the first failure ends it with status 1."""
        try:
            for stmt in statements(text):
                if not self.run(stmt) and not self.interactive:
                    return 1
        except LexError as e:
            self.say(str(e))
            return 1
        return 0

    def interact(self) -> int:
        """Read statements typed at a terminal, each after a prompt naming the selection, until end of input."""
        self.interactive = True
        pending = ""
        while True:
            try:
                line = input(self.prompt() if not pending else "> ")
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print()
                pending = ""
                continue
            pending += line + "\n"
            if pending.count("(") > pending.count(")"):
                continue  # a list of values goes on on the next line
            self.source(pending)
            pending = ""


def words(s: Session, args: list[Token], usage: str, lo: int = 0, hi: int | None = None) -> list[str]:
    """The arguments as plain words, ``lo`` to ``hi`` of them; else a syntax error with the usage."""
    if any(t.kind not in ("WORD", "STRING") for t in args) or len(args) < lo or (hi is not None and len(args) > hi):
        s.fail(f"Syntax error.\nUsage: {usage}" if s.interactive else "Syntax error.")
    return [t.value for t in args]


def redirect(s: Session, args: list[Token], usage: str) -> tuple[list[str], str | None]:
    """Arguments that may end with ``> FILE``: (the words before it, the file or None)."""
    if len(args) >= 2 and args[-2].kind == "REDIRECT":
        return words(s, args[:-2], usage), args[-1].value
    return words(s, args, usage), None


def write_out(s: Session, text: str, target: str | None) -> None:
    if target is None:
        sys.stdout.write(text)
        return
    try:
        with open(target, "w") as f:
            f.write(text)
    except OSError as e:
        s.fail(f'Could not open "{target}": {e.strerror}')


