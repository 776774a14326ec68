"""svccfg's command language as its lexer (svccfg.l) reads it."""

from __future__ import annotations

import pytest

from svcmgr.cli.cfglex import LexError, statements


def _kinds(text: str) -> list[list[tuple[str, str]]]:
    return [[(t.kind, t.text) for t in s.tokens] for s in statements(text)]


def test_words_strings_and_specials():
    assert _kinds('setprop pg/p = astring: "a \\"b\\" c"\n') == [[
        ("WORD", "setprop"), ("WORD", "pg/p"), ("EQUALS", "="), ("WORD", "astring:"), ("STRING", '"a "b" c"')]]
    (stmt,) = statements('setprop x = "hello world"')
    assert stmt.tokens[-1].value == "hello world"  # a value loses its quotes
    assert _kinds("export app > out.xml") == [[("WORD", "export"), ("WORD", "app"), ("REDIRECT", ">"),
                                              ("WORD", "out.xml")]]


def test_comments_newlines_and_lists_over_several_lines():
    text = "# a comment\nselect app\n\nsetprop pg/l = (\n  1\n  2 )\nlistprop # trailing\n"
    got = list(statements(text))
    assert [[t.text for t in s.tokens] for s in got] == [
        ["select", "app"], ["setprop", "pg/l", "=", "(", "1", "2", ")"], ["listprop"]]
    assert [s.line for s in got] == [2, 6, 7]
    assert _kinds("a#b") == [[("WORD", "a#b")]]  # '#' begins a comment only at the start of a word


def test_an_open_string_is_refused():
    with pytest.raises(LexError):
        list(statements('setprop a/b = "never closed\n'))
