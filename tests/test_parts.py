"""The parts seam: expressions and part-driven bones reach every rig the way the body's bones do."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liverig.core import skeleton
from liverig.core.config import RetargetConfig
from liverig.core.types import Pose, Timing
from liverig.runtime.retarget import Retargeter, world_transforms
from liverig.runtime.rigs import load_rig


def _pose(**extra) -> Pose:
    joints = skeleton.rest_pose()
    return Pose(0, 0.0, Timing(0.0), True, joints, np.ones(skeleton.NUM_JOINTS), **extra)


def _head_world(rig_name: str, turn: np.ndarray | None, mirror: bool = False) -> np.ndarray:
    retargeter = Retargeter(load_rig(rig_name), RetargetConfig(mirror=mirror))
    pose = _pose(bone_rotations={} if turn is None else {"Head": turn})
    frame = retargeter(pose)
    profile = retargeter.profile
    _, rotations = world_transforms(profile, frame.local_rotations, frame.root_position, frame.root_rotation)
    return rotations[profile.index(next(b.name for b in profile.bones if b.humanoid == "Head"))]


@pytest.mark.parametrize("rig_name", ["vrm0", "vrm1", "unity_humanoid", "ue5_manny", "mixamo"])
@pytest.mark.parametrize("mirror", [False, True])
def test_a_part_turns_the_head_in_every_rig(rig_name, mirror):
    """A 30° turn of the head to the person's left (about canonical up) turns the rig's head by
    30° about the rig's up axis, towards the rig's left (right when mirrored), whatever its axes."""
    turn = Rotation.from_euler("y", 30, degrees=True).as_quat()
    still = _head_world(rig_name, np.array([0.0, 0.0, 0.0, 1.0]), mirror)  # the head at its rest turn
    turned = _head_world(rig_name, turn, mirror)
    profile = load_rig(rig_name)
    anatomy = profile.anatomy()
    delta = Rotation.from_matrix(turned @ np.linalg.inv(still))
    assert np.degrees(delta.magnitude()) == pytest.approx(30.0, abs=0.5)
    # The rig's forward now points towards the person's left (canonical +Z turned about +Y goes +X).
    forward = delta.apply(anatomy["forward"])
    side = anatomy["right"] if mirror else anatomy["left"]
    assert np.dot(forward, side) == pytest.approx(np.sin(np.radians(30.0)), abs=0.01)


def test_expressions_pass_to_the_rig_and_swap_sides_when_mirrored():
    expressions = {"eyeBlinkLeft": 1.0, "jawOpen": 0.4, "Blink_L": 1.0}
    plain = Retargeter(load_rig("vrm0"))(_pose(expressions=dict(expressions)))
    assert plain.blendshapes == expressions
    mirrored = Retargeter(load_rig("vrm0"), RetargetConfig(mirror=True))(_pose(expressions=expressions))
    assert mirrored.blendshapes == {"eyeBlinkRight": 1.0, "jawOpen": 0.4, "Blink_R": 1.0}


def test_a_non_finite_turn_leaves_the_body_rotation():
    nan_turn = np.array([np.nan, 0.0, 0.0, 1.0])
    assert np.allclose(_head_world("vrm0", nan_turn), _head_world("vrm0", None))


def test_mirror_name():
    assert skeleton.mirror_name("LeftIndexProximal") == "RightIndexProximal"
    assert skeleton.mirror_name("mouthSmileRight") == "mouthSmileLeft"
    assert skeleton.mirror_name("Blink_L") == "Blink_R"
    assert skeleton.mirror_name("jawOpen") == "jawOpen"
