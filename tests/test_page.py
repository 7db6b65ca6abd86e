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

from liverig.bridges.errors import SpecError
from liverig.core.config import NodeConfig, load_config
from liverig.runtime.node import open_node, run_loop
from liverig.runtime.page import parse_page_spec
from liverig.runtime.page_control import ControlError, changed_config, save_config
from tests.node_support import run_node
from tests.page_support import long_clip, long_replay


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


def _served_node(config: NodeConfig, source: str, outputs: list[str]):
    """A node running `source` in real time in a thread; returns it and the stop function."""
    node = open_node(config, source, outputs, log=lambda m: None)
    stop = threading.Event()
    thread = threading.Thread(target=run_loop, args=(node,), kwargs={"until": stop.is_set}, daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()

    return node, finish


def _control(socket, message: dict) -> dict:
    socket.send(json.dumps({"type": "control", **message}))
    return _next(socket, "result", timeout=30)


def _hello_of(socket, rig: str, timeout: float = 10.0) -> dict:
    """The next hello for `rig` on a stream (frames and other rigs' hellos skipped; one kept aside
    while waiting for a result counts)."""
    backlog = _backlog.setdefault(id(socket), [])
    for i, message in enumerate(backlog):
        if message["type"] == "hello" and message["rig"] == rig:
            return backlog.pop(i)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = socket.recv(timeout=max(deadline - time.monotonic(), 0.01))
        if isinstance(message, str):
            decoded = json.loads(message)
            if decoded["type"] == "hello" and decoded["rig"] == rig:
                return decoded
    raise AssertionError(f"no hello for {rig} within {timeout} s")


def test_the_rig_changes_live_and_a_bad_one_changes_nothing(tmp_path):
    config = NodeConfig()
    config.page.record_dir = str(tmp_path)
    node, finish = _served_node(
        config, f"replay:{long_replay(tmp_path, 60)}", ["page://127.0.0.1:0", "ws://127.0.0.1:0?format=json"]
    )
    try:
        page_port, ws_port = node.outputs[0].port, node.outputs[1].port
        with (
            connect(f"ws://127.0.0.1:{page_port}/stream?format=json") as page,
            connect(f"ws://127.0.0.1:{ws_port}/?format=json") as ws,
        ):
            assert _hello_of(ws, "vrm0")["rig"] == "vrm0"
            assert _next(page, "hello")["rig"] == "vrm0"
            assert "mixamo" in _next(page, "state")["rigs"]
            # A BVH recording started with vrm0 keeps it (a BVH file has one skeleton).
            assert _control(page, {"action": "record", "name": "take.bvh"})["ok"]

            # mixamo: the WebSocket output streams it (cm, right-handed, its 55 bones); the page, a
            # VMC-like Unity humanoid receiver, gets a vrm0 retargeter by the node's rule.
            result = _control(page, {"id": 1, "set": {"retarget.rig": "mixamo"}})
            assert result["ok"] and "vrm0" in result["message"], result
            recorded = _bvh_frames(tmp_path / "take.bvh")
            hello = _hello_of(ws, "mixamo")
            assert len(hello["bones"]) == 55 and hello["units"] == "cm"
            assert hello["axes"]["handedness"] == "right"
            # (the recording keeps the vrm0 retargeter it was opened with: a third one)
            assert [r.profile.name for r in node.retargets] == ["mixamo", "vrm0", "vrm0"]
            assert node.output_rigs == [1, 0, 2]
            frame = _next(ws, "frame")
            assert len(frame["rot"]) == 55
            states = [_next(page, "state"), _next(page, "state")]  # after the record, after the rig
            assert [s["settings"]["retarget.rig"] for s in states] == ["vrm0", "mixamo"]
            assert node.config.retarget.rig == "mixamo"

            # A rig that does not exist: refused on the page, naming the key; nothing changes.
            retargets = list(node.retargets)
            result = _control(page, {"id": 2, "set": {"retarget.rig": "no_such_rig"}})
            assert not result["ok"] and result["message"].startswith("key 'retarget.rig':"), result
            assert "no_such_rig" in result["message"]
            assert node.retargets == retargets and node.config.retarget.rig == "mixamo"
            assert len(_next(ws, "frame")["rot"]) == 55

            # unity_humanoid is a Unity humanoid itself: one retargeter, and the page's stream says so.
            assert _control(page, {"id": 3, "set": {"retarget.rig": "unity_humanoid"}})["ok"]
            assert _hello_of(page, "unity_humanoid")["units"] == "m"
            assert _hello_of(ws, "unity_humanoid")["axes"]["handedness"] == "left"
            assert [r.profile.name for r in node.retargets] == ["unity_humanoid", "vrm0"]
            assert node.output_rigs == [0, 0, 1]

            time.sleep(0.5)
            assert _control(page, {"action": "stop"})["ok"]
            # A landmark replay has no images: the face cannot be switched on.
            result = _control(page, {"set": {"perception.face.enabled": True}})
            assert not result["ok"] and "perception.face.enabled" in result["message"], result
    finally:
        finish()
    assert node.failsafe.failed == {}  # no output stopped (the recording neither)
    bvh = (tmp_path / "take.bvh").read_text()
    assert "LeftUpperArm" in bvh and "mixamorig" not in bvh
    assert _bvh_frames(tmp_path / "take.bvh") >= recorded + 15  # it went on recording after the change


def _bvh_frames(path) -> int:
    return int(path.read_text().split("Frames:")[1].split()[0])


def test_saving_never_overwrites_without_the_flag(served, tmp_path):
    node, port = served
    import os

    with connect(f"ws://127.0.0.1:{port}/stream?format=json") as socket:
        assert _control(socket, {"action": "save"})["ok"]
        before = (tmp_path / "saved.yaml").read_text()
        assert _control(socket, {"set": {"retarget.mirror": True}})["ok"]
        result = _control(socket, {"action": "save"})
        assert not result["ok"] and "already exists" in result["message"] and "overwrite" in result["message"]
        assert (tmp_path / "saved.yaml").read_text() == before
        assert _control(socket, {"action": "save", "overwrite": True})["ok"]
        assert load_config(tmp_path / "saved.yaml").retarget.mirror is True
        # Another plain file name in the same folder; paths and other suffixes are refused.
        assert _control(socket, {"action": "save", "name": "mine.yml"})["ok"]
        assert load_config(tmp_path / "mine.yml").retarget.mirror is True
        for name in ["../up.yaml", "/tmp/abs.yaml", "notes.txt", 7]:
            result = _control(socket, {"action": "save", "name": name})
            assert not result["ok"] and "plain file name" in result["message"], result
        assert _control(socket, {"action": "save", "overwrite": "yes"})["message"].startswith("'overwrite'")
        # Regular files only, even with the flag: a FIFO there is never opened (it would block).
        os.mkfifo(tmp_path / "pipe.yaml")
        result = _control(socket, {"action": "save", "name": "pipe.yaml", "overwrite": True})
        assert not result["ok"] and "FIFO" in result["message"], result
        # A link left where the save writes first is not followed (nor removed).
        target = tmp_path / "elsewhere.txt"
        (tmp_path / "linked.yaml.partial").symlink_to(target)
        result = _control(socket, {"action": "save", "name": "linked.yaml"})
        assert not result["ok"] and "in the way" in result["message"], result
        assert not target.exists() and not (tmp_path / "linked.yaml").exists()
        assert [p.name for p in tmp_path.glob("*.partial")] == ["linked.yaml.partial"]


def test_the_scheduler_and_the_face_are_shown_and_the_face_switches_live(tmp_path):
    config = NodeConfig()
    config.perception.model = "lite"  # a light body detector: the face gets the budget
    node, finish = _served_node(config, f"video:{long_clip(tmp_path, 20)}", ["page://127.0.0.1:0"])
    try:
        assert node.scheduler is not None and [p.name for p in node.parts] == ["face", "page"]
        with connect(f"ws://127.0.0.1:{node.outputs[0].port}/stream?format=json") as socket:
            deadline = time.monotonic() + 30
            while True:
                stats = _next(socket, "stats")
                face = stats["parts"].get("face", {})
                if face.get("rate_hz") and face.get("tracking") is not None or time.monotonic() > deadline:
                    break
            assert face["scheduled"] and face["rate_hz"] > 0 and 0 < face["ran_share"] <= 1, face
            assert face["tracking"] is True and face["what"] == "face found", face
            assert face["cost_ms"] > 0 and stats["scheduler"]["budget_ms"] > 0
            assert stats["tracking"]["face"] is True and "page" not in stats["parts"]

            # Off: taken out between frames and closed; on again: a new FaceLandmarker, scheduled.
            old = node.parts[0]
            assert _control(socket, {"set": {"perception.face.enabled": False}})["ok"]
            assert [p.name for p in node.parts] == ["page"] and old._landmarker is None
            assert "face" not in _next(socket, "stats")["parts"]
            assert _control(socket, {"set": {"perception.face.enabled": True}})["ok"]
            assert [p.name for p in node.parts] == ["face", "page"] and node.parts[0] is not old
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                # a stats message sent before the new part's first report lacks it: wait for it
                face = _next(socket, "stats")["parts"].get("face", {})
                if face.get("tracking"):
                    break
            assert face.get("tracking") is True, face
            # The hands: opened off the loop, put after the face (the parts' dependency order), and
            # scheduled with it; off again, closed.
            assert _control(socket, {"set": {"perception.hands.enabled": True}})["ok"]
            assert [p.name for p in node.parts] == ["face", "hands", "page"]
            hands = node.parts[1]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                row = _next(socket, "stats")["parts"].get("hands", {})
                if row.get("rate_hz"):
                    break
            assert row["scheduled"] and row["rate_hz"] > 0 and row["tracking"] is not None, row
            assert _control(socket, {"set": {"perception.hands.enabled": False}})["ok"]
            assert [p.name for p in node.parts] == ["face", "page"] and hands._landmarkers == {}
    finally:
        finish()


def test_every_live_setting_has_a_control_on_the_page():
    """The page's controls (index.html ids, app.js SETTING_IDS) are exactly the settings the node
    reports and accepts live, the ST-CNN's hold-still (deadband) strength included."""
    import re

    from liverig.runtime.page import PAGE_DIR, SETTINGS

    html = (PAGE_DIR / "index.html").read_text()
    script = (PAGE_DIR / "app.js").read_text()
    listed = re.search(r"const SETTING_IDS = \[(.*?)\];", script, re.S).group(1)
    assert set(re.findall(r"'([^']+)'", listed)) == set(SETTINGS)
    for key in SETTINGS:
        assert f'id="{key}"' in html, key
    assert {"motion.deadband.inner_m", "motion.deadband.outer_m", "motion.deadband.enabled"} <= set(SETTINGS)
    changed = changed_config(NodeConfig(), {"motion.deadband.inner_m": 0.02, "motion.deadband.outer_m": 0.06})
    assert (changed.motion.deadband.inner_m, changed.motion.deadband.outer_m) == (0.02, 0.06)
