"""Joint rotations of the canonical skeleton, computed from its joint positions: the truth the
network's rotation head (rot6d) is trained on, and the reference it is scored against.

The torso chain (Hips, Spine, Chest, Neck, Head) gets full frames: first axis along the bone to its
child, second the part across it of the hip line (Hips, Spine) or the shoulder line (Chest, Neck,
Head). Limb joints (upper/lower arm and leg, hand, foot) get the smallest rotation (swing) that
turns their rest direction, carried along by the parent, onto their current bone direction: a
bone's roll about itself cannot be seen in joint positions, and guessing it from the bend plane
flips by half a turn whenever a limb passes through straight. End sites keep their parent's
rotation. A joint's world rotation takes its rest pose onto its current pose; its local rotation is
that relative to its parent's, as the network's rot6d head is defined (models/stcnn.py).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from liverig.core.geometry import orthonormal_frames, swing_rotations
from liverig.core.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, rest_pose

J = JOINT_INDEX
TORSO = ("Hips", "Spine", "Chest", "Neck", "Head")
# joint -> the child its first axis aims at; joints not listed are end sites
AIM = {"Hips": "Spine", "Spine": "Chest", "Chest": "Neck", "Neck": "Head", "Head": "HeadEnd"}
for _side in ("Left", "Right"):
    AIM.update(
        {
            f"{_side}UpperArm": f"{_side}LowerArm",
            f"{_side}LowerArm": f"{_side}Hand",
            f"{_side}Hand": f"{_side}HandEnd",
            f"{_side}UpperLeg": f"{_side}LowerLeg",
            f"{_side}LowerLeg": f"{_side}Foot",
            f"{_side}Foot": f"{_side}Toes",
        }
    )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _aims(joints: np.ndarray) -> dict[str, np.ndarray]:
    """Unit bone direction (..., 3) of every aimed joint."""
    return {name: _unit(joints[..., J[child], :] - joints[..., J[name], :]) for name, child in AIM.items()}


def _torso_frames(joints: np.ndarray, aims: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    hips = joints[..., J["LeftUpperLeg"], :] - joints[..., J["RightUpperLeg"], :]
    shoulders = joints[..., J["LeftUpperArm"], :] - joints[..., J["RightUpperArm"], :]
    out = {}
    for name in TORSO:
        side = hips if name in ("Hips", "Spine") else shoulders
        aim = aims[name]
        lead = aim.shape[:-1]
        frames = orthonormal_frames(aim.reshape(-1, 3), np.broadcast_to(side, aim.shape).reshape(-1, 3))
        out[name] = frames.reshape(*lead, 3, 3)
    return out


_REST = rest_pose()
_REST_AIMS = _aims(_REST)
_REST_TORSO_T = {k: np.swapaxes(v, -1, -2) for k, v in _torso_frames(_REST, _REST_AIMS).items()}


def world_rotations(joints: np.ndarray) -> np.ndarray:
    """(..., J, 3, 3) rotations taking the rest pose's joints onto these (root-relative) joints."""
    joints = np.asarray(joints, dtype=np.float64)
    aims = _aims(joints)
    torso = _torso_frames(joints, aims)
    lead = joints.shape[:-2]
    world = np.zeros((*lead, NUM_JOINTS, 3, 3))
    for j, name in enumerate(JOINT_NAMES):  # parents come first
        if name in TORSO:
            world[..., j, :, :] = torso[name] @ _REST_TORSO_T[name]
        elif name in AIM:
            parent = world[..., PARENTS[j], :, :]
            carried = (parent @ _REST_AIMS[name]).reshape(-1, 3)
            swing = swing_rotations(carried, aims[name].reshape(-1, 3)).reshape(*lead, 3, 3)
            world[..., j, :, :] = swing @ parent
        else:
            world[..., j, :, :] = world[..., PARENTS[j], :, :]
    return world


def joint_rotations(joints: np.ndarray) -> np.ndarray:
    """Local rotation matrices (..., J, 3, 3) of root-relative joints (..., J, 3): each joint's
    rotation from the rest pose, relative to its parent's (the Hips: relative to the camera axes)."""
    world = world_rotations(joints)
    parent = world[..., np.maximum(PARENTS, 0), :, :]
    local = np.swapaxes(parent, -1, -2) @ world
    local[..., 0, :, :] = world[..., 0, :, :]
    return local


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between rotation matrices a and b (..., 3, 3)."""
    relative = np.swapaxes(a, -1, -2) @ b
    return np.degrees(Rotation.from_matrix(relative.reshape(-1, 3, 3)).magnitude()).reshape(
        relative.shape[:-2]
    )
