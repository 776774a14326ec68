"""Reading a parsed SMF XML bundle: errors that name the line and the element, attributes, booleans,
localized text, and elements kept verbatim for export."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from svcmgr.schema import FieldError
from svcmgr.smfxml.safe import Parsed

__all__ = ["XML_LANG", "Reading", "Translation", "copy_element", "loctext", "tag", "verbatim"]

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


class Translation:
    """The manifests of one bundle, their warnings, and the errors found on the way."""

    def __init__(self) -> None:
        self.services: list[tuple[dict[str, Any], list[str]]] = []
        self.errors: list[FieldError] = []


class Reading:
    """One service's reading of a bundle: its errors (with the line and element), attributes, notes."""

    def __init__(self, parsed: Parsed, source: str, out: Translation) -> None:
        self.parsed = parsed
        self.source = source
        self.out = out
        self.notes: list[str] = []  # what this service keeps but does not act on

    def error(self, el: ET.Element, message: str) -> None:
        line = self.parsed.line(el)
        where = f"line {line} <{tag(el)}>" if line else f"<{tag(el)}>"
        self.out.errors.append(FieldError(self.source, where, message))

    def attr(self, el: ET.Element, name: str, required: bool = True) -> str | None:
        v = el.get(name)
        if v is None and required:
            self.error(el, f"attribute {name!r} is required")
        return v

    def boolean(self, el: ET.Element, name: str) -> bool | None:
        v = self.attr(el, name)
        if v is None:
            return None
        if v.lower() not in ("true", "false"):
            self.error(el, f"attribute {name!r} must be 'true' or 'false', not {v!r}")
            return None
        return v.lower() == "true"

    def note(self, what: str) -> None:
        if what not in self.notes:
            self.notes.append(what)


def tag(el: ET.Element) -> str:
    t = el.tag if isinstance(el.tag, str) else str(el.tag)
    if t.startswith("{"):
        ns, _, local = t[1:].partition("}")
        return f"{local} xmlns={ns}"
    return t


def verbatim(el: ET.Element) -> str:
    """An element as XML text, kept so that export can write it back unchanged."""
    c = copy_element(el)
    ET.indent(c, "  ")
    return ET.tostring(c, encoding="unicode")


def copy_element(el: ET.Element) -> ET.Element:
    c = ET.Element(el.tag, dict(el.attrib))
    c.text = el.text
    c.tail = None
    for ch in el:
        cc = copy_element(ch)
        cc.tail = ch.tail
        c.append(cc)
    return c


def loctext(el: ET.Element | None) -> str | None:
    """The C-locale (else the first) ``<loctext>`` of an element, white space collapsed."""
    if el is None:
        return None
    texts = el.findall("loctext")
    if not texts:
        return None
    pick = next((t for t in texts if t.get(XML_LANG, "C") in ("C", "en", "en_US")), texts[0])
    return re.sub(r"\s+", " ", "".join(pick.itertext())).strip()
