"""Re-entry: a joint seen again after an occlusion glides to the model's position instead of jumping.

Why: while a forearm or shin is hidden, the detector's guess for it freezes or wanders and the
motion model follows it part of the way; when the limb is seen again the guess snaps back and so
would the avatar's limb (the issue: "never a frozen limb jumping back"). So when a joint's
confidence climbs back over `min_confidence`, the gap between where the joint was shown a frame ago
and where the model now puts it is kept as an offset that fades out over `ease_s` (smoothstep, so
the joint keeps the model's velocity at both ends): inertialization, as game animation blends two
poses without a pop. The joint follows the model's motion throughout; only the jump is spread out.
Measured on injected occlusion bursts: models/EVAL.md, "Occlusion".
"""

from __future__ import annotations

import numpy as np

from runtime.config import ReentryConfig


class Reentry:
    """Per frame: joints (J, 3), confidence (J,), time -> joints with re-entry jumps faded out.
    Stateful; `reset()` when the person is lost."""

    def __init__(self, config: ReentryConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._shown: np.ndarray | None = None  # (J, 3) what this stage returned last frame
        self._hidden: np.ndarray | None = None  # (J,) below min_confidence last frame
        self._offset: np.ndarray | None = None  # (J, 3) the gap at re-entry
        self._since: np.ndarray | None = None  # (J,) when each joint re-entered (-inf: long ago)

    def __call__(self, joints: np.ndarray, confidence: np.ndarray, time_s: float) -> np.ndarray:
        hidden = np.asarray(confidence) < self.config.min_confidence
        if self._shown is None:
            self._offset = np.zeros_like(joints, dtype=np.float64)
            self._since = np.full(len(joints), -np.inf)
        else:
            back = self._hidden & ~hidden
            if back.any():
                # The fading offset of a joint already gliding is part of where it was shown.
                self._offset[back] = self._shown[back] - joints[back]
                self._since[back] = time_s
        t = np.clip((time_s - self._since) / self.config.ease_s, 0.0, 1.0)
        fade = 1.0 - t * t * (3.0 - 2.0 * t)
        out = joints + self._offset * fade[:, None]
        self._shown, self._hidden = out, hidden
        return out
