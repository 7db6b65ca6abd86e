"""The Motion stage's behaviour shared by every method: absence, easing to rest, no NaN, resets."""

import numpy as np
import pytest

from liverig.core import skeleton
from liverig.core.config import MotionConfig, PerceptionConfig
from liverig.core.types import Observation, Timing
from liverig.runtime.motion import canonical_observation
from liverig.runtime.motion_methods import make_motion
from liverig.runtime.recording import read_landmark_recording
from tests.node_support import ROOT
from tests.test_root_filter import filtered

WEIGHTS = ROOT / "models" / "weights" / "stcnn.onnx"
METHODS = ["raw", "one_euro"] + (["stcnn"] if WEIGHTS.exists() else [])


@pytest.fixture(scope="module")
def observations(clip_run):
    _, observations = read_landmark_recording(clip_run / "landmarks.jsonl")
    return [o for o in observations if o.present][:40]


def _at(obs: Observation, index: int, fps: float = 30.0) -> Observation:
    return Observation(
        index,
        index / fps,
        Timing(0.0),
        obs.present,
        obs.image_size,
        obs.image_landmarks,
        obs.world_landmarks,
        obs.visibility,
    )


@pytest.mark.parametrize("method", METHODS)
def test_absence_holds_then_eases_to_rest_and_recovers(method, observations):
    config = MotionConfig(method=method, rest_after_s=0.5, rest_ease_s=0.5)
    motion = make_motion(config, PerceptionConfig())
    poses = [motion(_at(o, i)) for i, o in enumerate(observations[:30])]
    assert all(p.present and np.all(np.isfinite(p.joints)) for p in poses)
    last = poses[-1].joints
    absent = [motion(Observation.absent(30 + k, (30 + k) / 30, Timing(0.0))) for k in range(45)]
    assert not any(p.present for p in absent)
    np.testing.assert_allclose(absent[0].joints, last)  # held at first
    np.testing.assert_allclose(absent[10].joints, last)  # still within rest_after_s
    np.testing.assert_allclose(absent[-1].joints, skeleton.rest_pose())  # eased all the way to rest
    steps = np.linalg.norm(np.diff([p.joints for p in absent], axis=0), axis=-1)
    distance = np.linalg.norm(skeleton.rest_pose() - last, axis=-1)
    # No jump while easing: smoothstep's peak speed is 1.5x the mean over the 15 easing frames.
    assert np.all(steps <= 1.5 * distance / 15 + 1e-9)
    back = motion(_at(observations[30], 75))
    assert back.present and np.all(np.isfinite(back.joints))
    # History was cleared: the returning pose is not dragged towards the rest pose.
    fresh = make_motion(config, PerceptionConfig())(_at(observations[30], 0))
    np.testing.assert_allclose(back.joints, fresh.joints, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_low_visibility_and_nan_free(method, observations):
    motion = make_motion(MotionConfig(method=method), PerceptionConfig())
    for i, obs in enumerate(observations):
        hidden = _at(obs, i)
        hidden.visibility = obs.visibility.copy()
        hidden.visibility[[15, 17, 19, 21]] = 0.0  # left wrist and fingers occluded
        pose = motion(hidden)
        assert np.all(np.isfinite(pose.joints)) and np.all(np.isfinite(pose.root_position))
        assert pose.joints.shape == (skeleton.NUM_JOINTS, 3)


@pytest.mark.parametrize("method", METHODS)
def test_non_finite_landmarks_are_unseen_and_never_reach_the_output(method, observations):
    """A NaN wrist, an infinite visibility and a frame of nothing but NaN: the output stays finite
    in every frame after them (a NaN in a filter's history would otherwise stay there), the bad
    landmark's joint counts as unseen, and the all-NaN frame is "nobody in view"."""
    motion = make_motion(MotionConfig(method=method), PerceptionConfig())
    hand = skeleton.JOINT_NAMES.index("LeftHand")
    for i, obs in enumerate(observations):
        frame = _at(obs, i)
        frame.world_landmarks, frame.visibility = obs.world_landmarks.copy(), obs.visibility.copy()
        if i == 10:
            frame.world_landmarks[15] = np.nan  # left wrist
        if i == 11:
            frame.visibility[16] = np.inf
        if i == 12:
            frame.image_landmarks = np.full_like(obs.image_landmarks, np.nan)
        pose = motion(frame)
        assert np.all(np.isfinite(pose.joints)) and np.all(np.isfinite(pose.root_position)), i
        assert np.all(np.isfinite(pose.confidence)), i
        if i == 10:
            assert pose.present and pose.confidence[hand] == 0.0
        assert pose.present == (i != 12)


def test_nobody_at_start_gives_the_rest_pose():
    motion = make_motion(MotionConfig(method="one_euro"), PerceptionConfig())
    pose = motion(Observation.absent(0, 0.0, Timing(0.0)))
    assert not pose.present
    np.testing.assert_allclose(pose.joints, skeleton.rest_pose())


def test_bone_lengths_are_measured_per_person(observations):
    """A short dropout keeps the calibrated lengths; someone returning after the pose went to rest
    (a new person, perhaps) is measured afresh. `raw` leaves the detector's bones alone."""
    config = MotionConfig(method="one_euro", rest_after_s=0.5, rest_ease_s=0.5)
    config.body.calibration_frames = 5
    motion = make_motion(config, PerceptionConfig())
    for i, obs in enumerate(observations[:10]):
        motion(_at(obs, i))
    measured = motion.body.measured()
    assert np.isfinite(measured).any()  # the bones this head-and-shoulders clip shows
    motion(Observation.absent(10, 10 / 30, Timing(0.0)))
    motion(_at(observations[10], 11))  # back after 1 frame
    np.testing.assert_array_equal(motion.body.measured(), measured)
    for k in range(30):  # 1 s away: past rest_after_s
        motion(Observation.absent(12 + k, (12 + k) / 30, Timing(0.0)))
    motion(_at(observations[11], 42))
    assert np.isnan(motion.body.measured()).all()

    raw = make_motion(MotionConfig(method="raw"), PerceptionConfig())
    joints, _ = skeleton.landmarks_to_joints(observations[0].world_landmarks, observations[0].visibility)
    np.testing.assert_allclose(raw(_at(observations[0], 0)).joints, joints)


@pytest.mark.parametrize("method", METHODS)
def test_the_motion_stage_places_the_root_with_the_filter(method, observations):
    motion = make_motion(MotionConfig(method=method), PerceptionConfig())
    poses = [motion(_at(o, i)) for i, o in enumerate(observations)]
    reprojected = np.array([canonical_observation(o, 60.0)[3] for o in observations])
    expected = reprojected if method == "raw" else filtered(reprojected)
    np.testing.assert_allclose([p.root_position for p in poses], expected, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_foot_contacts_come_from_the_learned_model_only(method, observations):
    motion = make_motion(MotionConfig(method=method), PerceptionConfig())
    contacts = [motion(_at(o, i)).foot_contact for i, o in enumerate(observations)]
    if method != "stcnn":
        assert all(c is None for c in contacts)
        return
    contacts = np.array(contacts)
    assert contacts.shape == (len(observations), 2) and np.all((contacts >= 0) & (contacts <= 1))
    assert contacts.std() > 0  # a live estimate, not a constant
