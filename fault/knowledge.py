"""The knowledge base: message id -> article (title, description, response, impact, action).

As FMA's dictionaries do, each diagnosis names a message id (``SVC-8000-3Q``) and
the operator reads the article for it in ``fmadm faulty``. Articles are TOML
files, one table per message id; the shipped ones live beside this module in
``knowledge/``. Text may name facts of the case in braces (``{suspect}``,
``{impacted_count}``, ...); an unknown name is refused at load, so a typo never
reaches an operator.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svcmgr.schema import FieldError, Reader, read_toml, toml_files

__all__ = ["FIELDS", "MSGID_RE", "PLACEHOLDERS", "SHIPPED", "Article", "KnowledgeBase", "load_knowledge"]

SHIPPED = Path(__file__).resolve().parent / "knowledge"
MSGID_RE = re.compile(r"^[A-Z][A-Z0-9]{1,7}-[0-9A-F]{4}-[0-9A-Z]{2}\Z")
FIELDS = ("description", "response", "impact", "action")
#: Facts of a case that article text may use.
PLACEHOLDERS = {
    "suspect": "the first suspect's FMRI",
    "suspects": "every suspect, comma separated",
    "impacted": "the impacted resources, comma separated (or 'none')",
    "impacted_count": "how many resources are impacted",
    "count": "how many ereports convicted the case",
    "window": "the rule's time window (T), e.g. 10m",
    "fires_at": "how many events within the window make the rule fire (N+1)",
    "detail": "the most telling text of the last ereport (its reason, summary or line)",
    "class": "the diagnosed fault class",
    "node": "the node that diagnosed the case",
}


@dataclass(frozen=True)
class Article:
    msgid: str
    title: str
    description: str
    response: str
    impact: str
    action: str
    source: str

    def render(self, facts: Mapping[str, Any]) -> dict[str, str]:
        ctx = _Facts(facts)
        out = {"title": self.title.format_map(ctx)}
        for f in FIELDS:
            out[f] = _ONE_STOP.sub(".", getattr(self, f).format_map(ctx))
        return out


#: A fact that ends a sentence itself ("... exited 1.") before the article's own full stop.
_ONE_STOP = re.compile(r"(?<!\.)\.\.(?=\s|\Z)")


class _Facts(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return f"{{{key}}}"


class KnowledgeBase:
    def __init__(self, articles: dict[str, Article] | None = None) -> None:
        self.articles: dict[str, Article] = articles or {}

    def get(self, msgid: str) -> Article | None:
        return self.articles.get(msgid)

    def __contains__(self, msgid: object) -> bool:
        return msgid in self.articles

    def __len__(self) -> int:
        return len(self.articles)


def _check_text(r: Reader, key: str, text: str) -> None:
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as e:
        r.error(key, f"bad braces: {e} (write {{{{ and }}}} for literal braces)")
        return
    for n in names:
        if n not in PLACEHOLDERS:
            r.error(key, f"unknown placeholder {{{n}}} (known: {', '.join(sorted(PLACEHOLDERS))})")


def load_knowledge(paths: Iterable[str | os.PathLike[str]] = (SHIPPED,)) -> tuple[KnowledgeBase, list[FieldError]]:
    """Articles from TOML files (or folders of them); a bad file is skipped and its errors returned."""
    articles: dict[str, Article] = {}
    files, all_errors = toml_files(paths)
    for path in files:
        errors: list[FieldError] = []
        try:
            data = read_toml(path)
        except FieldError as e:
            all_errors.append(e)
            continue
        got: dict[str, Article] = {}
        for msgid, body in data.items():
            r = Reader(path, errors, body, msgid)
            if not MSGID_RE.fullmatch(msgid):
                r.error("", "is not a message id (expected e.g. SVC-8000-3Q: PREFIX-HHHH-XX)")
                continue
            values = {}
            for key in ("title", *FIELDS):
                v = r.str(key, "", required=True)
                if v:
                    _check_text(r, key, v)
                values[key] = v
            r.done()
            if msgid in articles:
                r.error("", f"is also defined in {articles[msgid].source}")
            got[msgid] = Article(msgid, values["title"], values["description"], values["response"],
                                 values["impact"], values["action"], path)
        if errors:
            all_errors.extend(errors)
            continue
        articles.update(got)
    return KnowledgeBase(articles), all_errors
