"""Re-entry: a joint seen again after an occlusion glides to the model's position instead of jumping.

Why: while a forearm or shin is hidden, the detector's guess for it freezes or wanders and the
motion model follows it part of the way; when the limb is seen again the guess snaps back and so
would the avatar's limb (the issue: "never a frozen limb jumping back"). So a joint that was hidden
(confidence below `min_confidence`) for at least `min_hidden_s` and is seen again (confidence back
up to `seen_confidence`: the hysteresis keeps an occluded limb's flickering confidence from ending
the occlusion early) starts from where it was shown a frame ago, carried on by its last step, and
the gap to where the model now puts it fades out over `ease_s` (smoothstep, so the joint keeps the
model's velocity at both ends): inertialization, as game animation blends two poses without a pop.
The joint follows the model's motion throughout; only the jump is spread out. Shorter dips are
flicker, not occlusions, and glide nothing; carrying the last step on means that even repeated
glides never leave a moving joint trailing. Measured: models/EVAL.md, "Occlusion".
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from liverig.core.config import ReentryConfig
from liverig.core.types import MotionSample
from liverig.runtime.ease import smoothstep


class Reentry:
    """A motion filter (core/types.py MotionSample): joints with re-entry jumps faded out.
    Stateful; `reset()` when the person is lost."""

    def __init__(self, config: ReentryConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._shown: np.ndarray | None = None  # (J, 3) what this stage returned last frame
        self._step: np.ndarray | None = None  # (J, 3) its last step
        self._hidden_since: np.ndarray | None = None  # (J,) when each joint went hidden (nan: seen)
        self._offset: np.ndarray | None = None  # (J, 3) the gap at re-entry
        self._since: np.ndarray | None = None  # (J,) when each joint re-entered (-inf: long ago)

    def __call__(self, sample: MotionSample) -> MotionSample:
        return replace(sample, joints=self._glide(sample.joints, sample.confidence, sample.time_s))

    def _glide(self, joints: np.ndarray, confidence: np.ndarray, time_s: float) -> np.ndarray:
        confidence = np.asarray(confidence)
        if self._shown is None:
            count = len(joints)
            self._step, self._offset = np.zeros((count, 3)), np.zeros((count, 3))
            self._since, self._hidden_since = np.full(count, -np.inf), np.full(count, np.nan)
        was_hidden = ~np.isnan(self._hidden_since)
        threshold = np.where(was_hidden, self.config.seen_confidence, self.config.min_confidence)
        hidden = confidence < threshold
        hidden_for = time_s - np.where(was_hidden, self._hidden_since, time_s)
        back = was_hidden & ~hidden & (hidden_for >= self.config.min_hidden_s)
        if back.any():  # the fading offset of a joint already gliding is part of where it was shown
            self._offset[back] = self._shown[back] + self._step[back] - joints[back]
            self._since[back] = time_s
        self._hidden_since = np.where(hidden, np.where(was_hidden, self._hidden_since, time_s), np.nan)
        out = joints + self._offset * (1.0 - smoothstep((time_s - self._since) / self.config.ease_s))[:, None]
        if self._shown is not None:
            self._step = out - self._shown
        self._shown = out
        return out
