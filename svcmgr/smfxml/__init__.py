"""SMF XML manifests (``service_bundle``), imported unchanged and exported back.

    load_bytes(blob, source) -> [ServiceSpec]   parse safely, translate, validate
    export_xml(manifest) -> str                  a manifest (normal form) as a service_bundle

Parsing is hardened (``safe``): no DTD or entity is ever fetched or expanded.
Translation (``translate``) turns each ``<service>`` into svcmgr's TOML vocabulary,
which ``svcmgr.manifest.parse_service`` (the one validator) then checks, so an XML
service and a TOML one are the same thing once imported. Importing this package
registers the ``[smf]`` manifest section (``section``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from svcmgr.manifest import EXTENSIONS, ServiceSpec, parse_service
from svcmgr.schema import FieldError, FieldErrors

__all__ = ["export_xml", "load_bytes"]


def _section(value: Any, source: str, key: str) -> Any:
    from svcmgr.smfxml.section import validate

    return validate(value, source, key)


EXTENSIONS["smf"] = _section


def load_bytes(blob: bytes, source: str) -> list[ServiceSpec]:
    """Every service of an SMF XML manifest, validated. Raises FieldErrors naming the file."""
    from svcmgr.smfxml.safe import parse
    from svcmgr.smfxml.translate import translate

    parsed = parse(blob, source)
    result = translate(parsed, source)
    errors: list[FieldError] = list(result.errors)
    base_dir = os.path.dirname(os.path.abspath(source)) if source else None
    specs = []
    for data, warnings in result.services:
        try:
            spec = parse_service(data, source, base_dir=base_dir)
        except FieldErrors as e:
            name = data.get("name", "?")
            errors.extend(FieldError(x.source, f"svc:/{name}: {x.field}" if x.field else f"svc:/{name}",
                                     x.message) for x in e.errors)
            continue
        specs.append(replace(spec, warnings=(*spec.warnings, *warnings)))
    if errors:
        raise FieldErrors(errors)
    return specs


def export_xml(manifest: dict[str, Any]) -> str:
    """A manifest in normal form (``svccfg export``'s) as an SMF XML service bundle."""
    from svcmgr.smfxml.export import export

    return export(manifest)
