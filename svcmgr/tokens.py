"""SMF's method tokens (``%r %m %s %i %f %{pg/prop} %%``), expanded so that a property value stays data.

A property's value may come from a delegated user (``svccfg setprop`` with a value
grant, ``svcmgr.authz``), so it never becomes code:

* **argv methods** run without a shell. A token is replaced inside its argument; an
  argument that is exactly one ``%{pg/prop}`` becomes one argument per value (an
  undefined property: one empty argument).
* **shell methods** (a string, run by ``/bin/sh -c``): the value never enters the
  shell's text. Each ``%{pg/prop}`` becomes a reference to a positional parameter
  (``"${1}"``) and the values travel as those parameters (``/bin/sh -c TEXT /bin/sh V1
  V2 ...``): quotes, ``$( )``, backquotes or ``;`` in a value stay characters, as the
  shell never parses an expansion's result. Unquoted, each value is one word; inside
  ``'...'`` or ``"..."`` the values make one word joined by spaces, as written.
* **shell arithmetic** (``$(( ))``, and bash's ``(( ))``): bash evaluates a value it meets there as
  an expression, an array subscript in it as a command (``a[$(id)]`` runs id), and /bin/sh is bash on
  some systems. So there a value that is an integer is put in the text as it is, and any other value
  is not put at all: the token stays, and the shell refuses it, naming it. bash's other arithmetic
  (``[[ -eq ]]``, ``let``, ``declare -i``, array subscripts) is not recognised: keep values out of it.
* **environment values** are plain text.

``%r %m %s %i %f`` are the restarter's name, the method and parts of the validated
FMRI: substituted as they are. A method that hands its own text to a second shell
(``sh -c "... %{pg/prop} ..."``) makes that shell parse the value again; never write one
for values that others may set.
"""

from __future__ import annotations

import re

from svcmgr.spec import InstanceConfig

__all__ = ["expand", "expand_argv", "shell_script"]

RESTARTER_NAME = "svc.startd"
_TOKEN_RE = re.compile(r"%(\{[^}]*\}|.)")
_INTEGER_RE = re.compile(r"[+-]?[0-9]+\Z")


def _values(cfg: InstanceConfig, token: str) -> list[str] | None:
    """The values of ``{pg/prop}`` as strings; None when the property is not defined."""
    pg, _, prop = token[1:-1].partition("/")
    p = cfg.properties.get(pg, {}).get(prop)
    if p is None:
        return None
    return [("true" if v is True else "false" if v is False else str(v)) for v in p.values]


def _is_property(token: str) -> bool:
    return token.startswith("{") and token.endswith("}") and "/" in token


def _simple(cfg: InstanceConfig, method: str, token: str) -> str | None:
    return {"%": "%", "r": RESTARTER_NAME, "m": method, "s": cfg.fmri.service, "i": cfg.fmri.instance or "",
            "f": str(cfg.fmri)}.get(token)


def expand(text: str, cfg: InstanceConfig, method: str) -> str:
    """Every token replaced by its text (values joined by spaces): for environment values and arguments."""
    if "%" not in text:
        return text  # no token (most arguments and values): nothing to look for

    def sub(m: re.Match[str]) -> str:
        t = m.group(1)
        if _is_property(t):
            return " ".join(_values(cfg, t) or [])
        got = _simple(cfg, method, t)
        return m.group(0) if got is None else got

    return _TOKEN_RE.sub(sub, text)


def expand_argv(argv: tuple[str, ...] | list[str], cfg: InstanceConfig, method: str) -> list[str]:
    """An argv method's arguments: an argument that is one ``%{pg/prop}`` gives one argument per value."""
    out: list[str] = []
    for a in argv:
        if "%" not in a:
            out.append(a)  # no token: the argument as it is
            continue
        m = _TOKEN_RE.fullmatch(a)
        if m is not None and _is_property(m.group(1)):
            values = _values(cfg, m.group(1))
            out.extend([""] if values is None else values)
        else:
            out.append(expand(a, cfg, method))
    return out


def shell_script(text: str, cfg: InstanceConfig, method: str) -> tuple[str, list[str]]:
    """A shell method's text with each ``%{pg/prop}`` turned into positional parameter references,
    and the parameters' values in order (``$1`` first)."""
    if "%" not in text:
        return text, []  # no token: the scan below would copy every character as it is
    params: list[str] = []
    out: list[str] = []
    quote = ""  # "", "'" or '"': where the scan stands in the shell's quoting
    arith = 0  # inside shell arithmetic: the parentheses open since its "(("
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "%" and (m := _TOKEN_RE.match(text, i)) is not None:
            t = m.group(1)
            if _is_property(t):
                values = _values(cfg, t) or []
                if arith:  # integers only, as text: bash would evaluate anything else as code
                    out.append(" ".join(values) if all(_INTEGER_RE.match(v) for v in values) else m.group(0))
                elif not quote:
                    refs = []
                    for v in values:
                        params.append(v)
                        refs.append(f'"${{{len(params)}}}"')
                    out.append(" ".join(refs))
                else:
                    params.append(" ".join(values))
                    ref = f"${{{len(params)}}}"
                    out.append(ref if quote == '"' else f"'\"{ref}\"'")
            else:
                got = _simple(cfg, method, t)
                out.append(m.group(0) if got is None else got)
            i = m.end()
            continue
        out.append(c)
        i += 1
        if arith and c in "()":
            arith += 1 if c == "(" else -1
        elif c == "(" and text.startswith("(", i) and (not quote or (quote == '"' and text[i - 2:i - 1] == "$")):
            out.append("(")  # "$((" or "((": arithmetic, until its parentheses close
            i += 1
            arith = 2
        elif quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\" and i < n and text[i] != "%":
            out.append(text[i])  # an escaped character quotes nothing
            i += 1
        elif quote == '"':
            quote = "" if c == '"' else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 1 or text[i - 2] in " \t\n;&|()"):
            end = text.find("\n", i)  # a comment: its quotes are not quotes
            end = n if end < 0 else end
            out.append(text[i:end])
            i = end
    return "".join(out), params
