"""Side guard (runtime/sides.py): brief left/right mix-ups swapped back, real motion left alone."""

import numpy as np
import pytest

from liverig.core import skeleton
from liverig.core.config import MotionConfig, PerceptionConfig, SidesConfig
from liverig.core.types import Observation, Timing
from liverig.runtime.motion_methods import make_motion
from liverig.runtime.sides import PAIRS, SideGuard
from tests.motion_support import sample
from tests.test_motion import _at, observations  # noqa: F401  (a pytest fixture)

FPS = 30.0
ARMS, LEGS = PAIRS
J = skeleton.NUM_JOINTS


def _sequence(frames: int = 60, seed: int = 0):
    """The rest pose swaying gently (a few mm per frame), with confidences and image joints that
    differ per joint, so that any swap shows in all three."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / FPS
    joints = skeleton.rest_pose()[None] + 0.05 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6, (1, J, 3)))
    confidence = np.tile(np.linspace(0.5, 1.0, J), (frames, 1))
    image = np.tile(rng.uniform(0, 1, (1, J, 2)), (frames, 1, 1))
    return joints, confidence, image


def _swap(arrays, frames: slice, pair) -> tuple:
    left, right = pair
    out = tuple(a.copy() for a in arrays)
    for a in out:
        a[frames, left + right] = a[frames, right + left]
    return out


def _three(out):
    return out.joints, out.confidence, out.image


def _guard(arrays, config: SidesConfig | None = None):
    guard = SideGuard(config or SidesConfig())
    rows = [_three(guard(sample(t / FPS, j, c, i))) for t, (j, c, i) in enumerate(zip(*arrays, strict=True))]
    return tuple(np.array(x) for x in zip(*rows, strict=True))


@pytest.mark.parametrize("pair", [ARMS, LEGS], ids=["arms", "legs"])
def test_a_brief_mix_up_is_swapped_back_everywhere(pair):
    clean = _sequence()
    mixed = _swap(clean, slice(20, 26), pair)  # six frames, as the detector did on a roll
    for got, want in zip(_guard(mixed), clean, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_long_mix_up_is_believed_after_max_hold_s():
    clean = _sequence(90)
    mixed = _swap(clean, slice(20, 90), ARMS)  # never swaps back: the detector meant it
    joints = _guard(mixed, SidesConfig(max_hold_s=0.4))[0]
    np.testing.assert_array_equal(joints[20:32], clean[0][20:32])  # 0.4 s = 12 frames swapped back
    np.testing.assert_array_equal(joints[32:], mixed[0][32:])  # then the detector's sides


def test_limbs_that_touch_are_never_swapped():
    joints, confidence, image = _sequence()
    left, right = ARMS
    joints[:, right] = joints[:, left] + np.array([0.03, 0.0, 0.0])  # hands together, 3 cm apart
    clean = (joints, confidence, image)
    mixed = _swap(clean, slice(20, 26), ARMS)
    np.testing.assert_array_equal(_guard(mixed)[0], mixed[0])  # nothing to tell them apart by


def test_real_motion_is_left_alone_even_when_the_arms_cross():
    """The forearms sweep across each other (1 m apart to crossed over, 2 cm a frame): continuous
    motion, never closer to the other arm's last place than to its own."""
    joints, confidence, image = _sequence(60)
    left, right = ARMS
    sweep = np.linspace(0.5, -0.5, 60)[:, None]
    joints[:, left, 0] = sweep
    joints[:, right, 0] = -sweep
    clean = (joints, confidence, image)
    for got, want in zip(_guard(clean), clean, strict=True):
        np.testing.assert_array_equal(got, want)


def test_reset_forgets_the_last_frame():
    clean = _sequence(10)
    mixed = _swap(clean, slice(5, 10), ARMS)
    guard = SideGuard(SidesConfig())
    for t in range(5):
        guard(sample(t / FPS, clean[0][t], clean[1][t], clean[2][t]))
    guard.reset()  # the person was lost: a swapped first frame back is taken as it comes
    joints = guard(sample(5 / FPS, mixed[0][5], mixed[1][5], mixed[2][5])).joints
    np.testing.assert_array_equal(joints, mixed[0][5])


def _swap_arm_landmarks(obs: Observation) -> Observation:
    """The detector's mix-up: elbow, wrist and hand landmarks of the two arms trade labels."""
    names = skeleton.LANDMARK_NAMES
    order = np.arange(len(names))
    for part in ("elbow", "wrist", "pinky", "index", "thumb"):
        a, b = names.index(f"left_{part}"), names.index(f"right_{part}")
        order[[a, b]] = order[[b, a]]
    image, world, visibility = obs.image_landmarks[order], obs.world_landmarks[order], obs.visibility[order]
    return Observation(obs.index, obs.time_s, Timing(0.0), True, obs.image_size, image, world, visibility)


@pytest.mark.parametrize("method", ["one_euro", "raw"])
def test_the_motion_stage_guards_the_smoothed_methods_only(method, observations):  # noqa: F811
    frames = [_at(o, i) for i, o in enumerate(observations)]
    mixed = [(_swap_arm_landmarks(o) if 20 <= i < 25 else o) for i, o in enumerate(frames)]
    poses = {}
    for name, run in (("clean", frames), ("mixed", mixed)):
        motion = make_motion(MotionConfig(method=method), PerceptionConfig())
        poses[name] = np.array([motion(o).joints for o in run])
    if method == "raw":  # the detector's output as it is, mix-ups included
        assert np.abs(poses["mixed"][20:25] - poses["clean"][20:25]).max() > 0.05
    else:
        np.testing.assert_allclose(poses["mixed"], poses["clean"], atol=1e-12)
