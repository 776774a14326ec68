"""svcprop: print the properties of services and instances, as SMF's svcprop does.

    svcprop [-fqtv] [-C | -c | -s snapshot] [-p [pg/]name]... FMRI|pattern ...
    svcprop -w [-fqtv] [-p [pg/]name] FMRI|pattern

An operand is an instance or a service (an abbreviation of a service with one
instance names that instance), a glob, or a property group or property FMRI
(``svc:/site/app:default/:properties/config/port``). Without options an instance's
properties are those of its running snapshot, with its state (``restarter``) and
enable (``general/enabled``); ``-c`` reads the editing configuration (what ``svcadm
refresh`` would make run), ``-C`` only the groups the instance sets itself, ``-s NAME``
a snapshot (``initial``, ``last-import``, ``previous``, ``running``).

Output as svcprop.c prints it: one property selected by a single ``-p pg/name``:
its values, separated by spaces, with the shell's metacharacters quoted by ``\\``
and an empty string as ``""``; otherwise one line a property, ``pg/name type
values`` (``-t``), with the property's full FMRI when ``-f`` is given or several
instances are selected. ``-q`` prints nothing: the exit status says whether
everything named exists. ``-w`` waits until the named property group (or the group of
the named property) changes, then prints it; it reads the editing configuration composed
with the service's (illumos reads only what the instance sets itself). A protected value (``svcmgr.authz``) is
printed as if the property had no values, or, when a ``-p`` names it, refused:
``Permission denied.`` Exit 1 when something named does not exist, 2 on bad usage.

Socket requests: ``match``, then ``props`` for each instance or service.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from svcmgr.cli.common import Parser, add_root, die, note_protected, print_json, run, usage
from svcmgr.client import Client
from svcmgr.proptypes import NONPERSISTENT

#: Bourne shell metacharacters, quoted by a backslash.
_META = set(";&()|^<>\n \t\\\"'`")
#: A property group or property name (libuutil's UU_NAME_DOMAIN).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.,-]*\Z")
_PROPERTIES = "/:properties/"
WAIT_INTERVAL = 0.25  # seconds between two looks while -w waits


def parser() -> Parser:
    p = Parser(prog="svcprop", description="Print the properties of services and instances.")
    add_root(p)
    p.add_argument("-C", action="store_true", dest="attached", help="only the groups the instance sets itself")
    p.add_argument("-c", action="store_true", dest="current",
                   help="the editing configuration (as svcadm refresh would make it run)")
    p.add_argument("-s", metavar="SNAPSHOT", dest="snapshot",
                   help="a snapshot of an instance: initial, last-import, previous, running")
    p.add_argument("-f", action="store_true", help="designate each property by its full FMRI (implies -t)")
    p.add_argument("-p", metavar="[PG/]NAME", action="append", default=[], help="a property group or property")
    p.add_argument("-q", action="store_true", help="print nothing; the exit status says whether it exists")
    p.add_argument("-t", action="store_true", help="one line a property: name, type and values")
    p.add_argument("-v", action="store_true", help="with -q, still say what does not exist")
    p.add_argument("-w", action="store_true", help="wait until the property group changes, then print it")
    p.add_argument("-z", metavar="ZONE", help="a zone (refused: svcmgr has no zones)")
    p.add_argument("--json", action="store_true", help="print JSON: designator -> {type, values}")
    p.add_argument("operands", nargs="+", metavar="FMRI")
    return p


def shell_quoted(text: str) -> str:
    """A value as svcprop prints it: metacharacters quoted by a backslash, the empty string as ``""``."""
    if text == "":
        return '""'
    return "".join("\\" + ch if ch in _META else ch for ch in text)


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


class Printer:
    """svcprop.c's output rules: when designators and types are shown, what a missing name says."""

    def __init__(self, args: argparse.Namespace, wanted: list[tuple[str, str | None]]) -> None:
        self.args = args
        self.wanted = wanted
        self.types = args.t or args.f or (len({name is None for _, name in wanted}) > 1)
        self.fmris = args.f
        self.status = 0
        self.hidden: list[str] = []  # protected properties shown without their values
        self.json: dict[str, Any] = {}  # --json: designator -> {"type", "values"}

    def warn(self, text: str) -> None:
        """A name that does not exist: exit 1; with -q (and no -v) silently, at once."""
        self.status = 1
        if self.args.q and not self.args.v:
            raise SystemExit(1)
        print(f"svcprop: {text}", file=sys.stderr)

    def prop(self, entity: str, pg: str, name: str, p: dict[str, Any], protected: set[str], named: bool) -> None:
        if f"{pg}/{name}" in protected and named:
            die("svcprop", "Permission denied.")
        if self.args.q:
            return
        if self.args.json:
            where = f"{entity}/:properties/{pg}/{name}" if self.fmris else f"{pg}/{name}"
            hidden = f"{pg}/{name}" in protected
            self.json[where] = {"type": p["type"], "values": [] if hidden else p["values"]}
            if hidden:
                self.hidden.append(f"{pg}/{name}")
            return
        head = ""
        if self.types:
            where = f"{entity}/:properties/{pg}/{name}" if self.fmris else f"{pg}/{name}"
            head = f"{where} {p['type']} "
        values = p["values"]
        if f"{pg}/{name}" in protected:
            values = []
            self.hidden.append(f"{pg}/{name}")
        print(head + " ".join(shell_quoted(_text(v)) for v in values))

    def group(self, entity: str, pg: str, props: dict[str, Any], protected: set[str], named: bool) -> None:
        self.types = True  # as svcprop.c: once a whole group is shown, every line says name and type
        for name, p in props.items():
            self.prop(entity, pg, name, p, protected, named)


def _wanted(specs: list[str]) -> list[tuple[str, str | None]]:
    out = []
    for spec in specs:
        pg, slash, name = spec.partition("/")
        if "/" in name:
            print(f"svcprop: -p argument `{spec}' has too many components.", file=sys.stderr)
            raise SystemExit(2)
        for part in (pg, name) if slash else (pg,):
            if not _NAME.match(part):
                die("svcprop", f"Invalid component name `{part}'.", 2)
        out.append((pg, name if slash else None))
    return out


def _view(args: argparse.Namespace) -> dict[str, Any]:
    if args.snapshot is not None:
        return {"snapshot": args.snapshot}
    return {"view": "attached" if args.attached else "current" if args.current or args.w else "running"}


Named = tuple[str, str | None] | None
"""What an operand names within its entity: None (the entity), (pg, None) a property group, (pg, name) a
property."""


def _select(c: Client, args: argparse.Namespace) -> tuple[list[tuple[str, Named]], int]:
    """(entity FMRI, the group or property its operand names, or None) for each operand, and 1 if one named
    nothing."""
    entities: list[str] = []
    props: list[Named] = []
    for op in args.operands:
        base, sep, rest = op.partition(_PROPERTIES)
        entities.append(base)
        pg, slash, name = rest.partition("/")
        props.append((pg, name or None) if sep else None)
        if sep and (not pg or (slash and not name)):
            die("svcprop", f"{op}: a property group FMRI is FMRI/:properties/pg, a property's "
                "FMRI/:properties/pg/name", 2)
    out: list[tuple[str, Named]] = []
    status = 0
    for base, prop in zip(entities, props, strict=True):
        res = c.call("match", patterns=[base], services=True)
        for p in res["unmatched"]:
            status = 1
            if not args.q or args.v:
                print(f"svcprop: Pattern '{p}' doesn't match any entities", file=sys.stderr)
        if args.w and len(res["fmris"]) > 1:
            print(f"svcprop: Pattern '{base}' matches multiple instances:", file=sys.stderr)
            for f in res["fmris"]:
                print(f"\t{f}", file=sys.stderr)
            raise SystemExit(1)
        out.extend((f, prop) for f in res["fmris"] if (f, prop) not in out)
    return out, status


def _entity_kind(fmri: str) -> str:
    return "instance" if fmri.count(":") > 1 else "service"


def show(c: Client, args: argparse.Namespace, printer: Printer, fmri: str, prop: Named) -> None:
    reply = c.call("props", fmri=fmri, **_view(args))
    pgs: dict[str, dict[str, Any]] = reply["pgs"]
    protected = set(reply.get("protected") or [])
    named = {pg for pg, _ in printer.wanted} | ({prop[0]} if prop is not None else set())
    if args.snapshot is not None and (named & NONPERSISTENT) - set(pgs):
        # as svcprop.c: a non-persistent group a snapshot lacks is read as it is now, when named
        now = c.call("props", fmri=fmri)
        pgs = {**pgs, **{pg: now["pgs"][pg] for pg in named & NONPERSISTENT if pg in now["pgs"]}}
    if prop is not None and prop[1] is None:
        _show_group(printer, fmri, prop[0], pgs, protected)
        return
    if prop is not None:
        pg, name = prop
        if pg not in pgs or name not in pgs[pg]:
            printer.warn(f"Couldn't find property `{pg}/{name}' for {_entity_kind(fmri)} `{fmri}'.")
            return
        printer.prop(fmri, pg, name, pgs[pg][name], protected, named=True)
        return
    if not printer.wanted:
        for pg, props in pgs.items():
            printer.group(fmri, pg, props, protected, named=False)
        return
    for pg, name in printer.wanted:
        if pg not in pgs:
            printer.warn(f"Couldn't find property group `{pg}' for {_entity_kind(fmri)} `{fmri}'.")
        elif name is None:
            printer.group(fmri, pg, pgs[pg], protected, named=True)
        elif name not in pgs[pg]:
            printer.warn(f"Couldn't find property `{pg}/{name}' for {_entity_kind(fmri)} `{fmri}'.")
        else:
            printer.prop(fmri, pg, name, pgs[pg][name], protected, named=True)


def _show_group(printer: Printer, fmri: str, pg: str, pgs: dict[str, dict[str, Any]], protected: set[str]) -> None:
    """A property group operand (``FMRI/:properties/pg``): its properties, or those ``-p`` names in it, as
    svcprop.c's ``process_pg``."""
    where = f"{fmri}{_PROPERTIES}{pg}"
    if pg not in pgs:
        printer.warn(f"Couldn't find property group `{pg}' for {_entity_kind(fmri)} `{fmri}'.")
        return
    if not printer.wanted:
        printer.group(fmri, pg, pgs[pg], protected, named=True)
        return
    for first, second in printer.wanted:
        if second is not None:
            die("svcprop", f"-p argument `{first}/{second}' has too many components for property group "
                f"`{where}'.", 2)
        if first in pgs[pg]:
            printer.prop(fmri, pg, first, pgs[pg][first], protected, named=True)
        else:
            printer.warn(f"Couldn't find property `{first}' in property group `{where}'.")


def wait(c: Client, args: argparse.Namespace, printer: Printer, fmri: str, prop: Named) -> None:
    """svcprop -w: look at the group every WAIT_INTERVAL until it differs, then print it."""
    if prop is not None and prop[1] is None:  # a group operand: -p names a property in it
        if printer.wanted and printer.wanted[0][1] is not None:
            first, second = printer.wanted[0]
            die("svcprop", f'-p argument "{first}/{second}" has too many components for property group '
                f"{fmri}{_PROPERTIES}{prop[0]}.", 2)
        prop = (prop[0], printer.wanted[0][0] if printer.wanted else None)
    pg, name = prop if prop is not None else printer.wanted[0]

    def look() -> dict[str, Any] | None:
        return c.call("props", fmri=fmri, view="current")["pgs"].get(pg)

    first = look()
    if first is None or (name is not None and name not in first):
        die("svcprop", "Not found.")
    while (now := look()) == first:
        time.sleep(WAIT_INTERVAL)
    if now is None or (name is not None and name not in now):
        printer.warn("Not found.")
    elif name is None:
        printer.group(fmri, pg, now, set(), named=True)
    else:
        printer.prop(fmri, pg, name, now[name], set(), named=True)


def execute(args: argparse.Namespace, wanted: list[tuple[str, str | None]]) -> int:
    c = Client(args.root)
    printer = Printer(args, wanted)
    selected, printer.status = _select(c, args)
    if any(prop is not None and prop[1] is not None for _, prop in selected) and wanted:
        print("svcprop: -p cannot be used with property FMRIs." if args.w else  # do_wait's words, process_prop's
              "svcprop: The -p option cannot be used with property operands.", file=sys.stderr)
        raise SystemExit(2)
    if len({f for f, _ in selected}) > 1:  # several entities: each line says whose
        printer.types = printer.fmris = True
    for fmri, prop in selected:
        if args.w and prop is None and not wanted:
            die("svcprop", f"Cannot wait for {'an instance' if fmri.count(':') > 1 else 'a service'}.", 2)
        (wait if args.w else show)(c, args, printer, fmri, prop)
    if printer.hidden:
        note_protected("svcprop", {"protected": printer.hidden}, "without their values")
    if args.json:
        print_json(printer.json)
    return printer.status


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.z is not None:
        die("svcprop", "-z: svcmgr has no zones: one daemon manages one system (choose another daemon with --root)")
    chosen = [flag for flag, on in (("-C", args.attached), ("-c", args.current), ("-s", args.snapshot is not None),
                                    ("-w", args.w)) if on]
    if len(chosen) > 1:
        usage(p, f"{chosen[0]} and {chosen[1]} exclude one another")
    wanted = _wanted(args.p)
    if args.w and (len(wanted) > 1 or len(args.operands) > 1):
        usage(p, "-w waits for one property group or property of one entity")
    return run("svcprop", lambda: execute(args, wanted))


if __name__ == "__main__":
    sys.exit(main())
