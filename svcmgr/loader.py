"""A manifest file, TOML or SMF XML by its content, read into validated specs.

Above both readers: ``svcmgr.manifest`` validates the TOML vocabulary, and an SMF
XML bundle is parsed safely (``svcmgr.smfxml.safe``), translated to the same
vocabulary (``svcmgr.smfxml.translate``) and then validated by the same
``parse_service``, so an XML service and a TOML one are the same thing once read.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import replace
from typing import Any

from svcmgr.manifest import ManifestError, ManifestErrors, parse_service
from svcmgr.spec import ServiceSpec

__all__ = ["MAX_SIZE", "is_xml", "load_bytes", "load_file", "load_xml", "read_file", "read_file_stat"]

#: The largest manifest file read.
MAX_SIZE = 4 * 1024 * 1024


def load_file(path: str) -> list[ServiceSpec]:
    """Read and validate a manifest file (TOML, or SMF XML by content). Raises ManifestErrors."""
    path = os.path.abspath(path)
    return load_bytes(read_file(path), path)


def read_file(path: str) -> bytes:
    """A manifest file's content (at most one byte more than ``MAX_SIZE``). Raises ManifestErrors."""
    return read_file_stat(path)[0]


def read_file_stat(path: str) -> tuple[bytes, os.stat_result]:
    """A manifest file's content (as ``read_file``) and its ``fstat`` as it was opened. Raises ManifestErrors."""
    try:
        # os.open and os.read, not open(): a boot reads every manifest, and the buffered file object cost
        # more than the reading (a third of it, at 1,000 files).
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            return _read_up_to(fd, min(st.st_size, MAX_SIZE) + 1), st
        finally:
            os.close(fd)
    except OSError as e:
        raise ManifestErrors([ManifestError(path, "", f"cannot read: {e.strerror}")]) from None


def _read_up_to(fd: int, want: int) -> bytes:
    """What ``fd`` holds, to its end or ``MAX_SIZE`` + 1 bytes. Asks for ``want`` bytes first (the size the
    file had): not a buffer of MAX_SIZE, which CPython would allocate and shrink, and glibc keep each shrunk
    4 MiB block as a mapping of its own (a page of RSS per file held: 4 MiB at a boot of 1,000 files). A
    file that grew meanwhile reads on."""
    chunks: list[bytes] = []
    got = 0
    while got <= MAX_SIZE:
        chunk = os.read(fd, (want if got < want else MAX_SIZE + 1) - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def is_xml(blob: bytes) -> bool:
    """TOML cannot start with "<": XML, even when a comment comes first."""
    return blob.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"<"


def load_bytes(blob: bytes, source: str) -> list[ServiceSpec]:
    """Every service a manifest's content declares (one for TOML), validated. Raises ManifestErrors."""
    if len(blob) > MAX_SIZE:
        raise ManifestErrors([ManifestError(source, "", "file is larger than 4 MiB")])
    if is_xml(blob):
        return load_xml(blob, source)
    base_dir = os.path.dirname(os.path.abspath(source)) if source else None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestErrors([ManifestError(source, "", f"not UTF-8 text: {e}")]) from None
    try:
        data = _shared(tomllib.loads(text))
        return [parse_service(data, source, base_dir=base_dir, fresh=True)]
    except tomllib.TOMLDecodeError as e:
        raise ManifestErrors([ManifestError(source, "", f"TOML syntax error: {e}")]) from None
    except RecursionError:
        raise ManifestErrors([ManifestError(source, "", "arrays or tables nest too deeply")]) from None


#: The longest string value made one object with every equal one (``_shared``).
SHARED_MAX = 256


def _shared(value: Any) -> Any:
    """A decoded manifest with its keys, and its string values up to ``SHARED_MAX`` characters, interned:
    one object for each, whichever manifests hold it. tomllib makes a string for every key and value of
    every file; the spec keeps the manifest as its normal form (``ServiceSpec.raw``) and most of its fields
    are those strings, so a boot kept each service's ``name``, ``exec``, ``duration``, ... and the values
    services share (``child``, ``require_all``, a command's path, a dependency's FMRI) once per service.
    Equal values, in the same order: only which objects hold them changes."""
    if isinstance(value, dict):
        return {sys.intern(k): _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_MAX:
        return sys.intern(value)
    return value


def load_xml(blob: bytes, source: str) -> list[ServiceSpec]:
    """Every service of an SMF XML manifest, validated. Raises ManifestErrors naming the file."""
    # the XML stack (defusedxml, ElementTree, expat) only when a manifest is XML: not in a boot of TOML files
    from svcmgr.smfxml.safe import parse as parse_xml
    from svcmgr.smfxml.translate import translate

    result = translate(parse_xml(blob, source), source)
    errors: list[ManifestError] = list(result.errors)
    base_dir = os.path.dirname(os.path.abspath(source)) if source else None
    specs = []
    for data, warnings in result.services:
        try:
            spec = parse_service(data, source, base_dir=base_dir)
        except ManifestErrors as e:
            name = data.get("name", "?")
            errors.extend(ManifestError(x.source, f"svc:/{name}: {x.field}" if x.field else f"svc:/{name}",
                                        x.message) for x in e.errors)
            continue
        specs.append(replace(spec, warnings=(*spec.warnings, *warnings)))
    if errors:
        raise ManifestErrors(errors)
    return specs
