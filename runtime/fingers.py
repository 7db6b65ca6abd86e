"""Finger bones from MediaPipe's 21 hand landmarks: 15 turns per hand, from the rest pose, with limits.

The rest pose is the VRM T-pose: fingers straight along the hand, palm down, the left hand pointing
to canonical +X (the person's left), the right hand to -X, thumbs forward (+Z) at 45° in the palm's
plane. Each turn is what `Pose.bone_rotations` carries: the bone's rotation relative to its parent,
expressed in canonical axes with the parent at rest (the retargeter maps it into any rig).

How the angles are read off the landmarks:
  1. The hand's own frame from the wrist (0), index knuckle (5), middle knuckle (9) and little
     knuckle (17): along the hand, across it towards the thumb, out of the palm. Every landmark is
     turned into that frame's rest orientation, so only the fingers' motion relative to the palm is
     left (the wrist's turn is the body's business).
  2. Per finger, the proximal bone gets two angles: bend towards the palm and spread sideways;
     the intermediate and distal bones one: bend, measured in their parent's frame (a hinge; what
     the landmarks say sideways there is mostly noise).
  3. Joint limits clamp every angle: no finger bends backwards (bend >= 0), spread is limited.
  4. Optionally (`distal_prior`, what the hands part uses), a finger's distal bend leans towards
     2/3 of its intermediate bend: the two joints are coupled by the finger's tendons (the usual
     DIP ~ 2/3 PIP hand-model constraint), and the fingertip landmark is the detector's least sure.

Which landmarks: `hand_shape` takes the image landmarks (x, y in pixels, z in x's scale), brought to
the world landmarks' size, not the world landmarks themselves: against a rendered hand with known
bends the world landmarks' shape is further from the truth and turned away from the camera's axes,
and the bends read from them are worse than a constant guess (docs/hands.md, "Accuracy").

Why not MediaPipe's handedness to pick the rest frame: the chirality of the frame (which side is
the palm) is the hand's side, and the caller knows that better (runtime/hands.py matches hands to
the body's wrists).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

FINGERS: tuple[str, ...] = ("Thumb", "Index", "Middle", "Ring", "Little")
SEGMENTS: tuple[str, ...] = ("Proximal", "Intermediate", "Distal")
SIDES: tuple[str, ...] = ("Left", "Right")
# MediaPipe hand landmarks: the joint each bone starts at, then its tip (the next joint).
# Unity's thumb "proximal" is the metacarpal (CMC joint, landmark 1); the other fingers' proximal is
# the first phalanx (knuckle, landmark 5/9/13/17).
CHAINS: dict[str, tuple[int, int, int, int]] = {
    "Thumb": (1, 2, 3, 4),
    "Index": (5, 6, 7, 8),
    "Middle": (9, 10, 11, 12),
    "Ring": (13, 14, 15, 16),
    "Little": (17, 18, 19, 20),
}
WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP, LITTLE_MCP = 0, 5, 9, 13, 17
NUM_HAND_LANDMARKS = 21


def bone_name(side: str, finger: str, segment: str) -> str:
    """Unity HumanBodyBones name, e.g. LeftIndexProximal."""
    return f"{side}{finger}{segment}"


FINGER_BONES: tuple[str, ...] = tuple(
    bone_name(side, finger, segment) for side in SIDES for finger in FINGERS for segment in SEGMENTS
)


@dataclass(frozen=True)
class Limits:
    """Joint limits in degrees: bend towards the palm [0, max] (never backwards), proximal spread
    within +-spread (the thumb's base moves more)."""

    proximal_bend: float = 90.0
    intermediate_bend: float = 110.0
    distal_bend: float = 80.0
    spread: float = 20.0
    thumb_proximal_bend: float = 50.0
    thumb_intermediate_bend: float = 60.0
    thumb_distal_bend: float = 80.0
    thumb_spread: float = 35.0

    def bend(self, finger: str, segment: int) -> float:
        thumb = ("thumb_" if finger == "Thumb" else "") + ("proximal", "intermediate", "distal")[segment]
        return getattr(self, f"{thumb}_bend")

    def side(self, finger: str) -> float:
        return self.thumb_spread if finger == "Thumb" else self.spread


LIMITS = Limits()
# Weight of the tendon coupling prior on the distal bends (see the module docstring, step 4): an
# even blend of what the landmarks say and 2/3 of the intermediate bend. Chosen, not fitted.
DISTAL_PRIOR = 0.5
DISTAL_PER_INTERMEDIATE = 2.0 / 3.0
# A hand at ease: slightly curled (degrees of bend per segment, thumb first), no spread.
RELAXED_BEND = {"Thumb": (10.0, 10.0, 10.0)} | {f: (15.0, 20.0, 10.0) for f in FINGERS[1:]}


def rest_frame(side: str) -> np.ndarray:
    """3x3, columns: along the hand, across it towards the thumb, out of the palm; canonical axes."""
    along = np.array([1.0, 0.0, 0.0]) if side == "Left" else np.array([-1.0, 0.0, 0.0])
    return np.stack([along, [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], axis=1)


def _bone_axes(side: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per finger, its rest direction and the direction it bends towards (both unit, rest frame)."""
    frame = rest_frame(side)
    along, thumbward, palm = frame[:, 0], frame[:, 1], frame[:, 2]
    axes = {finger: (along, palm) for finger in FINGERS[1:]}
    thumb = (along + thumbward) / np.sqrt(2.0)
    # The thumb curls into the palm and across it, towards the little finger.
    towards_fingers = (along - thumbward) / np.sqrt(2.0)
    bend = palm + towards_fingers
    axes["Thumb"] = (thumb, bend / np.linalg.norm(bend))
    return axes


_AXES = {side: _bone_axes(side) for side in SIDES}
# Per side and finger as plain tuples: rest direction, bend direction, sideways, hinge axis.
_AXES_TUPLES = {
    side: {
        finger: tuple(tuple(float(c) for c in v) for v in (r, b, np.cross(b, r), np.cross(r, b)))
        for finger, (r, b) in axes.items()
    }
    for side, axes in _AXES.items()
}
_STARTS = np.array([chain[k] for chain in CHAINS.values() for k in range(3)])


def _unit(v: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-9 and np.isfinite(norm) else None


def hand_frame(points: np.ndarray, side: str) -> np.ndarray | None:
    """The hand's frame (columns as in `rest_frame`) from canonical landmarks, None if degenerate.

    The palm's side follows from the hand's side: a left hand's (along x across) points out of its
    palm, a right hand's the other way (a right hand is a mirrored left one)."""
    along = _unit(points[MIDDLE_MCP] - points[WRIST])
    if along is None:
        return None
    across = points[INDEX_MCP] - points[LITTLE_MCP]
    across = _unit(across - np.dot(across, along) * along)
    if across is None:
        return None
    palm = np.cross(along, across) if side == "Left" else np.cross(across, along)
    return np.stack([along, across, palm], axis=1)


def _axis_quat(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of a turn by `degrees` about the unit vector `axis`."""
    half = np.radians(degrees) / 2.0
    return np.array([*(axis * np.sin(half)), np.cos(half)])


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b (b first, then a), quaternions x, y, z, w."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def finger_rotations(
    points: np.ndarray, side: str, limits: Limits = LIMITS, distal_prior: float = 0.0
) -> dict[str, np.ndarray] | None:
    """The 15 finger bones of one hand as quaternions (x, y, z, w), from its 21 landmarks in canonical
    axes (metres; any origin); None when the landmarks are not finite or the palm is degenerate.
    `distal_prior` (0..1) leans the four fingers' distal bends towards the tendon coupling (module
    docstring, step 4); 0 reads every angle from the landmarks alone.

    About 0.1 ms a hand (python -m liverig.runtime.hands_bench)."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (NUM_HAND_LANDMARKS, 3) or not np.all(np.isfinite(points)):
        return None
    frame = hand_frame(points, side)
    if frame is None:
        return None
    to_rest = rest_frame(side) @ frame.T  # the hand's frame now -> its rest orientation
    # Every segment's direction at once, in the hand's rest frame.
    segments = (points[_STARTS + 1] - points[_STARTS]) @ to_rest.T
    norms = np.linalg.norm(segments, axis=1)
    if not np.all(norms > 1e-9):
        return None
    segments = (segments / norms[:, None]).tolist()
    out = {}
    # Plain floats from here on: 15 small steps, where numpy's per-call cost would dominate.
    for f, finger in enumerate(CHAINS):
        rest, bend, sideways, hinge = _AXES_TUPLES[side][finger]
        parent = (0.0, 0.0, 0.0, 1.0)  # the previous segment's turn, rest frame
        intermediate = 0.0
        for segment in range(3):
            local = _rotate(_conjugate(parent), segments[3 * f + segment])
            if segment == 0:  # bend and spread
                bend_deg = math.degrees(math.asin(min(max(_dot(local, bend), -1.0), 1.0)))
                side_deg = math.degrees(math.atan2(_dot(local, sideways), _dot(local, rest)))
            else:  # a hinge: bend only
                bend_deg = math.degrees(math.atan2(_dot(local, bend), _dot(local, rest)))
                side_deg = 0.0
                if segment == 2 and finger != "Thumb":
                    coupled = DISTAL_PER_INTERMEDIATE * intermediate
                    bend_deg = (1.0 - distal_prior) * bend_deg + distal_prior * coupled
            bend_deg = min(max(bend_deg, 0.0), limits.bend(finger, segment))
            intermediate = bend_deg
            side_deg = min(max(side_deg, -limits.side(finger)), limits.side(finger))
            quat = _mul(_axis_angle(bend, side_deg), _axis_angle(hinge, bend_deg))
            out[bone_name(side, finger, SEGMENTS[segment])] = np.array(quat)
            parent = _mul(parent, quat)
    return out


def _dot(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _axis_angle(axis, degrees: float) -> tuple[float, float, float, float]:
    half = math.radians(degrees) / 2.0
    s = math.sin(half)
    return (axis[0] * s, axis[1] * s, axis[2] * s, math.cos(half))


def _mul(a, b) -> tuple[float, float, float, float]:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def _conjugate(q) -> tuple[float, float, float, float]:
    return (-q[0], -q[1], -q[2], q[3])


def _rotate(q, v) -> tuple[float, float, float]:
    """v turned by the unit quaternion q."""
    x, y, z, w = q
    # t = 2 q_v x v; v' = v + w t + q_v x t
    tx, ty, tz = 2 * (y * v[2] - z * v[1]), 2 * (z * v[0] - x * v[2]), 2 * (x * v[1] - y * v[0])
    return (
        v[0] + w * tx + (y * tz - z * ty),
        v[1] + w * ty + (z * tx - x * tz),
        v[2] + w * tz + (x * ty - y * tx),
    )


def _local_quat(side: str, finger: str, bend_deg: float, side_deg: float) -> np.ndarray:
    """Spread about the bend direction, after bending about (rest x bend)."""
    rest, bend = _AXES[side][finger]
    return _quat_mul(_axis_quat(bend, side_deg), _axis_quat(np.cross(rest, bend), bend_deg))


def _local_matrix(side: str, finger: str, bend_deg: float, side_deg: float) -> np.ndarray:
    return _quat_matrix(_local_quat(side, finger, bend_deg, side_deg))


def rotations_from_angles(side: str, angles: dict[str, list[tuple[float, float]]]) -> dict[str, np.ndarray]:
    """Quaternions for (bend, spread) degrees per finger and segment (see `finger_rotations`)."""
    out = {}
    for finger, per_segment in angles.items():
        for segment, (bend_deg, side_deg) in zip(SEGMENTS, per_segment, strict=True):
            out[bone_name(side, finger, segment)] = _local_quat(side, finger, bend_deg, side_deg)
    return out


def relaxed_rotations(side: str) -> dict[str, np.ndarray]:
    """A hand at ease (slightly curled): what a hand out of view eases to."""
    return rotations_from_angles(side, {f: [(b, 0.0) for b in RELAXED_BEND[f]] for f in FINGERS})


def bend_degrees(rotations: dict[str, np.ndarray], side: str, finger: str, segment: str) -> float:
    """How far a bone is bent towards the palm (degrees; negative: backwards), from its quaternion:
    the angle its rest direction turns out of the spread plane towards the finger's bend direction
    (the proximal bone: at most 90°), or about the hinge (the others)."""
    rest, bend = _AXES[side][finger]
    direction = Rotation.from_quat(rotations[bone_name(side, finger, segment)]).apply(rest)
    if segment == SEGMENTS[0]:
        return float(np.degrees(np.arcsin(np.clip(np.dot(direction, bend), -1.0, 1.0))))
    return float(np.degrees(np.arctan2(np.dot(direction, bend), np.dot(direction, rest))))


def hand_shape(
    image_landmarks: np.ndarray, world_landmarks: np.ndarray, width: int, height: int
) -> np.ndarray:
    """The hand's 21 points to read finger angles from: the image landmarks (normalised x, y and
    MediaPipe's z, which is in x's scale) in pixels, in canonical axes, scaled so the palm (wrist and
    four knuckles) is as large as in the world landmarks and centred as they are (so the units and a
    filter's settings stay those of metres). Why image and not world landmarks: module docstring."""
    image = np.asarray(image_landmarks, dtype=np.float64) * np.array([width, height, width])
    points = mediapipe_to_canonical(image)
    world = np.asarray(world_landmarks, dtype=np.float64)
    palm = [WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP, LITTLE_MCP]
    image_size = float(np.linalg.norm(points[palm] - points[palm].mean(axis=0)))
    world_size = float(np.linalg.norm(world[palm] - world[palm].mean(axis=0)))
    scale = world_size / image_size if image_size > 1e-9 and np.isfinite(world_size) else 0.0
    return (points - points.mean(axis=0)) * scale + world.mean(axis=0)


def mediapipe_to_canonical(points: np.ndarray) -> np.ndarray:
    """MediaPipe's axes (x right in the image, y down, z away from the camera) to canonical ones
    (+X the person's left when they face the camera = image right, +Y up, +Z towards the camera)."""
    return np.asarray(points, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
