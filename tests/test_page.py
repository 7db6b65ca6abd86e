"""The live page's server without a browser: spec, access checks, the stream and the controls, through a
real node (a landmark replay) and a real websockets client."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bridges.errors import SpecError
from runtime.config import NodeConfig, load_config
from runtime.node import open_node, run_loop
from runtime.page import parse_page_spec
from runtime.page_control import ControlError, changed_config, save_config
from tests.node_support import run_node
from tests.page_support import long_replay


def test_page_spec():
    spec = parse_page_spec("page://127.0.0.1")
    assert (spec.host, spec.port, spec.token, spec.preview) == ("127.0.0.1", 8766, None, None)
    spec = parse_page_spec("page://0.0.0.0:9000?token=s3cret&preview=on")
    assert (spec.host, spec.port, spec.token, spec.preview) == ("0.0.0.0", 9000, "s3cret", True)
    for bad, reason in [
        ("page://127.0.0.1:8766?colour=red", "unknown option 'colour'"),
        ("page://127.0.0.1:8766?preview=maybe", "preview must be on or off"),
        ("page://127.0.0.1:8766/x", "unexpected parts"),
        ("page://127.0.0.1:", "empty port"),
        ("page://127.0.0.1:99999", "out of range"),
    ]:
        with pytest.raises(SpecError, match=reason):
            parse_page_spec(bad)


def test_bad_page_specs_are_one_line_errors(tmp_path):
    replay = long_replay(tmp_path, 1)
    result = run_node("--source", f"replay:{replay}", "--out", "page://127.0.0.1:8766?colour=red")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "run_node.py: error: --out 'page://127.0.0.1:8766?colour=red': unknown option 'colour' "
        "(allowed: token, preview)"
    ]
    result = run_node("--source", f"replay:{replay}", "--out", "page://0.0.0.0:0")
    assert result.returncode == 2
    assert "needs a token" in result.stderr and "Traceback" not in result.stderr


def test_controls_are_validated_like_the_config():
    config = NodeConfig()
    changed = changed_config(config, {"motion.method": "one_euro", "motion.one_euro.min_cutoff": 1.5})
    assert changed.motion.method == "one_euro" and changed.motion.one_euro.min_cutoff == 1.5
    assert config.motion.method == "stcnn"  # the running config is untouched
    for changes, reason in [
        (
            {"motion.one_euro.min_cutoff": -1},
            r"key 'motion.one_euro.min_cutoff': Input should be greater than 0",
        ),
        ({"motion.method": "magic"}, r"key 'motion.method': Input should be 'stcnn', 'one_euro' or 'raw'"),
        ({"motion.deadband.inner_m": 0.5}, r"outer_m \(0.04\) must be larger than inner_m"),
        ({"motion.nonsense": 1}, r"key 'motion.nonsense': no such config key"),
        ({"source.fps": 60}, r"key 'source.fps' cannot be changed while the node runs"),
        ({"retarget.facing": "away"}, r"key 'retarget.facing' cannot be changed while the node runs"),
        ({}, "non-empty map"),
        ("motion.method=raw", "non-empty map"),
    ]:
        with pytest.raises(ControlError, match=reason):
            changed_config(config, changes)


def test_saved_settings_load_as_a_config(tmp_path):
    config = changed_config(NodeConfig(), {"motion.method": "raw", "retarget.mirror": True})
    save_config(config, tmp_path / "saved.yaml")
    loaded = load_config(tmp_path / "saved.yaml")
    assert loaded == config


@pytest.fixture
def served(tmp_path):
    """A node replaying landmarks in real time to a page on a free loopback port, in a thread."""
    config = NodeConfig()
    config.page.save_to = str(tmp_path / "saved.yaml")
    node = open_node(
        config, f"replay:{long_replay(tmp_path, 60)}", ["page://127.0.0.1:0"], log=lambda m: None
    )
    stop = threading.Event()
    thread = threading.Thread(target=run_loop, args=(node,), kwargs={"until": stop.is_set}, daemon=True)
    thread.start()
    yield node, node.outputs[0].port
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def _get(port: int, path: str, host: str | None = None) -> tuple[int, bytes, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": host} if host else {})
    response = connection.getresponse()
    return response.status, response.read(), response.getheader("Content-Type", "")


_backlog: dict[int, list[dict]] = {}  # per socket: skipped messages other than frames, in order


def _next(socket, kind: str, timeout: float = 10.0) -> dict:
    """The next message of `kind` (one skipped earlier while looking for another kind counts)."""
    backlog = _backlog.setdefault(id(socket), [])
    for i, message in enumerate(backlog):
        if message["type"] == kind:
            return backlog.pop(i)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = socket.recv(timeout=max(deadline - time.monotonic(), 0.01))
        if isinstance(message, str):
            decoded = json.loads(message)
            if decoded["type"] == kind:
                return decoded
            if decoded["type"] != "frame":
                backlog.append(decoded)
    raise AssertionError(f"no {kind} message within {timeout} s")


def test_the_page_and_its_files_are_served(served):
    _, port = served
    status, body, kind = _get(port, "/")
    assert status == 200 and kind.startswith("text/html")
    imports = json.loads(body.decode().split('<script type="importmap">')[1].split("</script>")[0])["imports"]
    for url in imports.values():
        status, body, kind = _get(port, url if url.endswith(".js") else url + "loaders/GLTFLoader.js")
        assert status == 200 and kind.startswith("text/javascript") and len(body) > 10_000
    assert _get(port, "/app.js")[0] == 200
    assert _get(port, "/vendor/../../runtime/page.py")[0] == 404
    assert _get(port, "/vendor/%2e%2e/%2e%2e/pyproject.toml")[0] == 404
    status, body, kind = _get(port, "/avatar.vrm")  # retarget.rig is no .vrm: the sample mannequin
    assert status == 200 and body[:4] == b"glTF" and kind == "model/gltf-binary"
    document = json.loads(body[20 : 20 + int.from_bytes(body[12:16], "little")])
    bones = document["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]
    assert {"hips", "head", "leftUpperArm", "rightFoot"} <= set(bones)
    # DNS rebinding: a loopback page answers to loopback names only.
    assert _get(port, "/", host=f"attacker.example:{port}")[0] == 403
    assert _get(port, "/", host=f"localhost:{port}")[0] == 200


def test_another_web_site_cannot_open_the_stream(served):
    _, port = served
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{port}/stream", origin="http://attacker.example")
    assert refused.value.response.status_code == 403
    with connect(f"ws://127.0.0.1:{port}/stream", origin=f"http://127.0.0.1:{port}") as socket:
        assert _next(socket, "hello")["schema"] == 3


def test_the_stream_and_the_controls(served):
    node, port = served
    with connect(f"ws://127.0.0.1:{port}/stream?format=json") as socket:
        hello = _next(socket, "hello")
        assert hello["rig"] == "vrm0" and "LeftUpperArm" in hello["bones"]
        state = _next(socket, "state")
        assert state["settings"]["motion.method"] == "stcnn" and state["preview_allowed"] is False
        frame = _next(socket, "frame")
        assert len(frame["rot"]) == len(hello["bones"]) and frame["contact"] is not None
        stats = _next(socket, "stats")
        assert stats["tracking"]["body"] is True and "motion" in stats["stages_ms"]

        # A bad value: refused with the key named, nothing changes.
        socket.send(json.dumps({"type": "control", "id": 7, "set": {"motion.one_euro.beta": -3}}))
        result = _next(socket, "result")
        assert result["id"] == 7 and not result["ok"] and "motion.one_euro.beta" in result["message"]
        assert node.config.motion.method == "stcnn" and node.config.motion.one_euro.beta == 1.0
        assert _next(socket, "state")["settings"]["motion.one_euro.beta"] == 1.0
        assert _next(socket, "frame")["contact"] is not None

        # A good one: applied between frames; the stream shows it (raw frames carry no foot contact).
        socket.send(json.dumps({"type": "control", "id": 8, "set": {"motion.method": "raw"}}))
        result = _next(socket, "result")
        assert result == {"type": "result", "id": 8, "ok": True, "message": "applied: motion.method = raw"}
        assert _next(socket, "state")["settings"]["motion.method"] == "raw"
        # (one frame made before the change may still be on its way)
        contacts = [_next(socket, "frame")["contact"] for _ in range(3)]
        assert contacts[1:] == [None, None]
        assert node.config.motion.method == "raw"

        # The preview is off by default (privacy): asking for it is refused.
        socket.send(json.dumps({"type": "preview", "on": True}))
        assert "preview is off" in _next(socket, "result")["message"]
        socket.send(json.dumps({"type": "control", "id": 9, "action": "record", "name": "../escape.bvh"}))
        assert "plain file name" in _next(socket, "result")["message"]
        socket.send(json.dumps({"type": "control", "id": 10, "action": "save"}))
        assert _next(socket, "result")["ok"]
    assert load_config(node.config.page.save_to).motion.method == "raw"


def test_with_a_token_the_stream_needs_it(tmp_path):
    config = NodeConfig()
    config.page.token = "s3cret"
    node = open_node(config, f"replay:{long_replay(tmp_path, 1)}", ["page://127.0.0.1:0"], log=lambda m: None)
    try:
        port = node.outputs[0].port
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{port}/stream")
        assert refused.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            connect(f"ws://127.0.0.1:{port}/stream?token=wrong")
        with connect(f"ws://127.0.0.1:{port}/stream?token=s3cret") as socket:
            assert _next(socket, "state")["settings"]["motion.method"] == "stcnn"
    finally:
        node.close()
