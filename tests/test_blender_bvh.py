"""BVH recordings from the node open in Blender (Debian's `blender`, headless) as the node meant them:
the frame rate, the bone count and, at sampled frames, every joint within a few mm of the node's own
rig. Skipped (with the reason) when Blender is not installed."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from runtime.config import NodeConfig
from runtime.node import open_node, run_loop
from runtime.retarget import forward_kinematics
from tests.node_support import ROOT
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
    assert seen["bones"] == list(profile.bone_names)
    # vrm0 is left-handed: the BVH (like every BVH reader) is right-handed, its left-right axis (x) negated.
    flip = np.array([-1.0, 1.0, 1.0])
    for frame in sampled:
        blender = np.array([seen["heads"][str(frame)][name] for name in profile.bone_names])
        node_rig = capture.positions[frame] * flip
        error = np.linalg.norm(blender - node_rig, axis=1).max()
        assert error < 0.003, f"frame {frame}: a joint {error * 1000:.1f} mm from the node's"
