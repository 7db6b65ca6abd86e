"""Unseen legs rest: legs the camera has not seen for a while ease into a calm standing (or sitting) pose.

Why: at a desk, or framed from the waist up, the legs are out of view for minutes. The motion model
still fills them (it must: short occlusions are its job), but from nothing, and the filled legs
shake: on the bundled head-and-shoulders clip the unseen feet and toes move with 16-45 mm/frame² of
acceleration against 3-4 for the joints the camera sees. So a leg whose joints have all been below
`min_confidence` for `after_s` eases (smoothstep, over `ease_s`) to hanging straight down from its
hip (the camera's down: the body's own would carry the torso's jitter a metre down to the toes),
toes along the body's front, bones as long as the model makes them on average (both smoothed over
`CALM_S`); once the leg is seen again it eases back to the model's. `pose: sitting` bends them as
on a chair instead: thighs level to the front, shins straight down (a streamer at a desk).
Short occlusions (under `after_s`) never trigger it. Measured: docs/motion.md, "Unseen legs".
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from liverig.core.config import UnseenConfig
from liverig.core.types import MotionSample
from liverig.runtime.ease import smoothstep
from liverig.runtime.feet import LEGS

UP = np.array([0.0, 1.0, 0.0])  # the camera's up: a webcam stands level, more or less
CALM_S = 0.5  # time constant of the bone lengths and facing a standing leg is built from
LEG = np.array(LEGS)  # (2 legs, hip / knee / ankle / toes)


def resting_legs(
    hips: np.ndarray, lengths: np.ndarray, front: np.ndarray, sitting: bool = False
) -> np.ndarray:
    """(2, 3, 3) knees, ankles and toes below `hips` (2, 3) with `lengths` (2, 3: thigh, shin, foot),
    the toes along `front` (3,): hanging straight down, or sitting (thighs along `front`)."""
    knees = hips + lengths[:, :1] * (front if sitting else -UP)
    ankles = knees - lengths[:, 1:2] * UP
    return np.stack([knees, ankles, ankles + lengths[:, 2:] * front], axis=1)


def facing(joints: np.ndarray) -> np.ndarray:
    """The body's front, level: (left hip - right hip) x up."""
    across = joints[LEG[0, 0]] - joints[LEG[1, 0]]
    front = np.array([-across[2], 0.0, across[0]])
    return front / max(math.hypot(front[0], front[2]), 1e-9)


class UnseenLegs:
    """A motion filter (core/types.py MotionSample): joints with long-unseen legs eased to rest.
    Stateful; `reset()` when the person is lost."""

    def __init__(self, config: UnseenConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._unseen_since: list[float | None] = [None, None]
        self._progress = np.zeros(2)  # 0: the model's leg, 1: standing; moves by dt / ease_s
        self._time: float | None = None
        self._lengths: np.ndarray | None = None  # (2 legs, 3 bones), smoothed: a standing leg is calm
        self._front = np.zeros(3)

    def __call__(self, sample: MotionSample) -> MotionSample:
        return replace(sample, joints=self._ease(sample.joints, sample.confidence, sample.time_s))

    def _ease(self, joints: np.ndarray, confidence: np.ndarray, time_s: float) -> np.ndarray:
        c = self.config
        dt = 0.0 if self._time is None else max(time_s - self._time, 0.0)
        self._time = time_s
        lengths = np.linalg.norm(joints[LEG[:, 1:]] - joints[LEG[:, :-1]], axis=-1)
        if self._lengths is None:
            self._lengths, self._front = lengths, facing(joints)
        else:
            calm = 1.0 - math.exp(-dt / CALM_S)
            self._lengths = self._lengths + calm * (lengths - self._lengths)
            front = self._front + calm * (facing(joints) - self._front)
            self._front = front / max(math.hypot(front[0], front[2]), 1e-9)
        unseen = confidence[LEG].max(axis=1) < c.min_confidence
        resting = np.zeros(2, dtype=bool)
        for side in range(2):
            if not unseen[side]:
                self._unseen_since[side] = None
                continue
            if self._unseen_since[side] is None:
                self._unseen_since[side] = time_s
            resting[side] = time_s - self._unseen_since[side] >= c.after_s
        step = dt / c.ease_s
        self._progress = np.clip(self._progress + np.where(resting, step, -step), 0.0, 1.0)
        if not self._progress.any():
            return joints
        blend = smoothstep(self._progress)[:, None, None]
        out = joints.copy()
        chains = LEG[:, 1:]
        resting = resting_legs(joints[LEG[:, 0]], self._lengths, self._front, c.pose == "sitting")
        out[chains] = (1 - blend) * joints[chains] + blend * resting
        return out
