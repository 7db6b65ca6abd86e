"""Expressions from the face part through the node's outputs and rig mappings, end to end: the
bundled real clip through run_node.py, read back by liblo's oscdump and a `websockets` client; and
the per-rig expression names (VRM 1.0 presets, a model file's own blendshapes)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from liverig.core.config import RetargetConfig
from liverig.core.types import Pose, Timing
from liverig.runtime.assets import sample_path
from liverig.runtime.expressions import ARKIT_NAMES, VRM_PRESETS
from liverig.runtime.gltf_rig import read_gltf_rig
from liverig.runtime.retarget import Retargeter
from liverig.runtime.rigs import load_rig
from tests.node_support import ROOT, run_node
from tests.test_node_outputs import _first_messages, _free_tcp_port
from tests.test_retarget import GLTF_SPACE, VRM0_SPACE, VRM_BONES, build_gltf, vroid_name, write_glb

FRAMES = 30
FACE_NAMES = {name for name in ARKIT_NAMES if name != "tongueOut"} | set(VRM_PRESETS)


@pytest.fixture(scope="module")
def fast_video_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "fast.yaml"
    path.write_text("source: {realtime: false}\n")
    return path


def _frames(messages: list[tuple[str, str, list[str]]]) -> list[list[tuple[str, str, list[str]]]]:
    """The messages split at each /VMC/Ext/OK (the first message of every frame)."""
    frames: list[list] = []
    for message in messages:
        if message[0] == "/VMC/Ext/OK":
            frames.append([])
        if frames:
            frames[-1].append(message)
    return frames


def test_vmc_carries_the_face_every_frame(oscdump, fast_video_config):
    """Every frame: Blend/Val for the VRM 0 presets and the ARKit names, values in [0, 1], then one
    Apply after them; the clip's real blink at frame 42 arrives as Blink >= 0.8."""
    result = run_node(
        "--source",
        f"video:{sample_path('carphone.mp4')}",
        "--config",
        fast_video_config,
        "--max-frames",
        60,
        "--motion",
        "one_euro",
        "--out",
        f"vmc://127.0.0.1:{oscdump.port}",
    )
    assert result.returncode == 0, result.stderr
    bones = load_rig("vrm0").bone_names
    frames = _frames(oscdump.messages(expect=60 * (len(bones) + 3 + len(FACE_NAMES) + 1)))
    assert len(frames) == 60
    blinks = []
    for frame in frames:
        blends = [m for m in frame if m[0] == "/VMC/Ext/Blend/Val"]
        assert all(m[1] == "sf" for m in blends)
        values = {m[2][0]: float(m[2][1]) for m in blends}
        assert set(values) == FACE_NAMES
        assert all(0.0 <= v <= 1.0 for v in values.values())
        applies = [i for i, m in enumerate(frame) if m[0] == "/VMC/Ext/Blend/Apply"]
        last_blend = max(i for i, m in enumerate(frame) if m[0] == "/VMC/Ext/Blend/Val")
        assert len(applies) == 1 and applies[0] > last_blend
        blinks.append(values["Blink"])
    assert blinks[42] >= 0.8 and max(blinks[:38]) < 0.2


def test_websocket_and_osc_carry_the_face(oscdump, fast_video_config):
    port = _free_tcp_port()
    node = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_node.py"),
            "--source",
            f"video:{sample_path('carphone.mp4')}",
            "--config",
            str(fast_video_config),
            "--motion",
            "one_euro",
            "--out",
            f"ws://127.0.0.1:{port}",
            "--out",
            f"osc://127.0.0.1:{oscdump.port}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        hello, *frames = _first_messages(node, port, 11)
        messages = oscdump.messages(expect=5 * len(FACE_NAMES))
    finally:
        node.terminate()
        node.communicate(timeout=30)
    assert hello["type"] == "hello"
    for frame in frames:
        assert set(frame["blend"]) == FACE_NAMES
        assert all(0.0 <= v <= 1.0 for v in frame["blend"].values())
    blend = {m[0].removeprefix("/liverig/blend/") for m in messages if m[0].startswith("/liverig/blend/")}
    assert blend == FACE_NAMES


def _pose(expressions: dict[str, float]) -> Pose:
    from liverig.core import skeleton

    joints = skeleton.rest_pose()
    return Pose(0, 0.0, Timing(0.0), True, joints, np.ones(skeleton.NUM_JOINTS), expressions=expressions)


def test_vrm1_gets_its_own_preset_names_and_mirrors_sides():
    expressions = {"Joy": 0.8, "A": 0.5, "Blink_L": 1.0, "eyeBlinkLeft": 0.9, "LookLeft": 0.3}
    plain = Retargeter(load_rig("vrm1"))(_pose(dict(expressions))).blendshapes
    assert plain == {"happy": 0.8, "aa": 0.5, "blinkLeft": 1.0, "eyeBlinkLeft": 0.9, "lookLeft": 0.3}
    mirrored = Retargeter(load_rig("vrm1"), RetargetConfig(mirror=True))(_pose(dict(expressions)))
    assert mirrored.blendshapes == {
        "happy": 0.8,
        "aa": 0.5,
        "blinkRight": 1.0,
        "eyeBlinkRight": 0.9,
        "lookRight": 0.3,
    }
    # VRM 0 and the Unity humanoid pass the node's names as they are (what VMC receivers read).
    assert Retargeter(load_rig("vrm0"))(_pose(dict(expressions))).blendshapes == expressions


def test_vmc_gets_vrm0_names_when_the_rig_renames_them(tmp_path):
    """retarget.rig vrm1 renames the presets; the VMC output still gets a vrm0 retargeter."""
    from liverig.core.config import NodeConfig
    from liverig.runtime.node import open_node

    config = NodeConfig.model_validate(
        {"retarget": {"rig": "vrm1"}, "perception": {"face": {"enabled": False}}}
    )
    node = open_node(
        config,
        f"video:{sample_path('carphone.mp4')}",
        ["vmc://127.0.0.1:39999", "ws://127.0.0.1:0"],
        log=lambda message: None,
    )
    try:
        assert node.retargets[node.output_rigs[0]].profile.name == "vrm0"
        assert node.retargets[node.output_rigs[1]].profile.name == "vrm1"
    finally:
        node.close()


def _model(tmp_path, kind: str):
    space = VRM0_SPACE if kind == "vrm0" else GLTF_SPACE
    document, index = build_gltf(vroid_name, space)
    if kind == "vrm0":
        bones = [{"bone": VRM_BONES[k], "node": index[k]} for k in VRM_BONES if k in index]
        groups = [
            {"name": "Joy", "presetName": "joy"},
            {"name": "A", "presetName": "a"},
            {"name": "Blink_L", "presetName": "blink_l"},
            {"name": "EyeBlinkLeft", "presetName": "unknown"},
            {"name": "jawOpen", "presetName": "unknown"},
        ]
        document["extensions"] = {
            "VRM": {"humanoid": {"humanBones": bones}, "blendShapeMaster": {"blendShapeGroups": groups}}
        }
    elif kind == "vrm1":
        bones = {VRM_BONES[k]: {"node": index[k]} for k in VRM_BONES if k in index}
        expressions = {"preset": {"happy": {}, "aa": {}, "blinkLeft": {}}, "custom": {"mouthSmileLeft": {}}}
        document["extensions"] = {"VRMC_vrm": {"humanoid": {"humanBones": bones}, "expressions": expressions}}
    elif kind == "morphs":
        document["meshes"] = [
            {"primitives": [], "extras": {"targetNames": ["jawOpen", "EYEBLINKLEFT", "Body"]}}
        ]
    return write_glb(tmp_path / f"{kind}.glb", document)


@pytest.mark.parametrize(
    "kind, expected",
    [
        (
            "vrm0",
            {
                "Joy": "Joy",
                "A": "A",
                "Blink_L": "Blink_L",
                "eyeBlinkLeft": "EyeBlinkLeft",
                "jawOpen": "jawOpen",
            },
        ),
        ("vrm1", {"Joy": "happy", "A": "aa", "Blink_L": "blinkLeft", "mouthSmileLeft": "mouthSmileLeft"}),
        ("morphs", {"jawOpen": "jawOpen", "eyeBlinkLeft": "EYEBLINKLEFT"}),
        ("plain", {}),
    ],
)
def test_a_model_files_own_expressions_are_found_and_only_they_are_sent(tmp_path, kind, expected):
    profile, report = read_gltf_rig(_model(tmp_path, kind))
    assert profile.expressions == expected and profile.expressions_only
    line = report.lines()[-1]
    assert line.startswith("expressions: none found") if not expected else "missing:" in line
    everything = {name: 0.5 for name in FACE_NAMES}
    frame = Retargeter(profile)(_pose(everything))
    assert frame.blendshapes == {target: 0.5 for target in expected.values()}
    assert np.all(np.isfinite(frame.local_rotations))  # bones work whatever the expressions
