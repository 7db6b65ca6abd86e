"""Re-entry glide (runtime/reentry.py): a joint seen again after an occlusion does not jump."""

import numpy as np

from liverig.core.config import MotionConfig, PerceptionConfig, ReentryConfig
from liverig.runtime.reentry import Reentry
from tests.motion_support import sample

FPS = 30.0


def _walk(frames: int) -> np.ndarray:
    """Three joints moving steadily along x, 1 cm a frame."""
    t = np.arange(frames)[:, None, None]
    return np.zeros((frames, 3, 3)) + t * np.array([0.01, 0.0, 0.0])


def test_seen_joints_pass_through_untouched():
    glide, joints = Reentry(ReentryConfig()), _walk(40)
    for t in range(40):
        np.testing.assert_array_equal(glide(sample(t / FPS, joints[t], np.ones(3))).joints, joints[t])


def test_a_joint_back_from_an_occlusion_glides_from_where_it_was_shown():
    """Joint 2 is hidden for frames 10-19 while its guess wanders 30 cm off, then seen again at its
    true place: the output never steps more than the smoothstep's peak share of the gap (1.5x the
    mean over the glide) beyond the joint's own motion, and is the model's once the glide is over."""
    config = ReentryConfig(ease_s=0.3)
    glide, truth = Reentry(config), _walk(60)
    model = truth.copy()
    model[10:20, 2, 1] += np.linspace(0.03, 0.3, 10)  # the hidden joint's guess wanders off
    confidence = np.ones((60, 3))
    confidence[10:20, 2] = 0.1
    out = np.array([glide(sample(t / FPS, model[t], confidence[t])).joints for t in range(60)])
    np.testing.assert_array_equal(out[:20], model[:20])  # hidden joints are the model's to fill
    gap = np.linalg.norm(model[19, 2] - model[20, 2])
    steps = np.linalg.norm(np.diff(out[19:40, 2], axis=0), axis=-1)
    glide_frames = config.ease_s * FPS
    assert steps.max() <= 1.5 * gap / glide_frames + 0.01 + 1e-9
    assert np.linalg.norm(model[20, 2] - model[19, 2]) > 5 * steps.max()  # without it: one 30 cm jump
    np.testing.assert_allclose(out[30:], model[30:], atol=1e-12)  # glide over after ease_s
    np.testing.assert_array_equal(out[:, :2], model[:, :2])  # the seen joints never moved


def test_flickering_confidence_glides_nothing():
    """Dips shorter than min_hidden_s are flicker, not occlusions: a fast joint whose confidence
    crosses the threshold every other frame (or 1 frame in 3) is passed through, never left trailing."""
    for period in (2, 3):
        glide, model = Reentry(ReentryConfig()), _walk(90) * 5  # 5 cm a frame
        confidence = np.ones((90, 3))
        confidence[::period, 2] = 0.1
        out = np.array([glide(sample(t / FPS, model[t], confidence[t])).joints for t in range(90)])
        np.testing.assert_allclose(out, model, atol=1e-12)


def test_a_blip_of_confidence_inside_an_occlusion_does_not_end_it():
    """Hysteresis: an occluded limb's confidence flickers (0.4 for a frame mid-burst); only a return
    to seen_confidence ends the occlusion, so the limb glides once, at the real return."""
    glide, model = Reentry(ReentryConfig()), _walk(60)
    model[10:20, 2, 1] += 0.3  # the hidden joint's guess is off by 30 cm
    confidence = np.ones((60, 3))
    confidence[10:20, 2] = 0.1
    confidence[18, 2] = 0.4  # above min_confidence, below seen_confidence
    out = np.array([glide(sample(t / FPS, model[t], confidence[t])).joints for t in range(60)])
    np.testing.assert_array_equal(out[:20], model[:20])
    assert np.linalg.norm(out[20, 2] - out[19, 2]) < 0.02  # no 30 cm jump back at the return


def test_the_motion_stage_glides_a_returning_limb_and_reset_forgets():
    from liverig.runtime.motion_methods import make_motion

    stage = make_motion(MotionConfig(method="one_euro"), PerceptionConfig())
    assert stage.reentry is not None
    assert make_motion(MotionConfig(method="raw"), PerceptionConfig()).reentry is None  # raw is raw
    off = MotionConfig(method="one_euro")
    off.reentry.glide = False
    assert make_motion(off, PerceptionConfig()).reentry is None
    glide = Reentry(ReentryConfig())
    hidden = np.array([1.0, 1.0, 0.0])
    glide(sample(0.0, np.zeros((3, 3)), hidden))
    glide.reset()
    np.testing.assert_array_equal(glide(sample(1 / FPS, np.ones((3, 3)))).joints, np.ones((3, 3)))
