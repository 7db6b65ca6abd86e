"""Foot lock: a foot on the ground stays where it landed.

Per-frame pose estimates make planted feet slide and shake: every frame's error moves them. The
learned model says when a foot is on the ground (its contact head); while it is, the ankle is held
at the point where it landed, in camera space (so the smoothed root counts), and the leg bends to
reach it: two-bone IK on hip-knee-ankle with the frame's own bone lengths, the knee staying in the
plane it was in; the toes move with the ankle. The hold engages and lets go over `ramp_frames`, so a
foot never jumps, and the held point follows the estimate by `follow` per frame, so a long stance
cannot drift away from what the camera sees. Measured in models/EVAL.md ("Feet").
"""

from __future__ import annotations

import numpy as np

from runtime.config import FeetConfig
from runtime.skeleton import JOINT_INDEX

LEGS = tuple(  # (hip, knee, ankle, toes) joint indices, left then right
    tuple(JOINT_INDEX[side + name] for name in ("UpperLeg", "LowerLeg", "Foot", "Toes"))
    for side in ("Left", "Right")
)
_REACH_MARGIN = 1e-4  # m: the IK target stays this much inside the leg's reach, so the knee is defined


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray):
    """New (knee, ankle) with |hip-knee| and |knee-ankle| kept, the ankle as close to `target` as the
    leg reaches, and the knee bending in the plane of the original hip, knee and target."""
    thigh, shin = np.linalg.norm(knee - hip), np.linalg.norm(ankle - knee)
    to_target = target - hip
    distance = float(np.linalg.norm(to_target))
    axis = to_target / distance if distance > 1e-9 else (ankle - hip) / max(np.linalg.norm(ankle - hip), 1e-9)
    reach = float(np.clip(distance, abs(thigh - shin) + _REACH_MARGIN, thigh + shin - _REACH_MARGIN))
    bend = (knee - hip) - np.dot(knee - hip, axis) * axis  # where the knee points, off the hip-target line
    norm = np.linalg.norm(bend)
    if norm < 1e-9:  # a straight leg: bend forwards (+Z, towards the camera's side of the body)
        bend = np.array([0.0, 0.0, 1.0]) - axis[2] * axis
        norm = np.linalg.norm(bend)
    along = (thigh**2 - shin**2 + reach**2) / (2 * reach)
    across = np.sqrt(max(thigh**2 - along**2, 0.0))
    return hip + along * axis + across * bend / norm, hip + reach * axis


class FootLock:
    def __init__(self, config: FeetConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._anchor: list[np.ndarray | None] = [None, None]  # camera-space ankle while held
        self._held = [np.zeros(3), np.zeros(3)]  # the last anchor, while letting go
        self._weight = [0.0, 0.0]  # 0: the estimate, 1: the anchor

    def apply(self, joints: np.ndarray, root: np.ndarray, contact: np.ndarray | None) -> np.ndarray:
        """Root-relative joints (J, 3), the root (3,) and contact probabilities (2,) -> joints."""
        if contact is None:
            return joints
        out, cfg = joints.copy(), self.config
        step = 1.0 / cfg.ramp_frames
        for side, (hip, knee, ankle, toes) in enumerate(LEGS):
            seen = joints[ankle] + root  # where this frame's estimate puts the ankle, camera space
            shown = seen + self._weight[side] * (self._held[side] - seen)  # where it would be drawn
            anchor = self._anchor[side]
            if anchor is None and contact[side] >= cfg.contact_on:
                anchor = shown  # from where the foot is drawn now: no jump, even while letting go
            elif anchor is not None and contact[side] < cfg.contact_off:
                anchor = None
            if anchor is not None:
                anchor = anchor + cfg.follow * (seen - anchor)
                self._held[side] = anchor
                self._weight[side] = min(1.0, self._weight[side] + step)
            else:
                self._weight[side] = max(0.0, self._weight[side] - step)
            self._anchor[side] = anchor
            weight = self._weight[side]
            if weight <= 0.0:
                continue
            target = seen + weight * (self._held[side] - seen) - root
            out[knee], out[ankle] = two_bone_ik(joints[hip], joints[knee], joints[ankle], target)
            out[toes] = joints[toes] + (out[ankle] - joints[ankle])
        return out
