"""svccfg: import, export and edit service configuration, as SMF's svccfg does.

    svccfg [-v] [-s FMRI]                    commands from standard input, or typed at a prompt
    svccfg [-v] [-s FMRI] -f FILE            commands from a file
    svccfg [-v] [-s FMRI] COMMAND [ARG ...]  one command

Commands (``help`` lists them with their arguments):
  manifests   validate, import [-n], export [-a] [--xml|--json], archive [-a], inventory, delete [-f]
  profiles    apply [-n], extract
  entities    select, unselect, list
  properties  listpg, addpg, delpg, listprop, setprop, delprop, addpropvalue, delpropvalue,
              editprop, describe
  snapshots   listsnap, selectsnap, revert
  instances   refresh
  general     set [-v|-V], help, end|exit|quit

Commands are read as svccfg's lexer reads them (``svcmgr.cli.cfglex``): the arguments of
a one-command call are joined with spaces first, so ``setprop pg/p = "a b"`` needs the
quotes passed on (``'"a b"'``), and a double-quoted value loses its quotes. ``setprop``
changes a group the selected service or instance has (``addpg`` adds one); without a type
a property keeps its own, a new one needs one. Edits change the editing configuration:
``refresh`` (or ``svcadm refresh``) makes them run. At a terminal the prompt names the
selection (``svc:/site/app:default> ``) and an error is said and forgotten; from a file or
standard input the first error ends svccfg with status 1, naming the file and line.
``repository``, ``restore``, ``add``, ``setenv``, ``unsetenv``, ``delhash``, ``cleanup`` and the
notification commands have no meaning here and say why.

Socket requests: ``match``, ``listprop``, ``props``, ``setprop``, ``delprop``, ``addpg``,
``listsnap``, ``revert``, ``refresh``, ``import`` (``dry_run`` for validate), ``export``, ``delete``,
``list``, ``enable``, ``disable``. ``validate`` works without a daemon too.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys

from svcmgr.cli import cfgfiles, cfgprops
from svcmgr.cli.cfglex import LexError, Statement, Token, statements
from svcmgr.cli.cfgsession import Handler, Session, words
from svcmgr.cli.common import Parser, add_root, die

__all__ = ["COMMANDS", "main"]

# ---------------------------------------------------------------- general and entity commands

def _end(s: Session, args: list[Token]) -> None:
    words(s, args, "end", 0, 0)
    raise SystemExit(0)


def _set(s: Session, args: list[Token]) -> None:
    for w in words(s, args, "set [-v|-V]"):
        if w not in ("-v", "-V"):
            s.fail("Syntax error.")
        s.verbose = w == "-v"
    if not args:
        print("verbose" if s.verbose else "")


def _help(s: Session, args: list[Token]) -> None:
    names = words(s, args, "help [command]", 0, 1)
    for name, (_, use) in sorted(_USAGE.items()):
        if not names or names[0] == name:
            print(f"  {use}")


def _select(s: Session, args: list[Token]) -> None:
    s.select(words(s, args, "select {name | fmri}", 1, 1)[0])


def _unselect(s: Session, args: list[Token]) -> None:
    words(s, args, "unselect", 0, 0)
    s.unselect()


def _list(s: Session, args: list[Token]) -> None:
    """The children of the selection whose names match a glob: services, or instances and
    ``:properties``."""
    pattern = (words(s, args, "list [glob_pattern]", 0, 1) or ["*"])[0]
    if s.instance is not None:
        names = [":properties"]
    elif s.service is not None:
        names = sorted(i["fmri"].rsplit(":", 1)[1] for i in s.call("list") if i["fmri"].startswith(f"{s.service}:"))
        names.append(":properties")
    else:
        names = sorted({i["fmri"][len("svc:/"):].rsplit(":", 1)[0] for i in s.call("list")})
    for name in names:
        if fnmatch.fnmatchcase(name, pattern):
            print(name)


def _unsupported(why: str) -> Handler:
    def refuse(s: Session, args: list[Token]) -> None:
        s.fail(why)
    return refuse


_NO_REPOSITORY = "svcmgr keeps one repository, its daemon's (choose another daemon with --root)"
_NO_ENV = ("method environments are declared in the manifest: change [methods.NAME.environment] and "
           "import it again")

#: name -> (handler, usage); the property, snapshot and file commands come from cfgprops and cfgfiles.
_USAGE: dict[str, tuple[Handler, str]] = {
    "end": (_end, "end"), "exit": (_end, "exit"), "quit": (_end, "quit"),
    "set": (_set, "set [-v|-V]"), "help": (_help, "help [command]"),
    "select": (_select, "select {name | fmri}"), "unselect": (_unselect, "unselect"),
    "list": (_list, "list [glob_pattern]"),
    "repository": (_unsupported(_NO_REPOSITORY), "repository file"),
    "restore": (_unsupported("import the archive's manifests with import"), "restore file"),
    "add": (_unsupported("services and instances come from manifests: import one"), "add name"),
    "setenv": (_unsupported(_NO_ENV), "setenv [-i | -s] [-m method] name value"),
    "unsetenv": (_unsupported(_NO_ENV), "unsetenv [-i | -s] [-m method] name"),
    "delhash": (_unsupported("svcmgr keeps no manifest hashes: import is all or nothing"), "delhash manifest"),
    "cleanup": (_unsupported("svcmgr keeps no manifest hashes: import is all or nothing"), "cleanup [-a]"),
    **{n: (_unsupported("notification parameters are MQTT topics and Alertmanager routes here "
                        "(docs/mqtt.md)"), f"{n} ...") for n in ("setnotify", "listnotify", "delnotify")},
}


_USAGE.update(cfgprops.USAGE)
_USAGE.update(cfgfiles.USAGE)
#: Every command by name; ``help`` shows their usage.
COMMANDS: dict[str, Handler] = {name: h for name, (h, _) in _USAGE.items()}


def parser() -> Parser:
    p = Parser(prog="svccfg", description="Import, export and modify service configuration.",
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[1])
    add_root(p)
    p.add_argument("-v", action="store_true", help="verbose")
    p.add_argument("-s", metavar="FMRI", dest="select", help="select this service or instance first")
    p.add_argument("-f", metavar="FILE", dest="file", help="read commands from FILE")
    p.add_argument("-z", metavar="ZONE", help="a zone (refused: svcmgr has no zones)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG ...]")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.z is not None:
        die("svccfg", "-z: svcmgr has no zones: one daemon manages one system (choose another daemon with --root)")
    s = Session(args.root, COMMANDS, verbose=args.v)
    try:
        if args.select is not None and not s.run(Statement((Token("WORD", "select"), Token("WORD", args.select)), 0)):
            return 1
        if args.file is not None:
            if args.command:
                parser().error("-f reads the commands: give none after it")
            return _source_file(s, args.file)
        if args.command:
            return 0 if s.run(next(iter(statements(" ".join(args.command) + "\n")),
                                   Statement((Token("WORD", ""),), 0))) else 1
        if sys.stdin.isatty():
            return s.interact()
        s.filename = "<stdin>"
        return s.source(sys.stdin.read())
    except BrokenPipeError:
        return 0
    except LexError as e:
        s.say(str(e))
        return 1


def _source_file(s: Session, path: str) -> int:
    try:
        if not os.path.isfile(path):
            s.say(f"{path} is not a regular file.")
            return 1
        with open(path, encoding="utf-8", errors="surrogateescape") as f:  # as standard input reads
            text = f.read()
    except OSError as e:
        s.say(f"Could not open {path}: {e.strerror}.")
        return 1
    s.filename = path
    return s.source(text)


if __name__ == "__main__":
    sys.exit(main())
