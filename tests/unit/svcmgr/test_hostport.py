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


def test_a_listen_address_may_ask_for_any_free_port() -> None:
    """Port 0 binds a port the kernel chooses: a listen address may say so (``any_port``), a target may not."""
    assert hostport.split("127.0.0.1:0", any_port=True) == ("127.0.0.1", 0)
    assert hostport.split("[::1]:9464", any_port=True) == ("::1", 9464)
    with pytest.raises(ValueError, match=r"'127.0.0.1:65536': the port must be a number from 0 \(any free port\) to "
                                         "65535"):
        hostport.split("127.0.0.1:65536", any_port=True)


@pytest.mark.parametrize(("host", "port", "text"), [
    ("127.0.0.1", 9464, "127.0.0.1:9464"), ("::1", 80, "[::1]:80"), ("localhost", 1, "localhost:1")])
def test_join_writes_what_split_reads(host: str, port: int, text: str) -> None:
    assert hostport.join(host, port) == text
    assert hostport.split(text) == (host, port)
