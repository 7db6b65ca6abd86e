"""BVH recordings from the node open in Blender (Debian's `blender`, headless) as the node meant them:
the frame rate, the bone count and, at sampled frames, every joint within a few mm of the node's own
rig. Skipped (with the reason) when Blender is not installed."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess

import numpy as np
import pytest

from liverig.core.config import NodeConfig
from liverig.runtime.node import open_node, run_loop
from liverig.runtime.retarget import forward_kinematics
from tests.node_support import ROOT, start_node
from tests.page_support import long_replay

BLENDER = shutil.which("blender")
pytestmark = pytest.mark.skipif(
    BLENDER is None,
    reason="blender is not installed (Debian: apt-get install blender; scripts/setup.sh --dev does it)",
)


class _Capture:
    """An output that keeps each frame's joint positions, as the node's rig puts them (rig space)."""

    name = "capture"

    def __init__(self, profile) -> None:
        self.profile, self.positions = profile, []

    def send(self, pose, rig) -> None:
        self.positions.append(
            forward_kinematics(self.profile, rig.local_rotations, rig.root_position, rig.root_rotation)
        )

    def close(self) -> None:
        pass


def test_blender_imports_the_nodes_bvh(tmp_path):
    config = NodeConfig()
    config.source.realtime = False
    bvh = tmp_path / "take.bvh"
    node = open_node(config, f"replay:{long_replay(tmp_path, 4)}", [f"bvh:{bvh}"], log=lambda m: None)
    capture = _Capture(node.retarget.profile)
    node.outputs.append(capture)
    node.output_rigs.append(0)
    run_loop(node)
    frames = len(capture.positions)
    assert frames == 120

    sampled = [0, 37, 64, 119]
    out = tmp_path / "blender.json"
    result = subprocess.run(
        [
            BLENDER,
            "-b",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python",
            str(ROOT / "blender" / "bvh_probe.py"),
            "--",
            str(bvh),
            str(out),
            *map(str, sampled),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    seen = json.loads(out.read_text())
    profile = node.retarget.profile
    assert seen["fps"] == pytest.approx(30.0, abs=0.01)
    assert seen["frames"] == frames
    # Every bone once (Blender lists them in the BVH's depth-first order: fingers follow their hand).
    assert sorted(seen["bones"]) == sorted(profile.bone_names)
    assert len(seen["bones"]) == len(profile.bone_names)
    # vrm0 is left-handed: the BVH (like every BVH reader) is right-handed, its left-right axis (x) negated.
    flip = np.array([-1.0, 1.0, 1.0])
    for frame in sampled:
        blender = np.array([seen["heads"][str(frame)][name] for name in profile.bone_names])
        node_rig = capture.positions[frame] * flip
        error = np.linalg.norm(blender - node_rig, axis=1).max()
        assert error < 0.003, f"frame {frame}: a joint {error * 1000:.1f} mm from the node's"


def test_the_live_link_add_on_drives_an_armature_from_the_stream(tmp_path):
    """blender/liverig_link.py, headless, against run_node.py replaying landmarks to ws:// and BVH at
    once: the armature it poses puts every joint where the node's BVH (read by bvhio) has it."""
    bvhio = pytest.importorskip("bvhio")
    probe = subprocess.run(
        [BLENDER, "-b", "--factory-startup", "--python-expr", "import websockets"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0 or "Error" in probe.stderr:
        pytest.skip("Blender's Python has no websockets (Debian: apt-get install python3-websockets)")
    bvh = tmp_path / "take.bvh"
    process = start_node(
        "--source",
        f"replay:{long_replay(tmp_path, 60)}",
        "--out",
        "ws://127.0.0.1:0",
        "--out",
        f"bvh:{bvh}",
        sigint=True,
    )
    try:
        url = None
        while url is None:
            line = process.stderr.readline()
            assert line, "the node did not start"
            found = re.search(r"(ws://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        out = tmp_path / "link.json"
        result = subprocess.run(
            [
                BLENDER,
                "-b",
                "--factory-startup",
                "--python-exit-code",
                "1",
                "--python",
                str(ROOT / "tests" / "blender_link_probe.py"),
                "--",
                str(ROOT / "blender"),
                url,
                str(out),
                "5",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    seen = json.loads(out.read_text())
    assert len(seen["poses"]) == 5
    root = bvhio.readAsHierarchy(str(bvh))
    to_blender = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)  # BVH's Y up -> Blender's Z up
    for pose in seen["poses"]:
        root.loadPose(pose["index"])
        expected = {joint.Name: to_blender @ np.array(joint.PositionWorld) for joint, _, _ in root.layout()}
        assert set(pose["heads"]) == set(expected)
        error = max(np.linalg.norm(np.array(pose["heads"][name]) - expected[name]) for name in expected)
        assert error < 0.003, f"frame {pose['index']}: a joint {error * 1000:.1f} mm from the node's BVH"
