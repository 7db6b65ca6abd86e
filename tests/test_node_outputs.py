"""The node's outputs end to end, each read by something that is not our code.

A real landmark recording (the bundled clip through the real PoseLandmarker) is replayed through
run_node.py with VMC, WebSocket and BVH outputs; liblo's oscdump, a `websockets` client and the
bvhio BVH reader check what arrives.
"""

import asyncio
import socket
import subprocess
import time

import msgpack
import numpy as np
import pytest
import websockets

from liverig.core.config import RetargetConfig
from liverig.core.types import Pose, Timing
from liverig.runtime.recording import read_output_recording
from liverig.runtime.retarget import Retargeter, forward_kinematics
from liverig.runtime.rigs import load_rig
from tests.node_support import run_node, start_node


def test_vmc_from_the_node_parses_in_oscdump_with_every_bone(clip_run, oscdump):
    result = run_node(
        "--source",
        f"replay:{clip_run / 'landmarks.jsonl'}",
        "--max-frames",
        "20",
        "--motion",
        "one_euro",
        "--out",
        f"vmc://127.0.0.1:{oscdump.port}",
    )
    assert result.returncode == 0, result.stderr
    bones = load_rig("vrm0").bone_names
    messages = oscdump.messages(expect=20 * (len(bones) + 3))
    times = [m for m in messages if m[0] == "/VMC/Ext/T"]
    assert len(times) == 20 and all(m[1] == "f" for m in times)
    assert sum(m[0] == "/VMC/Ext/OK" for m in messages) == 20
    roots = [m for m in messages if m[0] == "/VMC/Ext/Root/Pos"]
    assert len(roots) == 20 and all(m[1] == "sfffffff" and m[2][0] == "root" for m in roots)
    bone_messages = [m for m in messages if m[0] == "/VMC/Ext/Bone/Pos"]
    assert all(m[1] == "sfffffff" for m in bone_messages)
    assert len(bone_messages) == 20 * len(bones)
    for name in bones:
        assert sum(m[2][0] == name for m in bone_messages) == 20, name
    for m in bone_messages:  # unit quaternions
        assert abs(np.linalg.norm([float(v) for v in m[2][4:8]]) - 1) < 1e-4


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _first_messages(node: subprocess.Popen, port: int, count: int) -> list[dict]:
    """The first `count` messages a real `websockets` client gets from the node's ws:// output."""

    async def client():
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = await websockets.connect(f"ws://127.0.0.1:{port}")
                break
            except OSError:
                assert time.monotonic() < deadline and node.poll() is None, "node did not serve"
                await asyncio.sleep(0.1)
        async with connection:
            return [msgpack.unpackb(await connection.recv()) for _ in range(count)]

    return asyncio.run(client())


def test_websocket_client_receives_hello_and_frames_from_the_node(clip_run):
    port = _free_tcp_port()
    node = start_node(
        "--source",
        f"replay:{clip_run / 'landmarks.jsonl'}",
        "--motion",
        "one_euro",
        "--out",
        f"ws://127.0.0.1:{port}",
    )

    try:
        hello, *frames = _first_messages(node, port, 11)
    finally:
        node.terminate()
        node.communicate(timeout=30)
    assert hello["type"] == "hello" and hello["schema"] == 3 and hello["rig"] == "vrm0"
    assert hello["bones"] == load_rig("vrm0").bone_names
    indices = [f["index"] for f in frames]
    assert all(f["type"] == "frame" for f in frames) and indices == sorted(indices)
    for frame in frames:
        assert len(frame["rot"]) == len(hello["bones"])
        assert frame["latency_ms"]["perception"] >= 0 and frame["latency_ms"]["total"] >= 0
        assert frame["contact"] is None  # one_euro estimates no foot contacts
    assert node.returncode == 0  # SIGTERM stops the node like Ctrl-C


bvhio = pytest.importorskip("bvhio", reason="bvhio (dev extra) reads BVH files independently of our writer")


@pytest.mark.parametrize("rig", ["vrm0", "mixamo", "ue5_manny"])
def test_bvh_from_the_node_matches_its_rig_joints_within_1mm(clip_run, tmp_path, rig):
    """The reader's joints are the rig's, in right-handed axes: a left-handed rig (vrm0: Unity,
    ue5_manny: Unreal) has its left-right axis negated, so the figure is not mirrored: its left arm
    is on its own left (up x forward, in right-handed axes) while the person faces the camera."""
    config = tmp_path / "rig.yaml"
    config.write_text(f"retarget: {{rig: {rig}}}\n")
    bvh, record = tmp_path / "take.bvh", tmp_path / "out.jsonl"
    result = run_node(
        "--source",
        f"replay:{clip_run / 'landmarks.jsonl'}",
        "--config",
        config,
        "--motion",
        "one_euro",
        "--max-frames",
        "40",
        "--out",
        f"bvh:{bvh}",
        "--out",
        f"record:{record}",
    )
    assert result.returncode == 0, result.stderr
    _, frames = read_output_recording(record)
    profile = load_rig(rig)
    retarget = Retargeter(profile, RetargetConfig(rig=rig))
    hierarchy = bvhio.readAsHierarchy(str(bvh))
    unit = 100.0 if profile.units == "cm" else 1.0
    mirror = np.array([-1.0, 1.0, 1.0]) if profile.handedness == "left" else np.ones(3)  # x: left-right
    anatomy = profile.anatomy()
    left = np.cross(anatomy["up"], anatomy["forward"])  # the figure's left in right-handed axes
    shoulders = {
        side: next(b.name for b in profile.bones if b.joint == f"{side}UpperArm")
        for side in ("Left", "Right")
    }
    for i, frame in enumerate(frames):
        pose = Pose(
            i,
            frame["time_s"],
            Timing(0.0),
            frame["present"],
            np.asarray(frame["joints"]),
            np.asarray(frame["confidence"]),
            np.asarray(frame["root"]),
        )
        expected = retarget(pose)
        positions = forward_kinematics(
            profile, expected.local_rotations, expected.root_position, expected.root_rotation
        )
        hierarchy.loadPose(i)
        read = {joint.Name: np.array(joint.PositionWorld) for joint, _, _ in hierarchy.layout()}
        names = profile.bone_names
        errors = [np.linalg.norm(read[name] - positions[b] * mirror) / unit for b, name in enumerate(names)]
        assert max(errors) < 1e-3, (i, max(errors))
        assert (read[shoulders["Left"]] - read[shoulders["Right"]]) @ left > 0.2 * unit, i  # ~0.3 m apart


def test_vmc_sends_a_unity_humanoid_whatever_rig_drives_the_other_outputs(clip_run, oscdump, tmp_path):
    """VMC receivers hold a Unity humanoid: with retarget.rig an Unreal skeleton, VMC still gets
    HumanBodyBones in Unity axes and metres (the vrm0 rig), while the WebSocket hello describes the
    Unreal rig it streams: its bones, centimetres, left-handed Z-up axes and rest rotations."""
    config = tmp_path / "rig.yaml"
    config.write_text("retarget: {rig: ue5_manny}\n")
    port = _free_tcp_port()
    node = start_node(
        "--source",
        f"replay:{clip_run / 'landmarks.jsonl'}",
        "--config",
        str(config),
        "--motion",
        "one_euro",
        "--out",
        f"vmc://127.0.0.1:{oscdump.port}",
        "--out",
        f"ws://127.0.0.1:{port}",
    )

    try:
        (hello,) = _first_messages(node, port, 1)
        unity = load_rig("vrm0").bone_names
        messages = oscdump.messages(expect=5 * (len(unity) + 3))
    finally:
        node.terminate()
        _, stderr = node.communicate(timeout=30)
    assert "sends the vrm0 rig" in stderr
    manny = load_rig("ue5_manny")
    assert hello["rig"] == "ue5_manny" and hello["bones"] == manny.bone_names
    assert hello["units"] == "cm" and hello["axes"] == {"handedness": "left", "up": "+z", "forward": "+y"}
    np.testing.assert_allclose(hello["rest_rot"], manny.rest_rotations(), atol=1e-9)
    bones = [m for m in messages if m[0] == "/VMC/Ext/Bone/Pos"]
    assert {m[2][0] for m in bones} == set(unity)
    hips = [m[2][1:4] for m in bones if m[2][0] == "Hips"]
    # Unity metres, Y up: the hips' rest offset is about a metre up, not Unreal's 96 cm along Z.
    assert all(0.5 < float(y) < 1.5 and abs(float(z)) < 0.5 for _, y, z in hips)
