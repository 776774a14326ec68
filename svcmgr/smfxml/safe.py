"""Hardened XML parsing for SMF manifests: nothing external is fetched, no entity is expanded.

Real manifests start with ``<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/...">``:
that declaration is accepted and its DTD is never read (expat only loads an external
subset when asked to, and defusedxml refuses every external reference besides). What
is refused, with an error naming the file and line:

* a DOCTYPE with an internal subset (``<!ENTITY``, ``<!ATTLIST`` ... declarations: the
  billion-laughs bomb, external entities to files or URLs, injected default attributes);
* any entity declaration or external reference that reaches the parser anyway
  (defusedxml's own checks, kept as a second layer);
* input over ``MAX_BYTES``, nesting deeper than ``MAX_DEPTH``, more than ``MAX_ELEMENTS``
  elements, an attribute value or text longer than ``MAX_VALUE``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from svcmgr.schema import FieldError, FieldErrors

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_ELEMENTS", "MAX_VALUE", "Parsed", "parse"]

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 40
MAX_ELEMENTS = 200_000
MAX_VALUE = 64 * 1024


class _Refused(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Builder(ET.TreeBuilder):
    """A tree builder that counts depth, elements and sizes, and remembers each element's line."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.count = 0
        self.lines: dict[int, int] = {}
        self.line = lambda: 0
        self.text = 0  # characters of text since the last tag (expat may deliver it in pieces)

    def start(self, tag: Any, attrs: dict[str, str]) -> ET.Element:
        self.depth += 1
        self.count += 1
        self.text = 0
        line = self.line()
        if self.depth > MAX_DEPTH:
            raise _Refused(line, f"elements are nested more than {MAX_DEPTH} deep")
        if self.count > MAX_ELEMENTS:
            raise _Refused(line, f"more than {MAX_ELEMENTS} elements")
        for k, v in attrs.items():
            if len(v) > MAX_VALUE:
                raise _Refused(line, f"attribute {k!r} of <{tag}> is longer than {MAX_VALUE} characters")
        el = super().start(tag, attrs)
        self.lines[id(el)] = line
        return el

    def end(self, tag: Any) -> ET.Element:
        self.depth -= 1
        self.text = 0
        return super().end(tag)

    def data(self, data: str) -> None:
        self.text += len(data)
        if self.text > MAX_VALUE:
            raise _Refused(self.line(), f"a text node is longer than {MAX_VALUE} characters")
        super().data(data)


class Parsed:
    """A parsed document: its root element and the source line of each element."""

    def __init__(self, root: ET.Element, lines: dict[int, int]) -> None:
        self.root = root
        self._lines = lines

    def line(self, el: ET.Element) -> int:
        return self._lines.get(id(el), 0)


def _error(source: str, line: int, message: str) -> FieldErrors:
    return FieldErrors([FieldError(source, f"line {line}" if line else "", message)])


def parse(blob: bytes, source: str) -> Parsed:
    """Parse ``blob`` safely; raises FieldErrors naming ``source`` and the line on any refusal."""
    if len(blob) > MAX_BYTES:
        raise _error(source, 0, f"refused: the file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    builder = _Builder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    expat = parser.parser
    builder.line = lambda: expat.CurrentLineNumber

    def doctype(name: str, sysid: str | None, pubid: str | None, has_internal_subset: int) -> None:
        if has_internal_subset:
            raise _Refused(expat.CurrentLineNumber,
                           "refused: the DOCTYPE has an internal subset (<!ENTITY>/<!ATTLIST> declarations); "
                           "SMF manifests only name the service_bundle DTD, which is never read")

    expat.StartDoctypeDeclHandler = doctype
    try:
        parser.feed(blob)
        root = parser.close()
    except _Refused as e:
        msg = e.message if e.message.startswith("refused") else f"refused: {e.message}"
        raise _error(source, e.line, msg) from None
    except EntitiesForbidden as e:
        raise _error(source, expat.CurrentLineNumber,
                     f"refused: the file declares the entity {e.name!r}; entities are never expanded") from None
    except ExternalReferenceForbidden as e:
        raise _error(source, expat.CurrentLineNumber,
                     f"refused: external reference to {e.sysid!r}; nothing outside the file is ever read") from None
    except DTDForbidden:  # pragma: no cover - forbid_dtd is off; kept for completeness
        raise _error(source, expat.CurrentLineNumber, "refused: DTD") from None
    except DefusedXmlException as e:
        raise _error(source, expat.CurrentLineNumber, f"refused: {e}") from None
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else 0
        text = str(e).split(": line")[0]
        raise _error(source, line, f"not well-formed XML: {text}") from None
    except (ValueError, LookupError) as e:  # e.g. an encoding expat does not know
        raise _error(source, 0, f"cannot read the XML: {e}") from None
    return Parsed(root, builder.lines)
