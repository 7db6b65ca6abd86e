"""WebSocket bridge against real `websockets` asyncio clients on loopback sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import msgpack
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from liverig.bridges import ws as ws_module
from liverig.bridges.errors import BridgeError
from liverig.bridges.relay import Relay
from liverig.bridges.ws import SCHEMA_VERSION, ClientStats, WebSocketServer
from liverig.core.config import WebSocketConfig
from tests.bridges_support import ARKIT, BONE_NAMES, PARENTS, REST_OFFSETS, make_rig

TIMEOUT = 20.0


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))


@pytest.fixture
def server():
    ws = WebSocketServer("127.0.0.1", 0, WebSocketConfig(), fps=60.0)
    yield ws
    ws.close()


def url(server: WebSocketServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/{query}"


async def client(address: str, **kwargs) -> ClientConnection:
    return await connect(address, proxy=None, open_timeout=5, **kwargs)


async def wait_clients(server: WebSocketServer, count: int) -> None:
    """Connected means the handler has registered the client, not just the handshake."""
    while len(server.clients()) != count:
        await asyncio.sleep(0.005)


async def receive(ws: ClientConnection) -> dict:
    raw = await ws.recv()
    return msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)


async def close_code(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes us; the close code and reason it sent."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, None)


def check_hello(hello: dict, fmt: str) -> None:
    assert hello["type"] == "hello" and hello["schema"] == SCHEMA_VERSION
    assert hello["rig"] == "vrm0" and hello["bones"] == BONE_NAMES and hello["parents"] == PARENTS
    np.testing.assert_allclose(hello["rest_pos"], REST_OFFSETS, atol=1e-6)
    assert hello["units"] == "m" and hello["quat"] == "xyzw" and hello["fps"] == 60.0
    assert hello["axes"] == {"handedness": "left", "up": "+y", "forward": "+z"}
    assert hello["format"] == fmt


def check_frame(frame: dict, index: int, atol: float) -> None:
    rig = make_rig(index)
    assert frame["type"] == "frame" and frame["index"] == index
    assert frame["time_s"] == pytest.approx(rig.time_s) and frame["capture_s"] == pytest.approx(
        rig.timing.capture
    )
    assert frame["tracking"] is True
    assert set(frame["latency_ms"]) == {"perception", "motion", "retarget", "total"}
    assert frame["latency_ms"]["total"] == pytest.approx(24.0, abs=1e-3)
    np.testing.assert_allclose(frame["rot"], rig.local_rotations, atol=atol)
    np.testing.assert_allclose(frame["pos"], rig.local_positions, atol=atol)
    np.testing.assert_allclose(frame["root"]["pos"], rig.root_position, atol=atol)
    np.testing.assert_allclose(frame["root"]["rot"], rig.root_rotation, atol=atol)
    assert list(frame["blend"]) == ARKIT
    np.testing.assert_allclose(list(frame["blend"].values()), list(rig.blendshapes.values()), atol=atol)
    np.testing.assert_allclose(frame["contact"], rig.foot_contact, atol=atol)


# ---- schema and formats ------------------------------------------------------------------------------


def test_msgpack_hello_then_frames(server):
    async def main():
        async with await client(url(server)) as ws:
            await wait_clients(server, 1)
            for i in range(3):
                server.send(None, make_rig(i))
            raw = await ws.recv()
            assert isinstance(raw, bytes)  # binary frames
            check_hello(msgpack.unpackb(raw), "msgpack")
            for i in range(3):
                raw = await ws.recv()
                assert isinstance(raw, bytes)
                check_frame(msgpack.unpackb(raw), i, atol=0)  # doubles: exact

    run(main())


def test_json_on_request_and_late_joiner_gets_hello_first(server):
    async def main():
        server.send(None, make_rig(0))  # nobody listening yet: nothing is encoded
        async with await client(url(server, "?format=json")) as ws:
            raw = await ws.recv()  # hello right away: the rig is already known
            assert isinstance(raw, str)  # text frames
            check_hello(json.loads(raw), "json")
            await wait_clients(server, 1)
            server.send(None, make_rig(1))
            check_frame(json.loads(await ws.recv()), 1, atol=1.1e-6)  # rounded to 6 decimals

    run(main())


def test_config_json_and_client_override():
    server = WebSocketServer("127.0.0.1", 0, WebSocketConfig(format="json"), fps=60.0)

    async def main():
        async with (
            await client(url(server)) as as_json,
            await client(url(server, "?format=msgpack")) as as_pack,
        ):
            await wait_clients(server, 2)
            server.send(None, make_rig(0))
            assert isinstance(await as_json.recv(), str) and isinstance(await as_pack.recv(), bytes)
            check_frame(json.loads(await as_json.recv()), 0, atol=1.1e-6)
            check_frame(msgpack.unpackb(await as_pack.recv()), 0, atol=0)
            assert {c.format for c in server.clients()} == {"json", "msgpack"}

    try:
        run(main())
    finally:
        server.close()


def test_rig_change_sends_a_new_hello_before_the_frame(server):
    async def main():
        async with await client(url(server)) as ws:
            await wait_clients(server, 1)
            server.send(None, make_rig(0))
            other = make_rig(1)
            other.rig = "other"
            other.bone_names = other.bone_names[:10]
            other.parents = other.parents[:10]
            other.local_rotations = other.local_rotations[:10]
            other.local_positions = other.local_positions[:10]
            server.send(None, other)
            kinds = [(m["type"], m.get("rig"), m.get("index")) for m in [await receive(ws) for _ in range(4)]]
            assert kinds == [
                ("hello", "vrm0", None),
                ("frame", None, 0),
                ("hello", "other", None),
                ("frame", None, 1),
            ]

    run(main())


def test_ping_gets_pong_in_either_encoding(server):
    async def main():
        async with await client(url(server)) as ws:
            await ws.send(json.dumps({"type": "ping", "id": 7}))
            pong = await receive(ws)
            assert pong["type"] == "pong" and pong["id"] == 7 and isinstance(pong["sent_s"], float)
            await ws.send(msgpack.packb({"type": "ping", "id": "x"}))
            assert (await receive(ws))["id"] == "x"

    run(main())


# ---- access ------------------------------------------------------------------------------------------


def test_non_loopback_bind_without_token_refuses_to_start():
    with pytest.raises(BridgeError, match="token") as info:
        WebSocketServer("0.0.0.0", 0, WebSocketConfig())
    assert "\n" not in str(info.value)


def test_token_required_and_checked():
    server = WebSocketServer("0.0.0.0", 0, WebSocketConfig(token="s3cret"), fps=60.0)

    async def main():
        for query, headers in [("", None), ("?token=wrong", None), ("", {"Authorization": "Bearer nope"})]:
            # Refused before the upgrade: an HTTP 401, never a WebSocket; the token is not echoed.
            with pytest.raises(InvalidStatus) as info:
                await client(url(server, query), additional_headers=headers)
            response = info.value.response
            assert response.status_code == 401 and b"token" in response.body
            assert b"s3cret" not in response.body and b"wrong" not in response.body
        server.send(None, make_rig(0))
        for query, headers in [("?token=s3cret", None), ("", {"Authorization": "Bearer s3cret"})]:
            async with await client(url(server, query), additional_headers=headers) as ws:
                assert (await receive(ws))["type"] == "hello"

    try:
        run(main())
    finally:
        server.close()


def test_port_in_use_is_a_bridge_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BridgeError, match="in use") as info:
            WebSocketServer("127.0.0.1", port)
        assert "\n" not in str(info.value) and str(port) in str(info.value)


# ---- misbehaving clients ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("x" * 5000, 1009),  # larger than max_message_bytes (4096)
        (b"\xc1\xc1\xc1", 1003),  # not msgpack
        ("{not json", 1003),
        ("[1, 2]", 1003),  # valid JSON, not an object
        ('{"type": "subscribe"}', 1008),  # unknown type
        ('{"id": 1}', 1008),  # no type
    ],
)
def test_bad_client_message_closes_only_that_client(server, payload, expected):
    async def main():
        async with await client(url(server)) as bad, await client(url(server)) as good:
            await wait_clients(server, 2)
            server.send(None, make_rig(0))
            for ws in (bad, good):
                assert (await receive(ws))["type"] == "hello"
                assert (await receive(ws))["index"] == 0
            await bad.send(payload)
            code, reason = await close_code(bad)
            assert code == expected and reason
            for i in range(1, 4):
                server.send(None, make_rig(i))
                assert (await receive(good))["index"] == i
            # the server drops the bad client once its closing handshake is over, which may be just
            # after the client has seen the close frame: allow it that moment, no more
            await asyncio.wait_for(wait_clients(server, 1), 5.0)

    run(main())


def test_slow_client_loses_oldest_frames_without_stalling_others(server):
    """A client that never reads: its outbox overflows (counted) while the other gets every frame."""

    async def main():
        small = socket.socket()
        small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill the pipe sooner
        small.connect(("127.0.0.1", server.port))
        slow_peer = f"127.0.0.1:{small.getsockname()[1]}"
        slow_client = client(url(server), sock=small, max_queue=1, close_timeout=0.5)
        async with await slow_client, await client(url(server)) as fast:
            await wait_clients(server, 2)

            def stats() -> tuple[ClientStats, ClientStats]:
                by_peer = {c.peer == slow_peer: c for c in server.clients()}
                return by_peer[True], by_peer[False]

            sent = 0
            while stats()[0].frames_dropped < 20:
                assert sent < 20000, "the slow client never overflowed its outbox"
                server.send(None, make_rig(sent % 50, capture=float(sent)))  # send() itself never waits
                sent += 1
                message = await receive(fast)
                if message["type"] == "hello":
                    message = await receive(fast)
                assert message["type"] == "frame" and message["capture_s"] == pytest.approx(
                    sent - 1 + (sent - 1) % 50 / 30
                )
            slow, fast_stats = stats()
            assert fast_stats.frames_dropped == 0 and fast_stats.frames_sent == sent
            assert slow.frames_dropped >= 20 and slow.frames_sent < sent
            assert server.dropped_total == slow.frames_dropped

    run(main())


def test_close_says_going_away_and_frees_the_port():
    server = WebSocketServer("127.0.0.1", 0, WebSocketConfig())
    port = server.port

    async def main():
        async with await client(url(server)) as ws:
            await wait_clients(server, 1)
            closer = asyncio.get_running_loop().run_in_executor(None, server.close)
            code, _ = await close_code(ws)
            await closer
            assert code == 1001

    run(main())
    assert not server._thread.is_alive()
    server.send(None, make_rig(0))  # after close: ignored, no error
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


# ---- the relay: the node's thread only hands frames over ---------------------------------------------


def test_send_neither_encodes_nor_wakes_the_server_in_the_callers_thread(server, monkeypatch):
    """Encoding and `call_soon_threadsafe` (which lets the server thread run first) happen on the relay
    thread; the caller's `send` only hands the frame over. Nobody connected: not even that."""
    threads: dict[str, set[int]] = {"encode": set(), "wake": set()}
    encode = ws_module.encode_message
    wake = server._loop.call_soon_threadsafe

    def recording_encode(message, fmt):
        threads["encode"].add(threading.get_ident())
        return encode(message, fmt)

    def recording_wake(*args, **kwargs):
        threads["wake"].add(threading.get_ident())
        return wake(*args, **kwargs)

    monkeypatch.setattr(ws_module, "encode_message", recording_encode)
    monkeypatch.setattr(server._loop, "call_soon_threadsafe", recording_wake)
    server.send(None, make_rig(0))  # nobody listening: the hello is kept, nothing is handed over
    assert server._relay.batches == 0 and not threads["wake"]

    async def main():
        async with await client(url(server)) as ws:
            assert (await receive(ws))["type"] == "hello"
            await wait_clients(server, 1)
            for i in range(1, 6):
                server.send(None, make_rig(i))
                check_frame(await receive(ws), i, atol=0)

    run(main())
    caller = threading.get_ident()
    assert threads["encode"] and threads["wake"]
    assert caller not in threads["encode"] and caller not in threads["wake"]
    assert threads["wake"] == {server._relay._thread.ident}


def test_a_relay_behind_encodes_only_the_newest_frames_and_keeps_every_hello(server, monkeypatch):
    """Frames handed over while the relay is busy go out as one batch, the newest `outbox_frames` of
    them (no client could hold more); a rig change among the skipped frames still gets its hello."""
    entered, release = threading.Event(), threading.Event()
    frame_message = ws_module.frame_message

    def slow_second(rig, fmt, sent_s=None):
        if rig.index == 1:
            entered.set()
            release.wait(TIMEOUT)
        return frame_message(rig, fmt, sent_s)

    monkeypatch.setattr(ws_module, "frame_message", slow_second)

    def other_rig(index: int):
        rig = make_rig(index)
        rig.rig = "other"
        return rig

    async def main():
        async with await client(url(server)) as ws:
            await wait_clients(server, 1)
            server.send(None, make_rig(0))
            messages = [await receive(ws), await receive(ws)]  # hello, frame 0
            server.send(None, make_rig(1))
            assert await asyncio.to_thread(entered.wait, TIMEOUT)  # the relay is encoding frame 1
            for i in range(2, 11):
                server.send(None, make_rig(i) if i < 6 else other_rig(i))  # the rig changes at 6
            release.set()
            messages += [await receive(ws) for _ in range(6)]
            return [(m["type"], m.get("rig"), m.get("index")) for m in messages]

    assert run(main()) == [
        ("hello", "vrm0", None),
        ("frame", None, 0),
        ("frame", None, 1),
        ("hello", "other", None),  # introduced by frame 6, which was skipped
        *[("frame", None, i) for i in range(7, 11)],  # outbox_frames = 4: 2..6 skipped
    ]
    assert server.handoff_dropped == 5 and server.dropped_total == 0


def test_relay_delivers_in_order_survives_a_failing_batch_and_flushes_on_close():
    batches: list[list[int]] = []

    def deliver(batch: list[int]) -> None:
        if batch == [0]:
            raise ValueError("bad frame\nsecond line")
        batches.append(batch)

    relay: Relay[int] = Relay(deliver, name="test relay")
    relay.start()
    relay.put(0)
    deadline = time.monotonic() + TIMEOUT
    while relay.error is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert relay.error == "ValueError: bad frame"  # one line
    for i in range(1, 50):
        relay.put(i)
    relay.close()  # what was put before close is delivered
    assert not relay._thread.is_alive()
    assert [i for batch in batches for i in batch] == list(range(1, 50))
    relay.put(99)  # after close: ignored
    assert [i for batch in batches for i in batch][-1] == 49
