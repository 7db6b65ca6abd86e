"""The live page (`--out page://HOST:PORT`): the node serves a browser page that shows and steers it.

    page://HOST[:PORT][?token=T][&preview=on|off]      default 127.0.0.1:8766; open http://HOST:PORT/

One port serves both the page (plain HTTP GETs: `/`, `/app.js`, `/style.css`, the vendored three.js
and three-vrm under `/vendor/`, the avatar as `/avatar.vrm`: `retarget.rig` when it is a `.vrm`,
else liverig's sample mannequin, runtime/sample_avatar.py) and its live stream, a
WebSocket at `/stream`. The stream is the documented WebSocket stream (bridges/ws.py: the same
`hello` and `frame` messages, JSON text frames, made by the same encoder functions) plus a few
messages of the page's own:

Server -> page
    state     the live settings, the rigs to choose from, the outputs (index, name, on/off, clients),
              the recording, whether a preview is allowed, the avatar's URL (and a version that
              changes with the rig); sent on connect and after every accepted control
    stats     twice a second: fps, dropped frames, per-stage p50/p99 ms (the node's --stats), tracking
              state per part (body, and every part: face/hands/voice), what the scheduler runs (per
              part: rate Hz, ran or held this frame, share of frames run, detail level, cost), viewers,
              page lag in frames
    result    the answer to one control: {id, ok, message}
    (binary)  a JPEG of the camera image with the landmarks drawn, when the page asked for the preview
              and the preview is allowed (`page.preview: true` or `?preview=on`; off by default)
Page -> server (JSON text)
    control   {"type": "control", "id": any, "set": {"motion.method": "one_euro", ...}}
              {"type": "control", "id": any, "action": "output", "index": 1, "enabled": false}
              {"type": "control", "id": any, "action": "record", "name": "take.bvh"} / {"action": "stop"}
              {"type": "control", "id": any, "action": "save"[, "name": "mine.yaml"][, "overwrite": true]}
                  (to `page.save_to`, or that file name in its folder; an existing file only with
                  "overwrite": true)
    preview   {"type": "preview", "on": true|false}
    rendered  {"type": "rendered", "index": N}: the frame the page has drawn (page-to-screen lag)
    ping      {"type": "ping", "id": any} -> pong

Access: loopback by default; binding elsewhere needs a token (`?token=` or `page.token`), which the
stream (data and controls) then requires: open the page as http://HOST:PORT/?token=T. Bound to
loopback, requests must name a loopback host (no DNS rebinding), and a browser's stream connection
must come from the page's own origin (no other web site can steer the node).

Threading: an asyncio loop in a daemon thread serves everything. The node's loop thread only hands
each frame over (`send`, encoded once for all viewers; nothing when no page is open) and, between
frames, runs the controls' small `apply` steps (runtime/page_control.py); the slow work (loading a
motion model, opening a recording, JPEG encoding) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hmac
import json
import logging
import mimetypes
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from liverig.bridges.errors import BridgeError, SpecError
from liverig.bridges.outputs import redact_refusal, url_complaint
from liverig.bridges.relay import Relay
from liverig.bridges.serving import ServerThread
from liverig.bridges.ws import UNITY_AXES, encode_message, frame_message, hello_message, is_loopback
from liverig.core.config import NodeConfig
from liverig.core.types import Timing
from liverig.runtime.page_control import (
    ControlError,
    output_switch,
    recording_start,
    recording_stop,
    run_applies,
    save_config,
    save_target,
    settings_plan,
)

PAGE_DIR = Path(__file__).resolve().parent / "page"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
STATIC = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
STATS_EVERY_S = 0.5
APPLY_TIMEOUT_S = 5.0  # a control the loop has not applied by then is withdrawn (the node has stopped)
MAX_MESSAGE_BYTES = 4096
LAG_WINDOW = 600
SETTINGS = (
    "motion.method",
    "motion.weights",
    "motion.one_euro.min_cutoff",
    "motion.one_euro.beta",
    "motion.one_euro.d_cutoff",
    "motion.deadband.enabled",
    "motion.deadband.inner_m",
    "motion.deadband.outer_m",
    "retarget.mirror",
    "retarget.move_root",
    "retarget.rig",
    "perception.face.enabled",
    "perception.hands.enabled",
)


@dataclass
class PageSpec:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    preview: bool | None = None  # None: page.preview from the config


def parse_page_spec(spec: str) -> PageSpec:
    """Check the spelling of `page://HOST[:PORT][?token=T][&preview=on|off]` (no sockets). A refusal
    never shows the token (as for --out ws://; the atheris fuzzer found them shown in full here)."""
    try:
        return _parse_page_spec(spec)
    except SpecError as error:
        raise SpecError(redact_refusal(spec, str(error))) from None


def _parse_page_spec(spec: str) -> PageSpec:
    if not spec.lower().startswith("page://"):
        raise SpecError(f"--out {spec!r}: expected page://HOST:PORT")
    try:
        parts = urlsplit(spec)
        port = parts.port
    except ValueError as error:
        raise SpecError(f"--out {spec!r}: {url_complaint(error)}") from None
    if parts.path not in ("", "/") or parts.fragment or parts.username or parts.password:
        raise SpecError(f"--out {spec!r}: unexpected parts after HOST:PORT")
    if port is None and parts.netloc.endswith(":"):
        raise SpecError(f"--out {spec!r}: empty port")
    result = PageSpec(parts.hostname or DEFAULT_HOST, DEFAULT_PORT if port is None else port)
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True) if parts.query else {}
    except ValueError:
        raise SpecError(f"--out {spec!r}: malformed query (expected KEY=VALUE&...)") from None
    for key, values in query.items():
        if key not in ("token", "preview"):
            raise SpecError(f"--out {spec!r}: unknown option {key!r} (allowed: token, preview)")
        if len(values) != 1 or not values[0]:
            raise SpecError(f"--out {spec!r}: option {key!r} needs exactly one value")
        if key == "token":
            result.token = values[0]
        elif values[0] in ("on", "true", "1"):
            result.preview = True
        elif values[0] in ("off", "false", "0"):
            result.preview = False
        else:
            raise SpecError(f"--out {spec!r}: preview must be on or off")
    return result


@dataclass
class _Viewer:
    connection: ServerConnection
    misc: collections.deque = field(default_factory=collections.deque)  # hello, state, results, stats
    frame: str | None = None  # the newest frame not yet sent (latest wins)
    preview: bytes | None = None
    wants_preview: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    frames_sent: int = 0
    frames_dropped: int = 0


class _Tap:
    """A part (runtime/parts.py) that lets the page see what the outputs do not carry: the camera
    image, the landmarks and which parts tracked this frame. It only keeps references (no copies)."""

    name = "page"

    def __init__(self, server: PageServer) -> None:
        self.server = server

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __call__(self, frame, observation, pose) -> None:
        server = self.server
        server._observed = (frame.index, frame.image, observation)
        server._tracking = (bool(observation.present), len(pose.expressions), len(pose.bone_rotations))
        # What each part saw the last frame it ran (a part the scheduler held writes nothing new, or
        # marks its entry `ran = False`): references only, described in the server thread.
        for name, value in observation.extras.items():
            if getattr(value, "ran", True):
                server._seen[name] = (frame.index, value)


class PageServer:
    """An output (`send`/`close`) that also serves the page; `attach(node)` wires it into the node."""

    def __init__(
        self,
        spec: PageSpec,
        config: NodeConfig,
        *,
        fps: float = 30.0,
        units: str = "m",
        axes: dict[str, str] | None = None,
        rest_rotations=None,
        start_timeout_s: float = 10.0,
    ) -> None:
        from liverig.runtime.page_assets import import_map, vendor_root

        self.config = config  # the settings as last accepted (the loop applies them between frames)
        self.page_config = config.page
        self.host = spec.host
        self.fps, self.units, self.axes = fps, units, dict(axes or UNITY_AXES)
        self.rest_rotations = rest_rotations
        self._token = spec.token if spec.token is not None else config.page.token
        self.preview_allowed = spec.preview if spec.preview is not None else config.page.preview
        self.name = f"page http://{'[' + spec.host + ']' if ':' in spec.host else spec.host}:{spec.port}/"
        if not self._token and not is_loopback(spec.host):
            raise BridgeError(
                f"{self.name}: serving a non-loopback address needs a token "
                "(page://HOST:PORT?token=... or page.token)"
            )
        self._vendor = vendor_root()
        if self.preview_allowed:  # imported now, not mid-run: an import holds the loop thread up
            import cv2  # noqa: F401
            from mediapipe.tasks.python.vision import PoseLandmarksConnections  # noqa: F401
        html = (PAGE_DIR / "index.html").read_text()
        self._static = {
            path: (
                html.replace("<!--IMPORTMAP-->", json.dumps(import_map()))
                if file == "index.html"
                else (PAGE_DIR / file).read_text()
            ).encode()
            for path, file in STATIC.items()
        }
        self._avatar_version = 0
        self._set_avatar(config.retarget.rig)
        self._node = None
        self._viewers: dict[int, _Viewer] = {}
        self._next_id = 1
        self._rig_key: tuple | None = None
        self._hello: str | None = None
        self._latest_index = -1
        self._observed: tuple | None = None  # (frame index, image, observation), set by the tap
        self._tracking: tuple | None = None
        self._seen: dict[str, tuple[int, Any]] = {}  # part -> (frame index, its extras) when it last ran
        self._lags: collections.deque = collections.deque(maxlen=LAG_WINDOW)
        self._applies: queue.SimpleQueue = queue.SimpleQueue()
        self._recording = None  # (name, output) started from the page
        self._control_lock = asyncio.Lock()  # (bound to the server's loop when first used)
        self._closed = False
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="page worker")
        # (rig frame, new rig?) from the node's loop to a thread that encodes (bridges/relay.py)
        self._relay: Relay[tuple] = Relay(self._deliver, "page relay")
        self._serving = ServerThread(
            self.name, lambda: self._start(spec.host, spec.port), spec.port, start_timeout_s, self._background
        )
        self._loop, self._thread, self.port = self._serving.loop, self._serving.thread, self._serving.port
        self._relay.start()
        self.name = self.name.rsplit(":", 1)[0] + f":{self.port}/"

    def _set_avatar(self, rig_setting: str) -> None:
        """The avatar the page shows: `retarget.rig` when it is a .vrm file, else liverig's mannequin."""
        rig = Path(rig_setting)
        if rig.suffix.lower() == ".vrm" and rig.is_file():
            avatar, name = rig, rig.name
        else:  # liverig's own mannequin (runtime/sample_avatar.py): no registry ships a VRM we may
            from liverig.runtime.sample_avatar import sample_avatar_path

            avatar, name = sample_avatar_path(), "liverig mannequin (sample)"
        if avatar != getattr(self, "_avatar", None):  # the page loads it again when this changes
            self._avatar, self._avatar_name = avatar, name
            self._avatar_version += 1

    # ---- the node's side (loop thread) ---------------------------------------------------------

    def attach(self, node) -> None:
        """Wire into the node: the tap part, and the between-frames step that applies controls."""
        self._node = node
        node.parts.append(_Tap(self))
        node.between_frames.append(self._between_frames)

    def _between_frames(self, node) -> None:
        if self._applies.empty():
            return
        applies = []
        while not self._applies.empty():
            applies.append(self._applies.get_nowait())
        run_applies(node, applies)

    def send(self, pose, rig) -> None:
        """Hand the frame to the page's relay thread, which encodes it once for every viewer; nothing
        when no page is open. Never waits; costs the loop a snapshot of the frame's timings."""
        if self._closed:
            return
        self._latest_index = rig.index
        key = (rig.rig, tuple(rig.bone_names))
        new_rig = key != self._rig_key
        self._rig_key = key
        if self._viewers or new_rig:
            # The loop marks more stages on this Timing after the outputs: the frame keeps its own.
            timing = Timing(rig.timing.capture, dict(rig.timing.stages))
            self._relay.put((dataclasses.replace(rig, timing=timing), new_rig))

    def _deliver(self, items: list[tuple]) -> None:
        """In the relay thread: encode the newest frame (and a hello if the rig changed among the
        items) once for every viewer and hand it to the server's loop. Off the node's loop thread
        because waking an asyncio loop lets the server thread run first (bridges/relay.py)."""
        rig = items[-1][0]  # behind: only the newest frame (and any hello) matters
        hello = None
        if any(new_rig for _, new_rig in items):
            message = hello_message(
                rig,
                fps=self.fps,
                units=self.units,
                axes=self.axes,
                fmt="json",
                rest_rotations=self.rest_rotations,
            )
            hello = encode_message(message, "json")
        frame = encode_message(frame_message(rig, "json"), "json") if self._viewers else None
        try:
            self._loop.call_soon_threadsafe(self._fan_out, frame, hello)
        except RuntimeError:  # the loop is closed: shutting down
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._relay.close()
        self._serving.stop()
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self._recording is not None:
            self._recording[1].close()

    def viewers(self) -> int:
        return len(self._viewers)

    # ---- the server thread (bridges/serving.py runs it) -----------------------------------------

    def _background(self, loop: asyncio.AbstractEventLoop) -> None:
        """The page's periodic pushes, started once it listens (cancelled when the loop stops)."""
        loop.create_task(self._stats_task())
        loop.create_task(self._preview_task())

    async def _start(self, host: str, port: int) -> Server:
        return await serve(
            self._handle,
            host,
            port,
            process_request=self._http,
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            close_timeout=2,
            logger=logging.getLogger(__name__),
        )

    def _fan_out(self, frame: str | None, hello: str | None) -> None:
        if hello is not None:
            self._hello = hello
        for viewer in self._viewers.values():
            if hello is not None:
                viewer.frame = None
                viewer.misc.append(hello)
            if frame is not None:
                if viewer.frame is not None:
                    viewer.frames_dropped += 1
                viewer.frame = frame
            viewer.wake.set()

    def _broadcast(self, message: dict[str, Any]) -> None:
        text = encode_message(message, "json")
        for viewer in self._viewers.values():
            viewer.misc.append(text)
            viewer.wake.set()

    # -- HTTP: the page's files; the stream's checks before the WebSocket upgrade

    def _authorized(self, request: Request) -> bool:
        if not self._token:
            return True
        offered = parse_qs(urlsplit(request.path).query).get("token", [None])[0]
        header = request.headers.get("Authorization", "")
        if offered is None and header.lower().startswith("bearer "):
            offered = header[7:].strip()
        return offered is not None and hmac.compare_digest(offered.encode(), self._token.encode())

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        host = request.headers.get("Host", "")
        if is_loopback(self.host) and not _loopback_host(host):
            return _response(403, b"forbidden: this page answers to loopback names only\n")
        if path == "/stream":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != host:
                return _response(403, b"forbidden: the stream serves the page's own origin only\n")
            if not self._authorized(request):
                return _response(401, b"missing or invalid token\n")
            return None  # on to the WebSocket handshake
        if request.headers.get("Upgrade"):
            return _response(404, b"the stream is at /stream\n")
        if path in self._static:
            return _response(200, self._static[path], _content_type(STATIC[path]))
        if path == "/avatar.vrm":
            if not self._authorized(request):
                return _response(401, b"missing or invalid token\n")
            return _response(200, self._avatar.read_bytes(), "model/gltf-binary")
        if path.startswith("/vendor/"):
            file = (self._vendor / path.removeprefix("/vendor/")).resolve()
            if file.is_relative_to(self._vendor.resolve()) and file.is_file():
                return _response(200, file.read_bytes(), _content_type(file.name), cache=True)
        return _response(404, b"not found\n")

    # -- the stream

    async def _handle(self, connection: ServerConnection) -> None:
        viewer_id = self._next_id
        self._next_id += 1
        viewer = _Viewer(connection)
        if self._hello is not None:
            viewer.misc.append(self._hello)
        viewer.misc.append(encode_message(self._state(), "json"))
        self._viewers[viewer_id] = viewer
        writer = asyncio.create_task(self._write_loop(viewer))
        viewer.wake.set()
        try:
            await self._read_loop(viewer)
        finally:
            del self._viewers[viewer_id]
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _write_loop(self, viewer: _Viewer) -> None:
        connection = viewer.connection
        try:
            while True:
                await viewer.wake.wait()
                viewer.wake.clear()
                while viewer.misc or viewer.frame is not None or viewer.preview is not None:
                    if viewer.misc:
                        await connection.send(viewer.misc.popleft())
                    elif viewer.frame is not None:
                        payload, viewer.frame = viewer.frame, None
                        await connection.send(payload)
                        viewer.frames_sent += 1
                    else:
                        payload, viewer.preview = viewer.preview, None
                        await connection.send(payload)
        except ConnectionClosed:
            pass

    async def _read_loop(self, viewer: _Viewer) -> None:
        try:
            async for raw in viewer.connection:
                try:
                    message = json.loads(raw)
                except (TypeError, ValueError):
                    message = None
                if not isinstance(message, dict):
                    self._reply(viewer, {"type": "result", "ok": False, "message": "not a JSON object"})
                    continue
                kind = message.get("type")
                if kind == "rendered":
                    index = message.get("index")
                    if isinstance(index, int) and not isinstance(index, bool):
                        self._lags.append(self._latest_index - index)
                elif kind == "ping":
                    self._reply(
                        viewer, {"type": "pong", "id": message.get("id"), "sent_s": time.perf_counter()}
                    )
                elif kind == "preview":
                    on = message.get("on") is True
                    if on and not self.preview_allowed:
                        self._reply(
                            viewer,
                            {
                                "type": "result",
                                "id": message.get("id"),
                                "ok": False,
                                "message": "the camera preview is off (page.preview: true, "
                                "or page://...?preview=on, turns it on)",
                            },
                        )
                    viewer.wants_preview = on and self.preview_allowed
                elif kind == "control":
                    # One control at a time, whoever sent it: each is checked against the settings
                    # the previous one left (two viewers' changes never undo each other).
                    async with self._control_lock:
                        await self._control(viewer, message)
                else:
                    self._reply(
                        viewer,
                        {
                            "type": "result",
                            "id": message.get("id"),
                            "ok": False,
                            "message": f"unknown message type {str(kind)[:40]!r}",
                        },
                    )
        except ConnectionClosed:
            pass

    def _reply(self, viewer: _Viewer, message: dict[str, Any]) -> None:
        viewer.misc.append(encode_message(message, "json"))
        viewer.wake.set()

    # -- controls

    async def _control(self, viewer: _Viewer, message: dict[str, Any]) -> None:
        try:
            text = await self._apply_control(message)
            reply = {"type": "result", "id": message.get("id"), "ok": True, "message": text}
        except ControlError as error:
            reply = {"type": "result", "id": message.get("id"), "ok": False, "message": str(error)}
        self._reply(viewer, reply)
        self._broadcast(self._state())

    async def _apply_control(self, message: dict[str, Any]) -> str:
        if self._node is None:
            raise ControlError("the node is not running")
        loop = asyncio.get_running_loop()
        action = message.get("action", "set")
        if action == "set":
            plan = await loop.run_in_executor(
                self._worker, settings_plan, self.config, message.get("set"), self._node
            )
            try:
                await self._applied(plan.apply)
            except ControlError:
                await loop.run_in_executor(self._worker, plan.discard)
                raise
            await loop.run_in_executor(self._worker, plan.finish)  # close what it took out
            previous, self.config = self.config, plan.config
            if plan.config.retarget.rig != previous.retarget.rig:
                self._set_avatar(plan.config.retarget.rig)
            text = "applied: " + ", ".join(f"{k} = {v}" for k, v in message["set"].items())
            return "; ".join([text, *(note.removeprefix("liverig: ") for note in plan.notes)])
        if action == "output":
            await self._applied(output_switch(message.get("index"), message.get("enabled"), self))
            return f"output {message['index']} {'on' if message['enabled'] else 'off'}"
        if action == "record":
            if self._recording is not None:
                raise ControlError(f"already recording {self._recording[0]}; stop it first")
            folder = Path(self.page_config.record_dir)
            output, apply = await loop.run_in_executor(
                self._worker, recording_start, message.get("name"), folder, self._node
            )
            try:
                await self._applied(apply)
            except ControlError:
                output.close()
                raise
            self._recording = (str(folder / message["name"]), output)
            return f"recording {self._recording[0]}"
        if action == "stop":
            if self._recording is None:
                raise ControlError("nothing is being recorded")
            name, output = self._recording
            await self._applied(recording_stop(output))
            self._recording = None
            await loop.run_in_executor(self._worker, output.close)
            return f"recorded {name}"
        if action == "save":
            overwrite = message.get("overwrite", False)
            path = save_target(Path(self.page_config.save_to), message.get("name"), overwrite)
            await loop.run_in_executor(self._worker, save_config, self.config, path, overwrite)
            return f"settings saved to {path} (run_node.py --config {path})"
        raise ControlError(f"unknown action {str(action)[:40]!r} (set, output, record, stop, save)")

    async def _applied(self, apply) -> None:
        """Queue `apply` for the node's loop thread and wait until it ran between two frames."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        withdrawn = threading.Event()

        def guarded(node) -> None:
            if withdrawn.is_set():
                raise ControlError("withdrawn")
            apply(node)

        def report(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(error))

        self._applies.put((guarded, report))
        try:
            error = await asyncio.wait_for(done, APPLY_TIMEOUT_S)
        except TimeoutError:
            withdrawn.set()
            raise ControlError(
                "the node's loop is not running (the source ended?); nothing changed"
            ) from None
        if isinstance(error, ControlError):
            raise error
        if error is not None:
            raise ControlError(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")

    def _state(self) -> dict[str, Any]:
        from liverig.runtime.rigs import available_rigs

        config = self.config
        settings = {}
        for key in SETTINGS:
            value: Any = config
            for part in key.split("."):
                value = getattr(value, part)
            settings[key] = value
        return {
            "type": "state",
            "settings": settings,
            "methods": ["stcnn", "one_euro", "raw"],
            "rigs": available_rigs(),
            "images": self._node is not None and self._node.sees_images,
            "outputs": self._outputs(),
            "recording": None if self._recording is None else self._recording[0],
            "record_dir": self.page_config.record_dir,
            "save_to": self.page_config.save_to,
            "preview_allowed": bool(self.preview_allowed),
            "avatar": "/avatar.vrm",
            "avatar_name": self._avatar_name,
            "avatar_version": self._avatar_version,
        }

    def _outputs(self) -> list[dict[str, Any]]:
        from liverig.runtime.page_control import Paused

        rows = []
        for index, output in enumerate(list(self._node.outputs) if self._node is not None else []):
            inner = output.output if isinstance(output, Paused) else output
            clients = None
            if inner is self:
                clients = len(self._viewers)
            elif hasattr(inner, "clients"):
                clients = len(inner.clients())
            rows.append(
                {
                    "index": index,
                    "name": getattr(inner, "name", type(inner).__name__),
                    "enabled": not isinstance(output, Paused),
                    "clients": clients,
                    "page": inner is self,
                }
            )
        return rows

    # -- stats and preview

    def stats_message(self) -> dict[str, Any]:
        """The `stats` message (built in the server thread from the node's own Stats)."""
        node = self._node
        stages: dict[str, list[float]] = {}
        fps = dropped = frames = 0
        if node is not None:
            for _ in range(3):  # the loop thread may add a stage while we copy
                try:
                    samples = node.stats.samples()
                    break
                except RuntimeError:
                    samples = {}
            stages = {
                k: [round(float(np.percentile(v, 50)), 3), round(float(np.percentile(v, 99)), 3)]
                for k, v in samples.items()
                if v
            }
            fps, dropped, frames = node.stats.fps(), node.stats.dropped, node.stats.frames
        tracking: dict[str, Any] = {}
        if self._tracking is not None:
            body, expressions, bones = self._tracking
            tracking = {"body": body, "expressions": expressions, "bones": bones}
        parts = self._parts(node)
        for name, row in parts.items():
            tracking[name] = row["tracking"]
        lags = list(self._lags)
        lag = None
        if lags:
            lag = {
                "p50": float(np.percentile(lags, 50)),
                "p99": float(np.percentile(lags, 99)),
                "max": int(max(lags)),
                "n": len(lags),
            }
        return {
            "type": "stats",
            "frames": frames,
            "index": self._latest_index,
            "fps": round(float(fps), 2),
            "dropped": dropped,
            "stages_ms": stages,
            "tracking": tracking,
            "parts": parts,
            "scheduler": self._scheduler(node),
            "outputs": self._outputs(),
            "viewers": [{"sent": v.frames_sent, "dropped": v.frames_dropped} for v in self._viewers.values()],
            "page_lag_frames": lag,
        }

    def _parts(self, node) -> dict[str, dict[str, Any]]:
        """Per part the node runs (not the page's tap): what it saw the last time it ran, how many
        frames ago that was, and what the scheduler did with it (rate Hz, this frame ran or held,
        share of recent frames run, detail level, learned cost)."""
        if node is None:
            return {}
        scheduler = node.scheduler
        rates = _retrying(scheduler.rates) if scheduler is not None else {}
        summary = _retrying(scheduler.summary) if scheduler is not None else {}
        choice = dict(scheduler.last_choice) if scheduler is not None else {}
        seen = _retrying(lambda: dict(self._seen))
        rows = {}
        for part in list(node.parts):
            if part.name == "page":
                continue
            index, value = seen.get(part.name, (None, None))
            tracking, what = describe_extra(value)
            row: dict[str, Any] = {
                "tracking": tracking,
                "what": what,
                "frames_ago": None if index is None else max(self._latest_index - index, 0),
                "scheduled": scheduler is not None,
                "rate_hz": None,
                "ran": None,
                "ran_share": None,
                "detail": None,
                "cost_ms": None,
            }
            if scheduler is not None and part.name in summary:
                info = summary[part.name]
                level = int(info.get("detail", 0))
                costs = {int(k.rsplit("_", 1)[1]): v for k, v in info.items() if k.startswith("cost_ms_")}
                # (a level chosen this instant has no cost yet: the nearest level's)
                near = min(costs, key=lambda known: abs(known - level), default=None)
                cost = None if near is None else costs[near]
                row.update(
                    rate_hz=round(float(rates.get(part.name, 0.0)), 2),
                    ran=(choice[part.name] is not None) if part.name in choice else None,
                    ran_share=round(float(info["ran_share"]), 3),
                    detail=level,
                    cost_ms=None if cost is None else round(float(cost), 2),
                )
            rows[part.name] = row
        return rows

    def _scheduler(self, node) -> dict[str, Any] | None:
        """The budget scheduler's frame budget, or None when every part runs every frame."""
        scheduler = node.scheduler if node is not None else None
        if scheduler is None:
            return None
        return {
            "budget_ms": round(float(scheduler.budget_ms), 2),
            "period_ms": round(float(scheduler.period_ms), 2),
        }

    async def _stats_task(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            if self._viewers:
                self._broadcast(self.stats_message())

    async def _preview_task(self) -> None:
        loop = asyncio.get_running_loop()
        last = None
        while True:
            await asyncio.sleep(1.0 / self.page_config.preview_fps)
            wanting = [v for v in self._viewers.values() if v.wants_preview]
            observed = self._observed
            if not wanting or observed is None or observed[0] == last:
                continue
            last = observed[0]
            jpeg = await loop.run_in_executor(
                self._worker, render_preview, observed[1], observed[2], self.page_config.preview_width
            )
            for viewer in wanting:
                viewer.preview = jpeg
                viewer.wake.set()


def _retrying(read, tries: int = 5):
    """`read()` of something the loop thread changes meanwhile (a dict or deque that grows while it is
    copied raises RuntimeError): tried again; empty if it never settles."""
    for _ in range(tries):
        try:
            return read()
        except RuntimeError:
            continue
    return {}


def describe_extra(value: Any) -> tuple[bool | None, str]:
    """(tracking?, a few words) for what a part wrote in `observation.extras`: the face found or not,
    which hands were seen, whether the voice hears speech; None: the part has not run yet or tracks
    nothing (the audio-only avatar's idle motion)."""
    if value is None:
        return None, "not run yet"
    if hasattr(value, "found"):  # runtime/face.py FaceObservation
        return bool(value.found), "face found" if value.found else "no face"
    if hasattr(value, "speaking") and hasattr(value, "present"):  # runtime/voice.py VoiceState
        if not value.present:
            return False, "no audio"
        return True, f"speaking ({value.viseme})" if value.speaking else "quiet"
    if isinstance(value, dict) and all(hasattr(hand, "side") for hand in value.values()):  # hands
        sides = sorted(value)
        return bool(sides), (" + ".join(side.lower() for side in sides) + " hand") if sides else "no hands"
    if isinstance(value, dict):  # runtime/alive.py: idle motion, nothing tracked
        return None, "idle motion"
    return None, type(value).__name__


def render_preview(image: np.ndarray | None, observation, width: int) -> bytes:
    """A small JPEG of the camera image (black for a landmark replay) with the landmarks drawn."""
    import cv2
    from mediapipe.tasks.python.vision import PoseLandmarksConnections

    w, h = observation.image_size if observation.image_size[0] else (640, 480)
    height = max(1, round(h * width / w))
    if image is None:
        small = np.zeros((height, width, 3), np.uint8)
    else:
        small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if observation.present and observation.image_landmarks is not None:
        points = observation.image_landmarks[:, :2] * (width, height)
        seen = observation.visibility if observation.visibility is not None else np.ones(len(points))
        if np.all(np.isfinite(points)):
            pixels = np.round(points).astype(int)
            for c in PoseLandmarksConnections.POSE_LANDMARKS:
                if seen[c.start] > 0.5 and seen[c.end] > 0.5:
                    cv2.line(
                        small, tuple(pixels[c.start]), tuple(pixels[c.end]), (80, 220, 80), 2, cv2.LINE_AA
                    )
            for point, visible in zip(pixels, seen, strict=True):
                if visible > 0.5:
                    cv2.circle(small, tuple(point), 3, (40, 40, 240), -1, cv2.LINE_AA)
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return jpeg.tobytes()


def _loopback_host(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    return name == "localhost" or name.endswith(".localhost") or _is_loopback_ip(name)


def _is_loopback_ip(name: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _content_type(name: str) -> str:
    if name.endswith(".js"):
        return "text/javascript; charset=utf-8"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _response(
    status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", cache: bool = False
) -> Response:
    reasons = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "max-age=3600" if cache else "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Connection", "close"),
        ]
    )
    return Response(status, reasons.get(status, "Error"), headers, body)
