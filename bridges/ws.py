"""WebSocket stream of RigFrames for browsers, game engines and custom tools (`ws://HOST:PORT`).

Schema version 3 (`SCHEMA_VERSION`; 2 added the frames' `contact`, 3 the hello's `rest_rot`).
Messages are msgpack maps in binary frames, or JSON objects in text frames when the server is
configured with `format: json` or the client connects with `?format=json` (`?format=msgpack` forces
msgpack). Every message has a `type`.

Server -> client
    hello   sent first on every connection, and again whenever the rig changes (a frame always
            follows the hello that describes it):
              type: "hello", schema: 3, rig: str, bones: [str], parents: [int] (-1 = root),
              rest_pos: [[x, y, z]] (local offsets of the first frame, rig units),
              rest_rot: [[x, y, z, w]] (the rig's rest local rotations: identity for Unity/VRM
                humanoids, not for Unreal skeletons; a frame's `rot` includes them),
              units: str ("m" or "cm"), axes: {handedness: "left"|"right", up: "+y", forward: "+z"}
                (the rig's own: Unreal's are left, +z, +y),
              quat: "xyzw", fps: float, format: "msgpack"|"json"
    frame   one per node frame:
              type: "frame", index: int, time_s: float (media time),
              capture_s: float, sent_s: float (the node's monotonic clock, `time.perf_counter`,
                which on Linux is CLOCK_MONOTONIC and comparable across processes on one host),
              latency_ms: {stage: ms, ..., "total": ms} (capture -> end of each stage),
              tracking: bool, root: {pos: [x, y, z], rot: [x, y, z, w]},
              rot: [[x, y, z, w]] (local, per bone in hello order), pos: [[x, y, z]] (local),
              blend: {name: value},
              contact: [left, right] probabilities (0..1) that the avatar's feet are on the
                ground, for the engine's own foot IK; null when the motion method has no
                estimate (`one_euro`, `raw`) or nobody is tracked
            JSON numbers are rounded to 6 decimals; non-finite values become null.
    pong    reply to a ping: type: "pong", id: (echoed when the ping had one), sent_s: float

Client -> server (text = JSON, binary = msgpack; one small map per message)
    ping    {"type": "ping", "id": any}  -> pong
    Anything larger than `max_message_bytes` closes that client with 1009; a message that is not a
    JSON/msgpack map closes it with 1003; a map with a missing or unknown type closes it with 1008.

Access: the server binds to loopback by default. Binding elsewhere requires a token (the node reads it
from the LIVERIG_WS_TOKEN environment variable, `token_file` or `token`; see `resolve_token`),
passed by clients as `?token=...` or `Authorization: Bearer ...`. Everything about a client is checked
before the WebSocket upgrade completes (`_process_request`), so a refused client never gets a stream:
- a browser page's `Origin` must be a loopback page (http(s)://localhost, 127.0.0.0/8, [::1], any
  port) or in `allowed_origins`, else 403: without this any web site the user visits could read their
  live motion from the default loopback server. No Origin header means no browser (a native client,
  an engine, a script): allowed, as browsers always send one on WebSocket requests;
- a wrong or missing token: 401 (compared in constant time, never echoed);
- more than `max_clients` connections: 503; an unknown `format`: 400.
Each client has a bounded outbox (`outbox_frames`): a client that does not keep up loses its oldest
frames (counted per client), never stalling the node or the other clients. Every frame a client
sends, pings and other control frames included, is rate-limited (`client_frames_per_s` after a burst
of `client_burst_frames`; over it: closed with 1008), and bytes waiting to be written to it (pongs a
flooding client never reads) are capped at `max_client_buffer_bytes` (over it: the connection is
dropped), so one client's memory and CPU are bounded whatever it sends. A client cut off or
closed for misbehaving puts its address on probation (PROBATION_S): new connections from it get a
small burst and a few connections a second, the rest dropped as they are accepted, so a flooder
that reconnects gets no fresh burst; clients already connected keep their own budget.

Threading: the server runs its own asyncio loop in a daemon thread. `send()` only hands the frame
to a relay thread (bridges/relay.py: a queue put, no encoding, no wake-up of the server in the
caller's thread); the relay encodes each frame once per format in use and wakes the server's loop
once for everything handed over since it last ran. `send()` never waits. When the relay falls more
than `outbox_frames` frames behind, it encodes only the newest `outbox_frames` (`handoff_dropped`).
A frame's `sent_s` is the moment the node called `send()`, so the relay's time is in the delay.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hmac
import ipaddress
import json
import logging
import math
import os
import socket
import stat
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgpack
import numpy as np
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import MultipleValuesError
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame
from websockets.http11 import Request, Response

from liverig.bridges.errors import BridgeError
from liverig.bridges.relay import Relay
from liverig.bridges.serving import ServerThread
from liverig.core.config import WebSocketConfig
from liverig.core.types import Pose, RigFrame

SCHEMA_VERSION = 3
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
UNITY_AXES = {"handedness": "left", "up": "+y", "forward": "+z"}
FORMATS = ("msgpack", "json")

# Kernel send buffer per client. Left to autotune it grows to megabytes, and a lagging client would
# get frames seconds late instead of losing the oldest ones in its outbox (latest-frame-wins).
SEND_BUFFER_BYTES = 64 * 1024
WRITE_LIMIT = 32 * 1024  # bytes waiting in a client's transport before its frames queue in its outbox

TOKEN_ENV = "LIVERIG_WS_TOKEN"
TOKEN_FILE_MAX_BYTES = 4096

# A client's bytes are parsed in slices of about (its rate-limit tokens + 1) x the smallest frame (an
# empty masked one), within these bounds (see _GuardedConnection.data_received).
MIN_FRAME_BYTES = 6
FEED_MIN_BYTES = 256
FEED_MAX_BYTES = 4096

CLOSE_TOO_BIG = 1009
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008

# An address whose client was cut off or closed for misbehaving is "on probation" for PROBATION_S
# (renewed by every new offence): its new connections start with PROBATION_BURST_FRAMES tokens
# instead of a fresh `client_burst_frames`, and are let in at PROBATION_CONNECTIONS_PER_S (bursts of
# PROBATION_CONNECTIONS); the others are dropped as they are accepted, before a byte is parsed.
# Connections already open (a good client on the same address) keep their own budget.
PROBATION_S = 10.0
PROBATION_BURST_FRAMES = 4
PROBATION_CONNECTIONS_PER_S = 4.0
PROBATION_CONNECTIONS = 8
PROBATION_MAX_ADDRESSES = 4096  # addresses remembered at most (expired ones are forgotten first)
# Closes that put an address on probation besides a cut-off: not WebSocket (1002), bad UTF-8 (1007),
# too big (1009). A well-formed message we do not understand (1003, 1008: an app's bug) does not.
PROBATION_CLOSES = (1002, 1007, CLOSE_TOO_BIG)


def encode_message(message: dict[str, Any], fmt: str) -> bytes | str:
    """msgpack bytes (a binary frame) or a JSON str (a text frame)."""
    if fmt == "msgpack":
        return msgpack.packb(message)
    try:
        return json.dumps(message, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN/inf somewhere: JSON has no spelling for them
        return json.dumps(_finite_or_none(message), separators=(",", ":"), allow_nan=False)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def _floats(array: np.ndarray, fmt: str) -> list:
    return (np.round(array, 6) if fmt == "json" else np.asarray(array, dtype=np.float64)).tolist()


def hello_message(
    rig: RigFrame, *, fps: float, units: str, axes: dict[str, str], fmt: str, rest_rotations=None
) -> dict[str, Any]:
    """The `hello` message describing `rig`'s layout (see the module docstring); `rest_rotations`
    (B, 4) default to identity."""
    if rest_rotations is None:
        rest_rotations = np.tile([0.0, 0.0, 0.0, 1.0], (len(rig.bone_names), 1))
    if len(rest_rotations) != len(rig.bone_names):
        raise ValueError(f"{len(rest_rotations)} rest rotations for a rig of {len(rig.bone_names)} bones")
    return {
        "type": "hello",
        "schema": SCHEMA_VERSION,
        "rig": rig.rig,
        "bones": list(rig.bone_names),
        "parents": [int(p) for p in rig.parents],
        "rest_pos": _floats(rig.local_positions, fmt),
        "rest_rot": _floats(np.asarray(rest_rotations, dtype=np.float64), fmt),
        "units": units,
        "axes": dict(axes),
        "quat": "xyzw",
        "fps": float(fps),
        "format": fmt,
    }


def frame_message(rig: RigFrame, fmt: str, sent_s: float | None = None) -> dict[str, Any]:
    """The `frame` message for `rig` (see the module docstring)."""
    latency = rig.timing.stage_ms()
    latency["total"] = rig.timing.total_ms()
    digits = 6 if fmt == "json" else None
    return {
        "type": "frame",
        "index": int(rig.index),
        "time_s": float(rig.time_s),
        "capture_s": float(rig.timing.capture),
        "sent_s": float(time.perf_counter() if sent_s is None else sent_s),
        "latency_ms": {k: round(float(v), 3) for k, v in latency.items()},
        "tracking": bool(rig.tracking),
        "root": {"pos": _floats(rig.root_position, fmt), "rot": _floats(rig.root_rotation, fmt)},
        "rot": _floats(rig.local_rotations, fmt),
        "pos": _floats(rig.local_positions, fmt),
        "blend": {
            str(k): (round(float(v), digits) if digits else float(v)) for k, v in rig.blendshapes.items()
        },
        "contact": None if rig.foot_contact is None else _floats(rig.foot_contact, fmt),
    }


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address ("" and 0.0.0.0 are not)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as error:
        raise BridgeError(f"ws://{host}: cannot resolve the host: {error.strerror}") from None
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def resolve_token(spec_token: str | None, config: WebSocketConfig) -> str | None:
    """The token to require: `?token=` in the spec (visible in `ps`: kept for old command lines), else
    the LIVERIG_WS_TOKEN environment variable, else `config.token`, else the first line of
    `config.token_file` (a regular file of at most 4 KB). Errors never contain the token."""
    if spec_token:
        return spec_token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    if config.token:
        return config.token
    if config.token_file:
        where = f"bridges.websocket.token_file {config.token_file}"
        try:
            info = os.stat(config.token_file)
            if not stat.S_ISREG(info.st_mode) or info.st_size > TOKEN_FILE_MAX_BYTES:
                raise BridgeError(f"{where}: not a regular file of at most {TOKEN_FILE_MAX_BYTES} bytes")
            with open(config.token_file, "rb") as handle:
                text = handle.read(TOKEN_FILE_MAX_BYTES).decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not UTF-8"
            raise BridgeError(f"{where}: cannot read it: {reason}") from None
        token = (text.splitlines() or [""])[0].strip()
        if not token:
            raise BridgeError(f"{where}: the file holds no token")
        return token
    return None


def origin_allowed(origin: str, allowed: list[str] | tuple[str, ...] = ()) -> bool:
    """True for a loopback page (http/https on localhost, *.localhost, 127.0.0.0/8, [::1], any port) or
    an origin listed in `allowed` (compared without case and trailing slash)."""
    wanted = origin.strip().rstrip("/").lower()
    if wanted in {entry.strip().rstrip("/").lower() for entry in allowed}:
        return True
    try:
        parts = urlsplit(wanted)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _GuardedConnection(ServerConnection):
    """A connection whose client is rate-limited on every frame it sends (pings included) and whose
    unsent bytes are capped. A client over a limit is cut off here, in the protocol callback, before
    its frames reach the handler: nothing else (the loop, the other clients) waits on it."""

    frames_per_s = 50.0
    burst = 100
    max_buffer = 1 << 20
    addresses: _AddressBook | None = None  # set per server: probation across reconnections

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._address: str | None = None
        self.cut_off: str | None = None  # why the server cut this client off

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if peer else None
        if self.addresses is None or self._address is None:
            return
        burst = self.addresses.admit(self._address)
        if burst == 0.0:  # on probation and over its connection rate: dropped before any parsing
            self.cut_off = "reconnecting too often after being cut off"
            transport.abort()
        elif burst is not None:
            self._tokens = min(self._tokens, burst)

    def connection_lost(self, exc: Exception | None) -> None:
        close = self.protocol.close_sent
        misbehaved = self.cut_off is not None or (close is not None and close.code in PROBATION_CLOSES)
        if misbehaved and self.addresses is not None and self._address is not None:
            self.addresses.offence(self._address)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse what arrived a slice at a time, so the rate limit stops a flood after a few frames.

        websockets parses everything it is given before the frames reach `process_event` (where they
        are counted), and answers every ping as it parses it: one read of a ping flood is up to 256 KB,
        thousands of frames and pongs, 30-120 ms of the server thread (measured), while every other
        client's frames wait. A slice holds about as many frames as the client still has tokens for."""
        start = 0
        while start < len(data) and self.cut_off is None:
            size = min(FEED_MAX_BYTES, max(FEED_MIN_BYTES, (int(self._tokens) + 1) * MIN_FRAME_BYTES))
            self._feed(data[start : start + size] if start or size < len(data) else data)
            start += size

    def _feed(self, data: bytes) -> None:
        if self.cut_off is not None:
            return  # nothing more is parsed or answered for a client being dropped
        if self.protocol.close_sent is not None and self.protocol.close_rcvd is None:
            # We closed it (too big, bad message) and it keeps sending (the rest of a 10 MB message):
            # past a little slack, drop it instead of reading megabytes only to discard them.
            self._after_close = getattr(self, "_after_close", 0) + len(data)
            if self._after_close > 64 * 1024:
                self._cut("kept sending after being closed", abort=True)
                return
        super().data_received(data)
        transport = self.transport
        waiting = transport.get_write_buffer_size() if transport is not None else 0
        if self.cut_off is None and waiting > self.max_buffer:
            self._cut("more than max_client_buffer_bytes waiting (it does not read)", abort=True)

    def process_event(self, event: Any) -> None:
        if self.cut_off is not None:
            return
        if self.request is not None and isinstance(event, Frame):
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.frames_per_s)
            self._stamp = now
            if self._tokens < 1.0:
                self._cut(f"more than {self.frames_per_s:g} frames/s")
                return
            self._tokens -= 1.0
        super().process_event(event)

    def _cut(self, why: str, abort: bool = False) -> None:
        self.cut_off = why
        transport = self.transport
        if transport is None:
            return
        if not abort:
            try:  # say why (1008), then close; a client that does not read is dropped shortly after
                self.protocol.fail(CLOSE_POLICY, "rate limit exceeded")
                self.send_data()
            except Exception:  # noqa: BLE001 - it is being dropped either way
                abort = True
        if abort or transport.get_write_buffer_size() > self.max_buffer:
            transport.abort()
        else:
            transport.close()
            self.loop.call_later(2.0, transport.abort)


@dataclass
class _Probation:
    """One address's record (server thread only): until when it is on probation, and its
    connection tokens meanwhile."""

    until: float
    tokens: float
    stamp: float


class _AddressBook:
    """Per-address probation, shared by every connection of one server (see PROBATION_S): a client
    that is cut off and reconnects gets neither a fresh burst nor a fresh connection."""

    def __init__(self) -> None:
        self._entries: dict[str, _Probation] = {}
        self.refused = 0  # connections dropped as they were accepted

    def offence(self, address: str) -> None:
        now = time.monotonic()
        entry = self._entries.get(address)
        if entry is None:
            if len(self._entries) >= PROBATION_MAX_ADDRESSES:
                self._entries = {a: e for a, e in self._entries.items() if e.until > now}
                if len(self._entries) >= PROBATION_MAX_ADDRESSES:
                    self._entries.pop(next(iter(self._entries)))
            entry = self._entries[address] = _Probation(now, PROBATION_CONNECTIONS, now)
        entry.until = now + PROBATION_S

    def admit(self, address: str) -> float | None:
        """The burst a new connection from `address` starts with (None: the server's own), or
        0.0 when it must be dropped now."""
        entry = self._entries.get(address)
        if entry is None:
            return None
        now = time.monotonic()
        if now >= entry.until:
            del self._entries[address]
            return None
        entry.tokens = min(
            PROBATION_CONNECTIONS, entry.tokens + (now - entry.stamp) * PROBATION_CONNECTIONS_PER_S
        )
        entry.stamp = now
        if entry.tokens < 1.0:
            self.refused += 1
            return 0.0
        entry.tokens -= 1.0
        return float(PROBATION_BURST_FRAMES)


@dataclass
class ClientStats:
    """Counters for one connected client (a snapshot; the live object belongs to the server thread)."""

    id: int
    peer: str
    format: str
    frames_sent: int = 0
    frames_dropped: int = 0


@dataclass
class _Item:
    rig_version: int
    payloads: dict[str, bytes | str]


@dataclass
class _Handoff:
    """One frame on its way from `send()` to the relay thread."""

    rig_version: int
    rig: RigFrame  # a shallow copy with its own Timing: the node marks more stages after the outputs
    sent_s: float


@dataclass
class _Client:
    stats: ClientStats
    connection: ServerConnection
    outbox: collections.deque
    replies: collections.deque
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    rig_version: int = 0  # version of the last hello sent to this client
    busy: bool = True  # its writer task is sending (frames must queue behind it)


class WebSocketServer:
    """`ws://HOST:PORT`: serves the schema above to any number of clients.

    The constructor returns once the port is bound, or raises BridgeError (port in use, a
    non-loopback bind without a token, ...).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        config: WebSocketConfig | None = None,
        *,
        token: str | None = None,
        fps: float = 30.0,
        units: str = "m",
        axes: dict[str, str] | None = None,
        rest_rotations=None,
        start_timeout_s: float = 10.0,
        probation: bool = True,
    ) -> None:
        self.config = config or WebSocketConfig()
        self.host = host
        self.fps = fps
        self.units = units
        self.axes = dict(axes or UNITY_AXES)
        self.rest_rotations = rest_rotations
        self._token = resolve_token(token, self.config)
        self.refused = collections.Counter()  # why clients were refused or cut off, for the harden suite
        # Addresses on probation (server thread); off only for the harden suite's message fuzzer, which
        # reconnects after every close on purpose.
        self.addresses = _AddressBook() if probation else None
        self.name = f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"
        if not self._token and not is_loopback(host):
            raise BridgeError(
                f"{self.name}: binding to a non-loopback address needs a token "
                f"(set {TOKEN_ENV}, or bridges.websocket.token_file)"
            )
        self._clients: dict[int, _Client] = {}
        self._next_client_id = 1
        self._format_counts = {fmt: 0 for fmt in FORMATS}
        self._rig_key: tuple | None = None
        self._rig_version = 0
        # rig version -> the frame that introduced it; replaced, never changed in place, by send()
        # (the node's thread) as soon as the rig changes, so a client connecting then gets its hello
        self._hellos: dict[int, RigFrame] = {}
        self._hello_cache: dict[tuple[int, str], bytes | str] = {}
        self._closed = False
        self.frames_in = 0
        self.clients_total = 0
        self.dropped_total = 0  # frames lost to full outboxes, all clients, ever
        self.handoff_dropped = 0  # frames the relay skipped, more than outbox_frames behind
        self._relay: Relay[_Handoff] = Relay(self._encode_batch, name=f"relay {self.name}")

        self._serving = ServerThread(self.name, lambda: self._start(host, port), port, start_timeout_s)
        self._loop, self._thread, self.port = self._serving.loop, self._serving.thread, self._serving.port
        if port == 0:
            self.name = self.name.rsplit(":", 1)[0] + f":{self.port}"
        self._relay.start()

    # ---- the node's side (caller thread) -------------------------------------------------------

    def send(self, pose: Pose | None, rig: RigFrame) -> None:
        """Hand the frame to the relay thread, which encodes it: never waits, encodes nothing, wakes
        no other thread; nothing at all while nobody is connected. Keeps references to the frame's
        arrays, which the caller must not change afterwards (the retargeter makes new ones every
        frame)."""
        if self._closed:
            return
        self.frames_in += 1
        key = (rig.rig, tuple(rig.bone_names), tuple(rig.parents))
        if key != self._rig_key:
            self._rig_key = key
            self._rig_version += 1
            hello_rig = dataclasses.replace(  # a snapshot: the caller may reuse its arrays
                rig,
                bone_names=list(rig.bone_names),
                parents=list(rig.parents),
                local_positions=np.array(rig.local_positions, dtype=np.float64),
            )
            # A new dict, swapped in whole: the server thread reads it without a lock.
            version = self._rig_version
            self._hellos = {v: r for v, r in self._hellos.items() if v >= version - 1} | {version: hello_rig}
        if not self._clients:
            return  # a client connecting later gets the hello at once, then the next frame
        timing = dataclasses.replace(rig.timing, stages=dict(rig.timing.stages))
        frame = dataclasses.replace(rig, timing=timing)
        self._relay.put(_Handoff(self._rig_version, frame, time.perf_counter()))

    # ---- the relay thread ---------------------------------------------------------------------

    def _encode_batch(self, batch: list[_Handoff]) -> None:
        """Encode the newest `outbox_frames` frames (a client keeps no more) once per format in use,
        then wake the server's loop once for all of them."""
        keep = batch[-self.config.outbox_frames :]
        self.handoff_dropped += len(batch) - len(keep)
        formats = [fmt for fmt in FORMATS if self._format_counts[fmt] > 0]
        items = [
            _Item(h.rig_version, {f: encode_message(frame_message(h.rig, f, h.sent_s), f) for f in formats})
            for h in keep
        ]
        try:
            self._loop.call_soon_threadsafe(self._fan_out, items)
        except RuntimeError:  # loop already closed: the server is shutting down
            pass

    def clients(self) -> list[ClientStats]:
        """Per-client counters of the clients connected now."""
        return [ClientStats(**vars(client.stats)) for client in list(self._clients.values())]

    def close(self) -> None:
        """Close every connection (1001 going away), stop listening, join the thread."""
        if self._closed:
            return
        self._closed = True
        self._relay.close()  # what was sent before close() still goes out
        self._serving.stop()

    # ---- the server thread (bridges/serving.py runs it) ----------------------------------------

    async def _start(self, host: str, port: int) -> Server:
        limits = {
            "frames_per_s": self.config.client_frames_per_s,
            "burst": self.config.client_burst_frames,
            "max_buffer": self.config.max_client_buffer_bytes,
        }
        limits["addresses"] = self.addresses
        connection = type("LimitedConnection", (_GuardedConnection,), limits)
        return await serve(
            self._handle,
            host,
            port,
            create_connection=connection,
            process_request=self._process_request,
            compression=None,  # deflating every frame for every client costs more than it saves
            max_size=self.config.max_message_bytes,
            max_queue=4,  # client messages waiting to be read: small, they are small and rare
            close_timeout=2,
            write_limit=WRITE_LIMIT,
            logger=logging.getLogger(__name__),
        )

    def _fan_out(self, items: list[_Item]) -> None:
        for item in items:
            self._fan_out_one(item)

    def _fan_out_one(self, item: _Item) -> None:
        for client in self._clients.values():
            fmt = client.stats.format
            if fmt not in item.payloads:
                continue  # connected after this frame was encoded
            transport = client.connection.transport
            if (
                not client.busy
                and not client.outbox
                and client.rig_version == item.rig_version
                and transport is not None
                and transport.get_write_buffer_size() < WRITE_LIMIT
            ):
                # Fast path: the client keeps up, so write now instead of waking its writer task
                # (a third of the server's CPU with 32 clients). Order is kept: nothing is queued.
                # Counted first: the write lets go of the GIL, and the client may read the frame
                # (and someone our counters) before this thread runs again.
                client.stats.frames_sent += 1
                broadcast((client.connection,), item.payloads[fmt])
                continue
            if len(client.outbox) == client.outbox.maxlen:
                client.stats.frames_dropped += 1
                self.dropped_total += 1
            client.outbox.append(item)
            client.wake.set()

    def _hello(self, version: int, rig: RigFrame, fmt: str) -> bytes | str:
        key = (version, fmt)
        if key not in self._hello_cache:
            message = hello_message(
                rig,
                fps=self.fps,
                units=self.units,
                axes=self.axes,
                fmt=fmt,
                rest_rotations=self.rest_rotations,
            )
            self._hello_cache = {k: v for k, v in self._hello_cache.items() if k[0] >= version - 1}
            self._hello_cache[key] = encode_message(message, fmt)
        return self._hello_cache[key]

    def _authorized(self, request: Request, query: dict[str, list[str]]) -> bool:
        if not self._token:
            return True
        offered = query.get("token", [None])[0]
        header = request.headers.get("Authorization", "")
        if offered is None and header.lower().startswith("bearer "):
            offered = header[7:].strip()
        return offered is not None and hmac.compare_digest(offered.encode(), self._token.encode())

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the upgrade: Origin, token, room and format (see the module docstring). A refusal is
        a plain HTTP response; the client never gets a WebSocket."""
        try:
            origins = request.headers.get_all("Origin")
            query = parse_qs(urlsplit(request.path).query)
            authorized = self._authorized(request, query)
        except (MultipleValuesError, ValueError, UnicodeError):
            return self._refuse(connection, HTTPStatus.BAD_REQUEST, "malformed request")
        if len(origins) > 1 or (origins and not origin_allowed(origins[0], self.config.allowed_origins)):
            return self._refuse(
                connection, HTTPStatus.FORBIDDEN, "origin not allowed (bridges.websocket.allowed_origins)"
            )
        if not authorized:
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, "missing or invalid token")
        if len(self._clients) >= self.config.max_clients:
            return self._refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE, "too many clients")
        if query.get("format", [self.config.format])[0] not in FORMATS:
            return self._refuse(connection, HTTPStatus.BAD_REQUEST, "unknown format (msgpack or json)")
        return None

    def _refuse(self, connection: ServerConnection, status: HTTPStatus, why: str) -> Response:
        self.refused[status.value] += 1
        return connection.respond(status, why + "\n")

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        query = parse_qs(urlsplit(request.path).query) if request is not None else {}
        fmt = query.get("format", [self.config.format])[0]  # checked in _process_request
        sock = connection.transport.get_extra_info("socket") if connection.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        client_id = self._next_client_id
        self._next_client_id += 1
        peer = connection.remote_address
        stats = ClientStats(client_id, f"{peer[0]}:{peer[1]}" if peer else "?", fmt)
        client = _Client(
            stats,
            connection,
            collections.deque(maxlen=self.config.outbox_frames),
            collections.deque(maxlen=self.config.outbox_frames),
        )
        self._clients[client_id] = client
        self._format_counts[fmt] += 1
        self.clients_total += 1
        writer = asyncio.create_task(self._write_loop(client))
        try:
            await self._read_loop(client)
        finally:
            del self._clients[client_id]
            self._format_counts[fmt] -= 1
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _write_loop(self, client: _Client) -> None:
        connection, fmt = client.connection, client.stats.format
        try:
            hellos = self._hellos  # one look: send() may swap in a new dict at any moment
            if hellos:
                version = max(hellos)
                await connection.send(self._hello(version, hellos[version], fmt))
                client.rig_version = version
            while True:
                client.busy = False
                await client.wake.wait()
                client.busy = True
                client.wake.clear()
                while client.replies or client.outbox:
                    if client.replies:
                        await connection.send(client.replies.popleft())
                        continue
                    item = client.outbox.popleft()
                    if item.rig_version < client.rig_version:
                        continue  # encoded before the rig change this client was told about
                    if item.rig_version != client.rig_version:
                        rig = self._hellos.get(item.rig_version)
                        if rig is None:
                            continue  # from a rig two changes ago: its hello is gone
                        await connection.send(self._hello(item.rig_version, rig, fmt))
                        client.rig_version = item.rig_version
                    client.stats.frames_sent += 1  # before the write, as in _fan_out_one
                    await connection.send(item.payloads[fmt])
        except ConnectionClosed:
            pass

    async def _read_loop(self, client: _Client) -> None:
        connection = client.connection
        try:
            async for raw in connection:
                try:
                    message = json.loads(raw) if isinstance(raw, str) else msgpack.unpackb(raw)
                except Exception:  # noqa: BLE001 - any decoding failure means the same to us
                    kind = "JSON" if isinstance(raw, str) else "msgpack"
                    await connection.close(CLOSE_UNSUPPORTED, f"client message is not valid {kind}")
                    return
                if not isinstance(message, dict):
                    await connection.close(CLOSE_UNSUPPORTED, "client message must be a map/object")
                    return
                kind = message.get("type")
                if kind == "ping":
                    reply: dict[str, Any] = {"type": "pong", "sent_s": time.perf_counter()}
                    if "id" in message:
                        reply["id"] = message["id"]
                    try:
                        client.replies.append(encode_message(reply, client.stats.format))
                    except (TypeError, ValueError, OverflowError):
                        await connection.close(CLOSE_UNSUPPORTED, "ping id cannot be echoed")
                        return
                    client.wake.set()
                else:
                    await connection.close(CLOSE_POLICY, f"unknown message type {str(kind)[:40]!r}")
                    return
        except ConnectionClosed:
            pass  # too big (websockets closes with 1009 itself), or the client left
        finally:
            why = getattr(connection, "cut_off", None)
            if why is not None:
                self.refused["cut off"] += 1
