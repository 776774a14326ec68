"""Check a drawing before the dashboard puts it inline in a page: drawing elements only, no script.

The graph SVG comes from ``svcmgr.draw`` (Graphviz or the built-in layout), both of which
escape every name they write. This is the second line: the text is parsed (defusedxml:
no entities, no DTD tricks) and refused unless every element is a plain drawing element
and no attribute is an event handler, a link, or a style. What is returned is the parsed
tree written out again (no prolog, DOCTYPE or comments), ready to sit inside HTML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

__all__ = ["SvgRefused", "check_svg"]

SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
ELEMENTS = frozenset({"svg", "g", "a", "title", "desc", "defs", "marker", "path", "polygon", "polyline", "ellipse",
                      "circle", "line", "rect", "text", "tspan"})
MAX_SVG = 8 * 1024 * 1024


class SvgRefused(ValueError):
    pass


def check_svg(text: str, states: dict[str, str] | None = None) -> str:
    """The SVG element of ``text``, checked; SvgRefused says what was found. Each node group gets
    ``data-fmri`` and ``data-state`` (from ``states``), each edge group ``data-from`` and ``data-to``,
    whichever renderer drew them, for the page's script and styles."""
    if len(text) > MAX_SVG:
        raise SvgRefused(f"larger than {MAX_SVG} bytes")
    try:
        root = ElementTree.fromstring(text, forbid_dtd=False)
    except (ElementTree.ParseError, DefusedXmlException) as e:
        raise SvgRefused(f"not well-formed: {e}") from None
    for el in root.iter():
        tag = el.tag
        if not isinstance(tag, str) or not tag.startswith(SVG_NS) or tag[len(SVG_NS):] not in ELEMENTS:
            raise SvgRefused(f"element {tag!r} is not a drawing element")
        for name in el.attrib:
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on") or local in ("href", "style") or \
                    (name.startswith(XLINK) and name != f"{XLINK}title"):
                raise SvgRefused(f"attribute {name!r} on {tag[len(SVG_NS):]}")
    if root.tag != f"{SVG_NS}svg":
        raise SvgRefused("the root is not an <svg> element")
    _annotate(root, states or {})
    return ET.tostring(root, encoding="unicode")


def _annotate(root: ET.Element, states: dict[str, str]) -> None:
    for g in root.iter(f"{SVG_NS}g"):
        cls = g.get("class", "").split()
        title = g.find(f"{SVG_NS}title")
        name = (title.text or "") if title is not None else ""
        if "node" in cls:
            fmri = g.get("data-fmri") or name
            g.set("data-fmri", fmri)
            if fmri in states:
                g.set("data-state", states[fmri])
        elif "edge" in cls and not g.get("data-from") and "->" in name:
            a, _, b = name.partition("->")
            g.set("data-from", a)
            g.set("data-to", b)


ET.register_namespace("", SVG_NS[1:-1])
ET.register_namespace("xlink", XLINK[1:-1])
