"""The control socket's connection handling (``svcmgr.api``): how a request arrives, how its reply leaves, and
what a client that misbehaves on the way gets, with short idle times."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from svcmgr.api import Api, ApiError, Caller, Limits


async def _ping(caller: Caller, req: dict[str, Any]) -> Any:
    return "pong"


async def _slow(caller: Caller, req: dict[str, Any]) -> Any:
    await asyncio.sleep(float(req.get("seconds", 0.2)))
    return "done"


async def _boom(caller: Caller, req: dict[str, Any]) -> Any:
    raise RuntimeError("bug")


async def _refuse(caller: Caller, req: dict[str, Any]) -> Any:
    raise ApiError("no", 1)


@pytest.fixture
async def api(tmp_path):
    a = Api(str(tmp_path / "s.sock"), Limits(request=4096, privileged_request=4096, idle=0.5))
    for name, h in (("ping", _ping), ("slow", _slow), ("boom", _boom), ("refuse", _refuse)):
        a.register(name, h)
    await a.start()
    yield a
    await a.close()


async def _connect(api: Api) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(api.path)


async def _ask(api: Api, data: bytes) -> bytes:
    reader, writer = await _connect(api)
    writer.write(data)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return reply


async def _settled(api: Api) -> None:
    for _ in range(200):
        if not api.connections:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"connections still held: {api.connections}")


async def test_a_request_in_many_tiny_pieces_is_answered(api):
    reader, writer = await _connect(api)
    for b in json.dumps({"op": "ping", "pad": "x" * 100}).encode() + b"\n":
        writer.write(bytes([b]))
        await writer.drain()
        await asyncio.sleep(0)
    assert json.loads(await asyncio.wait_for(reader.read(), 5)) == {"ok": True, "result": "pong"}
    writer.close()
    await _settled(api)


async def test_a_request_without_a_newline_is_what_came_before_the_end_of_sending(api):
    reader, writer = await _connect(api)
    writer.write(b'{"op": "ping"}')
    writer.write_eof()
    assert json.loads(await asyncio.wait_for(reader.read(), 5)) == {"ok": True, "result": "pong"}
    writer.close()


async def test_what_follows_the_request_line_is_not_read_as_another(api):
    reply = await _ask(api, b'{"op": "ping"}\n{"op": "boom"}\n')
    assert reply == b'{"ok": true, "result": "pong"}\n'


async def test_an_empty_request_is_closed_without_a_reply(api):
    assert await _ask(api, b"  \n") == b""
    await _settled(api)


async def test_bad_json_a_refusal_and_a_handler_bug_each_get_a_reply_and_the_server_goes_on(api):
    assert json.loads(await _ask(api, b"{nope\n"))["code"] == 2
    assert json.loads(await _ask(api, b"[1]\n"))["error"] == "bad request: expected a JSON object"
    assert json.loads(await _ask(api, b'{"op": "refuse"}\n')) == {"ok": False, "error": "no", "code": 1}
    assert json.loads(await _ask(api, b'{"op": "boom"}\n'))["error"] == "internal error: RuntimeError: bug"
    assert json.loads(await _ask(api, b'{"op": "ping"}\n'))["result"] == "pong"
    assert api.errors == 4 and api.requests == 5


async def test_json_too_deep_or_a_number_too_long_is_a_bad_request_not_an_internal_error(api, caplog):
    """Any local user may send them: a bad request (code 2) that says why, and no traceback in the daemon's log."""
    caller = Caller(1, 65534, 65534, frozenset({65534}), False)
    deep = await api.handle(caller, b'{"op": "ping", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert (deep["code"], deep["error"]) == (2, "bad request: not JSON: nested too deeply"), deep
    long = await api.handle(caller, b'{"op": "ping", "lines": 1' + b"0" * 5000 + b"}")
    assert long["code"] == 2 and long["error"].startswith("bad request: not JSON: "), long
    assert "internal error" not in long["error"] and "4300 digits" in long["error"], long
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert (await api.handle(caller, b'{"op": "ping"}'))["result"] == "pong"


async def test_an_idle_client_is_dropped_and_its_slot_given_back(api):
    reader, writer = await _connect(api)
    writer.write(b'{"op": "pi')
    await writer.drain()
    await asyncio.sleep(0.1)
    assert sum(api.connections.values()) == 1
    assert await asyncio.wait_for(reader.read(), 5) == b""  # dropped after the idle time, no reply
    writer.close()
    await _settled(api)


async def test_a_request_past_the_cap_is_refused_and_the_rest_dropped(api):
    reader, writer = await _connect(api)
    writer.write(b'{"op": "ping", "pad": "' + b"x" * 20000)
    reply = await asyncio.wait_for(reader.readline(), 5)
    assert json.loads(reply) == {"ok": False, "error": "bad request: larger than 4096 bytes", "code": 2}
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed once it stops sending
    writer.close()
    await _settled(api)


async def test_a_client_that_never_stops_sending_past_the_cap_is_cut_off(api):
    _reader, writer = await _connect(api)
    sent = 0
    with pytest.raises(ConnectionError):
        while sent < 1 << 24:
            writer.write(b"x" * 4096)
            await asyncio.wait_for(writer.drain(), 5)
            sent += 4096
    assert sent <= 4 * 4096 + (1 << 20)  # dropped past four times the cap (and what the socket buffers held)
    writer.close()
    await _settled(api)


async def _send_and_leave(api: Api, data: bytes) -> None:
    _reader, writer = await _connect(api)
    writer.write(data)
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()


async def test_a_client_that_closes_mid_request_frees_its_slot(api):
    await _send_and_leave(api, b'{"op": "ping", "pad": "')
    await _settled(api)
    assert api.requests == 1  # what came before the end was handled: not JSON


async def test_a_client_that_never_reads_a_large_reply_is_dropped(tmp_path):
    a = Api(str(tmp_path / "s.sock"), Limits(idle=0.3))

    async def big(caller: Caller, req: dict[str, Any]) -> Any:
        return "y" * (8 << 20)

    a.register("big", big)
    await a.start()
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(a.path)
        s.sendall(b'{"op": "big"}\n')
        await asyncio.sleep(0.1)
        assert sum(a.connections.values()) == 1
        await _settled(a)  # never read: dropped after the idle time
        s.close()
    finally:
        await a.close()


async def test_a_slot_is_held_until_the_request_is_handled_even_when_its_client_left(api):
    await _send_and_leave(api, b'{"op": "slow", "seconds": 0.3}\n')
    await asyncio.sleep(0.1)
    assert sum(api.connections.values()) == 1
    await _settled(api)


async def test_many_clients_at_once_each_get_their_reply(api):
    replies = await asyncio.gather(*(_ask(api, b'{"op": "ping"}\n') for _ in range(20)))
    assert all(json.loads(r)["result"] == "pong" for r in replies)
    await _settled(api)


async def test_close_with_connections_open_ends_them_and_leaves_no_task(tmp_path):
    a = Api(str(tmp_path / "s.sock"), Limits(idle=30))
    a.register("slow", _slow)
    await a.start()
    idle = [await _connect(a) for _ in range(3)]
    busy = await _connect(a)
    busy[1].write(b'{"op": "slow", "seconds": 30}\n')
    await busy[1].drain()
    await asyncio.sleep(0.1)
    before = asyncio.all_tasks()
    await asyncio.wait_for(a.close(), 3)
    await asyncio.sleep(0.05)
    assert not [t for t in asyncio.all_tasks() - {asyncio.current_task()} if t in before and not t.done()]
    assert not a.connections
    for reader, writer in [*idle, busy]:
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()


async def test_a_result_json_cannot_hold_gets_an_internal_error_and_the_server_goes_on(api):
    async def circular(caller: Caller, req: dict[str, Any]) -> Any:
        loop: list[Any] = []
        loop.append(loop)
        return loop

    api.register("circular", circular)
    reply = json.loads(await _ask(api, b'{"op": "circular"}\n'))
    assert reply["ok"] is False and reply["error"].startswith("internal error: ValueError")
    assert json.loads(await _ask(api, b'{"op": "ping"}\n'))["result"] == "pong"
    await _settled(api)


async def test_closing_twice_and_a_refused_client_left_open_leave_nothing_held(tmp_path):
    a = Api(str(tmp_path / "s.sock"), Limits(per_user=1, total=1, privileged=0, idle=30))
    a.register("ping", _ping)
    await a.start()
    held = await _connect(a)
    refused = await _connect(a)  # over the caps (root's too): refused and closed
    assert json.loads(await asyncio.wait_for(refused[0].read(), 5))["error"].startswith("too many connections")
    assert a.refused == 1
    await a.close()
    await a.close()
    assert not a.connections
    assert await asyncio.wait_for(held[0].read(), 2) == b""
    for _reader, writer in (held, refused):
        writer.close()
