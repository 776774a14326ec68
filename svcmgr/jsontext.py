"""JSON from untrusted senders holds Unicode text only. A leaf module.

JSON's ``\\ud800`` escape decodes to an unpaired surrogate: a Python string UTF-8 cannot
hold, so whatever later writes it (SQLite, a log, a terminal, a web page) fails. A request,
a retained message or a telemetry payload holding one is refused where it is decoded.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["unpaired_surrogate"]


def unpaired_surrogate(raw: bytes | str, obj: Any) -> str | None:
    """The first unpaired surrogate in ``obj``, decoded from the JSON text ``raw``, as an escape
    (``'\\\\ud800'``); None when its text is all Unicode. Only a text with a ``\\ud`` escape is looked at."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if b"\\ud" not in raw and b"\\uD" not in raw:
        return None
    try:
        json.dumps(obj, ensure_ascii=False).encode()
    except UnicodeEncodeError as e:
        return ascii(e.object[e.start])
    return None
