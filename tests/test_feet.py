"""The foot lock (runtime/feet.py): planted feet stay put, legs keep their lengths, nothing jumps."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from runtime import skeleton
from runtime.config import FeetConfig
from runtime.feet import LEGS, FootLock, two_bone_ik

HIP, KNEE, ANKLE, TOES = LEGS[0]


def test_two_bone_ik_keeps_the_bones_and_reaches_the_target():
    rng = np.random.default_rng(0)
    for _ in range(200):
        hip, knee, ankle = rng.normal(0, 0.3, (3, 3))
        thigh, shin = np.linalg.norm(knee - hip), np.linalg.norm(ankle - knee)
        direction = rng.normal(size=3)
        target = hip + direction / np.linalg.norm(direction) * rng.uniform(abs(thigh - shin), thigh + shin)
        new_knee, new_ankle = two_bone_ik(hip, knee, ankle, target)
        assert np.linalg.norm(new_knee - hip) == pytest.approx(thigh, abs=1e-9)
        assert np.linalg.norm(new_ankle - new_knee) == pytest.approx(shin, abs=1e-9)
        np.testing.assert_allclose(new_ankle, target, atol=2e-4)  # inside the reach margin
        # the knee bends in the plane of the hip, the old knee and the target
        normal = np.cross(knee - hip, target - hip)
        assert abs(np.dot(new_knee - hip, normal / np.linalg.norm(normal))) < 1e-9


def test_two_bone_ik_stops_at_full_reach():
    hip, knee, ankle = np.zeros(3), np.array([0.0, -0.4, 0.05]), np.array([0.0, -0.8, 0.0])
    new_knee, new_ankle = two_bone_ik(hip, knee, ankle, np.array([0.0, -2.0, 0.0]))
    reach = np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee)
    assert np.linalg.norm(new_ankle - hip) == pytest.approx(reach, abs=1e-3)
    assert np.all(np.isfinite(new_knee))


def _standing(frames: int, rng: np.random.Generator, jitter_rad: float = 0.02) -> np.ndarray:
    """The rest pose with the left leg shaking about the hip (a few cm at the ankle), knee bent a little."""
    joints = np.repeat(skeleton.rest_pose()[None], frames, axis=0)
    joints[:, KNEE, 2] += 0.03  # a slightly bent knee, so its bending plane is defined
    turn = Rotation.from_rotvec(rng.normal(0, jitter_rad, (frames, 3)))
    for t in range(frames):
        leg = joints[t, [KNEE, ANKLE, TOES]] - joints[t, HIP]
        joints[t, [KNEE, ANKLE, TOES]] = joints[t, HIP] + turn[t].apply(leg)
    return joints


def test_a_planted_foot_stays_where_it_landed():
    rng = np.random.default_rng(1)
    joints, root = _standing(40, rng), np.array([0.1, 0.0, -3.0])
    contact = np.array([1.0, 0.0])  # left down, right up
    lock = FootLock(FeetConfig(ramp_frames=4))
    out = np.array([lock.apply(j, root, contact) for j in joints])
    held = out[4:, ANKLE]  # once fully engaged
    assert np.linalg.norm(held - held[0], axis=-1).max() < 1e-6
    assert np.linalg.norm(np.diff(joints[4:, ANKLE], axis=0), axis=-1).mean() > 0.02  # the estimate shook
    np.testing.assert_allclose(out[:, LEGS[1]], joints[:, LEGS[1]])  # the lifted foot is untouched
    lengths = np.linalg.norm(out[:, KNEE] - out[:, HIP], axis=-1)
    np.testing.assert_allclose(lengths, np.linalg.norm(joints[:, KNEE] - joints[:, HIP], axis=-1))


def test_the_hold_engages_and_lets_go_without_a_jump():
    rng = np.random.default_rng(2)
    frames = 60
    joints = _standing(frames, rng, jitter_rad=0.0)
    joints[:, [KNEE, ANKLE, TOES], 0] += np.linspace(0, 0.3, frames)[:, None]  # the estimate slides 30 cm
    root = np.array([0.0, 0.0, -3.0])
    probability = np.concatenate([np.zeros(10), np.ones(20), np.full(5, 0.5), np.zeros(25)])
    lock = FootLock(FeetConfig(contact_on=0.6, contact_off=0.4, ramp_frames=5))
    contacts = np.column_stack([probability, np.zeros(frames)])
    out = np.array([lock.apply(j, root, c) for j, c in zip(joints, contacts, strict=True)])
    slide = 0.3 / (frames - 1)
    steps = np.linalg.norm(np.diff(out[:, ANKLE], axis=0), axis=-1)
    assert steps.max() < 0.3 / 5 + 2 * slide  # catching up over 5 frames, never in one
    np.testing.assert_allclose(out[:10], joints[:10])  # before contact: the estimate
    assert np.linalg.norm(out[20:35, ANKLE] - out[20, ANKLE], axis=-1).max() < 1e-9  # held, 0.5 included
    np.testing.assert_allclose(out[45:], joints[45:], atol=1e-9)  # let go: the estimate again


def test_no_contact_estimate_leaves_the_joints_alone():
    joints = skeleton.rest_pose()
    np.testing.assert_array_equal(FootLock(FeetConfig()).apply(joints, np.zeros(3), None), joints)


def test_contact_thresholds_must_leave_a_gap():
    with pytest.raises(ValueError, match="contact_off"):
        FeetConfig(contact_on=0.5, contact_off=0.6)
