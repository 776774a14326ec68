"""svcmgr.hostport: the one reader of ``host:port`` (metrics, dashboard, webhook, frontends, TCP probes)."""

from __future__ import annotations

import pytest

from svcmgr import hostport


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("[::1]:80", ("::1", 80)),
    ("localhost:65535", ("localhost", 65535)),
    ("0.0.0.0:1", ("0.0.0.0", 1)),
])
def test_a_host_and_port(text: str, want: tuple[str, int]) -> None:
    assert hostport.split(text) == want


@pytest.mark.parametrize(("text", "says"), [
    ("9464", "expected host:port"),
    (":80", "expected host:port"),
    ("::1:80", "in brackets"),
    ("[127.0.0.1]:80", "brackets are for IPv6"),
    ("[]:80", "brackets are for IPv6"),
    ("a b:80", "bad host"),
    ("a/b:80", "bad host"),
    ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
    ("127.0.0.1:65536", "the port must be a number from 1 to 65535"),
    ("127.0.0.1:http", "the port must be a number from 1 to 65535"),
    ("127.0.0.1:٨٠", "the port must be a number from 1 to 65535"),
])
def test_what_is_wrong_is_said_with_the_text(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as e:
        hostport.split(text)
    assert repr(text) in str(e.value)
