"""Body calibration (runtime/body.py): bone lengths measured, frozen, held; body profiles."""

import numpy as np
import pytest

from liverig.calibration.body import save_profile
from liverig.core.config import BodyConfig
from liverig.core.skeleton import BONES, JOINT_INDEX, MIRROR, bone_lengths, rest_pose
from liverig.models.training.mocap import load_clips
from liverig.runtime.body import (
    BONE_NAMES,
    BodyCalibration,
    BodyProfileError,
    load_profile,
    project,
)
from tests.motion_support import sample

PARTNER = np.array([[c for _, c in BONES].index(MIRROR[c]) for _, c in BONES])  # left <-> right bone
LEGS = [JOINT_INDEX[n] for n in JOINT_INDEX if "Leg" in n or "Foot" in n or "Toes" in n]


@pytest.fixture(scope="module")
def real_poses() -> np.ndarray:
    """Root-relative frames of real recorded motion (CMU subject 01, test split)."""
    clip = load_clips("test")[0]
    return (clip.joints - clip.joints[:, :1]).astype(np.float64)


def _noisy(poses: np.ndarray, rng: np.random.Generator, sd: float) -> np.ndarray:
    """Each joint moved by independent noise: every bone's length then changes from frame to frame."""
    noisy = poses + rng.normal(0, sd, poses.shape)
    noisy[:, 0] = 0.0
    return noisy


def test_projection_gives_every_bone_its_length_and_moves_little(real_poses):
    rng = np.random.default_rng(0)
    truth = real_poses[::5]
    noisy = _noisy(truth, rng, 0.02)
    held = project(noisy, bone_lengths(truth[0]), iterations=12)
    error = np.abs(bone_lengths(held) / bone_lengths(truth[0]) - 1)
    assert error.mean() < 0.005 and error.max() < 0.1  # 2 cm of noise on 6 cm finger bones: the worst
    assert np.allclose(held[:, 0], 0.0)  # the Hips stay put
    # Moving the joints onto the right lengths brings them closer to the truth, not further.
    before = np.linalg.norm(noisy - truth, axis=-1).mean()
    after = np.linalg.norm(held - truth, axis=-1).mean()
    assert after < before
    # A pose that already has the lengths is left as it is; NaN lengths constrain nothing.
    assert np.allclose(project(truth[3], bone_lengths(truth[3]), 10), truth[3], atol=1e-9)
    assert np.allclose(project(noisy, np.full(len(BONES), np.nan), 10), noisy)


def test_calibration_freezes_the_median_and_holds_it(real_poses):
    rng = np.random.default_rng(1)
    config = BodyConfig(calibration_frames=30, lock_bones=True)
    body = BodyCalibration(config)
    noisy = _noisy(real_poses[:120], rng, 0.005)
    out = []
    for t, frame in enumerate(noisy):
        out.append(body(sample(0.0, frame)).joints)
        assert body.calibrated == (t >= 29), t  # both sides pooled: 30 frames fill every pool
    truth = bone_lengths(real_poses[0])
    assert np.allclose(body.lengths, (truth + truth[PARTNER]) / 2, rtol=0.05)
    assert np.array_equal(body.lengths, body.lengths[PARTNER])  # left and right share one length
    after = bone_lengths(np.array(out[30:]))
    cv = after.std(axis=0) / after.mean(axis=0)
    before = bone_lengths(noisy[30:])
    assert cv.mean() < 0.01 < (before.std(axis=0) / before.mean(axis=0)).mean()


def test_bones_never_seen_keep_the_live_estimate_and_stay_out_of_the_profile(real_poses, tmp_path):
    body = BodyCalibration(BodyConfig(calibration_frames=10, lock_bones=True))
    confidence = np.ones(real_poses.shape[1])
    confidence[LEGS] = 0.1  # a streamer at a desk: no legs in view
    for frame in real_poses[:40]:
        out = body(sample(0.0, frame, confidence)).joints
    assert not body.calibrated
    leg_bones = [b for b, (_, c) in enumerate(BONES) if c in LEGS]
    assert np.isnan(body.measured()[leg_bones]).all()
    assert np.isfinite(np.delete(body.measured(), leg_bones)).all()
    assert np.allclose(bone_lengths(out)[leg_bones], bone_lengths(real_poses[39])[leg_bones], rtol=0.02)
    path = tmp_path / "me.yaml"
    save_profile(path, body.measured())
    loaded = load_profile(path)
    assert np.allclose(loaded, body.measured(), atol=1e-4, equal_nan=True)
    # A profile preloads frozen lengths: nothing to wait for on those bones.
    preloaded = BodyCalibration(BodyConfig(calibration_frames=10), loaded)
    assert np.allclose(preloaded.measured(), loaded, equal_nan=True)


def test_a_person_coming_back_is_measured_afresh_but_profile_lengths_stay(real_poses):
    profile = np.full(len(BONES), np.nan)
    profile[0] = 0.123
    body = BodyCalibration(BodyConfig(calibration_frames=5), profile)
    for frame in real_poses[:10]:
        body(sample(0.0, frame))
    assert body.calibrated
    body.reset()  # a moment's loss: the same person, nothing forgotten
    assert body.calibrated
    body.forget()  # gone long enough that someone new may have stepped in
    assert not body.calibrated and body.measured()[0] == 0.123 and np.isnan(body.measured()[1:]).all()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bones: {Spine: 0.1}\n", "expected 'liverig_body_profile: 1'"),
        ("liverig_body_profile: 1\nbones: [0.1]\n", "key 'bones'"),
        ("liverig_body_profile: 1\nbones: {Tail: 0.1}\n", "key 'bones.Tail': unknown bone"),
        ("liverig_body_profile: 1\nbones: {Spine: -0.1}\n", "key 'bones.Spine': expected a length"),
        ("liverig_body_profile: 1\nbones: {Spine: yes}\n", "key 'bones.Spine': expected a length"),
        ("liverig_body_profile: [1\n", "cannot read body profile"),
    ],
)
def test_a_bad_profile_names_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BodyProfileError, match=str(path)) as error:
        load_profile(path)
    assert message in str(error.value)
    with pytest.raises(BodyProfileError, match="not found"):
        load_profile(tmp_path / "missing.yaml")


def test_bone_names_are_the_joints_they_end_at():
    assert BONE_NAMES[0] == "Spine" and "LeftLowerArm" in BONE_NAMES and "Hips" not in BONE_NAMES
    assert len(BONE_NAMES) == len(BONES)
    assert np.isfinite(bone_lengths(rest_pose())).all()


def test_with_the_hold_off_bones_are_measured_but_joints_pass_through(real_poses):
    body = BodyCalibration(BodyConfig(calibration_frames=5))  # the default: lock_bones false
    for frame in real_poses[:10]:
        assert body(sample(0.0, frame)).joints is frame
    assert body.calibrated and np.isfinite(body.measured()).all()  # --calibrate-body still works
