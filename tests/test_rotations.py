"""Joint rotations from positions (models/rotations.py): the rotation head's truth."""

import numpy as np
from scipy.spatial.transform import Rotation

from liverig.core.skeleton import JOINT_INDEX, PARENTS, rest_pose
from liverig.models.backends import matrix_to_rot6d, rot6d_to_matrix
from liverig.models.rotations import angle_deg, joint_rotations, world_rotations

J = JOINT_INDEX


def _turn_chain(joints: np.ndarray, start: str, rotation: np.ndarray) -> np.ndarray:
    """Rotate joint `start`'s descendants about it (a joint bending)."""
    out = joints.copy()
    pivot = joints[J[start]]
    below = [j for j in range(len(PARENTS)) if _descends(j, J[start])]
    out[below] = (joints[below] - pivot) @ rotation.T + pivot
    return out


def _descends(j: int, ancestor: int) -> bool:
    while PARENTS[j] >= 0:
        j = int(PARENTS[j])
        if j == ancestor:
            return True
    return False


def test_rest_pose_is_the_identity_and_a_turned_body_turns_only_the_hips():
    rest = rest_pose()
    assert np.allclose(joint_rotations(rest), np.eye(3), atol=1e-12)
    turn = Rotation.from_euler("yxz", [50, 20, -10], degrees=True).as_matrix()
    local = joint_rotations(rest @ turn.T)
    assert np.allclose(local[0], turn, atol=1e-9)
    assert np.allclose(local[1:], np.eye(3), atol=1e-9)
    assert np.allclose(world_rotations(rest @ turn.T), turn, atol=1e-9)  # every joint turned alike


def test_a_bent_elbow_is_the_lower_arm_turning_by_the_bend():
    rest = rest_pose()
    forearm = rest[J["LeftHand"]] - rest[J["LeftLowerArm"]]
    axis = np.cross(forearm, [0.0, 1.0, 0.0])  # across the forearm: a 70° bend turns it by 70°
    bend = Rotation.from_rotvec(np.radians(70) * axis / np.linalg.norm(axis)).as_matrix()
    pose = _turn_chain(rest, "LeftLowerArm", bend)
    local = joint_rotations(pose)
    assert np.isclose(angle_deg(local[J["LeftLowerArm"]], np.eye(3)), 70.0)
    others = [j for j in range(len(PARENTS)) if j != J["LeftLowerArm"]]
    assert np.allclose(local[others], np.eye(3), atol=1e-9)  # the hand rides along: identity locally


def test_a_limb_passing_through_straight_does_not_flip():
    """Bend-plane frames turn by half a turn when an arm straightens and bends the other way; the
    swing-based limb rotations change smoothly."""
    rest = rest_pose()
    angles = np.linspace(-20, 20, 41)  # degrees of elbow bend, through straight
    bends = Rotation.from_rotvec(np.radians(angles)[:, None] * [0, 0, 1]).as_matrix()
    poses = np.stack([_turn_chain(rest, "RightLowerArm", bend) for bend in bends])
    local = joint_rotations(poses)
    steps = angle_deg(local[1:], local[:-1])
    assert steps.max() < 1.5  # 1° per pose, on every joint


def test_rot6d_is_the_first_two_columns():
    m = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    assert np.allclose(matrix_to_rot6d(m), np.concatenate([m[:, 0], m[:, 1]]))
    assert np.allclose(rot6d_to_matrix(matrix_to_rot6d(m)), m)


def test_swing_rotations_turn_each_vector_onto_the_other_even_opposite_ones():
    """core/geometry.py `swing_rotations` (the retargeter's and the renderer's): a half turn for
    exactly opposite vectors (it once turned them by three quarters of that), the identity for equal
    ones, and the smallest turn otherwise."""
    from liverig.core.geometry import swing_rotations, units

    rng = np.random.default_rng(3)
    a = units(rng.normal(size=(20, 3)))[0]
    b = np.concatenate([-a[:8], a[8:12], units(rng.normal(size=(8, 3)))[0]])
    turns = swing_rotations(a, b)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", turns, a), b, atol=1e-9)
    np.testing.assert_allclose(turns[8:12], np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-9)
    angles = np.arccos(np.clip((np.trace(turns, axis1=1, axis2=2) - 1) / 2, -1, 1))
    np.testing.assert_allclose(angles, np.arccos(np.clip(np.sum(a * b, axis=1), -1, 1)), atol=1e-6)
