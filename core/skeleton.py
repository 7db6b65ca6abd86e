"""The canonical skeleton every stage after perception speaks.

Joints carry Unity HumanBodyBones names (plus three `...End` sites that fix the orientation of the
head and hands). Positions are metres in one axis convention, used everywhere in the node:

    right-handed, +Y up, +X to the image's right, +Z towards the camera.

A person facing the camera therefore has their left side on +X and faces +Z. MediaPipe's world
landmarks (x right, y down, z away from the camera) map to it as (x, -y, -z). Joint 0 (Hips) is the
root; `Pose.joints` are root-relative and `Pose.root_position` places the Hips in camera space.
"""

from __future__ import annotations

import numpy as np

# (name, parent) in topological order.
JOINTS: tuple[tuple[str, str | None], ...] = (
    ("Hips", None),
    ("Spine", "Hips"),
    ("Chest", "Spine"),
    ("Neck", "Chest"),
    ("Head", "Neck"),
    ("HeadEnd", "Head"),
    ("LeftUpperArm", "Chest"),
    ("LeftLowerArm", "LeftUpperArm"),
    ("LeftHand", "LeftLowerArm"),
    ("LeftHandEnd", "LeftHand"),
    ("RightUpperArm", "Chest"),
    ("RightLowerArm", "RightUpperArm"),
    ("RightHand", "RightLowerArm"),
    ("RightHandEnd", "RightHand"),
    ("LeftUpperLeg", "Hips"),
    ("LeftLowerLeg", "LeftUpperLeg"),
    ("LeftFoot", "LeftLowerLeg"),
    ("LeftToes", "LeftFoot"),
    ("RightUpperLeg", "Hips"),
    ("RightLowerLeg", "RightUpperLeg"),
    ("RightFoot", "RightLowerLeg"),
    ("RightToes", "RightFoot"),
)
JOINT_NAMES: tuple[str, ...] = tuple(name for name, _ in JOINTS)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}
PARENTS: np.ndarray = np.array([-1 if p is None else JOINT_INDEX[p] for _, p in JOINTS], dtype=np.int64)
NUM_JOINTS = len(JOINTS)
# Bones as (parent, child) index pairs; their lengths are what a real body keeps constant.
BONES: tuple[tuple[int, int], ...] = tuple((int(p), c) for c, p in enumerate(PARENTS) if p >= 0)
BONE_PARENTS: np.ndarray = np.array([p for p, _ in BONES])  # BONES as two index arrays
BONE_CHILDREN: np.ndarray = np.array([c for _, c in BONES])
# Left/right partner of each joint (itself for the centre line): used for mirroring augmentations.
MIRROR: np.ndarray = np.array(
    [JOINT_INDEX[n.replace("Left", "#").replace("Right", "Left").replace("#", "Right")] for n in JOINT_NAMES],
    dtype=np.int64,
)

# The limb chains a detector swaps or loses as a whole, (left joints, right joints) per pair:
# forearm + hand, shin + foot.
LIMB_PAIRS: tuple[tuple[list[int], list[int]], ...] = tuple(
    tuple([JOINT_INDEX[side + part] for part in chain] for side in ("Left", "Right"))
    for chain in (("LowerArm", "Hand", "HandEnd"), ("LowerLeg", "Foot", "Toes"))
)

# MediaPipe Pose's 33 landmarks.
LANDMARK_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
LM = {name: i for i, name in enumerate(LANDMARK_NAMES)}

# Each canonical joint is a weighted mean of landmarks. Spine and Chest lie on the hips-to-shoulders
# line (25 % and 55 % of the way up), as in a Unity humanoid's default proportions.
SPINE_AT, CHEST_AT = 0.25, 0.55
_hips = {"left_hip": 0.5, "right_hip": 0.5}
_neck = {"left_shoulder": 0.5, "right_shoulder": 0.5}


def _lerp(a: dict[str, float], b: dict[str, float], t: float) -> dict[str, float]:
    out = {k: (1 - t) * v for k, v in a.items()}
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + t * v
    return out


JOINT_FROM_LANDMARKS: dict[str, dict[str, float]] = {
    "Hips": _hips,
    "Spine": _lerp(_hips, _neck, SPINE_AT),
    "Chest": _lerp(_hips, _neck, CHEST_AT),
    "Neck": _neck,
    "Head": {"left_ear": 0.5, "right_ear": 0.5},
    "HeadEnd": {"nose": 1.0},
    "LeftHandEnd": {"left_index": 0.5, "left_pinky": 0.5},
    "RightHandEnd": {"right_index": 0.5, "right_pinky": 0.5},
}
for _side in ("Left", "Right"):
    _s = _side.lower()
    JOINT_FROM_LANDMARKS.update(
        {
            f"{_side}UpperArm": {f"{_s}_shoulder": 1.0},
            f"{_side}LowerArm": {f"{_s}_elbow": 1.0},
            f"{_side}Hand": {f"{_s}_wrist": 1.0},
            f"{_side}UpperLeg": {f"{_s}_hip": 1.0},
            f"{_side}LowerLeg": {f"{_s}_knee": 1.0},
            f"{_side}Foot": {f"{_s}_ankle": 1.0},
            f"{_side}Toes": {f"{_s}_foot_index": 1.0},
        }
    )

# (NUM_JOINTS, 33) mixing matrix: canonical = LANDMARK_TO_JOINT @ landmarks.
LANDMARK_TO_JOINT = np.zeros((NUM_JOINTS, len(LANDMARK_NAMES)))
for _name, _weights in JOINT_FROM_LANDMARKS.items():
    for _lm, _w in _weights.items():
        LANDMARK_TO_JOINT[JOINT_INDEX[_name], LM[_lm]] = _w

MEDIAPIPE_TO_CANONICAL = np.array([1.0, -1.0, -1.0])  # axis flips: MediaPipe world -> canonical
_LANDMARK_USED = LANDMARK_TO_JOINT > 0  # which landmarks each joint is made of


def landmarks_to_joints(world: np.ndarray, visibility: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe world landmarks (..., 33, 3) -> canonical joints (..., J, 3), root-relative.

    A joint's confidence is the lowest visibility among the landmarks it is made of.
    """
    joints = np.einsum("jl,...lc->...jc", LANDMARK_TO_JOINT, world) * MEDIAPIPE_TO_CANONICAL
    joints = joints - joints[..., :1, :]
    vis = np.broadcast_to(visibility[..., None, :], visibility.shape[:-1] + _LANDMARK_USED.shape)
    confidence = np.where(_LANDMARK_USED, vis, np.inf).min(axis=-1)
    return joints, confidence


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """The mirror image of canonical joints (..., J, 3): x negated and left/right joints swapped."""
    return joints[..., MIRROR, :] * np.array([-1.0, 1.0, 1.0])


def image_joints(image_landmarks: np.ndarray) -> np.ndarray:
    """Image landmarks (..., 33, 3) -> canonical joints' normalised image positions (..., J, 2)."""
    return np.einsum("jl,...lc->...jc", LANDMARK_TO_JOINT, image_landmarks[..., :2])


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Length of every bone in BONES, (..., len(BONES))."""
    return np.linalg.norm(joints[..., BONE_CHILDREN, :] - joints[..., BONE_PARENTS, :], axis=-1)


def estimate_root_position(
    world: np.ndarray,
    image: np.ndarray,
    visibility: np.ndarray,
    image_size: tuple[int, int],
    horizontal_fov_deg: float,
) -> np.ndarray:
    """Place the hip-centred world landmarks in camera space by least-squares reprojection.

    With a pinhole camera of the given field of view, u = f·(X+tx)/(Z+tz) + cx is linear in the
    translation t, so two equations per visible landmark give t directly. Returned in canonical axes
    (so +Z points towards the camera and the person stands at negative Z).
    """
    width, height = image_size
    focal = 0.5 * width / np.tan(np.radians(horizontal_fov_deg) / 2)
    u = image[:, 0] * width - width / 2
    v = image[:, 1] * height - height / 2
    x, y, z = world[:, 0], world[:, 1], world[:, 2]
    w = np.sqrt(np.clip(visibility, 0.05, 1.0))
    zeros = np.zeros_like(u)
    rows = np.concatenate(
        [
            np.stack([-focal + zeros, zeros, u], axis=1),
            np.stack([zeros, -focal + zeros, v], axis=1),
        ]
    )
    rhs = np.concatenate([focal * x - u * z, focal * y - v * z])
    weights = np.concatenate([w, w])
    t, *_ = np.linalg.lstsq(rows * weights[:, None], rhs * weights, rcond=None)
    return t * MEDIAPIPE_TO_CANONICAL


def rest_pose() -> np.ndarray:
    """A relaxed standing A-pose for a 1.7 m person (root-relative, canonical axes, facing +Z).

    The node eases to this pose when nobody is in view, so the avatar never freezes mid-gesture.
    """
    centre = {
        "Hips": (0.0, 0.0, 0.0),
        "Spine": (0.0, 0.125, 0.0),
        "Chest": (0.0, 0.275, 0.0),
        "Neck": (0.0, 0.5, 0.0),
        "Head": (0.0, 0.64, 0.0),
        "HeadEnd": (0.0, 0.64, 0.1),
    }
    left = {
        "UpperArm": (0.18, 0.48, 0.0),
        "LowerArm": (0.24, 0.21, -0.02),
        "Hand": (0.29, -0.04, 0.0),
        "HandEnd": (0.31, -0.12, 0.01),
        "UpperLeg": (0.1, 0.0, 0.0),
        "LowerLeg": (0.1, -0.44, 0.01),
        "Foot": (0.1, -0.86, -0.02),
        "Toes": (0.11, -0.93, 0.14),
    }
    joints = np.zeros((NUM_JOINTS, 3))
    for name, position in centre.items():
        joints[JOINT_INDEX[name]] = position
    for name, (x, y, z) in left.items():
        joints[JOINT_INDEX["Left" + name]] = (x, y, z)
        joints[JOINT_INDEX["Right" + name]] = (-x, y, z)
    return joints


def mirror_name(name: str) -> str:
    """A name for the other side: Left <-> Right anywhere ("eyeBlinkLeft", "LeftIndexProximal"),
    and a trailing _L <-> _R ("Blink_L"); centre-line names are returned as they are."""
    swapped = name.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right")
    if swapped.endswith("_L"):
        return swapped[:-2] + "_R"
    if swapped.endswith("_R"):
        return swapped[:-2] + "_L"
    return swapped
