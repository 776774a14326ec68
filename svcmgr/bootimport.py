"""The boot's import of ``svcmgrd --manifests``: in parts, each service started as soon as it may.

svc.startd does not wait for every manifest: SMF's manifest-import is a service
of its own, and what it imports starts as it arrives. Here the files are read
first (bytes only), then parsed and imported in parts that double in size (64,
128, 256... files to parse, with the files taken from their records, below, among
them: each import checks and rebuilds the whole graph, so the parts together cost
about twice one import), and the event loop turns between parts,
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

A file imported before is not parsed again when nothing changed (SMF's manifest-import
skips a manifest whose hash is in the repository's ``smf/manifest`` property group): the
repository keeps a record of each file imported (``Repository.manifests``), and a file whose
bytes hash as recorded, recorded by this very svcmgr (``svcmgr.manifestrecord``), whose
services are all still stored exactly as it gave them (editing copy and running snapshot:
no ``svccfg`` edit, refresh, delete or other import since), is taken from the services the
engine loaded from the repository instead. Every file is still read and hashed (stat alone
decides nothing), and such a file goes through the same part, the same checks (duplicates,
cycles, resources) and the same import as one parsed anew, with the same warnings said: a boot
from records is a cold boot without the parsing. Any other file is read anew, and recorded
once imported.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from svcmgr.client import collect_manifest_files
from svcmgr.loader import load_bytes, read_file_stat
from svcmgr.manifest import ManifestError, ManifestErrors
from svcmgr.manifestrecord import digest, format_key
from svcmgr.repository import ManifestRecord
from svcmgr.services import Unwritable
from svcmgr.spec import ServiceSpec
from svcmgr.wording import counted

if TYPE_CHECKING:
    from svcmgr.engine import Engine

__all__ = ["FIRST_PART", "import_at_boot", "settle"]

#: Files in the first part (each later part twice the one before).
FIRST_PART = 64
#: Files parsed between two turns of the event loop.
PARSE_SLICE = 16

File = tuple[str, list[ServiceSpec]]


@dataclass
class _Read:
    """A manifest file as the boot read it."""

    path: str
    blob: bytes
    stat: os.stat_result
    hash: str
    #: its services from the repository when its record says they are what parsing it would give, else None
    known: list[ServiceSpec] | None = None


def _part(ordered: list[_Read], start: int, size: int, first: int) -> list[_Read]:
    """The files of the part beginning at ``start``: ``size`` files to parse (fewer at the end), with the files
    taken from their records among them (they cost nothing to read), and at least the ``first`` files."""
    end, parse = start, 0
    while end < len(ordered) and (parse < size or end < first):
        parse += ordered[end].known is None
        end += 1
    return ordered[start:end]


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
    blobs: list[_Read] = []
    for path in files:
        path = os.path.abspath(path)
        try:
            blob, st = read_file_stat(path)
        except ManifestErrors as e:
            _said(log, "manifest refused", e.errors)
            continue
        blobs.append(_Read(path, blob, st, digest(blob)))
    records = engine.repo.manifests()
    fmt = format_key()
    for r in blobs:
        r.known = _recorded(engine, records.get(r.path), r, fmt)
    first = [b for b in blobs if _may_declare_dependents(b.blob)]
    ordered = first + [b for b in blobs if not _may_declare_dependents(b.blob)]
    seen: dict[str, str] = {}  # service FMRI -> the file of this boot that declared it
    imported: list[ServiceSpec] = []
    fresh: list[tuple[ManifestRecord, list[ServiceSpec]]] = []  # files parsed anew and imported
    start, size = 0, max(FIRST_PART, len(first))
    while start < len(ordered):
        part = _part(ordered, start, size, len(first))
        start += len(part)
        size *= 2
        read: list[File] = []
        mine: dict[str, str] = {}
        n = 0
        for r in part:
            if r.known is None:
                n += 1
                if n % PARSE_SLICE == 0:
                    await asyncio.sleep(0)  # what runs meanwhile (spawn replies, exits, the starts they allow) goes on
                specs = _parse(r.path, r.blob, seen, mine, log)
            else:
                for w in records[r.path].warnings:
                    log.warning("%s", w)
                specs = _accept(r.known, seen, mine, log)
            if specs:
                read.append((r.path, specs))
                mine.update((str(s.fmri), r.path) for s in specs)
        by_path = {r.path: r for r in part}
        for path, specs in _import_part(engine, read, log):
            seen.update((str(s.fmri), path) for s in specs)
            imported.extend(specs)
            if by_path[path].known is None:
                fresh.append((_record(by_path[path], fmt, specs), specs))
        await settle()
        started()
    kept = sum(1 for r in blobs if r.known is not None)
    _keep_records(engine, fresh, records, {b.path for b in blobs}, log)
    log.info("manifest files: %d parsed, %d unchanged since recorded (taken from the repository)",
             len(blobs) - kept, kept)
    for w in engine.missing_dependencies(imported):
        log.warning("%s", w)
    if imported:
        log.info("imported %s from %s", counted(len(imported), "service"), ", ".join(paths))


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
    return _accept(specs, seen, mine, log)


def _accept(specs: list[ServiceSpec], seen: dict[str, str], mine: dict[str, str],
            log: logging.Logger) -> list[ServiceSpec]:
    """``specs``, or none when one of them is declared by an earlier file of this boot (said in the log)."""
    dups = [ManifestError(s.source, "name", f"{s.fmri} is also declared in {mine.get(f, seen.get(f))}")
            for s in specs if (f := str(s.fmri)) in seen or f in mine]
    if dups:
        _said(log, "import refused", dups)
        return []
    return specs


def _recorded(engine: Engine, rec: ManifestRecord | None, r: _Read, fmt: str) -> list[ServiceSpec] | None:
    """The services file ``r`` declares, from the repository, when its record says that parsing it would give
    exactly them (see the module's text); None when it must be parsed."""
    if rec is None or not rec.current or rec.hash != r.hash or rec.format != fmt:
        return None
    specs = []
    for f, names in zip(rec.services, rec.instances, strict=True):
        spec = engine.specs.get(f)  # loaded from the running snapshot, which is the normal form recorded
        if spec is None or sorted(spec.instances) != sorted(names):
            return None
        # as parsed from this path (the repository keeps the source of the import that last changed it), its
        # instances in the file's order (the stored normal form sorts them)
        if spec.source != r.path or list(spec.instances) != names:
            spec = replace(spec, source=r.path, instances={n: spec.instances[n] for n in names})
        specs.append(spec)
    return specs


def _record(r: _Read, fmt: str, specs: list[ServiceSpec]) -> ManifestRecord:
    return ManifestRecord(r.path, r.stat.st_size, r.stat.st_mtime_ns, r.stat.st_ino, r.hash, fmt,
                          [w for s in specs for w in s.warnings], [str(s.fmri) for s in specs],
                          [list(s.instances) for s in specs])


def _keep_records(engine: Engine, fresh: list[tuple[ManifestRecord, list[ServiceSpec]]],
                  records: dict[str, ManifestRecord], paths: set[str], log: logging.Logger) -> None:
    """Record the files parsed anew and imported, and forget the records of files this boot did not read (gone,
    or not named any more; named again, they are parsed again). A cache: if it cannot be written, the next
    boot parses these files again."""
    try:
        engine.repo.record_manifests([(rec, [s.to_dict() for s in specs]) for rec, specs in fresh])
        engine.repo.forget_manifests(sorted(set(records) - paths))
    except Unwritable as e:
        log.warning("the manifests' records were not kept (the next boot reads them again): %s", e)


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
