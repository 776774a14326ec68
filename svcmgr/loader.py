"""A manifest file, TOML or SMF XML by its content, read into validated specs.

Above both readers: ``svcmgr.manifest`` validates the TOML vocabulary, and an SMF
XML bundle is parsed safely (``svcmgr.smfxml.safe``), translated to the same
vocabulary (``svcmgr.smfxml.translate``) and then validated by the same
``parse_service``, so an XML service and a TOML one are the same thing once read.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import replace

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
        with open(path, "rb") as f:
            # Read what the file holds, not a buffer of MAX_SIZE: CPython allocates the size asked for and
            # shrinks it, and glibc keeps each shrunk 4 MiB block as a mapping of its own (a page of RSS
            # per file held: 4 MiB at a boot of 1,000 files). A file that grew meanwhile reads on.
            st = os.fstat(f.fileno())
            want = min(st.st_size, MAX_SIZE) + 1
            blob = f.read(want)
            if len(blob) == want and want <= MAX_SIZE:
                blob += f.read(MAX_SIZE + 1 - want)
            return blob, st
    except OSError as e:
        raise ManifestErrors([ManifestError(path, "", f"cannot read: {e.strerror}")]) from None


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
        data = tomllib.loads(text)
        return [parse_service(data, source, base_dir=base_dir, fresh=True)]
    except tomllib.TOMLDecodeError as e:
        raise ManifestErrors([ManifestError(source, "", f"TOML syntax error: {e}")]) from None
    except RecursionError:
        raise ManifestErrors([ManifestError(source, "", "arrays or tables nest too deeply")]) from None


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
