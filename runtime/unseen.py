"""Unseen legs rest: legs the camera has not seen for a while ease into a calm standing pose.

Why: at a desk, or framed from the waist up, the legs are out of view for minutes. The motion model
still fills them (it must: short occlusions are its job), but from nothing, and the filled legs
shake: on the bundled head-and-shoulders clip the unseen feet and toes move with 16-45 mm/frame² of
acceleration against 3-4 for the joints the camera sees. So a leg whose joints have all been below
`min_confidence` for `after_s` eases (smoothstep, over `ease_s`) to hanging straight down from its
hip (the camera's down: the body's own would carry the torso's jitter a metre down to the toes),
toes along the body's front, bones as long as the model makes them on average (both smoothed over
`CALM_S`); once the leg is seen again it eases back to the model's.
Short occlusions (under `after_s`) never trigger it. Measured: README "Unseen legs".
"""

from __future__ import annotations

import math

import numpy as np

from runtime.config import UnseenConfig
from runtime.feet import LEGS

UP = np.array([0.0, 1.0, 0.0])  # the camera's up: a webcam stands level, more or less
CALM_S = 0.5  # time constant of the bone lengths and facing a standing leg is built from


def standing_leg(hip: np.ndarray, lengths: np.ndarray, front: np.ndarray) -> np.ndarray:
    """(3, 3) knee, ankle and toes hanging straight down from `hip` with `lengths` (thigh, shin, foot),
    the toes along `front`."""
    knee = hip - lengths[0] * UP
    ankle = knee - lengths[1] * UP
    return np.stack([knee, ankle, ankle + lengths[2] * front])


def facing(joints: np.ndarray) -> np.ndarray:
    """The body's front, level: left hip - right hip, crossed with up."""
    front = np.cross(joints[LEGS[0][0]] - joints[LEGS[1][0]], UP)
    return front / max(np.linalg.norm(front), 1e-9)


class UnseenLegs:
    """Per frame: joints (J, 3), confidence (J,) -> joints with long-unseen legs eased to standing.
    Stateful; `reset()` when the person is lost."""

    def __init__(self, config: UnseenConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._unseen_since: list[float | None] = [None, None]
        self._progress = np.zeros(2)  # 0: the model's leg, 1: standing; moves by dt / ease_s
        self._time: float | None = None
        self._lengths: np.ndarray | None = None  # (2 legs, 3 bones), smoothed: a standing leg is calm
        self._front: np.ndarray | None = None

    def __call__(self, joints: np.ndarray, confidence: np.ndarray, time_s: float) -> np.ndarray:
        c = self.config
        dt = 0.0 if self._time is None else max(time_s - self._time, 0.0)
        self._time, step = time_s, dt / c.ease_s
        legs = np.array(LEGS)
        lengths = np.linalg.norm(joints[legs[:, 1:]] - joints[legs[:, :-1]], axis=-1)
        if self._lengths is None:
            self._lengths, self._front = lengths, facing(joints)
        else:
            calm = 1.0 - math.exp(-dt / CALM_S)
            self._lengths = self._lengths + calm * (lengths - self._lengths)
            front = self._front + calm * (facing(joints) - self._front)
            self._front = front / max(np.linalg.norm(front), 1e-9)
        out = joints
        for side, leg in enumerate(LEGS):
            if np.all(confidence[list(leg)] < c.min_confidence):
                if self._unseen_since[side] is None:
                    self._unseen_since[side] = time_s
                resting = time_s - self._unseen_since[side] >= c.after_s
            else:
                self._unseen_since[side], resting = None, False
            self._progress[side] = float(np.clip(self._progress[side] + (step if resting else -step), 0, 1))
            t = self._progress[side]
            if t > 0:
                blend = t * t * (3 - 2 * t)  # smoothstep: no velocity jump at either end
                if out is joints:
                    out = joints.copy()
                chain = list(leg[1:])
                standing = standing_leg(joints[leg[0]], self._lengths[side], self._front)
                out[chain] = (1 - blend) * joints[chain] + blend * standing
        return out
