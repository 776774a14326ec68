"""svccfg's property and snapshot commands: listpg, addpg, delpg, listprop, setprop, delprop,
addpropvalue, delpropvalue, editprop, describe, listsnap, selectsnap, revert, refresh.

They act on the selection of a ``svcmgr.cli.svccfg.Session`` and print what svccfg.c prints:
``listprop`` a line for each group (``name  type``) and each property (``pg/name  type  values``,
a value with a blank, a quote or a parenthesis, or one of several strings, in double quotes),
the names padded to the longest; ``listpg`` the group lines alone.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import subprocess
import tempfile
from typing import Any

from svcmgr.cli.cfglex import Token
from svcmgr.cli.cfgsession import Handler, Session, words
from svcmgr.cli.common import note_protected
from svcmgr.proptypes import NONPERSISTENT, PROP_TYPES

__all__ = ["USAGE"]

#: Groups that SMF keeps apart from the configuration, outside snapshots.
_STRING_TYPES = ("astring", "ustring")
_QUOTE = set(' \t\n"()')


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _value(v: Any, quote: bool) -> str:
    """A value as svccfg's lexer reads it back: quoted when several go together, when it holds a space, a
    quote or a parenthesis, and when it is empty (bare, it is no word at all)."""
    text = _text(v)
    if quote or not text or any(ch in _QUOTE for ch in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _view(s: Session) -> dict[str, Any]:
    reply = s.call("listprop", fmri=s.entity(), snapshot=s.snapshot)
    if reply.get("protected"):
        note_protected("svccfg", reply, "without their values")
    return reply


def listing(s: Session, pattern: str | None, groups_only: bool) -> list[str]:
    """The lines of ``listprop`` (or ``listpg``) for the selection."""
    reply = _view(s)
    hidden = set(reply.get("protected") or [])
    rows: list[tuple[str, str]] = []
    for pg, props in reply["pgs"].items():
        whole = pattern is None or fnmatch.fnmatchcase(pg, pattern)
        if whole:
            rows.append((pg, reply["pg_types"].get(pg, "application") + ("\tNONPERSISTENT" if pg in NONPERSISTENT
                                                                         else "")))
        for name, p in props.items() if not groups_only else ():
            full = f"{pg}/{name}"
            if whole or fnmatch.fnmatchcase(full, pattern or ""):
                values = [] if full in hidden else p["values"]
                several = len(values) > 1 and p["type"] in _STRING_TYPES
                rows.append((full, f"{p['type']:<7} " + "".join(" " + _value(v, several) for v in values)))
    width = max((len(name) for name, _ in rows), default=0)
    return [f"{name:<{width}}  {rest}" for name, rest in rows]


def _listprop(s: Session, args: list[Token]) -> None:
    pattern = words(s, args, "listprop [glob_pattern]", 0, 1)
    for line in listing(s, pattern[0] if pattern else None, False):
        print(line)


def _listpg(s: Session, args: list[Token]) -> None:
    pattern = words(s, args, "listpg [glob_pattern]", 0, 1)
    for line in listing(s, pattern[0] if pattern else None, True):
        print(line)


def _describe(s: Session, args: list[Token]) -> None:
    """As listprop: svcmgr's properties carry no template descriptions beyond the service's own."""
    got = [w for w in words(s, args, "describe [-v] [-t] [propertygroup/property]") if w not in ("-v", "-t")]
    if len(got) > 1:
        s.fail("Syntax error.")
    if not got:
        tm = s.call("props", fmri=s.entity(), view="current")["pgs"]
        for key, label in (("tm_common_name", "common name"), ("tm_description", "description")):
            if tm.get(key, {}).get("C"):
                print(f"  {label}: {tm[key]['C']['values'][0]}")
    for line in listing(s, got[0] if got else None, False):
        print(line)


def _addpg(s: Session, args: list[Token]) -> None:
    name, ptype, *flags = words(s, args, "addpg name type [P]", 2, 3)
    for flag in "".join(flags):
        if flag == "P":
            s.fail("svcmgr keeps nonpersistent property groups for itself (restarter)")
        if flag != "p":
            s.fail(f"Invalid property group flag {flag}.")
    s.call("addpg", fmri=s.modifiable(), pg=name, type=ptype)


def _delpg(s: Session, args: list[Token]) -> None:
    (name,) = words(s, args, "delpg name", 1, 1)
    if "/" in name:
        s.fail(f'Invalid property group name "{name}".')
    s.call("delprop", fmri=s.modifiable(), prop=name)


def _delprop(s: Session, args: list[Token]) -> None:
    (name,) = words(s, args, "delprop pg[/name]", 1, 1)
    s.call("delprop", fmri=s.modifiable(), prop=name)


def _type(s: Session, tok: Token) -> str:
    """A type word (``count:``), as svccfg's ``string_to_type`` reads it."""
    if tok.kind != "WORD" or not tok.text.endswith(":") or tok.text[:-1] not in PROP_TYPES:
        s.fail(f'Unknown type "{tok.text}".')
    return tok.text[:-1]


def _current_type(s: Session, prop: str) -> str | None:
    pg, _, name = prop.partition("/")
    p = _view(s)["pgs"].get(pg, {}).get(name)
    return p["type"] if p else None


def _setprop(s: Session, args: list[Token]) -> None:
    """setprop pg/name = [type:] value, or = [type:] (values ...)."""
    usage = "setprop pg/name = [type:] value, or setprop pg/name = [type:] (values ...)"
    if len(args) < 3 or args[0].kind != "WORD" or args[1].kind != "EQUALS":
        s.fail("Syntax error." if not s.interactive else f"Syntax error.\nUsage: {usage}")
    prop, rest = args[0].text, args[2:]
    if "/" not in prop:
        s.fail("Property names must contain a `/'.")
    ptype = None
    if rest[0].kind == "WORD" and len(rest) > 1:
        ptype = _type(s, rest[0])
        rest = rest[1:]
    if rest[0].kind == "LPAREN":
        if rest[-1].kind != "RPAREN" or any(t.kind not in ("WORD", "STRING") for t in rest[1:-1]):
            s.fail("Syntax error.")
        values = [t.text for t in rest[1:-1]]
        if (ptype or _current_type(s, prop)) in _STRING_TYPES and not all(
                len(v) >= 2 and v[0] == v[-1] == '"' for v in values):
            s.fail("Multiple string values or string values with spaces must be quoted with '\"'.")
        values = [t.value for t in rest[1:-1]]
    elif len(rest) == 1 and rest[0].kind in ("WORD", "STRING"):
        values = [rest[0].value]
    else:
        s.fail("Syntax error.")
    s.call("setprop", fmri=s.modifiable(), prop=prop, type=ptype, values=values)


def _addpropvalue(s: Session, args: list[Token]) -> None:
    if len(args) not in (2, 3) or any(t.kind not in ("WORD", "STRING") for t in args):
        s.fail("Syntax error.")
    prop = args[0].value
    given = _type(s, args[1]) if len(args) == 3 else None
    pg, _, name = prop.partition("/")
    current = _view(s)["pgs"].get(pg, {}).get(name)
    if current is None and given is None:
        s.fail("Type required for new properties.")
    if current is not None and given is not None and given != current["type"]:
        s.fail(f'"{given}" is not the type of {prop} ({current["type"]}).')
    old = [_text(v) for v in (current or {}).get("values", [])]
    s.call("setprop", fmri=s.modifiable(), prop=prop, type=given or current["type"],
           values=[*old, args[-1].value])


def _delpropvalue(s: Session, args: list[Token]) -> None:
    prop, pattern = words(s, args, "delpropvalue pg/name glob_pattern", 2, 2)
    pg, _, name = prop.partition("/")
    current = _view(s)["pgs"].get(pg, {}).get(name)
    if current is None:
        s.fail(f"No such property {prop}.")
    texts = [_text(v) for v in current["values"]]
    kept = [t for t in texts if not fnmatch.fnmatchcase(t, pattern)]
    if kept != texts:
        s.call("setprop", fmri=s.modifiable(), prop=prop, type=current["type"], values=kept)


def edit_script(s: Session) -> str:
    """``editprop``'s file: the selection's groups and properties as commented commands."""
    reply = _view(s)
    out = [f"select {s.entity()}", ""]
    for pg, props in reply["pgs"].items():
        if pg in NONPERSISTENT:
            continue
        out += [f'# Property group "{pg}"', f"# delprop {pg}", f"# addpg {pg} {reply['pg_types'].get(pg)}"]
        for name, p in props.items():
            several = len(p["values"]) > 1
            vals = " ".join(_value(v, several and p["type"] in _STRING_TYPES) for v in p["values"])
            out.append(f"# setprop {pg}/{name} = {p['type']}: " + (f"({vals})" if several else vals))
        out.append("")
    return "\n".join(out) + "\n"


def _editprop(s: Session, args: list[Token]) -> None:
    words(s, args, "editprop", 0, 0)
    s.modifiable()
    fd, path = tempfile.mkstemp(prefix="svccfg-", suffix=".txt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(edit_script(s))
        editor = os.environ.get("EDITOR") or "vi"
        # The invoking user's own $EDITOR in their own process (it may carry arguments, as svccfg's sh -c
        # does); the file name is ours, quoted.
        command = f"{editor} {shlex.quote(path)}"
        if subprocess.run(command, shell=True, check=False).returncode == 127:  # safe: the user's own editor
            s.fail(f"Could not launch editor {editor}")
        with open(path) as f:
            text = f.read()
    finally:
        os.unlink(path)
    before = (s.filename, s.line)
    s.filename = path
    try:
        if s.source(text) and not s.interactive:
            s.fail("editprop: a command of the edited file failed")
    finally:
        s.filename, s.line = before


def _listsnap(s: Session, args: list[Token]) -> None:
    words(s, args, "listsnap", 0, 0)
    for name in s.call("listsnap", fmri=s.need_instance())["snapshots"]:
        print(name)


def _selectsnap(s: Session, args: list[Token]) -> None:
    name = words(s, args, "selectsnap [name]", 0, 1)
    inst = s.need_instance()
    if not name:
        s.snapshot = None
        return
    if name[0] not in s.call("listsnap", fmri=inst)["snapshots"]:
        s.fail(f'No such snapshot "{name[0]}".')
    s.snapshot = name[0]


def _revert(s: Session, args: list[Token]) -> None:
    name = words(s, args, "revert [snapshot]", 0, 1)
    inst = s.need_instance()
    if not name and s.snapshot is None:
        s.fail("No snapshot selected.")
    s.call("revert", fmri=inst, snapshot=name[0] if name else s.snapshot)
    if not name:
        s.snapshot = None


def _refresh(s: Session, args: list[Token]) -> None:
    words(s, args, "refresh", 0, 0)
    s.call("refresh", fmris=[s.need_instance()])


USAGE: dict[str, tuple[Handler, str]] = {
    "listpg": (_listpg, "listpg [glob_pattern]"),
    "addpg": (_addpg, "addpg name type [P]"),
    "delpg": (_delpg, "delpg name"),
    "listprop": (_listprop, "listprop [glob_pattern]"),
    "setprop": (_setprop, "setprop pg/name = [type:] value | setprop pg/name = [type:] (values ...)"),
    "delprop": (_delprop, "delprop pg[/name]"),
    "addpropvalue": (_addpropvalue, "addpropvalue pg/name [type:] value"),
    "delpropvalue": (_delpropvalue, "delpropvalue pg/name glob_pattern"),
    "editprop": (_editprop, "editprop"),
    "describe": (_describe, "describe [-v] [-t] [propertygroup/property]"),
    "listsnap": (_listsnap, "listsnap"),
    "selectsnap": (_selectsnap, "selectsnap [snapshot]"),
    "revert": (_revert, "revert [snapshot]"),
    "refresh": (_refresh, "refresh"),
}
