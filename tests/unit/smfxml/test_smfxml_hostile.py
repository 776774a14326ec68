"""Hostile XML is refused with an error naming the file, and nothing is expanded or fetched.

A real HTTP server on 127.0.0.1 counts the requests an external DTD or entity would
make; a secret file on disk shows that a file entity is never read into the result.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcmgr.loader import load_bytes
from svcmgr.manifest import ManifestErrors
from svcmgr.smfxml import safe

SERVICE = """<service_bundle type='manifest' name='t'>
<service name='site/ok' type='service' version='1'>
  <create_default_instance enabled='true'/>
  <exec_method type='method' name='start' exec='/bin/true' timeout_seconds='5'/>
  <property_group name='app' type='application'><propval name='v' type='astring' value='{value}'/></property_group>
</service>
</service_bundle>
"""


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Counter.hits.append(self.path)
        body = b'<!ENTITY leak "FETCHED">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_counter() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback that records every request it gets."""
    _Counter.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", _Counter.hits
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def _refused(blob: bytes, source: str = "/m/evil.xml") -> str:
    with pytest.raises(ManifestErrors) as e:
        load_bytes(blob, source)
    text = str(e.value)
    assert text.startswith(f"{source}: "), text
    return text


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    levels = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    blob = (f'<?xml version="1.0"?><!DOCTYPE service_bundle [<!ENTITY l0 "lol">{levels}]>'
            + SERVICE.format(value="&l9;")).encode()
    text = _refused(blob)
    assert "refused" in text and "internal subset" in text
    assert "lol" not in text


def test_billion_laughs_is_refused_by_the_entity_guard_too() -> None:
    """Second layer: the parser svcmgr configures refuses an entity declaration even without
    the DOCTYPE check in front of it."""
    blob = b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><x>&b;</x>'
    parser = safe.DefusedXMLParser(forbid_dtd=False, forbid_entities=True, forbid_external=True)
    with pytest.raises(safe.EntitiesForbidden):
        parser.feed(blob)
        parser.close()


def test_external_entity_to_a_local_file_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET-4711")
    blob = (f'<?xml version="1.0"?><!DOCTYPE service_bundle [<!ENTITY x SYSTEM "file://{secret}">]>'
            + SERVICE.format(value="&x;")).encode()
    text = _refused(blob)
    assert "TOP-SECRET-4711" not in text


def test_external_entity_to_a_url_is_never_fetched(http_counter: tuple[str, list[str]]) -> None:
    url, hits = http_counter
    for blob in (
        f'<!DOCTYPE service_bundle [<!ENTITY x SYSTEM "{url}/entity">]>' + SERVICE.format(value="&x;"),
        f'<!DOCTYPE service_bundle [<!ENTITY % p SYSTEM "{url}/param"> %p;]>' + SERVICE.format(value="v"),
    ):
        _refused(blob.encode())
    assert hits == []


def test_external_dtd_is_accepted_and_never_fetched(http_counter: tuple[str, list[str]]) -> None:
    """Real manifests name a DTD; svcmgr neither needs nor reads it, from a path or a URL."""
    url, hits = http_counter
    for doctype in (f'<!DOCTYPE service_bundle SYSTEM "{url}/service_bundle.dtd.1">',
                    '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">'):
        (spec,) = load_bytes(f'<?xml version="1.0"?>\n{doctype}\n{SERVICE.format(value="plain")}'.encode(),
                             "/m/ok.xml")
        assert spec.properties["app"]["v"].values == ("plain",)
    assert hits == []


def test_an_undeclared_entity_is_an_error_not_an_expansion() -> None:
    text = _refused(SERVICE.format(value="&nbsp;").encode())
    assert "not well-formed XML: undefined entity" in text


def test_oversized_input_is_refused() -> None:
    pad = "<!--" + "x" * (4 * 1024 * 1024) + "-->"
    text = _refused((SERVICE.format(value="v") + pad).encode())
    assert "larger than 4 MiB" in text
    with pytest.raises(Exception, match="larger than 4 MiB"):
        safe.parse(b" " * (safe.MAX_BYTES + 1), "/m/big.xml")


def test_deep_nesting_is_refused_naming_the_line() -> None:
    deep = "<service_bundle>" + "\n<a>" * 5000 + "</a>" * 5000 + "</service_bundle>"
    text = _refused(deep.encode())
    assert f"line {safe.MAX_DEPTH + 1}: refused: elements are nested more than {safe.MAX_DEPTH} deep" in text


def test_huge_attribute_is_refused() -> None:
    text = _refused(SERVICE.format(value="A" * (safe.MAX_VALUE + 1)).encode())
    assert "attribute 'value' of <propval> is longer than" in text


def test_huge_text_is_refused() -> None:
    blob = SERVICE.format(value="v").replace("</service>", f"<x>{'t' * (safe.MAX_VALUE + 10)}</x></service>")
    text = _refused(blob.encode())
    assert "text node is longer than" in text


def test_unknown_encoding_and_garbage_are_errors() -> None:
    assert "cannot read the XML" in _refused(b'<?xml version="1.0" encoding="x-evil"?><service_bundle/>')
    assert "not well-formed XML" in _refused(b"<service_bundle><service></service_bundle>")
