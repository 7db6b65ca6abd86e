"""Retargeting onto real rigs: shipped profiles, glTF/VRM files, conventions, errors.

The expectations are written out here from each rig's published conventions (which way its axes
point, which side is left), not taken from the code under test: a retargeted pose, pushed through
forward kinematics on the rig, must point every aimed bone where the canonical pose points it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liverig.core import skeleton
from liverig.core.config import RetargetConfig
from liverig.core.types import Pose, Timing
from liverig.runtime.gltf_rig import read_gltf_rig, split_bone_name
from liverig.runtime.retarget import (
    Retargeter,
    RigError,
    forward_kinematics,
    load_profile_file,
    world_transforms,
)
from liverig.runtime.rigs import available_rigs, load_rig

J = skeleton.JOINT_INDEX
PROFILES = ["vrm0", "vrm1", "unity_humanoid", "ue5_manny", "ue4_mannequin", "mixamo"]
T_POSE_PROFILES = ["vrm0", "vrm1", "unity_humanoid", "mixamo"]

# Canonical (right-handed, +Y up, the person's left +X, facing the camera +Z) -> rig axes, written
# out from each engine's conventions. Unity: left-handed, the avatar faces +Z with its left on -X.
# glTF / VRM 1.0 / Mixamo FBX: right-handed, faces +Z, left on +X. Unreal: left-handed, +Z up, the
# mesh faces +Y with its left on +X.
UNITY = np.diag([-1.0, 1.0, 1.0])
GLTF = np.eye(3)
UNREAL = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
CANONICAL_TO_RIG = {
    "vrm0": UNITY,
    "unity_humanoid": UNITY,
    "vrm1": GLTF,
    "mixamo": GLTF,
    "ue5_manny": UNREAL,
    "ue4_mannequin": UNREAL,
}
METRES_PER_UNIT = {
    "vrm0": 1.0,
    "unity_humanoid": 1.0,
    "vrm1": 1.0,
    "mixamo": 0.01,
    "ue5_manny": 0.01,
    "ue4_mannequin": 0.01,
}
# The rig's own bone names for: left upper arm, left forearm, right upper arm, right forearm, left foot,
# left toes.
NAMES = {
    "vrm0": ("LeftUpperArm", "LeftLowerArm", "RightUpperArm", "RightLowerArm", "LeftFoot", "LeftToes"),
    "vrm1": ("leftUpperArm", "leftLowerArm", "rightUpperArm", "rightLowerArm", "leftFoot", "leftToes"),
    "mixamo": (
        "mixamorig:LeftArm",
        "mixamorig:LeftForeArm",
        "mixamorig:RightArm",
        "mixamorig:RightForeArm",
        "mixamorig:LeftFoot",
        "mixamorig:LeftToeBase",
    ),
    "ue5_manny": ("upperarm_l", "lowerarm_l", "upperarm_r", "lowerarm_r", "foot_l", "ball_l"),
}
NAMES["unity_humanoid"] = NAMES["vrm0"]
NAMES["ue4_mannequin"] = NAMES["ue5_manny"]


def half_turn_about(up: np.ndarray) -> np.ndarray:
    return 2.0 * np.outer(up, up) - np.eye(3)


def expected_map(name: str, facing: str) -> np.ndarray:
    """Canonical vector -> rig world vector for a shipped profile and facing."""
    m = CANONICAL_TO_RIG[name]
    return half_turn_about(m[:, 1]) @ m if facing == "away" else m


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def mirrored(joints: np.ndarray) -> np.ndarray:
    """The mirror image, by joint names: x negated, LeftX and RightX swapped."""
    out = np.empty_like(joints)
    for name, i in J.items():
        partner = name.replace("Left", "#").replace("Right", "Left").replace("#", "Right")
        out[i] = joints[J[partner]] * np.array([-1.0, 1.0, 1.0])
    return out


# ---------------------------------------------------------------------------------------------
# Real-looking poses: the canonical rest skeleton turned joint by joint within human limits.


def _hinge(rest: np.ndarray, joint: str, child: str, towards: np.ndarray, degrees: float) -> Rotation:
    bone = rest[J[child]] - rest[J[joint]]
    axis = np.cross(bone, towards)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(degrees))


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """Root-relative joints (J, 3) of a plausible human pose."""
    rest = skeleton.rest_pose()
    forward, backward = np.array([0, 0, 1.0]), np.array([0, 0, -1.0])

    def euler(x, y, z):
        return Rotation.from_euler("xyz", [rng.uniform(*x), rng.uniform(*y), rng.uniform(*z)], degrees=True)

    local = {name: Rotation.identity() for name in skeleton.JOINT_NAMES}
    local["Hips"] = Rotation.from_euler(
        "yxz", [rng.uniform(-180, 180), rng.uniform(-10, 35), rng.uniform(-15, 15)], degrees=True
    )
    local["Spine"] = euler((-15, 30), (-20, 20), (-15, 15))
    local["Chest"] = euler((-10, 25), (-20, 20), (-10, 10))
    local["Neck"] = euler((-25, 25), (-30, 30), (-15, 15))
    local["Head"] = euler((-30, 30), (-50, 50), (-20, 20))
    for side in ("Left", "Right"):
        local[f"{side}UpperArm"] = Rotation.from_rotvec(rng.normal(size=3) * 0.9)
        local[f"{side}LowerArm"] = _hinge(
            rest, f"{side}LowerArm", f"{side}Hand", forward, rng.uniform(0, 145)
        )
        local[f"{side}Hand"] = euler((-30, 30), (-30, 30), (-30, 30))
        local[f"{side}UpperLeg"] = euler((-100, 20), (-30, 30), (-30, 30))
        local[f"{side}LowerLeg"] = _hinge(
            rest, f"{side}LowerLeg", f"{side}Foot", backward, rng.uniform(0, 140)
        )
        local[f"{side}Foot"] = euler((-25, 25), (-15, 15), (-15, 15))
    joints = np.zeros_like(rest)
    world: dict[str, Rotation] = {}
    for (name, parent), i in zip(skeleton.JOINTS, range(skeleton.NUM_JOINTS), strict=True):
        if parent is None:
            world[name] = local[name]
            continue
        joints[i] = joints[J[parent]] + world[parent].apply(rest[i] - rest[J[parent]])
        world[name] = world[parent] * local[name]
    return joints


def mocap_poses(count: int = 40) -> list[np.ndarray]:
    """Real recorded frames from the mocap cache (models/training/mocap.py), if it has been built;
    else none."""
    from liverig.core.fetch import cache_dir

    clips = sorted(cache_dir("mocap").glob("*.npz"))
    poses: list[np.ndarray] = []
    for clip in clips[:: max(1, len(clips) // 5)]:
        joints = np.load(clip)["joints"].astype(np.float64)
        for frame in joints[:: max(1, len(joints) // 8)]:
            poses.append(frame - frame[0])
    return poses[:count]


def make_pose(joints: np.ndarray, root=(0.2, -0.3, -3.0), index: int = 0) -> Pose:
    return Pose(
        index=index,
        time_s=index / 30,
        timing=Timing(capture=0.0),
        present=True,
        joints=joints,
        confidence=np.ones(skeleton.NUM_JOINTS),
        root_position=np.array(root, dtype=float),
    )


def point(joints: np.ndarray, spec) -> np.ndarray:
    if isinstance(spec, str):
        return joints[J[spec]]
    return sum(weight * joints[J[name]] for name, weight in spec.items())


def anatomical(m: np.ndarray, spec) -> np.ndarray:
    """An anatomical rest vector ('forward', {'forward': 1, 'down': .5}) in rig axes via the map m."""
    words = {
        "left": m[:, 0],
        "right": -m[:, 0],
        "up": m[:, 1],
        "down": -m[:, 1],
        "forward": m[:, 2],
        "backward": -m[:, 2],
    }
    if isinstance(spec, str):
        return words[spec]
    return sum(weight * words[word] for word, weight in spec.items())


def check_directions(
    profile, frame, joints: np.ndarray, m: np.ndarray, base: np.ndarray, tolerance: float = 1.0
) -> float:
    """Worst angle between a rig bone's direction after FK and the canonical direction it follows.

    m: canonical -> rig world (facing applied); base: the rig's own axes, where rest vectors live."""
    positions, rotations = world_transforms(
        profile, frame.local_rotations, frame.root_position, frame.root_rotation
    )
    rest_positions, rest_rotations = world_transforms(profile)
    index = {name: i for i, name in enumerate(profile.bone_names)}
    worst = 0.0
    for b, bone in enumerate(profile.bones):
        if bone.drive != "aim":
            continue
        expected = m @ (point(joints, bone.aim[1]) - point(joints, bone.aim[0]))
        if bone.tip is not None:
            got = positions[index[bone.tip]] - positions[b]
        else:
            if bone.tip_rest == "along_parent":
                rest = rest_positions[b] - rest_positions[index[bone.parent]]
            elif isinstance(bone.tip_rest, list) and isinstance(bone.tip_rest[0], str):
                rest = rest_positions[index[bone.tip_rest[1]]] - rest_positions[index[bone.tip_rest[0]]]
            else:
                rest = anatomical(base, bone.tip_rest)
            got = rotations[b] @ rest_rotations[b].T @ rest
        error = angle_deg(got, expected)
        assert error < tolerance, (
            f"{profile.name}: {bone.name} is {error:.2f} deg off its canonical direction"
        )
        worst = max(worst, error)
    return worst


# ---------------------------------------------------------------------------------------------
# Shipped profiles


def test_shipped_profiles_are_the_documented_ones():
    assert set(PROFILES) <= set(available_rigs())
    for name in PROFILES:
        profile = load_rig(name)
        np.testing.assert_allclose(profile.canonical_to_rig(), CANONICAL_TO_RIG[name], atol=1e-12)
        assert profile.metres_per_unit == METRES_PER_UNIT[name]
        assert profile.name == name
        parents = profile.parents
        assert parents[0] == -1 and all(0 <= p < i for i, p in enumerate(parents) if i > 0)


@pytest.mark.parametrize("name", PROFILES)
def test_left_bones_sit_on_the_avatars_left(name):
    profile = load_rig(name)
    positions = forward_kinematics(profile, profile.rest_rotations(), np.zeros(3))
    left = CANONICAL_TO_RIG[name][:, 0]
    index = {n: i for i, n in enumerate(profile.bone_names)}
    left_arm, _, right_arm, _, left_foot, _ = NAMES[name]
    assert positions[index[left_arm]] @ left > 0.1 / METRES_PER_UNIT[name]
    assert positions[index[right_arm]] @ left < -0.1 / METRES_PER_UNIT[name]
    assert positions[index[left_foot]] @ left > 0.03 / METRES_PER_UNIT[name]


@pytest.mark.parametrize("facing", ["camera", "away"])
@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("name", PROFILES)
def test_bones_follow_random_human_poses(name, mirror, facing):
    profile = load_rig(name)
    retargeter = Retargeter(profile, RetargetConfig(rig=name, mirror=mirror, facing=facing))
    m = expected_map(name, facing)
    rng = np.random.default_rng(7)
    for i in range(25):
        joints = random_pose(rng)
        frame = retargeter(make_pose(joints, index=i))
        check_directions(profile, frame, mirrored(joints) if mirror else joints, m, CANONICAL_TO_RIG[name])


@pytest.mark.parametrize("name", PROFILES)
def test_bones_follow_real_mocap_frames(name):
    poses = mocap_poses()
    if not poses:
        pytest.skip("mocap cache not built (python -m liverig.models.training.mocap)")
    profile = load_rig(name)
    retargeter = Retargeter(profile, RetargetConfig(rig=name))
    for i, joints in enumerate(poses):
        frame = retargeter(make_pose(joints, index=i))
        check_directions(profile, frame, joints, CANONICAL_TO_RIG[name], CANONICAL_TO_RIG[name])


@pytest.mark.parametrize("name", PROFILES)
def test_roll_follows_the_hip_line_and_bent_limbs(name):
    profile = load_rig(name)
    retargeter = Retargeter(profile)
    m = CANONICAL_TO_RIG[name]
    index = {n: i for i, n in enumerate(profile.bone_names)}
    rng = np.random.default_rng(3)
    checked = 0
    for i in range(20):
        joints = random_pose(rng)
        frame = retargeter(make_pose(joints, index=i))
        positions, rotations = world_transforms(
            profile, frame.local_rotations, frame.root_position, frame.root_rotation
        )
        _, rest_rotations = world_transforms(profile)
        for b, bone in enumerate(profile.bones):
            if bone.twist is None:
                continue
            direction = m @ (point(joints, bone.aim[1]) - point(joints, bone.aim[0]))
            side = m @ (point(joints, bone.twist[1]) - point(joints, bone.twist[0]))
            if angle_deg(direction, side) < 25 or angle_deg(direction, side) > 155:
                continue  # too straight a limb to carry roll: it inherits it instead
            if isinstance(bone.twist_rest, list):
                if bone.joint != "Hips":  # its bone pair moves with this bone alone only for the Hips
                    continue
                got = positions[index[bone.twist_rest[1]]] - positions[index[bone.twist_rest[0]]]
            else:
                got = rotations[b] @ rest_rotations[b].T @ anatomical(m, bone.twist_rest)
            d = direction / np.linalg.norm(direction)
            assert angle_deg(got - (got @ d) * d, side - (side @ d) * d) < 1.0, bone.name
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("name", PROFILES)
def test_raised_left_arm_raises_the_rigs_left_arm(name):
    profile = load_rig(name)
    joints = skeleton.rest_pose()
    shoulder = joints[J["LeftUpperArm"]]
    for k, joint in enumerate(("LeftLowerArm", "LeftHand", "LeftHandEnd"), start=1):
        joints[J[joint]] = shoulder + np.array([0.0, 0.26 * k, 0.0])
    up = CANONICAL_TO_RIG[name][:, 1]
    index = {n: i for i, n in enumerate(profile.bone_names)}
    left_arm, left_forearm, right_arm, right_forearm = NAMES[name][:4]
    for mirror in (False, True):
        frame = Retargeter(profile, RetargetConfig(rig=name, mirror=mirror))(make_pose(joints))
        positions = forward_kinematics(
            profile, frame.local_rotations, frame.root_position, frame.root_rotation
        )
        raised = (left_arm, left_forearm) if not mirror else (right_arm, right_forearm)
        lowered = (right_arm, right_forearm) if not mirror else (left_arm, left_forearm)
        assert angle_deg(positions[index[raised[1]]] - positions[index[raised[0]]], up) < 1.0
        assert angle_deg(positions[index[lowered[1]]] - positions[index[lowered[0]]], up) > 100.0


def test_foot_contacts_follow_the_avatars_feet():
    """Contacts are handed on per foot; in mirror mode the person's left foot drives the avatar's right."""
    pose = make_pose(skeleton.rest_pose())
    pose.foot_contact = np.array([0.9, 0.2])
    for mirror, expected in ((False, [0.9, 0.2]), (True, [0.2, 0.9])):
        frame = Retargeter(load_rig("vrm0"), RetargetConfig(mirror=mirror))(pose)
        np.testing.assert_allclose(frame.foot_contact, expected)
    pose.foot_contact = None
    assert Retargeter(load_rig("vrm0"), RetargetConfig())(pose).foot_contact is None


@pytest.mark.parametrize("name", PROFILES)
def test_facing_and_turning(name):
    profile = load_rig(name)
    m = CANONICAL_TO_RIG[name]
    left, up, forward = m[:, 0], m[:, 1], m[:, 2]
    index = {n: i for i, n in enumerate(profile.bone_names)}
    foot, toes = NAMES[name][4:]

    def toes_direction(joints, facing):
        frame = Retargeter(profile, RetargetConfig(rig=name, facing=facing))(make_pose(joints))
        positions = forward_kinematics(
            profile, frame.local_rotations, frame.root_position, frame.root_rotation
        )
        d = positions[index[toes]] - positions[index[foot]]
        return d - (d @ up) * up

    rest = skeleton.rest_pose()
    assert angle_deg(toes_direction(rest, "camera"), forward) < 10  # facing the viewer, like the person
    assert angle_deg(toes_direction(rest, "away"), -forward) < 10
    turned_left = Rotation.from_euler("y", 90, degrees=True).apply(rest)  # the person turns to their left
    assert angle_deg(toes_direction(turned_left, "camera"), left) < 10


def test_unity_and_unreal_agree_as_vmc4ue_converts():
    """Unity (x, y, z) is Unreal (-x, z, y) (notes/vmc-protocol.md): bone by bone, the same pose."""
    unity, unreal = load_rig("vrm0"), load_rig("ue5_manny")
    to_unreal = np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    rng = np.random.default_rng(11)
    for i in range(10):
        pose = make_pose(random_pose(rng), index=i)
        directions = {}
        for profile in (unity, unreal):
            frame = Retargeter(profile)(pose)
            positions = forward_kinematics(profile, frame.local_rotations, frame.root_position)
            index = {n: k for k, n in enumerate(profile.bone_names)}
            directions[profile.name] = {
                bone.humanoid: positions[index[bone.tip]] - positions[k]
                for k, bone in enumerate(profile.bones)
                if bone.tip is not None
                and bone.humanoid
                and ("Arm" in bone.humanoid or "Leg" in bone.humanoid)
            }
        for humanoid, unity_direction in directions["vrm0"].items():
            assert angle_deg(directions["ue5_manny"][humanoid], to_unreal @ unity_direction) < 1.0


def rig_rest_as_canonical(profile) -> np.ndarray:
    """A canonical pose standing exactly in a rig's rest pose (for rigs with a straight spine)."""
    m = CANONICAL_TO_RIG[profile.name]
    positions = forward_kinematics(profile, profile.rest_rotations(), np.zeros(3)) * profile.metres_per_unit
    joints = np.zeros((skeleton.NUM_JOINTS, 3))
    for b, bone in enumerate(profile.bones):
        if bone.joint is not None:
            joints[J[bone.joint]] = m.T @ positions[b]
    joints[J["HeadEnd"]] = joints[J["Head"]] + np.array([0, 0, 0.1])
    for side in ("Left", "Right"):
        hand, forearm = joints[J[f"{side}Hand"]], joints[J[f"{side}LowerArm"]]
        joints[J[f"{side}HandEnd"]] = hand + 0.3 * (hand - forearm)
    return joints - joints[J["Hips"]]


@pytest.mark.parametrize("name", T_POSE_PROFILES)
def test_standing_in_the_rest_pose_gives_the_rest_rotations(name):
    profile = load_rig(name)
    frame = Retargeter(profile)(make_pose(rig_rest_as_canonical(profile)))
    turned = Rotation.from_quat(frame.local_rotations) * Rotation.from_quat(profile.rest_rotations()).inv()
    assert np.degrees(turned.magnitude()).max() < 0.01


@pytest.mark.parametrize(
    ("name", "quaternion"),
    [
        ("vrm0", (0.0, 0.0, -np.sqrt(0.5), np.sqrt(0.5))),  # Unity: the left arm lies along -X
        ("vrm1", (0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5))),  # glTF: the left arm lies along +X
        ("mixamo", (0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5))),
    ],
)
def test_raising_the_left_arm_from_t_pose_is_a_quarter_turn_about_forward(name, quaternion):
    """The exact local quaternion a receiver gets: sent as is, it raises the receiver's left arm."""
    profile = load_rig(name)
    joints = rig_rest_as_canonical(profile)
    shoulder = joints[J["LeftUpperArm"]]
    lengths = [
        np.linalg.norm(joints[J[b]] - joints[J[a]])
        for a, b in (
            ("LeftUpperArm", "LeftLowerArm"),
            ("LeftLowerArm", "LeftHand"),
            ("LeftHand", "LeftHandEnd"),
        )
    ]
    for joint, height in zip(("LeftLowerArm", "LeftHand", "LeftHandEnd"), np.cumsum(lengths), strict=True):
        joints[J[joint]] = shoulder + np.array([0.0, height, 0.0])
    frame = Retargeter(profile)(make_pose(joints))
    got = frame.local_rotations[profile.bone_names.index(NAMES[name][0])]
    assert abs(abs(got @ np.array(quaternion)) - 1.0) < 1e-9
    others = [q for i, q in enumerate(frame.local_rotations) if profile.bone_names[i] != NAMES[name][0]]
    np.testing.assert_allclose(np.abs(np.array(others)[:, 3]), 1.0, atol=1e-9)  # nothing else moved


@pytest.mark.parametrize("facing", ["camera", "away"])
@pytest.mark.parametrize("name", PROFILES)
def test_root_places_the_hips_where_the_camera_saw_them(name, facing):
    profile = load_rig(name)
    hips = next(i for i, bone in enumerate(profile.bones) if bone.joint == "Hips")
    root = np.array([0.4, -0.25, -2.5])
    pose = make_pose(random_pose(np.random.default_rng(5)), root=root)
    for mirror in (False, True):
        config = RetargetConfig(rig=name, facing=facing, mirror=mirror, root_origin="camera")
        frame = Retargeter(profile, config)(pose)
        positions = forward_kinematics(
            profile, frame.local_rotations, frame.root_position, frame.root_rotation
        )
        seen = root * np.array([-1.0, 1.0, 1.0]) if mirror else root
        expected = expected_map(name, facing) @ seen / METRES_PER_UNIT[name]
        np.testing.assert_allclose(positions[hips], expected, atol=1e-6)
    still = Retargeter(profile, RetargetConfig(rig=name, facing=facing, move_root=False))(pose)
    np.testing.assert_array_equal(still.root_position, np.zeros(3))
    rest_hips = forward_kinematics(profile, profile.rest_rotations(), np.zeros(3))[hips]
    moved_hips = forward_kinematics(profile, still.local_rotations, still.root_position, still.root_rotation)[
        hips
    ]
    np.testing.assert_allclose(
        moved_hips, expected_map(name, facing) @ CANONICAL_TO_RIG[name].T @ rest_hips, atol=1e-6
    )


def test_rig_frame_fields():
    profile = load_rig("ue5_manny")
    pose = make_pose(random_pose(np.random.default_rng(1)), index=42)
    frame = Retargeter(profile, RetargetConfig(facing="away"))(pose)
    assert frame.rig == "ue5_manny" and frame.index == 42 and frame.tracking
    assert frame.bone_names == profile.bone_names and frame.parents == profile.parents
    assert frame.local_rotations.shape == (len(profile.bones), 4)
    np.testing.assert_allclose(np.linalg.norm(frame.local_rotations, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(frame.local_positions, profile.rest_offsets())
    np.testing.assert_allclose(np.abs(frame.root_rotation), [0, 0, 1, 0], atol=1e-12)  # half turn about +Z
    assert "retarget" in frame.timing.stages and frame.timing is pose.timing


def test_in_between_bones_turn_part_of_the_way():
    profile = load_rig("ue5_manny")
    frame = Retargeter(profile)(make_pose(random_pose(np.random.default_rng(2))))
    _, rotations = world_transforms(profile, frame.local_rotations, frame.root_position)
    _, rest = world_transforms(profile)
    index = {n: i for i, n in enumerate(profile.bone_names)}

    def turn(name):
        return Rotation.from_matrix(rotations[index[name]] @ rest[index[name]].T)

    for bone in profile.bones:
        if bone.drive == "between":
            start, end, middle = turn(bone.between[0]), turn(bone.between[1]), turn(bone.name)
            whole = (start.inv() * end).magnitude()
            assert abs((start.inv() * middle).magnitude() - bone.weight * whole) < 1e-6
            assert abs((middle.inv() * end).magnitude() - (1 - bone.weight) * whole) < 1e-6


def test_quaternions_stay_on_one_side_from_frame_to_frame():
    retargeter = Retargeter(load_rig("vrm0"))
    joints = random_pose(np.random.default_rng(9))
    previous = None
    for i in range(60):  # the whole body slowly turns round, through the quaternion sign flip
        turned = Rotation.from_euler("y", 6 * i, degrees=True).apply(joints)
        quats = retargeter(make_pose(turned, index=i)).local_rotations
        if previous is not None:
            assert np.all(np.sum(quats * previous, axis=1) > 0.9)
        previous = quats


def test_missing_joints_keep_a_finite_pose():
    joints = random_pose(np.random.default_rng(4))
    joints[J["LeftHand"]] = np.nan
    joints[J["RightLowerLeg"]] = joints[J["RightUpperLeg"]]  # a collapsed thigh
    for name in PROFILES:
        frame = Retargeter(load_rig(name))(make_pose(joints))
        assert np.all(np.isfinite(frame.local_rotations)) and np.all(np.isfinite(frame.root_position))


# ---------------------------------------------------------------------------------------------
# Errors


def test_unknown_rig_is_a_one_line_error_listing_the_rigs():
    with pytest.raises(RigError) as error:
        load_rig("vrm9")
    message = str(error.value)
    assert "\n" not in message and "vrm9" in message
    assert all(name in message for name in PROFILES)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d.update(up="+Q"), "up"),
        (lambda d: d.update(forward="+Y"), "forward"),
        (lambda d: d["bones"][3].update(parent="Nowhere"), "bones.3.parent"),
        (lambda d: d["bones"][0].update(aim=["Hips", "Tail"]), "bones.0.aim"),
        (lambda d: d["bones"][0].update(tip="LeftFoot"), "bones.0.tip"),
        (lambda d: d["bones"][0].pop("offset"), "bones.0.offset"),
        (lambda d: d["bones"][1].update(twist_rest="sideways"), "bones.1.twist_rest"),
        (lambda d: d["bones"][2].update(drive="rest"), "bones.2.aim"),
        (lambda d: d["bones"][0].update(joint="Spine"), "bones"),
    ],
)
def test_bad_profiles_name_the_file_and_the_key(tmp_path, change, key):
    import yaml

    data = yaml.safe_load((Path(__file__).parent.parent / "configs" / "rigs" / "vrm0.yaml").read_text())
    change(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RigError) as error:
        load_rig(str(path))
    message = str(error.value)
    assert "\n" not in message and str(path) in message and f"'{key}'" in message


def test_profile_extends_another(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: vrm0\nname: mine\n")
    profile = load_profile_file(path)
    assert profile.name == "mine" and profile.bone_names == load_rig("vrm0").bone_names
    path.write_text("extends: nothing_like_it\nname: mine\n")
    with pytest.raises(RigError, match="extends"):
        load_profile_file(path)


@pytest.mark.parametrize(
    "content",
    [
        None,
        b"",
        b"glTF\x02\x00\x00\x00",
        b"glTF\x02\x00\x00\x00\x40\x00\x00\x00\x10\x00\x00\x00BIN\x00",
        b"not json at all",
        b'{"asset": {"version": "2.0"}}',
        b"\xff\xfe\x00garbage",
    ],
)
def test_unreadable_models_are_one_line_errors(tmp_path, content):
    path = tmp_path / "avatar.vrm"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RigError) as error:
        load_rig(str(path))
    assert "\n" not in str(error.value) and str(path) in str(error.value)


# ---------------------------------------------------------------------------------------------
# glTF / VRM files, built here: a VRoid-like VRM 0.x, a VRM 1.0, and a Mixamo rig exported through
# Blender (an `Armature` node turned 90 degrees about X and scaled to centimetres).

ANATOMY = {  # (left, up, forward) metres, a relaxed A-pose with bent elbows and knees
    "Hips": (0, 0.92, 0.0),
    "Spine": (0, 1.0, 0.01),
    "Chest": (0, 1.12, 0.0),
    "UpperChest": (0, 1.24, -0.01),
    "Neck": (0, 1.40, -0.02),
    "Head": (0, 1.48, 0.0),
    "HeadTop": (0, 1.66, 0.01),
    "LeftShoulder": (0.03, 1.36, -0.01),
    "LeftUpperArm": (0.15, 1.37, -0.02),
    "LeftLowerArm": (0.34, 1.18, -0.04),
    "LeftHand": (0.47, 0.97, 0.04),
    "LeftMiddle1": (0.50, 0.89, 0.06),
    "LeftMiddle2": (0.51, 0.86, 0.065),
    "LeftIndex1": (0.49, 0.89, 0.08),
    "LeftUpperLeg": (0.09, 0.87, 0.0),
    "LeftLowerLeg": (0.10, 0.48, 0.03),
    "LeftFoot": (0.10, 0.08, -0.03),
    "LeftToes": (0.10, 0.02, 0.10),
    "Hair": (0.0, 1.62, -0.08),
}
for _name, (_x, _y, _z) in list(ANATOMY.items()):
    if _name.startswith("Left"):
        ANATOMY["Right" + _name[4:]] = (-_x, _y, _z)

TREE = [  # (anatomical key, parent key)
    ("Hips", None),
    ("Spine", "Hips"),
    ("Chest", "Spine"),
    ("UpperChest", "Chest"),
    ("Neck", "UpperChest"),
    ("Head", "Neck"),
    ("HeadTop", "Head"),
    ("Hair", "Head"),
] + [
    item
    for s in ("Left", "Right")
    for item in (
        (f"{s}Shoulder", "UpperChest"),
        (f"{s}UpperArm", f"{s}Shoulder"),
        (f"{s}LowerArm", f"{s}UpperArm"),
        (f"{s}Hand", f"{s}LowerArm"),
        (f"{s}Middle1", f"{s}Hand"),
        (f"{s}Middle2", f"{s}Middle1"),
        (f"{s}Index1", f"{s}Hand"),
        (f"{s}UpperLeg", "Hips"),
        (f"{s}LowerLeg", f"{s}UpperLeg"),
        (f"{s}Foot", f"{s}LowerLeg"),
        (f"{s}Toes", f"{s}Foot"),
    )
]
VRM_BONES = {  # anatomical key -> VRM humanBone name
    "Hips": "hips",
    "Spine": "spine",
    "Chest": "chest",
    "UpperChest": "upperChest",
    "Neck": "neck",
    "Head": "head",
    **{
        f"{s}{b}": f"{s.lower()}{b}"
        for s in ("Left", "Right")
        for b in ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot", "Toes")
    },
    **{f"{s}Middle1": f"{s.lower()}MiddleProximal" for s in ("Left", "Right")},
    **{f"{s}Middle2": f"{s.lower()}MiddleIntermediate" for s in ("Left", "Right")},
}


def vroid_name(key: str) -> str:
    if key == "Hair":
        return "J_Sec_Hair1_01"
    if key == "HeadTop":
        return "J_Adj_C_HeadTop"
    side = "L" if key.startswith("Left") else "R" if key.startswith("Right") else "C"
    stem = key[4:] if side == "L" else key[5:] if side == "R" else key
    stem = {"Middle1": "Middle1", "Toes": "ToeBase"}.get(stem, stem)
    return f"J_Bip_{side}_{stem}"


def mixamo_name(key: str) -> str:
    side = "Left" if key.startswith("Left") else "Right" if key.startswith("Right") else ""
    stem = key[len(side) :]
    stem = {
        "Chest": "Spine1",
        "UpperChest": "Spine2",
        "UpperArm": "Arm",
        "LowerArm": "ForeArm",
        "UpperLeg": "UpLeg",
        "LowerLeg": "Leg",
        "Toes": "ToeBase",
        "HeadTop": "HeadTop_End",
        "Middle1": "HandMiddle1",
        "Middle2": "HandMiddle2",
        "Index1": "HandIndex1",
        "Hair": "HairBun",
    }.get(stem, stem)
    return f"mixamorig:{side}{stem}"


def build_gltf(
    names,
    to_file: np.ndarray,
    *,
    skip=(),
    armature: tuple | None = None,
    rolls: int | None = None,
) -> tuple[dict, dict[str, int]]:
    """A glTF document for TREE: world positions to_file @ anatomy; `armature` = (rotation xyzw,
    scale) of an extra root node; `rolls` = seed for random rest rotations on every bone."""
    rng = np.random.default_rng(rolls) if rolls is not None else None
    tree = [(key, parent) for key, parent in TREE if key not in skip]
    nodes: list[dict] = []
    index: dict[str, int] = {}
    world_rotation: dict[str, Rotation] = {}
    root_rotation = Rotation.from_quat(armature[0]) if armature else Rotation.identity()
    root_scale = armature[1] if armature else 1.0
    if armature:
        nodes.append(
            {"name": "Armature", "rotation": list(armature[0]), "scale": [root_scale] * 3, "children": []}
        )
    for key, parent in tree:
        position = to_file @ np.array(ANATOMY[key])
        rotation = Rotation.from_rotvec(rng.normal(size=3) * 0.6) if rng is not None else Rotation.identity()
        if parent is None:  # under the armature (or the scene)
            parent_rotation, parent_position = root_rotation, np.zeros(3)
        else:
            parent_rotation, parent_position = world_rotation[parent], to_file @ np.array(ANATOMY[parent])
        local_t = parent_rotation.inv().apply(position - parent_position) / root_scale
        local_r = parent_rotation.inv() * rotation
        world_rotation[key] = rotation
        index[key] = len(nodes)
        nodes.append(
            {"name": names(key), "translation": local_t.tolist(), "rotation": local_r.as_quat().tolist()}
        )
        if parent is not None:
            nodes[index[parent]].setdefault("children", []).append(index[key])
        elif armature:
            nodes[0]["children"].append(index[key])
    nodes.append({"name": "Body", "skin": 0})  # a skinned mesh node (the mesh itself is not needed)
    document = {
        "asset": {"version": "2.0", "generator": "liverig tests"},
        "scene": 0,
        "scenes": [{"nodes": [0, len(nodes) - 1]}],
        "nodes": nodes,
        "skins": [{"joints": [index[key] for key, _ in tree]}],
    }
    return document, index


def write_glb(path: Path, document: dict) -> Path:
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    path.write_bytes(
        struct.pack("<4sII", b"glTF", 2, 20 + len(text)) + struct.pack("<II", len(text), 0x4E4F534A) + text
    )
    return path


VRM0_SPACE = np.diag([-1.0, 1.0, -1.0])  # VRM 0.x files face -Z, their left on -X
GLTF_SPACE = np.eye(3)  # glTF / VRM 1.0 face +Z, their left on +X


@pytest.fixture
def vrm0_file(tmp_path) -> Path:
    document, index = build_gltf(vroid_name, VRM0_SPACE, skip=("Index1", "LeftIndex1", "RightIndex1"))
    bones = [
        {"bone": VRM_BONES[key], "node": index[key], "useDefaultValues": True}
        for key in VRM_BONES
        if key in index
    ]
    document["extensions"] = {"VRM": {"specVersion": "0.0", "humanoid": {"humanBones": bones}}}
    document["extensionsUsed"] = ["VRM"]
    return write_glb(tmp_path / "vroid.vrm", document)


@pytest.fixture
def vrm1_file(tmp_path) -> Path:
    document, index = build_gltf(vroid_name, GLTF_SPACE, rolls=5)
    bones = {VRM_BONES[key]: {"node": index[key]} for key in VRM_BONES if key in index}
    document["extensions"] = {"VRMC_vrm": {"specVersion": "1.0", "humanoid": {"humanBones": bones}}}
    return write_glb(tmp_path / "model.vrm", document)


@pytest.fixture
def mixamo_file(tmp_path) -> Path:
    quarter_x = tuple(Rotation.from_euler("x", 90, degrees=True).as_quat())
    document, _ = build_gltf(
        mixamo_name, GLTF_SPACE, skip=("RightToes",), armature=(quarter_x, 0.01), rolls=1
    )
    path = tmp_path / "ybot.gltf"
    path.write_text(json.dumps(document))
    return path


def check_file_rig(path: Path, space: np.ndarray) -> None:
    profile = load_rig(str(path))
    rng = np.random.default_rng(21)
    for mirror in (False, True):
        for facing in ("camera", "away"):
            m = half_turn_about(np.array([0, 1.0, 0])) @ space if facing == "away" else space
            retargeter = Retargeter(profile, RetargetConfig(rig=str(path), mirror=mirror, facing=facing))
            for i in range(8):
                joints = random_pose(rng)
                frame = retargeter(make_pose(joints, index=i))
                check_directions(profile, frame, mirrored(joints) if mirror else joints, m, space)


def test_vrm0_file_maps_every_humanoid_bone(vrm0_file):
    profile, report = read_gltf_rig(vrm0_file)
    assert report.method == "VRM 0.x humanoid"
    assert len(report.humanoid) == 26  # 6 centre + 2 x 10 sided bones in the file's table
    assert report.humanoid["LeftUpperArm"] == "J_Bip_L_UpperArm" and report.humanoid["Hips"] == "J_Bip_C_Hips"
    assert (report.up, report.forward) == ("+Y", "-Z")
    assert report.missing_joints == []
    assert "J_Sec_Hair1_01" in report.unmapped_bones and "J_Adj_C_HeadTop" in report.unmapped_bones
    assert "J_Sec_Hair1_01" not in profile.bone_names  # a leaf no humanoid bone needs: left out
    by_name = {bone.name: bone for bone in profile.bones}
    assert by_name["J_Bip_L_Hand"].tip == "J_Bip_L_Middle1"
    assert by_name["J_Bip_C_Hips"].joint == "Hips" and by_name["J_Bip_L_Shoulder"].drive == "rest"
    check_file_rig(vrm0_file, VRM0_SPACE)


def test_the_node_shows_the_mapping_report_of_a_model_file(vrm0_file, clip_run, tmp_path):
    """The user sees what the automatic mapping found (and left out) when the node starts, and VMC
    still gets a Unity humanoid: a .vrm file's own nodes are in glTF axes with its own names."""
    from liverig.core.config import NodeConfig
    from liverig.runtime.node import open_node

    config = NodeConfig()
    config.retarget.rig = str(vrm0_file)
    config.motion.method = "raw"
    lines: list[str] = []
    node = open_node(
        config,
        f"replay:{clip_run / 'landmarks.jsonl'}",
        ["vmc://127.0.0.1:39539", f"record:{tmp_path / 'o.jsonl'}"],
        log=lines.append,
    )
    node.close()
    _, report = read_gltf_rig(vrm0_file)
    assert all(any(line in logged for logged in lines) for line in report.lines()), lines
    assert any("bones left unmapped: " in logged and "J_Sec_Hair1_01" in logged for logged in lines)
    assert [r.profile.name for r in node.retargets] == ["vroid", "vrm0"] and node.output_rigs == [1, 0]


def test_vrm1_file_with_rest_rotations(vrm1_file):
    profile, report = read_gltf_rig(vrm1_file)
    assert report.method == "VRM 1.0 humanoid" and (report.up, report.forward) == ("+Y", "+Z")
    assert {bone.joint for bone in profile.bones} >= set(skeleton.JOINT_NAMES) - {
        "HeadEnd",
        "LeftHandEnd",
        "RightHandEnd",
    }
    assert not np.allclose(profile.rest_rotations()[:, 3], 1.0)  # the nodes' own rest rotations kept
    check_file_rig(vrm1_file, GLTF_SPACE)


def test_mixamo_file_mapped_from_bone_names(mixamo_file):
    profile, report = read_gltf_rig(mixamo_file)
    assert report.method == "bone names"
    expected = {
        "Hips": "mixamorig:Hips",
        "Spine": "mixamorig:Spine",
        "Chest": "mixamorig:Spine1",
        "UpperChest": "mixamorig:Spine2",
        "Neck": "mixamorig:Neck",
        "Head": "mixamorig:Head",
        "LeftShoulder": "mixamorig:LeftShoulder",
        "LeftUpperArm": "mixamorig:LeftArm",
        "LeftLowerArm": "mixamorig:LeftForeArm",
        "LeftHand": "mixamorig:LeftHand",
        "RightUpperLeg": "mixamorig:RightUpLeg",
        "RightLowerLeg": "mixamorig:RightLeg",
        "RightFoot": "mixamorig:RightFoot",
        "LeftToes": "mixamorig:LeftToeBase",
        "LeftMiddleProximal": "mixamorig:LeftHandMiddle1",
        "LeftMiddleIntermediate": "mixamorig:LeftHandMiddle2",
        "LeftIndexProximal": "mixamorig:LeftHandIndex1",  # finger bones, for the hands part
    }
    assert expected.items() <= report.humanoid.items()
    assert "RightToes" not in report.humanoid and report.missing_joints == ["RightToes"]
    assert {"mixamorig:HeadTop_End", "Armature"} <= set(report.unmapped_bones)
    assert report.finger_bones == 6 and "finger bones: 6 of 30" in report.lines()[-2]
    assert profile.bone_names[0] == "Armature" and profile.units == "m"
    assert (report.up, report.forward) == ("+Y", "+Z")
    hips = profile.bones[profile.index("mixamorig:Hips")]
    np.testing.assert_allclose(
        forward_kinematics(profile, profile.rest_rotations(), np.zeros(3))[profile.index("mixamorig:Hips")],
        [0, 0.92, 0],
        atol=1e-9,
    )  # centimetres under a 0.01 scale
    assert hips.drive == "aim"
    check_file_rig(mixamo_file, GLTF_SPACE)


def test_a_model_without_fingers_is_reported_and_keeps_working(tmp_path):
    """The hands part's finger bones are skipped on a model that has none; the start-up report says so,
    and the body still retargets (finger turns in the pose change nothing)."""
    fingers = tuple(f"{s}{k}" for s in ("Left", "Right") for k in ("Middle1", "Middle2", "Index1"))
    document, _ = build_gltf(mixamo_name, GLTF_SPACE, skip=fingers)
    path = tmp_path / "no_fingers.gltf"
    path.write_text(json.dumps(document))
    profile, report = read_gltf_rig(path)
    assert report.finger_bones == 0
    assert report.lines()[-2] == (
        "finger bones: 0 of 30 (the model has none: the hands part's fingers are not shown)"
    )
    retargeter = Retargeter(profile)
    pose = make_pose(skeleton.rest_pose())
    plain = retargeter(pose).local_rotations
    pose.bone_rotations = {"LeftIndexProximal": Rotation.from_euler("z", 40, degrees=True).as_quat()}
    np.testing.assert_allclose(retargeter(pose).local_rotations, plain, atol=1e-12)
    check_file_rig(path, GLTF_SPACE)


def unreal_name(key: str) -> str:
    side = "_l" if key.startswith("Left") else "_r" if key.startswith("Right") else ""
    stem = key[4:] if side == "_l" else key[5:] if side == "_r" else key
    return {
        "Hips": "pelvis",
        "Spine": "spine_01",
        "Chest": "spine_02",
        "UpperChest": "spine_03",
        "Neck": "neck_01",
        "Head": "head",
        "HeadTop": "head_end",
        "Hair": "hair_root",
        "Shoulder": "clavicle",
        "UpperArm": "upperarm",
        "LowerArm": "lowerarm",
        "Hand": "hand",
        "Middle1": "middle_01",
        "Middle2": "middle_02",
        "Index1": "index_01",
        "UpperLeg": "thigh",
        "LowerLeg": "calf",
        "Foot": "foot",
        "Toes": "ball",
    }[stem] + side


def test_unreal_named_file_mapped_from_names_and_structure(tmp_path):
    document, _ = build_gltf(unreal_name, GLTF_SPACE, rolls=3)
    profile, report = read_gltf_rig(write_glb(tmp_path / "manny.glb", document))
    assert report.method == "bone names" and report.missing_joints == []
    expected = {
        "Hips": "pelvis",
        "Spine": "spine_01",
        "Chest": "spine_02",
        "UpperChest": "spine_03",
        "Neck": "neck_01",
        "Head": "head",
        "LeftShoulder": "clavicle_l",
        "RightUpperArm": "upperarm_r",
        "LeftHand": "hand_l",
        "LeftMiddleProximal": "middle_01_l",
        "RightUpperLeg": "thigh_r",
        "RightLowerLeg": "calf_r",
        "LeftToes": "ball_l",
    }
    assert expected.items() <= report.humanoid.items()
    check_file_rig(tmp_path / "manny.glb", GLTF_SPACE)


def test_a_file_without_a_humanoid_is_refused(tmp_path):
    document = {"asset": {"version": "2.0"}, "nodes": [{"name": "Cube"}, {"name": "Light"}]}
    path = write_glb(tmp_path / "props.glb", document)
    with pytest.raises(RigError, match="no humanoid skeleton") as error:
        load_rig(str(path))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mixamorig:LeftUpLeg", ("Left", "upleg", None)),
        ("J_Bip_L_UpperArm", ("Left", "upperarm", None)),
        ("J_Bip_C_Hips", (None, "hips", None)),
        ("Bip01 R Thigh", ("Right", "thigh", None)),
        ("Bip01 L Toe0", ("Left", "toe", 0)),
        ("upperarm_r", ("Right", "upperarm", None)),
        ("spine_03", (None, "spine", 3)),
        ("thigh.L", ("Left", "thigh", None)),
        ("rightForeArm", ("Right", "forearm", None)),
        ("mixamorig1:RightHandMiddle1", ("Right", "handmiddle", 1)),
    ],
)
def test_bone_names_are_normalised(name, expected):
    assert split_bone_name(name) == expected


def test_rigs_that_spell_sides_out_do_not_read_letters_as_sides():
    assert split_bone_name("B_Root_Pelvis_L", letter_sides=False) == (None, "pelvis", None)
    assert split_bone_name("B_Hip_Left", letter_sides=False) == ("Left", "hip", None)


@pytest.mark.parametrize("name", PROFILES)
def test_root_first_seen_starts_at_the_rigs_rest_hips_and_follows_the_person(name):
    profile = load_rig(name)
    hips = next(i for i, bone in enumerate(profile.bones) if bone.joint == "Hips")
    rest_hips = forward_kinematics(profile, profile.rest_rotations(), np.zeros(3))[hips]
    joints = random_pose(np.random.default_rng(6))
    start, step = np.array([0.4, -0.25, -2.5]), np.array([0.3, 0.1, -0.2])
    retargeter = Retargeter(profile, RetargetConfig(rig=name))
    moved = rest_hips + expected_map(name, "camera") @ step / METRES_PER_UNIT[name]
    for root, expected in ((start, rest_hips), (start + step, moved)):
        frame = retargeter(make_pose(joints, root=root))
        rotations, position = frame.local_rotations, frame.root_position
        positions = forward_kinematics(profile, rotations, position, frame.root_rotation)
        np.testing.assert_allclose(positions[hips], expected, atol=1e-6)
