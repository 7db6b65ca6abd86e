"""The WebSocket output is safe by default (issue 20, part 3): Origin and token checked before the
upgrade, the token kept off the command line and out of messages, every client frame rate-limited
(pings included), per-client memory bounded, and a misbehaving client dropped without touching the
others. Real `websockets` clients and raw sockets on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import Counter

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Opcode
from websockets.protocol import Protocol

from liverig.bridges.errors import BridgeError
from liverig.bridges.ws import TOKEN_ENV, WebSocketServer, origin_allowed, resolve_token
from liverig.core.config import WebSocketConfig
from liverig.runtime.harden import _handshake_request, ws_frame
from tests.bridges_support import make_rig

TIMEOUT = 20.0


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))


class Feeder:
    """Sends a frame to the server every `period` s from a thread, like the node's loop."""

    def __init__(self, server: WebSocketServer, period: float = 1 / 60) -> None:
        self.server, self.period = server, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            self.server.send(None, make_rig(index))
            index += 1
            time.sleep(self.period)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def server():
    ws = WebSocketServer(
        "127.0.0.1", 0, WebSocketConfig(allowed_origins=["https://studio.example"]), fps=60.0
    )
    yield ws
    ws.close()


def _url(server: WebSocketServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/{query}"


async def _status(server: WebSocketServer, query: str = "", **headers) -> int:
    """101 when the upgrade succeeds, else the HTTP status of the refusal."""
    try:
        async with await connect(_url(server, query), proxy=None, open_timeout=5, **headers):
            return 101
    except InvalidStatus as error:
        return error.response.status_code


@pytest.mark.parametrize(
    "origin, status",
    [
        (None, 101),  # a native client: no browser, no Origin
        ("http://localhost:3000", 101),
        ("http://127.0.0.1:8080", 101),
        ("https://[::1]", 101),
        ("http://app.localhost:5173", 101),
        ("https://studio.example", 101),  # on the allow-list
        ("https://evil.example", 403),
        ("http://localhost.evil.example", 403),
        ("http://127.0.0.1.evil.example", 403),
        ("null", 403),  # a file:// page or a sandboxed frame: not unless listed
        ("ftp://localhost", 403),
    ],
)
def test_origin_is_checked_before_the_upgrade(server, origin, status):
    headers = {"origin": origin} if origin else {}
    assert run(_status(server, **headers)) == status
    assert origin is None or origin_allowed(origin, ["https://studio.example"]) == (status == 101)


def test_two_origin_headers_are_refused(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        request = _handshake_request(origin="http://localhost").replace(
            b"\r\n\r\n", b"\r\nOrigin: https://evil.example\r\n\r\n"
        )
        sock.sendall(request)
        assert sock.recv(4096).split(b"\r\n")[0].split()[1] in (b"400", b"403")


def test_a_bad_token_is_refused_before_the_upgrade_and_never_echoed(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "env-s3cret-token")
    ws = WebSocketServer("0.0.0.0", 0, WebSocketConfig(), fps=60.0)  # the token came from the environment
    try:
        assert run(_status(ws, "?token=nope")) == 401
        with socket.create_connection(("127.0.0.1", ws.port), timeout=5) as sock:
            sock.sendall(_handshake_request("/?token=guess-token"))
            response = sock.recv(4096)
        assert b" 401 " in response.split(b"\r\n")[0] and b"guess-token" not in response
        assert b"env-s3cret-token" not in response and b"Upgrade" not in response.split(b"\r\n\r\n")[0]
        assert run(_status(ws, "?token=env-s3cret-token")) == 101
        assert run(_status(ws, additional_headers={"Authorization": "Bearer env-s3cret-token"})) == 101
    finally:
        ws.close()


def test_token_from_a_file_and_errors_that_do_not_show_it(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("file-s3cret\n")
    assert resolve_token(None, WebSocketConfig(token_file=str(token_file))) == "file-s3cret"
    assert resolve_token("cli", WebSocketConfig(token_file=str(token_file))) == "cli"
    for bad in ("/dev/zero", str(tmp_path / "missing"), str(tmp_path)):
        with pytest.raises(BridgeError) as info:
            resolve_token(None, WebSocketConfig(token_file=bad))
        assert "\n" not in str(info.value) and "token_file" in str(info.value)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(BridgeError, match="no token"):
        resolve_token(None, WebSocketConfig(token_file=str(empty)))


def test_too_many_clients_are_turned_away():
    ws = WebSocketServer("127.0.0.1", 0, WebSocketConfig(max_clients=2), fps=60.0)

    async def main():
        first = await connect(_url(ws), proxy=None)
        second = await connect(_url(ws), proxy=None)
        await asyncio.sleep(0.1)
        try:
            assert await _status(ws) == 503
        finally:
            await first.close()
            await second.close()
        await asyncio.sleep(0.2)
        assert await _status(ws) == 101

    try:
        run(main())
    finally:
        ws.close()


def _raw_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(_handshake_request())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    assert b" 101 " in response.split(b"\r\n")[0]
    return sock


def _dropped(sock: socket.socket, within: float = 5.0) -> bool:
    """True once the server has closed or reset the connection (reading whatever it sent first)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 16):
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_a_control_ping_flood_is_cut_off_and_the_good_client_keeps_its_stream():
    ws = WebSocketServer(
        "127.0.0.1", 0, WebSocketConfig(client_frames_per_s=50, client_burst_frames=100), fps=60.0
    )
    received: list[float] = []

    async def good_client(stop: asyncio.Event):
        async with await connect(_url(ws), proxy=None) as client:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(client.recv(), 0.5)
                    received.append(time.monotonic())
                except TimeoutError:
                    pass

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(good_client(stop))
        await asyncio.sleep(0.5)
        flooder = await asyncio.to_thread(_raw_client, ws.port)
        ping = ws_frame(0x9, b"p" * 125)
        try:
            for _ in range(50):
                flooder.sendall(ping * 20)  # 1,000 pings, never reading a pong
        except OSError:
            pass  # already cut off
        assert await asyncio.to_thread(_dropped, flooder)
        flooder.close()
        before = len(received)
        await asyncio.sleep(1.0)
        stop.set()
        await task
        return before

    try:
        with Feeder(ws):
            before = run(main())
        assert len(received) - before >= 30  # 60 fps fed: the good client kept receiving
        assert ws.refused["cut off"] >= 1
    finally:
        ws.close()


def test_a_ping_flood_read_in_one_go_is_parsed_only_up_to_its_burst(monkeypatch):
    """websockets parses (and answers) every frame of a read before the rate limit sees them: one read
    of a ping flood used to be a thousand pings parsed and answered on the server's thread. It is now
    parsed in slices and cut off within a few frames of its burst."""
    parsed = Counter()
    recv_frame = Protocol.recv_frame

    def counting(self, frame):
        parsed[frame.opcode] += 1
        return recv_frame(self, frame)

    monkeypatch.setattr(Protocol, "recv_frame", counting)  # every frame websockets parses passes here
    burst = 100
    ws = WebSocketServer(
        "127.0.0.1", 0, WebSocketConfig(client_frames_per_s=1, client_burst_frames=burst), fps=60.0
    )
    try:
        flooder = _raw_client(ws.port)
        # Hold the server's loop while the whole flood lands in its socket, so it is one big read.
        ws._loop.call_soon_threadsafe(time.sleep, 0.5)
        time.sleep(0.05)
        flooder.sendall(ws_frame(0x9, b"p" * 125) * 1000)  # 131 KB
        assert _dropped(flooder)
        flooder.close()
        deadline = time.monotonic() + 5
        while not ws.refused["cut off"] and time.monotonic() < deadline:
            time.sleep(0.01)  # the handler counts it as it ends, just after the drop
        assert ws.refused["cut off"] == 1
        assert burst <= parsed[Opcode.PING] <= burst + 10
    finally:
        ws.close()


def _handshake_ok(port: int) -> bool:
    """True when a raw client's upgrade completes; False when the server drops it first."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(_handshake_request())
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                response += chunk
            return b" 101 " in response.split(b"\r\n")[0]
    except OSError:
        return False


def test_a_flooder_that_reconnects_gets_no_fresh_burst_and_few_connections(monkeypatch):
    """Cut off, a flooder used to reconnect with a fresh `client_burst_frames` each time (100 pings
    parsed and answered per connection, ~150 handshakes/s from 20 flooders). Its address is now on
    probation: a small burst, a few connections a second (the rest dropped as accepted, before any
    parsing), while a client already connected from the same address keeps its stream; once the
    probation is over a new client is let in as before."""
    from liverig.bridges import ws as ws_module

    parsed = Counter()
    recv_frame = Protocol.recv_frame

    def counting(self, frame):
        parsed[frame.opcode] += 1
        return recv_frame(self, frame)

    monkeypatch.setattr(Protocol, "recv_frame", counting)
    monkeypatch.setattr(ws_module, "PROBATION_S", 2.0)
    ws = WebSocketServer(
        "127.0.0.1", 0, WebSocketConfig(client_frames_per_s=1, client_burst_frames=100), fps=60.0
    )
    received: list[float] = []
    ping = ws_frame(0x9, b"p" * 125)

    async def good_client(stop: asyncio.Event):
        async with await connect(_url(ws), proxy=None) as client:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.recv(), 0.5)
                    received.append(time.monotonic())

    def flood_once() -> None:
        flooder = _raw_client(ws.port)
        with contextlib.suppress(OSError):
            flooder.sendall(ping * 1000)
        assert _dropped(flooder)
        flooder.close()

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(good_client(stop))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(flood_once)  # the first connection: the full burst
        first = parsed[Opcode.PING]
        await asyncio.to_thread(flood_once)  # reconnected: on probation
        second = parsed[Opcode.PING] - first
        before = len(received)
        upgrades = [await asyncio.to_thread(_handshake_ok, ws.port) for _ in range(30)]
        await asyncio.sleep(0.5)
        stop.set()
        await task
        return first, second, upgrades, len(received) - before

    try:
        with Feeder(ws):
            first, second, upgrades, good_frames = run(main())
            assert 100 <= first <= 110
            assert second <= ws_module.PROBATION_BURST_FRAMES + 10
            # 30 connections at once: a few let in (its connection burst), the rest dropped unparsed.
            assert 1 <= sum(upgrades) <= ws_module.PROBATION_CONNECTIONS + 2
            assert ws.addresses.refused >= 30 - sum(upgrades)
            assert good_frames >= 20  # the client already connected kept receiving
            time.sleep(2.2)  # probation over
            assert run(_status(ws)) == 101
    finally:
        ws.close()


def test_a_client_that_never_reads_its_pongs_is_dropped_before_its_buffer_grows():
    """With the rate limit out of the way, the byte cap alone bounds what waits for one client."""
    config = WebSocketConfig(
        client_frames_per_s=1e6, client_burst_frames=10**6, max_client_buffer_bytes=64 * 1024
    )
    ws = WebSocketServer("127.0.0.1", 0, config, fps=60.0)
    try:
        flooder = _raw_client(ws.port)
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that does not read
        ping = ws_frame(0x9, b"p" * 125)
        sent = 0
        try:
            for _ in range(400):
                flooder.sendall(ping * 50)
                sent += 50
        except OSError:
            pass
        assert _dropped(flooder, 10.0)
        flooder.close()
        # A second, well-behaved client still gets in: the server is fine.
        assert run(_status(ws)) == 101
    finally:
        ws.close()


def test_message_floods_big_messages_and_garbage_close_only_their_client():
    ws = WebSocketServer(
        "127.0.0.1", 0, WebSocketConfig(client_frames_per_s=50, client_burst_frames=100), fps=60.0
    )
    try:
        with Feeder(ws):
            flood = _raw_client(ws.port)
            message = ws_frame(0x1, b'{"type":"ping","id":1}')
            try:
                flood.sendall(message * 500)
            except OSError:
                pass
            big = _raw_client(ws.port)
            try:
                big.sendall(ws_frame(0x2, b"", length=10 << 20) + b"\0" * 65536)
            except OSError:
                pass
            garbage = _raw_client(ws.port)
            garbage.sendall(bytes(range(256)) * 4)
            assert _dropped(flood) and _dropped(big) and _dropped(garbage)
            for sock in (flood, big, garbage):
                sock.close()
            assert run(_status(ws)) == 101
    finally:
        ws.close()


def test_the_default_limits_leave_a_normal_client_alone(server):
    """A client pinging 20 times a second (well beyond any real use) is never cut off."""

    async def main():
        async with await connect(_url(server), proxy=None) as client:
            for i in range(60):
                await client.send(f'{{"type": "ping", "id": {i}}}')
                await client.ping()
                await asyncio.sleep(0.05)
            pongs = 0
            while pongs < 60:
                message = await asyncio.wait_for(client.recv(), 5)
                pongs += '"pong"' in message if isinstance(message, str) else b"pong" in message
            return pongs

    assert run(main()) == 60
    assert server.refused["cut off"] == 0


def test_raw_frames_helper_is_valid_websocket():
    frame = ws_frame(0x1, b"hi")
    assert frame[0] == 0x81 and frame[1] == 0x82 and len(frame) == 2 + 4 + 2
    assert struct.unpack("!Q", ws_frame(0x2, b"", length=10 << 20)[2:10])[0] == 10 << 20
