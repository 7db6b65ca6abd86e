"""Side guard: undo the detector's brief left/right mix-ups before the motion stage sees them.

Why: BlazePose now and then swaps which forearm (or shin) is the left one for a few frames, mostly
when the person is side-on or tumbling; the avatar's arms then cross over and back. A real limb
cannot jump to where the other one was in one frame, but a swapped label does exactly that. So, per
frame and per limb pair (forearm + hand, shin + foot, in the canonical world joints), the guard
compares the frame with the previous guarded one: if each limb is much nearer to where the other one
was than to where it was itself (`ratio`) and the two were apart (`min_apart_m`: limbs that touch
say nothing), it swaps them back (world joints, image joints and confidence alike).

A swap is held for at most `max_hold_s`: the detector's mix-ups last a few frames, and if the guard
ever kept the wrong side (it missed the start of a mix-up and then "corrected" its end), it lets go
instead of holding the wrong side for good. Measured on real detector output: models/EVAL.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from liverig.core.config import SidesConfig
from liverig.core.skeleton import LIMB_PAIRS
from liverig.core.types import MotionSample

PAIRS = LIMB_PAIRS  # (left joints, right joints): forearm + hand, shin + foot
SIDES = np.array(PAIRS).transpose(1, 0, 2)  # (left/right, pairs, joints per chain)


def mixed_up(joints: np.ndarray, previous: np.ndarray, ratio: float, min_apart_m: float) -> np.ndarray:
    """(pairs,) bool: is each limb pair swapped relative to the frame before? `joints`, `previous`:
    (J, 3) world joints now and one frame before."""
    now, before = joints[SIDES], previous[SIDES]  # (2 sides, pairs, joints, 3)
    # moved[i, k]: mean distance from side i's joints now to side k's joints one frame before
    moved = np.linalg.norm(now[:, None] - before[None], axis=-1).mean(axis=-1)  # (2, 2, pairs)
    apart = np.linalg.norm(before[0] - before[1], axis=-1).mean(axis=-1)
    same, swapped = moved[0, 0] + moved[1, 1], moved[0, 1] + moved[1, 0]
    return (apart >= min_apart_m) & (swapped < ratio * same)


class SideGuard:
    """A motion filter (core/types.py MotionSample): the sample's joints, confidence and image joints
    with short left/right mix-ups of the forearms and shins undone. Stateful; `reset()` when the
    person is lost."""

    def __init__(self, config: SidesConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._previous: np.ndarray | None = None
        self._since: list[float | None] = [None] * len(PAIRS)  # when each pair's current swap began

    def __call__(self, sample: MotionSample) -> MotionSample:
        joints, confidence, image = self._guard(sample.joints, sample.confidence, sample.image, sample.time_s)
        return replace(sample, joints=joints, confidence=confidence, image=image)

    def _guard(
        self, joints: np.ndarray, confidence: np.ndarray, image: np.ndarray, time_s: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.config
        if self._previous is not None:
            mixed = mixed_up(joints, self._previous, c.ratio, c.min_apart_m)
            for k, (left, right) in enumerate(PAIRS):
                if not mixed[k]:
                    self._since[k] = None
                    continue
                if self._since[k] is None:
                    self._since[k] = time_s
                if time_s - self._since[k] >= c.max_hold_s:
                    continue  # held long enough: believe the detector
                order = np.arange(len(joints))
                order[left + right] = right + left
                joints, confidence, image = joints[order], confidence[order], image[order]
        self._previous = joints.copy()
        return joints, confidence, image
