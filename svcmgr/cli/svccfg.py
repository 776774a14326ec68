"""svccfg: import, validate, export and edit service configuration, as SMF's svccfg does.

    svccfg validate FILE ...               check manifests without importing them
    svccfg import [-n] FILE|DIR ...        import manifests (all or none); -n: check only
    svccfg export [--xml] FMRI             print a service's manifest (TOML, or SMF XML)
    svccfg delete FMRI                     stop a service's instances and remove it
    svccfg -s FMRI listprop [PATTERN]      the editing configuration's properties
    svccfg -s FMRI setprop PG/NAME = [TYPE:] VALUE ...
    svccfg -s FMRI delprop PG/NAME

Edits change the editing configuration; ``svcadm refresh FMRI`` makes them run.
Socket requests: ``import`` (with ``dry_run`` for validate), ``export``, ``delete``,
``listprop``, ``setprop``, ``delprop``. ``validate`` works without a daemon too.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import sys
from typing import Any

from svcmgr.cli.common import Parser, add_root, note_protected, print_json, run
from svcmgr.client import Client, ClientError, collect_manifest_files
from svcmgr.proptypes import PROP_TYPES


def parser() -> Parser:
    p = Parser(prog="svccfg", description="Import, export and modify service configuration.")
    add_root(p)
    p.add_argument("-s", metavar="FMRI", dest="select", help="the service or instance that listprop, "
                   "setprop and delprop act on")
    sub = p.add_subparsers(dest="cmd", metavar="SUBCOMMAND", parser_class=Parser)
    sub.required = True
    v = sub.add_parser("validate", help="check manifests without importing them")
    v.add_argument("files", nargs="+", metavar="FILE")
    i = sub.add_parser("import", help="import manifests: every file is accepted, or none")
    i.add_argument("-n", action="store_true", help="check only")
    i.add_argument("files", nargs="+", metavar="FILE|DIR")
    e = sub.add_parser("export", help="print a service's manifest")
    e.add_argument("--xml", action="store_true", help="as an SMF XML service bundle")
    e.add_argument("--json", action="store_true", help="as JSON")
    e.add_argument("fmri", metavar="FMRI")
    d = sub.add_parser("delete", help="stop a service's instances and remove it")
    d.add_argument("fmri", metavar="FMRI")
    lp = sub.add_parser("listprop", help="list properties (of -s FMRI)")
    lp.add_argument("pattern", nargs="?", default="*")
    lp.add_argument("--json", action="store_true")
    sp = sub.add_parser("setprop", help="set a property (of -s FMRI): PG/NAME = [TYPE:] VALUE ...")
    sp.add_argument("words", nargs="+", metavar="WORD")
    dp = sub.add_parser("delprop", help="delete one of the service's own properties (of -s FMRI)")
    dp.add_argument("prop", metavar="PG/NAME")
    return p


def _files(paths: list[str]) -> list[dict[str, str]]:
    out = []
    for path in collect_manifest_files(paths):
        try:
            with open(path, "rb") as f:
                blob = f.read(4 * 1024 * 1024 + 1)
        except OSError as e:
            raise ClientError(f"{path}: cannot read: {e.strerror}") from None
        if len(blob) > 4 * 1024 * 1024:
            raise ClientError(f"{path}: file is larger than 4 MiB")
        out.append({"path": os.path.abspath(path), "content": blob.decode("utf-8", errors="replace")})
    if not out:
        raise ClientError(f"no manifest files in {' '.join(paths)}")
    return out


def validate_local(paths: list[str]) -> int:
    """Validate without a daemon: each file, then duplicates and cycles among them."""
    # Here, not at the top: the validators and networkx (graph) cost the other svccfg commands' start-up.
    from svcmgr.graph import Graph, find_cycles
    from svcmgr.loader import load_file
    from svcmgr.manifest import ManifestErrors
    from svcmgr.spec import resolve_instance

    specs = []
    bad = 0
    for path in collect_manifest_files(paths):
        try:
            got = load_file(path)
        except ManifestErrors as e:
            bad += 1
            for err in e.errors:
                print(f"svccfg: {err}", file=sys.stderr)
            continue
        specs.extend(got)
        for s in got:
            for w in s.warnings:
                print(f"svccfg: warning: {w}", file=sys.stderr)
    seen: dict[str, str] = {}
    for s in specs:
        f = str(s.fmri)
        if f in seen:
            print(f"svccfg: {s.source}: name: {f} is also declared in {seen[f]}", file=sys.stderr)
            bad += 1
        seen[f] = s.source
    configs = {str(c.fmri): c for s in specs for c in (resolve_instance(s, n) for n in s.instances)}
    for cyc in find_cycles(configs):
        print(f"svccfg: dependency cycle: {' -> '.join(cyc)}", file=sys.stderr)
        bad += 1
    g = Graph(configs)
    for f in sorted(configs):
        for d, t in g.missing_targets(f):
            print(f"svccfg: warning: {configs[f].spec.source}: {f}: dependency {d.name!r} names {t}, "
                  "which is not among these manifests", file=sys.stderr)
    return 1 if bad else 0


def execute(args: Any) -> int:
    cmd = args.cmd
    c = Client(args.root)
    if cmd == "validate":
        try:
            res = c.call("import", files=_files(args.files), dry_run=True)
        except ClientError as e:
            if "not running" in str(e):
                return validate_local(args.files)
            raise
        for w in res["warnings"]:
            print(f"svccfg: warning: {w}", file=sys.stderr)
        return 0
    if cmd == "import":
        res = c.call("import", files=_files(args.files), dry_run=args.n)
        for w in res["warnings"]:
            print(f"svccfg: warning: {w}", file=sys.stderr)
        for f in res["services"]:
            print(f"{'checked' if args.n else 'imported'} {f}")
        return 0
    if cmd == "export":
        res = c.call("export", fmri=args.fmri)
        note_protected("svccfg", res)
        if args.json:
            print_json(res["manifest"])
        elif args.xml:
            from svcmgr.smfxml.export import export_xml  # here: the XML writer costs every other command's start

            sys.stdout.write(export_xml(res["manifest"]))
        else:
            import tomli_w  # here: the commands run under a plain python3 too, which may not have it

            sys.stdout.write(f"# {res['fmri']}, imported from {res['source'] or '-'}\n")
            sys.stdout.write(tomli_w.dumps(res["manifest"]))
        return 0
    if cmd == "delete":
        res = c.call("delete", fmri=args.fmri)
        print(f"deleted {res['deleted']}")
        return 0
    if args.select is None:
        print(f"svccfg: {cmd} needs a service: svccfg -s FMRI {cmd} ...", file=sys.stderr)
        return 2
    if cmd == "listprop":
        res = c.call("listprop", fmri=args.select)
        note_protected("svccfg", res)
        rows = []
        for pg, props in res["pgs"].items():
            if fnmatch.fnmatchcase(pg, args.pattern):
                rows.append((pg, "", ""))
            for name, p in props.items():
                full = f"{pg}/{name}"
                if fnmatch.fnmatchcase(full, args.pattern) or fnmatch.fnmatchcase(pg, args.pattern):
                    rows.append((full, p["type"], " ".join(_quote(v) for v in p["values"])))
        if args.json:
            print_json(res)
            return 0
        w0 = max((len(r[0]) for r in rows), default=0)
        w1 = max((len(r[1]) for r in rows), default=0)
        for name, ptype, vals in rows:
            print(f"{name.ljust(w0)}  {ptype.ljust(w1)}  {vals}".rstrip())
        if res.get("pending_refresh"):
            print("svccfg: note: edits are pending; svcadm refresh makes them run", file=sys.stderr)
        return 0
    if cmd == "setprop":
        prop, ptype, values = parse_setprop(args.words)
        c.call("setprop", fmri=args.select, prop=prop, type=ptype, values=values)
        return 0
    if cmd == "delprop":
        c.call("delprop", fmri=args.select, prop=args.prop)
        return 0
    return 2  # pragma: no cover


def parse_setprop(words: list[str]) -> tuple[str, str | None, list[str]]:
    """``PG/NAME = [TYPE:] VALUE ...`` (values may be wrapped in parentheses)."""
    if len(words) < 3 or words[1] != "=":
        raise ClientError("usage: setprop PG/NAME = [TYPE:] VALUE ...", 2)
    prop = words[0]
    rest = words[2:]
    ptype = None
    if rest and rest[0].endswith(":") and rest[0][:-1] in PROP_TYPES:
        ptype = rest[0][:-1]
        rest = rest[1:]
    elif rest and ":" in rest[0] and rest[0].split(":", 1)[0] in PROP_TYPES:
        ptype, first = rest[0].split(":", 1)
        rest = [first, *rest[1:]] if first else rest[1:]
    if rest and rest[0].startswith("("):
        joined = " ".join(rest).strip()
        if not joined.endswith(")"):
            raise ClientError("setprop: unbalanced parentheses", 2)
        rest = shlex.split(joined[1:-1])
    if not rest:
        raise ClientError("setprop: no value given", 2)
    return prop, ptype, rest


def _quote(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v)
    if s == "" or any(ch.isspace() for ch in s) or '"' in s:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run("svccfg", lambda: execute(args))


if __name__ == "__main__":
    sys.exit(main())
