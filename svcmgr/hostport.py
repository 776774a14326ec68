"""``host:port`` as the configuration writes a listen address or a target: one reader for the metrics and
dashboard endpoints, the fault manager's webhook, a frontend's bind, a TCP probe's target. A leaf module."""

from __future__ import annotations

__all__ = ["join", "split"]


def split(text: str, *, any_port: bool = False) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port), the host without its brackets; ValueError naming the
    text and what is wrong with it. An IPv6 address needs its brackets (``::1:80`` is ambiguous). With
    ``any_port`` (an address to listen on) the port may be 0: any free port, as the kernel chooses it."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected host:port (e.g. 127.0.0.1:80, [::1]:80)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise ValueError(f"{text!r}: brackets are for IPv6 addresses only")
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [2001:db8::1]:80")
    if not host or "/" in host or any(c.isspace() or c in "[]" for c in host):
        raise ValueError(f"{text!r}: bad host")
    lowest = 0 if any_port else 1
    if not port.isascii() or not port.isdigit() or not lowest <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from {'0 (any free port)' if any_port else 1} "
                         "to 65535")
    return host, int(port)


def join(host: str, port: int) -> str:
    """``host:port`` as ``split`` reads it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
