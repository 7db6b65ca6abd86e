"""Deadband: a joint that stays put is held calm; one that moves is passed through untouched.

Why: held still in front of a camera, the real detector's joints still jitter by a few millimetres a
frame, and the motion model, trained to keep lag low, passes most of that jitter on (models/EVAL.md,
"Holding still"). A plain low-pass would calm it but lag every motion. So each joint keeps a slow
exponential average (`cutoff_hz`) of its input, and the output is that average while the input stays
within `inner_m` of it, the input itself once it is `outer_m` away, and a smoothstep blend between:
jitter smaller than the band is averaged away, a real motion leaves the band within a frame or two
and is followed without delay. The output is continuous in the input, so entering or leaving the
band never pops; the price is at the start of a motion, where the output trails by up to the band
and then catches up within a few frames, briefly faster than the input (tests/test_deadband.py: at
0.3 m/s, 18 mm behind at most, caught up after 5 frames, at most 1.9x the input's speed).
Measured: models/EVAL.md ("Holding still", and the ST-CNN rows, which include it).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from liverig.core.config import DeadbandConfig
from liverig.core.types import MotionSample
from liverig.runtime.ease import smoothstep
from liverig.runtime.one_euro import smoothing_factor


class Deadband:
    """A motion filter (core/types.py MotionSample): joints calmed where they stay put. Stateful;
    `reset()` when the person is lost."""

    def __init__(self, config: DeadbandConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._average: np.ndarray | None = None  # (J, 3) the slow average of the input
        self._time: float | None = None

    def __call__(self, sample: MotionSample) -> MotionSample:
        return replace(sample, joints=self._calm(sample.joints, sample.time_s))

    def _calm(self, joints: np.ndarray, time_s: float) -> np.ndarray:
        joints = np.asarray(joints, dtype=np.float64)
        if self._average is None or self._time is None or time_s <= self._time:
            self._average, self._time = joints.copy(), time_s
            return joints.copy()
        weight = smoothing_factor(self.config.cutoff_hz, time_s - self._time)
        self._average = self._average + weight * (joints - self._average)
        self._time = time_s
        distance = np.linalg.norm(joints - self._average, axis=-1, keepdims=True)
        c = self.config
        follow = smoothstep((distance - c.inner_m) / (c.outer_m - c.inner_m))
        return self._average + follow * (joints - self._average)
