"""A small SVG writer: elements with escaped text and attributes, nothing else. A leaf module."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

__all__ = ["Svg"]


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def _attrs(attrs: dict[str, object]) -> str:
    out = []
    for k, v in attrs.items():
        if v is None:
            continue
        name = k.rstrip("_").replace("_", "-")
        out.append(f" {name}={quoteattr(_num(v) if isinstance(v, int | float) else str(v))}")
    return "".join(out)


class Svg:
    """An SVG document built element by element; ``str(svg)`` is the text.

    Attribute names are written with ``_`` for ``-`` (``font_size``) and a trailing ``_``
    for Python words (``class_``)."""

    def __init__(self, width: float, height: float, **attrs: object) -> None:
        self.width = width
        self.height = height
        self._parts: list[str] = []
        self._open: list[str] = []
        self.open("svg", xmlns="http://www.w3.org/2000/svg", width=width, height=height,
                  viewBox=f"0 0 {_num(float(width))} {_num(float(height))}", **attrs)

    def add(self, tag: str, text: str | None = None, **attrs: object) -> None:
        if text is None:
            self._parts.append(f"<{tag}{_attrs(attrs)}/>")
        else:
            self._parts.append(f"<{tag}{_attrs(attrs)}>{escape(text)}</{tag}>")

    def open(self, tag: str, **attrs: object) -> None:
        self._parts.append(f"<{tag}{_attrs(attrs)}>")
        self._open.append(tag)

    def close(self) -> None:
        self._parts.append(f"</{self._open.pop()}>")

    def __str__(self) -> str:
        tail = "".join(f"</{t}>" for t in reversed(self._open))
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(self._parts) + tail + "\n"
