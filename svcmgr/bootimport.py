"""The boot's import of ``svcmgrd --manifests``: in parts, each service started as soon as it may.

svc.startd does not wait for every manifest: SMF's manifest-import is a service
of its own, and what it imports starts as it arrives. Here the files are read
first (bytes only), then parsed and imported in parts that double in size (64,
128, 256... files: each import checks and rebuilds the whole graph, so the parts
together cost about twice one import), and the event loop turns between parts,
so the first services start while later manifests are still parsed. The engine
keeps from starting what a later manifest could still change
(``Dependencies.begin_boot_import``): an instance whose own manifest, or whose
dependencies' manifests, are not imported yet waits for them.

A manifest that declares ``dependents`` adds dependencies to other services.
Such files (found by their bytes: any mention of "dependent", or an escape that
could spell it in a quoted TOML key) are in the first part, so every dependency
the boot's manifests declare is known before anything starts.

Each file is imported or refused on its own, as manifest-import runs ``svccfg
import`` once per file: a file that cannot be read or validated, that declares a
service an earlier file of this boot declares, that closes a dependency cycle,
or that asks for resources this host cannot apply is refused (its path, the
field and why, in the daemon's log), and the other files are imported.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from svcmgr.client import collect_manifest_files
from svcmgr.loader import load_bytes, read_file
from svcmgr.manifest import ManifestError, ManifestErrors
from svcmgr.spec import ServiceSpec

if TYPE_CHECKING:
    from svcmgr.engine import Engine

__all__ = ["FIRST_PART", "import_at_boot", "settle"]

#: Files in the first part (each later part twice the one before).
FIRST_PART = 64
#: Files parsed between two turns of the event loop.
PARSE_SLICE = 16

File = tuple[str, list[ServiceSpec]]


def _may_declare_dependents(blob: bytes) -> bool:
    return b"dependents" in blob or b"<dependent" in blob or b"\\u" in blob or b"\\U" in blob


async def import_at_boot(engine: Engine, paths: list[str], log: logging.Logger,
                         started: Callable[[], None]) -> None:
    """Import the manifest files and folders ``paths`` name; the engine's boot import (begun by the
    caller before ``engine.boot()``, so that nothing starts unsettled) ends here, whatever happens.
    ``started`` is called once: when the first part's services are started (or the import is over)."""
    told = False

    def tell() -> None:
        nonlocal told
        if not told:
            told = True
            started()

    try:
        await _import(engine, paths, log, tell)
        tell()
    finally:
        engine.end_boot_import()


async def _import(engine: Engine, paths: list[str], log: logging.Logger, started: Callable[[], None]) -> None:
    files = collect_manifest_files(paths)
    if not files:
        log.warning("--manifests %s: no manifest files found", " ".join(paths))
        return
    blobs: list[tuple[str, bytes]] = []
    for path in files:
        path = os.path.abspath(path)
        try:
            blobs.append((path, read_file(path)))
        except ManifestErrors as e:
            _said(log, "manifest refused", e.errors)
    first = [b for b in blobs if _may_declare_dependents(b[1])]
    ordered = first + [b for b in blobs if not _may_declare_dependents(b[1])]
    seen: dict[str, str] = {}  # service FMRI -> the file of this boot that declared it
    imported: list[ServiceSpec] = []
    start, size = 0, max(FIRST_PART, len(first))
    while start < len(ordered):
        part = ordered[start:start + size]
        start += size
        size *= 2
        read: list[File] = []
        mine: dict[str, str] = {}
        for n, (path, blob) in enumerate(part, 1):
            if n % PARSE_SLICE == 0:
                await asyncio.sleep(0)  # what runs meanwhile (spawn replies, exits, the starts they allow) goes on
            specs = _parse(path, blob, seen, mine, log)
            if specs:
                read.append((path, specs))
                mine.update((str(s.fmri), path) for s in specs)
        for path, specs in _import_part(engine, read, log):
            seen.update((str(s.fmri), path) for s in specs)
            imported.extend(specs)
        await settle()
        started()
    for w in engine.missing_dependencies(imported):
        log.warning("%s", w)
    if imported:
        log.info("imported %d services from %s", len(imported), ", ".join(paths))


def _parse(path: str, blob: bytes, seen: dict[str, str], mine: dict[str, str],
           log: logging.Logger) -> list[ServiceSpec]:
    """A file's specs, or none when it is refused (said in the log). ``seen`` and ``mine``: service FMRI ->
    the file that declared it, in earlier parts and earlier in this part (looked up in both, not merged
    for each file: that copy was quadratic in the boot's files)."""
    try:
        specs = load_bytes(blob, path)
    except ManifestErrors as e:
        _said(log, "manifest refused", e.errors)
        return []
    for s in specs:
        for w in s.warnings:
            log.warning("%s", w)
    dups = [ManifestError(s.source, "name", f"{s.fmri} is also declared in {mine.get(f, seen.get(f))}")
            for s in specs if (f := str(s.fmri)) in seen or f in mine]
    if dups:
        _said(log, "import refused", dups)
        return []
    return specs


def _import_part(engine: Engine, files: list[File], log: logging.Logger) -> list[File]:
    """Import these files' specs together; if that is refused, each file on its own. The files imported."""
    specs = [s for _, ss in files for s in ss]
    if not specs:
        return []
    formats = ["xml" if path.endswith(".xml") else "toml" for path, ss in files for _ in ss]
    try:
        engine.import_specs(specs, formats)  # its warnings (dependencies not imported yet) are said at the end
    except ManifestErrors as e:
        if len(files) == 1:
            _said(log, "import refused", e.errors)
            return []
        return [f for one in files for f in _import_part(engine, [one], log)]
    return files


def _said(log: logging.Logger, what: str, errors: list[ManifestError]) -> None:
    for err in errors:
        log.error("%s: %s", what, err)


async def settle() -> None:
    """Let the loop run what was made ready: the evaluations, then the start jobs they create, to their spawn
    requests (a start makes its group in one turn and asks in the next: ``Backend.create_for_burst``)."""
    for _ in range(3):
        await asyncio.sleep(0)
