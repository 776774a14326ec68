"""What ``vrrpadm`` and ``lbadm`` share: the notes after a listing, ``show-config`` and the subcommand dispatch.

Both show a daemon an agent runs from a configuration it renders
(``svcmgr.daemonagent``): the configuration may have been rejected (the daemon keeps
running the previous one), the daemon's service manifest may not have been
imported, the daemon may not be running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import Any

from svcmgr.cli.common import die, print_json, run

__all__ = ["config_notes", "main", "show_config"]


def config_notes(prog: str, out: dict[str, Any], daemon: str, *, running: bool,
                 errors: Iterable[tuple[str, str]] = ()) -> None:
    """On stderr after a listing: a rejected configuration with its error, each of ``errors`` (reply key,
    what it is about) that is set, and that the daemon is not online while it has something to run."""
    cfg = out["config"]
    if cfg["status"] == "rejected":
        print(f"{prog}: the last configuration was rejected ({cfg['stage']}, {cfg['rejected_at']}); "
              f"{daemon} keeps running the previous one:", file=sys.stderr)
        for line in (cfg["error"] or "").splitlines():
            print(f"    {line}", file=sys.stderr)
    for key, what in (("service_error", f"{daemon} service"), *errors):
        if out.get(key):
            print(f"{prog}: {what}: {out[key]}", file=sys.stderr)
    if running and out["service_state"] != "online":
        print(f"{prog}: {daemon} ({out['service']}) is {out['service_state']}", file=sys.stderr)


def show_config(prog: str, out: dict[str, Any], *, rejected: bool, json: bool, none_yet: str,
                other: bool = False) -> int:
    """Print the configuration file of a ``<name>.config`` reply (``rejected``: the last rejected one;
    ``other``: another file the agent renders); on the running one, say if a newer one was rejected."""
    if json:
        print_json(out)
        return 0
    if out["text"] is None:
        die(prog, f"{'no rejected configuration' if rejected else none_yet} ({out['path']})")
    sys.stdout.write(out["text"])
    cfg = out["config"]
    if not rejected and not other and cfg["status"] == "rejected":
        print(f"{prog}: a newer configuration was rejected ({cfg['stage']}): {(cfg['error'] or '').splitlines()[0]}"
              f" (see: {prog} show-config --rejected)", file=sys.stderr)
    return 0


def main(prog: str, parser: Callable[[], argparse.ArgumentParser],
         commands: dict[str, Callable[[argparse.Namespace], int]], argv: list[str] | None) -> int:
    """Parse, then run the subcommand (exit 2 without one)."""
    args = parser().parse_args(argv)
    if args.cmd is None:
        parser().print_usage(sys.stderr)
        print(f"{prog}: a subcommand is required ({', '.join(commands)})", file=sys.stderr)
        return 2
    return run(prog, lambda: commands[args.cmd](args))
