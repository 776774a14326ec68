"""svccfg's command language, read as illumos' svccfg lexer reads it: words, double-quoted strings,
``=``, ``(``, ``)``, ``>``, comments and newlines, grouped into statements.

A word is a run of anything but blanks, newlines, ``"``, ``>``, ``=``, ``(`` and ``)``; a
string is double-quoted, its backslashes taking the next character literally, and keeps
its quotes (``setprop`` takes them off a value, as svccfg's ``string_to_value`` does);
``#`` at the start of a word begins a comment that runs to the end of the line. A
statement ends at a newline, except inside parentheses, where a list of values may
run over several lines. Command-line arguments are joined with spaces and read the same
way, as svccfg does, so a value with a space needs quotes the shell passes on
(``'"hello world"'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["LexError", "Statement", "Token", "statements", "unquote"]

_SPECIAL = {"=": "EQUALS", "(": "LPAREN", ")": "RPAREN", ">": "REDIRECT"}
_NOT_WORD = set(' \t\n">=()')


class LexError(ValueError):
    """A character the language has no place for (svccfg: ``unrecognized character``)."""


@dataclass(frozen=True)
class Token:
    kind: str  # WORD, STRING, EQUALS, LPAREN, RPAREN, REDIRECT
    text: str

    @property
    def value(self) -> str:
        """The text a word or string stands for (a string without its quotes)."""
        return unquote(self.text) if self.kind == "STRING" else self.text


@dataclass(frozen=True)
class Statement:
    tokens: tuple[Token, ...]
    line: int  # the line it ends on


def unquote(text: str) -> str:
    """A value with its surrounding double quotes taken off (svccfg's ``string_to_value``)."""
    return text[1:-1] if len(text) >= 2 and text[0] == '"' and text[-1] == '"' else text


def _tokens(text: str) -> Iterator[tuple[Token | None, int]]:
    """Tokens, with None for each newline, and the line each is on."""
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            yield None, line
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in _SPECIAL:
            yield Token(_SPECIAL[ch], ch), line
            i += 1
        elif ch == '"':
            out, i = ['"'], i + 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                if text[i] == "\n":
                    line += 1
                out.append(text[i])
                i += 1
            if i >= n:
                raise LexError(f"line {line}: a string is not closed (\")")
            yield Token("STRING", "".join(out) + '"'), line
            i += 1
        else:
            start = i
            while i < n and text[i] not in _NOT_WORD:
                i += 1
            if start == i:  # pragma: no cover - every character is handled above
                raise LexError(f"unrecognized character {ch}")
            yield Token("WORD", text[start:i]), line


def statements(text: str) -> Iterator[Statement]:
    """The statements of a text (a file, standard input, a line typed, or the joined arguments)."""
    current: list[Token] = []
    depth = 0
    last = 1
    for tok, line in _tokens(text):
        last = line
        if tok is None:
            if depth > 0:
                continue
            if current:
                yield Statement(tuple(current), line)
            current = []
            continue
        depth += {"LPAREN": 1, "RPAREN": -1}.get(tok.kind, 0)
        current.append(tok)
    if current:
        yield Statement(tuple(current), last)
