"""The learned Motion stage: the streaming ST-CNN (models/) as the node runs it, one step per frame.

The network sees the canonical observation (world joints, image joints, visibility) and returns
root-relative joints (low-visibility joints filled from history), local joint rotations, foot
contacts, a root displacement and joints 1-3 frames ahead. The node uses them as follows:
  - joints: `lookahead_frames` > 0 takes the model's prediction that many frames ahead instead of the
    current frame, to cancel the pipeline's own latency (at some cost in accuracy);
  - root: not the model's; its per-frame Hips displacement is nearly uninformative (models/
    MODEL_CARD.md, "Heads"), so the base class filters the reprojected root (`RootFilter`);
  - nobody in view: the base class holds, then eases to the rest pose; the model's history is
    cleared when the person comes back, so no stale limb jumps in;
  - bone lengths: the base class measures the user's and, with `motion.body.lock_bones`, holds
    them (runtime/body.py);
  - contacts: handed on with the pose (recordings and the WebSocket carry them); with
    `motion.feet.lock` the base class holds planted feet with them (runtime/feet.py);
  - rotations are not used yet: retargeting derives rotations from the joints (the rotation head
    is smoother but less accurate on the arms; models/MODEL_CARD.md, "Heads").
"""

from __future__ import annotations

import numpy as np

from liverig.core.config import MotionConfig, PerceptionConfig
from liverig.core.fetch import PROJECT_ROOT
from liverig.runtime.motion import MotionStage


class LearnedMotion(MotionStage):
    def __init__(self, config: MotionConfig, perception: PerceptionConfig) -> None:
        super().__init__(config, perception)
        from liverig.models.backends import load_model

        self.model = load_model(config.backend, PROJECT_ROOT / config.weights)  # absolute paths stay

    def reset(self) -> None:
        super().reset()
        self.model.reset()

    def _smooth(self, obs, joints, confidence, image):
        width, height = obs.image_size
        out = self.model.step(joints, image, confidence, aspect=width / max(height, 1))
        k = self.config.lookahead_frames
        predicted = out.joints if k == 0 else out.future[k - 1]
        return predicted.astype(np.float64), out.contact.astype(np.float64)
