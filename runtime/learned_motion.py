"""The learned Motion stage: the streaming ST-CNN (models/) as the node runs it, one step per frame.

The network sees the canonical observation (world joints, image joints, visibility) and returns
root-relative joints (low-visibility joints filled from history), local joint rotations, foot
contacts, a root displacement and joints 1-3 frames ahead. The node uses them as follows:
  - joints: `lookahead_frames` > 0 takes the model's prediction that many frames ahead instead of the
    current frame, to cancel the pipeline's own latency (at some cost in accuracy);
  - root: the model's per-frame Hips displacement is integrated and pulled towards the reprojected
    root (`root_correction` per frame) so it is smooth yet cannot drift away;
  - nobody in view: the base class holds, then eases to the rest pose; the model's history is
    cleared when the person comes back, so no stale limb jumps in;
  - bone lengths: the base class holds them at the user's (runtime/body.py);
  - rotations and contacts are not used yet: retargeting derives rotations from the joints (the
    rotation head is smoother but less accurate on the arms; models/MODEL_CARD.md, "Heads").
"""

from __future__ import annotations

import numpy as np

from runtime.config import MotionConfig, PerceptionConfig
from runtime.fetch import PROJECT_ROOT
from runtime.motion import MotionStage


class LearnedMotion(MotionStage):
    def __init__(self, config: MotionConfig, perception: PerceptionConfig) -> None:
        super().__init__(config, perception)
        from models.backends import load_model

        self.model = load_model(config.backend, PROJECT_ROOT / config.weights)  # absolute paths stay
        self._root: np.ndarray | None = None

    def reset(self) -> None:
        self.model.reset()
        self._root = None

    def _smooth(self, obs, joints, confidence, image, root):
        width, height = obs.image_size
        out = self.model.step(joints, image, confidence, aspect=width / max(height, 1))
        if self._root is None:
            self._root = root.copy()
        else:
            self._root = self._root + out.root
            self._root += self.config.root_correction * (root - self._root)
        k = self.config.lookahead_frames
        predicted = out.joints if k == 0 else out.future[k - 1]
        return predicted.astype(np.float64), self._root.copy(), out.contact.astype(np.float64)
