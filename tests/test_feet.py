"""Foot lock (runtime/feet.py): two-bone IK, holding planted feet, reach limits, release, hysteresis."""

import numpy as np
import pytest

from liverig.core import skeleton
from liverig.core.config import FeetConfig, MotionConfig, PerceptionConfig
from liverig.runtime.feet import LEGS, FootLock, reach
from liverig.runtime.motion_methods import make_motion
from tests.motion_support import sample
from tests.test_motion import METHODS, _at, observations  # noqa: F401  (a pytest fixture)

LEFT = LEGS[0]
UPPER, LOWER, FOOT, TOES = LEFT
ROOT = np.array([0.2, 0.9, -3.0])
FPS = 30.0


def _lengths(joints: np.ndarray) -> tuple[float, float]:
    return (
        float(np.linalg.norm(joints[LOWER] - joints[UPPER])),
        float(np.linalg.norm(joints[FOOT] - joints[LOWER])),
    )


def _bent_pose() -> np.ndarray:
    """The rest pose with the left knee bent forward (+Z: towards the camera, the body's front)."""
    joints = skeleton.rest_pose().copy()
    joints[LOWER] += np.array([0.0, 0.0, 0.08])
    return joints


def test_reach_puts_the_foot_on_a_reachable_target_and_keeps_the_bones():
    joints = _bent_pose()
    target = joints[FOOT] + np.array([0.05, 0.12, 0.04])
    out = reach(joints, LEFT, target)
    np.testing.assert_allclose(out[FOOT], target, atol=1e-9)
    np.testing.assert_allclose(_lengths(out), _lengths(joints), atol=1e-9)
    np.testing.assert_allclose(out[TOES] - out[FOOT], joints[TOES] - joints[FOOT], atol=1e-12)
    moved = {LOWER, FOOT, TOES}
    others = [j for j in range(skeleton.NUM_JOINTS) if j not in moved]
    np.testing.assert_array_equal(out[others], joints[others])  # hip, other leg, body untouched
    # The knee stays in the leg's bend plane, on the same (front) side of the hip-foot line.
    axis = (out[FOOT] - out[UPPER]) / np.linalg.norm(out[FOOT] - out[UPPER])
    side = (out[LOWER] - out[UPPER]) - np.dot(out[LOWER] - out[UPPER], axis) * axis
    assert side[2] > 0.05


def test_reach_bends_a_straight_leg_towards_the_front():
    joints = skeleton.rest_pose().copy()  # straight legs
    out = reach(joints, LEFT, joints[FOOT] + np.array([0.0, 0.2, 0.0]))  # lift the foot 20 cm
    np.testing.assert_allclose(out[FOOT], joints[FOOT] + [0.0, 0.2, 0.0], atol=1e-9)
    assert out[LOWER][2] - joints[LOWER][2] > 0.1  # the knee comes forward, not backward or sideways
    assert abs(out[LOWER][0] - joints[LOWER][0]) < 1e-9


def test_reach_stops_at_the_legs_length():
    joints = _bent_pose()
    thigh, shin = _lengths(joints)
    far = joints[UPPER] + np.array([0.0, -2.0, 0.0])
    out = reach(joints, LEFT, far)
    np.testing.assert_allclose(_lengths(out), (thigh, shin), atol=1e-9)
    assert np.linalg.norm(out[FOOT] - joints[UPPER]) == pytest.approx(thigh + shin, abs=1e-5)
    np.testing.assert_allclose(out[FOOT][[0, 2]], joints[UPPER][[0, 2]], atol=1e-5)  # straight down


def _run(lock: FootLock, frames: list[np.ndarray], contacts) -> np.ndarray:
    return np.array(
        [
            lock(sample(t / FPS, j, root=ROOT, contact=c)).joints
            for t, (j, c) in enumerate(zip(frames, contacts, strict=True))
        ]
    )


def test_a_planted_foot_stays_while_the_detected_one_jitters():
    rng = np.random.default_rng(0)
    base = _bent_pose()
    frames = []
    for _ in range(60):
        joints = base.copy()
        joints[[FOOT, TOES]] += rng.normal(0.0, 0.01, 3)  # detector noise on the left foot, 1 cm
        frames.append(joints)
    out = _run(FootLock(FeetConfig(lock=True)), frames, [(1.0, 0.0)] * 60)
    seen_speed = np.linalg.norm(np.diff([f[FOOT] for f in frames], axis=0), axis=-1).mean()
    held_speed = np.linalg.norm(np.diff(out[:, FOOT], axis=0), axis=-1).mean()
    assert held_speed < 0.1 * seen_speed  # measured ~0.03x: only the slow follow moves it
    right = list(LEGS[1])
    np.testing.assert_array_equal(out[:, right], np.array(frames)[:, right])  # not in contact: untouched
    for joints in out:  # the leg reaches the held foot with the detected bone lengths
        assert np.all(np.isfinite(joints))


def test_a_held_foot_never_strays_beyond_max_offset_and_eases_back_on_release():
    config = FeetConfig(lock=True, max_offset_m=0.04, release_s=0.1)
    base = _bent_pose()
    frames = [base.copy() for _ in range(50)]
    for t, joints in enumerate(frames[:30]):  # the foot really slides forward, 1 cm per frame
        joints[[FOOT, TOES]] += np.array([0.0, 0.0, 0.01 * t])
    for joints in frames[30:]:
        joints[[FOOT, TOES]] += np.array([0.0, 0.0, 0.29])
    contacts = [(1.0, 0.0)] * 30 + [(0.0, 0.0)] * 20  # then it is lifted: released
    out = _run(FootLock(config), frames, contacts)
    gap = np.linalg.norm(out[:, FOOT] - np.array(frames)[:, FOOT], axis=-1)
    assert np.all(gap <= 0.04 + 1e-9)
    assert gap[29] == pytest.approx(0.04, abs=1e-6)  # held back as far as allowed
    # Released: the offset decays by exp(-dt / release_s) per frame, no jump.
    keep = np.exp(-1 / FPS / 0.1)
    np.testing.assert_allclose(gap[31:], gap[30:-1] * keep, rtol=1e-6)
    assert gap[-1] < 0.001


def test_hysteresis_locks_at_contact_on_and_releases_below_contact_off():
    config = FeetConfig(lock=True, contact_on=0.6, contact_off=0.4)
    lock = FootLock(config)
    joints = _bent_pose()
    lock(
        sample(0.0, joints, root=ROOT, contact=np.array([0.5, 0.0]))
    )  # between the two: an unlocked foot stays free
    assert not lock.locked[0]
    lock(sample(1 / FPS, joints, root=ROOT, contact=np.array([0.6, 0.0])))
    assert lock.locked[0]
    lock(
        sample(2 / FPS, joints, root=ROOT, contact=np.array([0.45, 0.0]))
    )  # between the two: a locked foot stays held
    assert lock.locked[0]
    lock(sample(3 / FPS, joints, root=ROOT, contact=np.array([0.39, 0.0])))
    assert not lock.locked[0]
    lock(sample(4 / FPS, joints, root=ROOT, contact=np.array([0.9, 0.9])))
    lock.reset()
    assert not lock.locked.any() and not lock.offset.any()


def test_no_contact_leaves_the_pose_alone():
    frames = [_bent_pose() + 0.01 * t for t in range(10)]
    out = _run(FootLock(FeetConfig(lock=True)), frames, [(0.0, 0.0)] * 10)
    np.testing.assert_array_equal(out, np.array(frames))


def test_contact_off_above_contact_on_is_a_config_error():
    with pytest.raises(ValueError, match="contact_off"):
        FeetConfig(contact_on=0.3, contact_off=0.4)


@pytest.mark.parametrize("method", METHODS)
def test_the_motion_stage_moves_only_the_legs_with_the_lock_on(method, observations):  # noqa: F811
    """With `motion.feet.lock`, the learned stage bends only knees, feet and toes; methods without a
    contact estimate are unchanged."""
    on = MotionConfig(method=method)
    on.feet.lock = True
    poses = {}
    for name, config in (("off", MotionConfig(method=method)), ("on", on)):
        motion = make_motion(config, PerceptionConfig())
        poses[name] = [motion(_at(o, i)) for i, o in enumerate(observations)]
    off_joints = np.array([p.joints for p in poses["off"]])
    on_joints = np.array([p.joints for p in poses["on"]])
    assert np.all(np.isfinite(on_joints))
    legs = [j for leg in LEGS for j in leg[1:]]
    body = [j for j in range(skeleton.NUM_JOINTS) if j not in legs]
    np.testing.assert_array_equal(on_joints[:, body], off_joints[:, body])
    roots = {name: [p.root_position for p in run] for name, run in poses.items()}
    np.testing.assert_array_equal(roots["on"], roots["off"])
    if method != "stcnn":
        np.testing.assert_array_equal(on_joints, off_joints)
    else:  # the model says a foot is planted at times in this clip, and then the leg bends
        contacts = np.array([p.foot_contact for p in poses["on"]])
        assert (contacts >= on.feet.contact_on).any()
        assert np.abs(on_joints[:, legs] - off_joints[:, legs]).max() > 1e-4
