"""Finger bones from 21 hand landmarks (runtime/fingers.py): known angles come back, limits hold on any
input, and the turns move every rig's fingers the right way."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liverig.core import skeleton
from liverig.core.config import RetargetConfig
from liverig.core.types import Pose, Timing
from liverig.runtime.fingers import (
    CHAINS,
    FINGER_BONES,
    FINGERS,
    LIMITS,
    SEGMENTS,
    _local_matrix,
    bend_degrees,
    bone_name,
    finger_rotations,
    hand_shape,
    relaxed_rotations,
    rest_frame,
)
from liverig.runtime.retarget import Retargeter, world_transforms
from liverig.runtime.rigs import load_rig

# A hand's layout at rest, metres in its rest frame (along, thumbward, palmward): first joint, lengths.
LAYOUT = {
    "Thumb": ((0.022, 0.022, 0.012), (0.045, 0.034, 0.028)),
    "Index": ((0.095, 0.025, 0.0), (0.040, 0.025, 0.020)),
    "Middle": ((0.097, 0.0, 0.0), (0.045, 0.028, 0.021)),
    "Ring": ((0.092, -0.013, 0.0), (0.042, 0.026, 0.020)),
    "Little": ((0.085, -0.030, 0.0), (0.032, 0.022, 0.018)),
}


def synthetic_hand(side: str, angles: dict, turn: Rotation, offset=(0.1, -0.2, 0.3)) -> np.ndarray:
    """21 landmarks (canonical axes) of a hand posed by (bend, spread) degrees per finger and segment,
    the whole hand turned by `turn` and moved by `offset`: the ground truth for the round trip."""
    frame = rest_frame(side)
    points = np.zeros((21, 3))
    for finger, chain in CHAINS.items():
        start, lengths = LAYOUT[finger]
        rest = frame[:, 0] if finger != "Thumb" else (frame[:, 0] + frame[:, 1]) / np.sqrt(2.0)
        position = frame @ np.array(start)
        points[chain[0]] = position
        world = np.eye(3)
        for k in range(3):
            world = world @ _local_matrix(side, finger, *angles[finger][k])
            position = position + world @ rest * lengths[k]
            points[chain[k + 1]] = position
    return turn.apply(points) + np.array(offset)


def random_angles(rng: np.random.Generator) -> dict:
    """Angles inside the limits, away from their edges (where clamping would change them)."""
    out = {}
    for finger in FINGERS:
        spread = LIMITS.side(finger) * 0.8
        out[finger] = [
            (rng.uniform(2, LIMITS.bend(finger, k) * 0.9), rng.uniform(-spread, spread) if k == 0 else 0.0)
            for k in range(3)
        ]
    return out


@pytest.mark.parametrize("side", ["Left", "Right"])
def test_known_angles_come_back_in_any_hand_orientation(side):
    rng = np.random.default_rng(3 if side == "Left" else 4)
    for _ in range(20):
        angles = random_angles(rng)
        rotations = finger_rotations(synthetic_hand(side, angles, Rotation.random(random_state=rng)), side)
        for finger in FINGERS:
            for k, segment in enumerate(SEGMENTS):
                expected = Rotation.from_matrix(_local_matrix(side, finger, *angles[finger][k]))
                got = Rotation.from_quat(rotations[bone_name(side, finger, segment)])
                assert np.degrees((expected.inv() * got).magnitude()) < 0.01, (finger, segment)
                assert bend_degrees(rotations, side, finger, segment) == pytest.approx(
                    angles[finger][k][0], abs=0.01
                )


def _as_image_landmarks(points: np.ndarray, width: int, height: int, pixels_per_metre: float) -> np.ndarray:
    """What MediaPipe's image landmarks would be for canonical points seen square-on (orthographic):
    x, y normalised to the image (y down), z in x's scale (away from the camera)."""
    pixels = points * pixels_per_metre * np.array([1.0, -1.0, -1.0]) + (width / 2, height / 2, 0.0)
    return pixels / np.array([width, height, width])


def test_the_hand_shape_is_the_image_landmarks_at_the_world_landmarks_size():
    """Angles are read off the image landmarks (x, y in pixels, z in x's scale): a hand seen square-on
    comes back at the world landmarks' size and place whatever the image's aspect, so known angles
    come back too."""
    rng = np.random.default_rng(8)
    angles = random_angles(rng)
    truth = synthetic_hand("Left", angles, Rotation.random(random_state=rng))
    world = truth - truth.mean(axis=0) + (0.01, 0.02, -0.01)  # MediaPipe's origin: near the hand's centre
    image = _as_image_landmarks(truth, 640, 360, 1500.0)
    shape = hand_shape(image, world, 640, 360)
    assert np.allclose(shape, world, atol=1e-9)
    rotations = finger_rotations(shape, "Left")
    assert bend_degrees(rotations, "Left", "Index", "Intermediate") == pytest.approx(
        angles["Index"][1][0], abs=0.01
    )
    # A degenerate image (every landmark at one pixel) gives no angles, not NaN.
    assert finger_rotations(hand_shape(np.full((21, 3), 0.5), world, 640, 360), "Left") is None


def test_the_distal_prior_leans_the_distal_bend_towards_two_thirds_of_the_intermediate():
    """The tendon coupling (fingers.DISTAL_PRIOR): at 1 the distal bend is 2/3 of the intermediate's,
    at 0.5 halfway between that and the measured one; the thumb and the other joints are untouched."""
    angles = {finger: [(20.0, 5.0), (60.0, 0.0), (10.0, 0.0)] for finger in FINGERS}
    points = synthetic_hand("Right", angles, Rotation.identity())
    for prior, expected in ((0.0, 10.0), (0.5, 25.0), (1.0, 40.0)):
        rotations = finger_rotations(points, "Right", distal_prior=prior)
        for finger in FINGERS[1:]:
            assert bend_degrees(rotations, "Right", finger, "Distal") == pytest.approx(expected, abs=0.01)
            assert bend_degrees(rotations, "Right", finger, "Intermediate") == pytest.approx(60.0, abs=0.01)
        assert bend_degrees(rotations, "Right", "Thumb", "Distal") == pytest.approx(10.0, abs=0.01)


def test_a_straight_hand_is_the_rest_pose():
    for side in ("Left", "Right"):
        flat = {finger: [(0.0, 0.0)] * 3 for finger in FINGERS}
        rotations = finger_rotations(synthetic_hand(side, flat, Rotation.identity()), side)
        assert set(rotations) == {b for b in FINGER_BONES if b.startswith(side)}
        for quat in rotations.values():
            assert Rotation.from_quat(quat).magnitude() < 1e-9


def test_no_bone_bends_backwards_or_past_its_limits_on_random_landmarks():
    rng = np.random.default_rng(0)
    for trial in range(300):
        side = ("Left", "Right")[trial % 2]
        points = rng.normal(scale=0.05, size=(21, 3))
        rotations = finger_rotations(points, side)
        if rotations is None:
            continue
        for finger in FINGERS:
            for k, segment in enumerate(SEGMENTS):
                bend = bend_degrees(rotations, side, finger, segment)
                assert -1e-6 <= bend <= LIMITS.bend(finger, k) + 1e-6
                quat = rotations[bone_name(side, finger, segment)]
                assert np.all(np.isfinite(quat)) and np.linalg.norm(quat) == pytest.approx(1.0)
            # Sideways only at the knuckle, within the spread limit.
            for k in (1, 2):
                turn = Rotation.from_quat(rotations[bone_name(side, finger, SEGMENTS[k])])
                assert np.degrees(turn.magnitude()) <= LIMITS.bend(finger, k) + 1e-6
            turn = Rotation.from_quat(rotations[bone_name(side, finger, "Proximal")]).as_matrix()
            limit = np.hypot(LIMITS.bend(finger, 0), LIMITS.side(finger))
            assert np.degrees(Rotation.from_matrix(turn).magnitude()) <= limit + 1e-6


def test_a_finger_bent_backwards_is_held_straight():
    angles = {finger: [(30.0, 0.0)] * 3 for finger in FINGERS}
    points = synthetic_hand("Left", angles, Rotation.identity(), offset=(0.0, 0.0, 0.0))
    # Reflect the index finger's joints through the palm's plane: it now bends backwards by 30° a joint.
    index = list(CHAINS["Index"])
    points[index, 1] = -points[index, 1]
    rotations = finger_rotations(points, "Left")
    for segment in SEGMENTS:
        assert bend_degrees(rotations, "Left", "Index", segment) == pytest.approx(0.0, abs=1e-6)
    assert bend_degrees(rotations, "Left", "Middle", "Proximal") == pytest.approx(30.0, abs=0.01)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_or_degenerate_landmarks_give_nothing(bad):
    points = synthetic_hand("Left", {f: [(10.0, 0.0)] * 3 for f in FINGERS}, Rotation.identity())
    points[7, 2] = bad
    assert finger_rotations(points, "Left") is None
    assert finger_rotations(np.zeros((21, 3)), "Left") is None
    assert finger_rotations(np.zeros((20, 3)), "Left") is None


def test_the_relaxed_hand_is_slightly_curled():
    for side in ("Left", "Right"):
        relaxed = relaxed_rotations(side)
        bends = [bend_degrees(relaxed, side, f, s) for f in FINGERS for s in SEGMENTS]
        assert all(5.0 <= b <= 25.0 for b in bends)


def _finger_world(rig_name: str, rotations: dict, mirror: bool):
    """World positions of every rig bone for the canonical rest skeleton with these finger turns, and
    each hand's palm direction (the rig's rest palm, down, carried by the hand bone's turn)."""
    profile = load_rig(rig_name)
    retargeter = Retargeter(profile, RetargetConfig(mirror=mirror))
    pose = Pose(
        0,
        0.0,
        Timing(0.0),
        True,
        skeleton.rest_pose(),
        np.ones(skeleton.NUM_JOINTS),
        bone_rotations=dict(rotations),
    )
    frame = retargeter(pose)
    positions, turned = world_transforms(
        profile, frame.local_rotations, frame.root_position, frame.root_rotation
    )
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    rest_positions, rest = world_transforms(profile, profile.rest_rotations(), np.zeros(3), identity)
    by_humanoid = {bone.humanoid: i for i, bone in enumerate(profile.bones) if bone.humanoid}
    palms = {}
    for side in ("Left", "Right"):
        hand = by_humanoid[f"{side}Hand"]
        # At rest the palm faces down, square to the hand (A-pose rigs hold the hand sloping down).
        along = rest_positions[by_humanoid[f"{side}MiddleProximal"]] - rest_positions[hand]
        along /= np.linalg.norm(along)
        down = profile.anatomy()["down"]
        palm = down - np.dot(down, along) * along
        palms[side] = turned[hand] @ rest[hand].T @ (palm / np.linalg.norm(palm))
    return positions, palms, by_humanoid


@pytest.mark.parametrize(
    "rig_name", ["vrm0", "vrm1", "unity_humanoid", "ue4_mannequin", "ue5_manny", "mixamo"]
)
@pytest.mark.parametrize("mirror", [False, True])
def test_a_curled_index_finger_curls_every_rig_towards_its_palm(rig_name, mirror):
    """Bending the person's left index finger 90° at each joint brings the rig's fingertip towards its
    palm and back towards the wrist, whatever the rig's axes; mirrored, the rig's right index does it
    and the left one stays as it was."""
    bent = {finger: [(0.0, 0.0)] * 3 for finger in FINGERS} | {"Index": [(90.0, 0.0)] * 3}
    angles_left = finger_rotations(synthetic_hand("Left", bent, Rotation.identity()), "Left")
    straight, palms, bones = _finger_world(rig_name, {}, mirror)
    curled, _, _ = _finger_world(rig_name, angles_left, mirror)
    moved, still = ("Right", "Left") if mirror else ("Left", "Right")
    tip = bones[f"{still}IndexDistal"]
    np.testing.assert_allclose(curled[tip], straight[tip], atol=1e-9)
    base, tip, hand = (bones[f"{moved}{b}"] for b in ("IndexProximal", "IndexDistal", "Hand"))
    scale = np.linalg.norm(straight[tip] - straight[base])
    # The distal bone's start, after two 90° turns, lies on the palm's side of the knuckle, and nearer
    # the wrist than when straight.
    assert np.dot(curled[tip] - straight[base], palms[moved]) > 0.5 * scale
    assert np.linalg.norm(curled[tip] - straight[hand]) < np.linalg.norm(straight[tip] - straight[hand])
