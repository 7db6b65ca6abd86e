"""Unseen legs (runtime/unseen.py): legs out of view for a while ease to standing, and back."""

import numpy as np
import pytest

from liverig.core import skeleton
from liverig.core.config import MotionConfig, PerceptionConfig, UnseenConfig
from liverig.runtime.feet import LEGS
from liverig.runtime.motion_methods import make_motion
from liverig.runtime.recording import read_landmark_recording
from liverig.runtime.unseen import UP, UnseenLegs
from tests.motion_support import sample
from tests.test_motion import METHODS, _at

FPS = 30.0
LEG_JOINTS = [j for leg in LEGS for j in leg[1:]]  # knees, ankles, toes


def _shaky_legs(frames: int, seed: int = 0) -> np.ndarray:
    """The rest pose with the legs below the hips shaking by a centimetre or two, as the model's
    guesses for unseen legs do."""
    rng = np.random.default_rng(seed)
    joints = np.repeat(skeleton.rest_pose()[None], frames, axis=0)
    joints[:, LEG_JOINTS] += rng.normal(0.0, 0.015, (frames, len(LEG_JOINTS), 3))
    return joints


def _run(joints: np.ndarray, legs_seen: np.ndarray, config: UnseenConfig | None = None) -> np.ndarray:
    unseen = UnseenLegs(config or UnseenConfig())
    out = []
    for t, seen in enumerate(legs_seen):
        confidence = np.ones(skeleton.NUM_JOINTS)
        if not seen:
            confidence[[j for leg in LEGS for j in leg]] = 0.05
        out.append(unseen(sample(t / FPS, joints[t], confidence)).joints)
    return np.array(out)


def test_a_short_occlusion_is_left_to_the_model():
    joints = _shaky_legs(60)
    seen = np.ones(60, dtype=bool)
    seen[10:35] = False  # 0.83 s < after_s (1 s)
    np.testing.assert_array_equal(_run(joints, seen), joints)


def test_long_unseen_legs_ease_to_standing_and_back():
    config = UnseenConfig(after_s=1.0, ease_s=0.5)
    joints = _shaky_legs(240)
    seen = np.ones(240, dtype=bool)
    seen[0:150] = False  # unseen for 5 s, then seen again
    out = _run(joints, seen, config)
    np.testing.assert_array_equal(out[:30], joints[:30])  # the first second: the model's legs
    standing = out[45:150]  # after 1 s + 0.5 s of easing
    for knee, hip in ((LEGS[0][1], LEGS[0][0]), (LEGS[1][1], LEGS[1][0])):
        np.testing.assert_allclose(standing[:, knee, [0, 2]], standing[:, hip, [0, 2]], atol=1e-9)  # below it
        assert np.all(standing[:, knee, 1] < standing[:, hip, 1] - 0.3)
    calm = np.linalg.norm(np.diff(standing[:, LEG_JOINTS], 2, axis=0), axis=-1).mean()
    shaky = np.linalg.norm(np.diff(joints[45:150, LEG_JOINTS], 2, axis=0), axis=-1).mean()
    assert calm < 0.1 * shaky
    steps = np.linalg.norm(np.diff(out[:, LEG_JOINTS], axis=0), axis=-1)
    assert steps.max() < 0.1  # no jump on the way in or out (the shaking itself moves up to ~7 cm)
    np.testing.assert_array_equal(out[165:], joints[165:])  # seen again for 0.5 s: the model's legs
    np.testing.assert_array_equal(out[:, : LEGS[0][0]], joints[:, : LEGS[0][0]])  # body and arms untouched


def test_sitting_legs_bend_as_on_a_chair():
    """`pose: sitting`: thighs level towards the body's front, shins straight down, toes forward; the
    bone lengths are the model's."""
    joints = _shaky_legs(120)
    seen = np.zeros(120, dtype=bool)
    out = _run(joints, seen, UnseenConfig(after_s=1.0, ease_s=0.5, pose="sitting"))[60:]
    rest = skeleton.rest_pose()
    front = np.array([0.0, 0.0, 1.0])  # the rest pose faces the camera (+Z)
    for hip, knee, ankle, toes in LEGS:
        thigh, shin, foot = (
            out[:, child] - out[:, parent] for parent, child in ((hip, knee), (knee, ankle), (ankle, toes))
        )
        for bone, direction in ((thigh, front), (shin, -UP), (foot, front)):
            unit = bone / np.linalg.norm(bone, axis=-1, keepdims=True)
            np.testing.assert_allclose(unit, np.broadcast_to(direction, unit.shape), atol=0.05)
        np.testing.assert_allclose(
            np.linalg.norm(thigh, axis=-1), np.linalg.norm(rest[knee] - rest[hip]), rtol=0.05
        )


def test_reset_forgets_how_long_the_legs_were_unseen():
    joints = _shaky_legs(2)
    unseen = UnseenLegs(UnseenConfig(after_s=0.0, ease_s=0.1))
    confidence = np.zeros(skeleton.NUM_JOINTS)
    unseen(sample(0.0, joints[0], confidence))
    unseen(sample(1.0, joints[0], confidence))
    unseen.reset()
    np.testing.assert_array_equal(
        unseen(sample(1.1, joints[1], confidence)).joints, joints[1]
    )  # starts from the model


@pytest.fixture(scope="module")
def three_seconds(clip_run):
    _, observations = read_landmark_recording(clip_run / "landmarks.jsonl")
    frames = [_at(o, i) for i, o in enumerate(o for o in observations if o.present)][:90]
    assert len(frames) == 90
    return frames


@pytest.mark.parametrize("method", [*METHODS, "raw"])
def test_the_motion_stage_stands_the_unseen_legs_of_a_head_and_shoulders_clip(method, three_seconds):
    """The bundled clip shows head and shoulders only; the smoothed methods stand the legs after a
    second and a half, `raw` leaves the detector's guesses alone."""
    frames = three_seconds
    poses = {}
    for name, legs in (("on", True), ("off", False)):
        config = MotionConfig(method=method)
        config.unseen.legs = legs
        motion = make_motion(config, PerceptionConfig())
        poses[name] = np.array([motion(o).joints for o in frames])
    body = [j for j in range(skeleton.NUM_JOINTS) if j not in LEG_JOINTS]
    np.testing.assert_array_equal(poses["on"][:, body], poses["off"][:, body])
    if method == "raw":
        np.testing.assert_array_equal(poses["on"], poses["off"])
        return
    np.testing.assert_array_equal(poses["on"][:30], poses["off"][:30])
    standing = poses["on"][45:]
    knees, hips = [leg[1] for leg in LEGS], [leg[0] for leg in LEGS]
    np.testing.assert_allclose(standing[:, knees][..., [0, 2]], standing[:, hips][..., [0, 2]], atol=1e-9)
    accel = {
        k: np.linalg.norm(np.diff(p[45:, LEG_JOINTS], 2, axis=0), axis=-1).mean() for k, p in poses.items()
    }
    assert accel["on"] < 0.3 * accel["off"]  # the model's guesses shake; standing legs do not
