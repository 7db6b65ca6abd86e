"""Real mocap in the canonical skeleton: the BVH parser, the DeepMimic FK, the converted clips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liverig.core.fetch import FetchError
from liverig.core.skeleton import BONES, JOINT_INDEX, JOINT_NAMES, bone_lengths
from liverig.models.training import mocap

J = JOINT_INDEX
UPRIGHT = {"walk", "turn", "run", "jump", "boxing", "kick", "punch", "spin", "dance", "misc"}
ON_FEET = UPRIGHT | {"crouch"}  # the feet bear the weight, so they show which way the body faces
# Bones (named by their child joint) that a real body keeps at one length.
LIMB_BONES = ("LowerArm", "Hand", "HandEnd", "UpperLeg", "LowerLeg", "Foot")
RIGID = [f"{side}{bone}" for side in ("Left", "Right") for bone in LIMB_BONES] + ["HeadEnd"]


def _bone(name: str) -> int:
    return [c for _, c in BONES].index(J[name])


@pytest.fixture(scope="module")
def clips() -> dict[str, mocap.Clip]:
    try:
        return {c.name: c for c in mocap.load_clips("all")}
    except FetchError as error:  # offline: the registries are unreachable
        pytest.skip(f"mocap sources unavailable: {error}")


@pytest.fixture(scope="module")
def bvhtoolbox_files() -> dict[str, str]:
    try:
        return {
            n: mocap._raw("bvhtoolbox", f"{mocap._BT_DIR}{n}").read_text()
            for n in ("test_mocapbank.bvh", "test_freebvh.bvh")
        }
    except FetchError as error:
        pytest.skip(f"bvhtoolbox sdist unavailable: {error}")


def _fk(bvh: mocap.Bvh) -> np.ndarray:
    quats, trans = mocap.bvh_local(bvh)
    return mocap.forward_kinematics(bvh.parents, quats, trans)[0]


# Reference positions (file units) from bvhio 1.5.4, an independent BVH library.
REFERENCE = {
    ("test_mocapbank.bvh", 17, "LeftWrist"): (-37.2565, 93.7783, 248.4140),
    ("test_mocapbank.bvh", 17, "Head"): (-45.3828, 145.9735, 231.5392),
    ("test_mocapbank.bvh", 17, "RightAnkle"): (-45.4705, 10.7014, 228.5601),
    ("test_freebvh.bvh", 30, "mixamorig:LeftHand"): (9.2856, 88.6094, 61.9071),
    ("test_freebvh.bvh", 30, "mixamorig:RightToeBase"): (11.2121, 0.3040, 110.5356),
}


def test_parser_counts(bvhtoolbox_files):
    bank = mocap.parse_bvh(bvhtoolbox_files["test_mocapbank.bvh"])
    with_channels = [n for n, c in zip(bank.names, bank.channels, strict=True) if c]
    assert len(with_channels) == 19 and len(bank.names) == 19 + 5  # 5 End Sites
    assert bank.num_frames == 455 and bank.motion.shape == (455, 6 + 18 * 3)
    assert bank.frame_time == pytest.approx(1 / 30, abs=1e-5)
    assert bank.names[bank.parents[bank.index("LeftWrist")]] == "LeftElbow"
    free = mocap.parse_bvh(bvhtoolbox_files["test_freebvh.bvh"])
    assert sum(bool(c) for c in free.channels) == 55 and free.num_frames == 69


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_fk_matches_reference(bvhtoolbox_files, key):
    name, frame, joint = key
    bvh = mocap.parse_bvh(bvhtoolbox_files[name])
    np.testing.assert_allclose(_fk(bvh)[frame, bvh.index(joint)], REFERENCE[key], atol=2e-3)


SYNTHETIC = """HIERARCHY
ROOT a
{
  OFFSET 0 0 0
  CHANNELS 6 Zrotation Xposition Yrotation Yposition Xrotation Zposition
  JOINT b
  {
    OFFSET 0 0 1
    CHANNELS 3 Xrotation Yrotation Zrotation
    End Site
    {
      OFFSET 0 1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
0 1 90 2 0 3   90 0 0
90 0 90 0 0 0  0 0 0
"""


def test_fk_channel_order_by_hand():
    bvh = mocap.parse_bvh(SYNTHETIC)
    assert bvh.names == ["a", "b", "b_End"] and bvh.frame_time == 0.5
    pos = _fk(bvh)
    # Frame 0: root at (1, 2, 3) turned +90 deg about Y (z -> x); b's +90 deg about X sends y -> z.
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [2, 2, 3], [3, 2, 3]], atol=1e-9)
    # Frame 1: "Zrotation ... Yrotation" is Rz @ Ry: (0,0,1) -Ry-> (1,0,0) -Rz-> (0,1,0).
    np.testing.assert_allclose(pos[1, 1], [0, 1, 0], atol=1e-9)


def test_deepmimic_first_frame_plausible():
    urdf = mocap.parse_urdf(mocap._raw("deepmimic", "pybullet_data/humanoid/humanoid.urdf").read_text())
    clip = json.loads(mocap._raw("deepmimic", mocap._DM_DIR + "humanoid3d_walk.txt").read_text())
    names, parents, times, quats, trans = mocap.deepmimic_motion(clip, urdf)
    pos, _ = mocap.forward_kinematics(parents, quats[:1], trans[:1])
    pos = pos[0] * mocap.DEEPMIMIC_RIG.unit
    n = names.index
    thigh = np.linalg.norm(pos[n("right_knee")] - pos[n("right_hip")])
    assert thigh == pytest.approx(1.686184 * 0.25, abs=1e-6)
    assert pos[n("neck")][1] > pos[n("chest")][1] > pos[n("root")][1] > pos[n("right_knee")][1]
    assert pos[n("right_knee")][1] > pos[n("right_ankle")][1] > 0.0
    assert 0.75 < pos[n("root")][1] < 0.95 and np.all(np.diff(times) > 0)


def test_clip_list_and_split(clips):
    assert len(clips) == len(mocap.CLIPS) == len({s.name for s in mocap.CLIPS})
    by_split = {s: {c.name for c in mocap.CLIPS if c.split == s} for s in mocap.SPLITS}
    assert set.union(*by_split.values()) == set(clips)
    assert not (
        by_split["train"] & by_split["val"]
        or by_split["train"] & by_split["test"]
        or by_split["val"] & by_split["test"]
    )
    test_activities = {c.activity for c in mocap.CLIPS if c.split == "test"}
    assert "jump" in test_activities and len(test_activities) >= 3
    assert [c.name for c in mocap.load_clips("test")] == [c.name for c in mocap.CLIPS if c.split == "test"]


def test_clip_format(clips):
    for clip in clips.values():
        assert clip.joints.dtype == np.float32 and clip.joints.shape[1:] == (22, 3) and clip.fps == 30.0
        assert len(clip.joints) >= 24 and np.isfinite(clip.joints).all()
        np.testing.assert_allclose(clip.joints[0, J["Hips"], [0, 2]], 0.0, atol=1e-5)


def test_bone_lengths_plausible(clips):
    for name, clip in clips.items():
        med = np.median(bone_lengths(clip.joints.astype(np.float64)), axis=0)
        thigh, shin = med[_bone("LeftLowerLeg")], med[_bone("LeftFoot")]
        upper_arm, forearm = med[_bone("LeftLowerArm")], med[_bone("LeftHand")]
        torso = med[_bone("Spine")] / 0.25  # Hips -> Neck
        ear = med[_bone("Head")]
        assert 0.35 < thigh < 0.55 and 0.33 < shin < 0.5, name
        assert 0.22 < upper_arm < 0.36 and 0.18 < forearm < 0.32, name
        stature = thigh + shin + torso + ear + 0.2  # + ankle height and ear-to-crown
        assert 1.4 < stature < 2.0, (name, stature)
        assert abs(med[_bone("LeftUpperLeg")] - med[_bone("RightUpperLeg")]) < 0.01, name


def test_rigid_bones_constant(clips):
    for name, clip in clips.items():
        lengths = bone_lengths(clip.joints.astype(np.float64))[:, [_bone(b) for b in RIGID]]
        cv = lengths.std(axis=0) / lengths.mean(axis=0)
        assert cv.max() < 0.01, (name, JOINT_NAMES[J[RIGID[int(cv.argmax())]]], cv.max())


def test_feet_on_the_floor(clips):
    feet = [J["LeftFoot"], J["LeftToes"], J["RightFoot"], J["RightToes"]]
    for name, clip in clips.items():
        y = clip.joints[..., 1]
        surface = (y - mocap.CONTACT_RADIUS).min(axis=1)
        assert (surface < -0.03).mean() < 0.02, name  # hardly anything sinks through the floor
        assert np.median(surface) < 0.15, name  # and the body does not float above it
        if clip.activity in UPRIGHT:
            lowest_foot = y[:, feet].min(axis=1)
            assert np.median(lowest_foot) < 0.1, name
            assert 0.6 < np.median(y[:, J["Hips"]]) < 1.1, name
            assert np.median(y[:, J["Head"]]) > np.median(y[:, J["Hips"]]) + 0.4, name


def test_left_is_left(clips):
    """Facing from the labelled hips and shoulders agrees with where the feet point."""
    for name, clip in clips.items():
        x = clip.joints.astype(np.float64)
        first = mocap.facing(x[:1])[0]
        np.testing.assert_allclose(first, [0, 0, 1], atol=1e-6)
        if clip.activity not in ON_FEET:
            continue
        assert x[0, J["LeftUpperArm"], 0] > x[0, J["RightUpperArm"], 0], name
        toes = x[:, [J["LeftToes"], J["RightToes"]]] - x[:, [J["LeftFoot"], J["RightFoot"]]]
        toes = toes.sum(axis=1) * [1, 0, 1]
        toes /= np.linalg.norm(toes, axis=-1, keepdims=True)
        assert np.median((mocap.facing(x) * toes).sum(-1)) > 0.5, name


def test_manifest(clips):
    data = json.loads(mocap.write_manifest(list(clips.values())).read_text())
    assert {c["name"] for c in data["clips"]} == set(clips)
    assert all(len(a["sha256"]) == 64 for a in data["archives"].values())
