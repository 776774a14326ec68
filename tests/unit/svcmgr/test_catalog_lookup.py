"""``Catalog.lookup`` names what ``fmri.match`` names over every known FMRI: its short cuts (FMRIs parsed once,
an abbreviation's candidates narrowed to those that hold it) change no match."""

from __future__ import annotations

import pytest

from svcmgr import fmri
from svcmgr.catalog import Catalog
from svcmgr.services import EngineError

INSTANCES = ["svc:/network/smtp:sendmail", "svc:/network/smtp:postfix", "svc:/site/s1:default",
             "svc:/site/s10:default", "svc:/site/s100:default", "svc:/site/s1/sub:default",
             "svc:/milestone/multi-user:default", "svc:/site/a-b.c:x"]
SERVICES = [*sorted({str(fmri.parse(f).service_fmri) for f in INSTANCES}), "svc:/site/lonely"]


def _catalog() -> Catalog:
    c = Catalog()
    c.instances = dict.fromkeys(INSTANCES)  # type: ignore[arg-type]
    c.specs = dict.fromkeys(SERVICES)  # type: ignore[arg-type]
    return c


def _patterns() -> list[str]:
    out = {"", " ", "*", "svc:/site/*", "site/s1*", "*:default", "s?", "[sn]*", "/site/s1", "svc:/site/s1",
           "svc://localhost/site/s1:default", " s1 ", ":default", "default:", "bad name!", "svc:", "svc:/"}
    for f in INSTANCES + SERVICES:
        out.update(f[i:j] for i in range(len(f)) for j in range(i + 1, len(f) + 1))
    return sorted(out)


def _expected(pattern: str, services: bool) -> list[str] | str:
    cands = [fmri.parse(f) for f in INSTANCES + (SERVICES if services else [])]
    try:
        hits = fmri.match(pattern, cands)
    except fmri.FmriError as e:
        return str(e)
    return [str(h) for h in hits] or f"{pattern}: no service or instance matches"


@pytest.mark.parametrize("services", [False, True])
def test_lookup_names_what_match_names_over_every_fmri(services: bool) -> None:
    catalog = _catalog()
    for p in _patterns():
        try:
            got: list[str] | str = catalog.lookup(p, services=services)
        except EngineError as e:
            got = str(e)
        assert got == _expected(p, services), p
