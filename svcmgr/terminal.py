"""Text a service or a remote sender wrote, made safe for an operator's terminal.

Its control characters are made visible, so that a log line or a payload cannot clear the screen, set the
window's title, move the cursor or fake a line of the command's own output. No imports: ``svcs`` reads it at
start."""

__all__ = ["visible"]


def visible(text: str, keep: str = "") -> str:
    """``text`` as it may reach a terminal: each character that is not printable (a control character such as the
    ESC that starts an escape sequence, a carriage return, a bidirectional override) written as its Python escape
    (``\\x1b``), but those in ``keep``. A service's own log line (a log pattern's ereport) is quoted in a case."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii") for c in text)
