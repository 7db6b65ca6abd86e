"""Foot lock: a foot the motion model says is on the ground stays where it landed.

Why: users' most common complaint after jitter is sliding feet. The detector's foot estimates wander
by centimetres while the foot is planted, and the root (the Hips in camera space) wanders with the
distance estimate; both show as a skating foot. While a foot's contact probability (the network's
contact head) is high, its Foot joint is held at the world position where it landed, and the leg
reaches it by two-bone IK (hip fixed, knee swung in the leg's own bend plane, bone lengths kept, the
toes carried along): the body keeps the motion the model saw, only the planted leg bends to stay put.

Three rules keep the hold honest:
  - hysteresis: lock at `contact_on`, release below `contact_off`, so a wavering head does not chatter;
  - the anchor follows the detector's foot with time constant `follow_s` and never strays more than
    `max_offset_m` from it: a foot the model wrongly thinks planted slides late rather than stays
    behind, and a slow root drift cannot bend the leg without bound;
  - on release the held offset eases out with time constant `release_s`: no foot pops back.
Everything is in the node's camera space (world = camera for a fixed camera), in metres.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from liverig.core.config import FeetConfig
from liverig.core.skeleton import JOINT_INDEX
from liverig.core.types import MotionSample

# (upper leg, lower leg, foot, toes) per side; side 0 is the person's left, as in Pose.foot_contact
LEGS = tuple(
    tuple(JOINT_INDEX[side + part] for part in ("UpperLeg", "LowerLeg", "Foot", "Toes"))
    for side in ("Left", "Right")
)
ANKLES = [leg[2] for leg in LEGS]
HIPS, SPINE = JOINT_INDEX["Hips"], JOINT_INDEX["Spine"]


def reach(joints: np.ndarray, leg: tuple[int, int, int, int], target: np.ndarray) -> np.ndarray:
    """Joints (J, 3) with one leg bent by two-bone IK so its foot is at `target` (3,), or as near as
    the leg reaches; the thigh and shin keep their lengths and the knee stays in the leg's bend plane
    (the body's forward side when the leg is straight); the toes move with the foot."""
    upper, lower, foot, toes = leg
    hip, knee, ankle = joints[upper], joints[lower], joints[foot]
    thigh, shin = np.linalg.norm(knee - hip), np.linalg.norm(ankle - knee)
    to_target = target - hip
    distance = np.linalg.norm(to_target)
    if distance < 1e-9 or thigh < 1e-9 or shin < 1e-9:
        return joints
    axis = to_target / distance
    distance = float(np.clip(distance, abs(thigh - shin) + 1e-6, thigh + shin - 1e-6))
    bend = (knee - hip) - np.dot(knee - hip, axis) * axis
    if np.linalg.norm(bend) < 1e-6 * thigh:  # straight leg: bend towards the body's front
        left_to_right = joints[LEGS[0][0]] - joints[LEGS[1][0]]
        bend = np.cross(left_to_right, joints[SPINE] - joints[HIPS])
        bend -= np.dot(bend, axis) * axis
    bend /= max(np.linalg.norm(bend), 1e-12)
    along = (thigh**2 - shin**2 + distance**2) / (2 * distance)
    out = joints.copy()
    out[lower] = hip + along * axis + math.sqrt(max(thigh**2 - along**2, 0.0)) * bend
    out[foot] = hip + distance * axis
    out[toes] = joints[toes] + (out[foot] - ankle)
    return out


class FootLock:
    """A motion filter (core/types.py MotionSample): root-relative joints with the planted feet held,
    from the sample's root and foot contacts (left, right; the root is left alone). Stateful;
    `reset()` when the person is lost."""

    def __init__(self, config: FeetConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.locked = np.zeros(2, dtype=bool)
        self.anchor = np.zeros((2, 3))  # where a locked foot is held, camera space
        self.offset = np.zeros((2, 3))  # how far the leg reaches from the detected foot
        self._time: float | None = None

    def __call__(self, sample: MotionSample) -> MotionSample:
        """Without contacts (a method with no contact head) the sample passes unchanged."""
        if sample.contact is None:
            return sample
        return replace(sample, joints=self._hold(sample.joints, sample.root, sample.contact, sample.time_s))

    def _hold(self, joints: np.ndarray, root: np.ndarray, contact: np.ndarray, time_s: float) -> np.ndarray:
        c = self.config
        dt = 0.0 if self._time is None else max(time_s - self._time, 0.0)
        self._time = time_s
        follow, keep = 1.0 - math.exp(-dt / c.follow_s), math.exp(-dt / c.release_s)
        joints = np.asarray(joints, dtype=np.float64)
        seen = root + joints[ANKLES]  # (2, 3) where the motion stage puts the feet
        for side, leg in enumerate(LEGS):
            if self.locked[side] and contact[side] < c.contact_off:
                self.locked[side] = False
            elif not self.locked[side] and contact[side] >= c.contact_on:
                self.locked[side] = True
                self.anchor[side] = seen[side] + self.offset[side]  # where it is shown now: no jump
            if self.locked[side]:
                self.anchor[side] += follow * (seen[side] - self.anchor[side])
                away = self.anchor[side] - seen[side]
                size = np.linalg.norm(away)
                if size > c.max_offset_m:
                    self.anchor[side] = seen[side] + away * (c.max_offset_m / size)
                self.offset[side] = self.anchor[side] - seen[side]
            else:
                self.offset[side] *= keep
            if np.any(self.offset[side]):
                joints = reach(joints, leg, joints[leg[2]] + self.offset[side])
        return joints
