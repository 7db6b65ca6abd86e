"""The learned smoother: the streaming ST-CNN (models/) as the node runs it, one step per frame.

The network sees the canonical observation (world joints, image joints, visibility) and returns
root-relative joints (low-visibility joints filled from history), local joint rotations, foot
contacts, a root displacement and joints 1-3 frames ahead. The node uses them as follows:
  - joints: `lookahead_frames` > 0 takes the model's prediction that many frames ahead instead of the
    current frame, to cancel the pipeline's own latency (at some cost in accuracy);
  - root: not the model's; its per-frame Hips displacement is nearly uninformative (models/
    MODEL_CARD.md, "Heads"), so the motion stage filters the reprojected root (`RootFilter`);
  - nobody in view: the motion stage holds, then eases to the rest pose; the model's history is
    cleared when the person comes back, so no stale limb jumps in;
  - bone lengths: the motion stage measures the user's and, with `motion.body.lock_bones`, holds
    them (runtime/body.py);
  - contacts: handed on with the pose (recordings and the WebSocket carry them); with
    `motion.feet.lock` the motion stage holds planted feet with them (runtime/feet.py);
  - share: `motion.share.network` < 1 keeps that share of the network's correction over the
    detector's joints through a light One Euro (`motion.share.detector`): on data it never trained
    on, the network's errors and the detector's partly cancel (models/EVAL.md, "Network share");
  - rotations are not used yet: retargeting derives rotations from the joints (the rotation head
    is smoother but less accurate on the arms; models/MODEL_CARD.md, "Heads").
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from liverig.core.config import MotionConfig
from liverig.core.fetch import PROJECT_ROOT
from liverig.core.types import MotionSample
from liverig.runtime.one_euro import OneEuroFilter


class LearnedSmoother:
    """The `stcnn` method's smoother, a motion filter (core/types.py MotionSample): one network step
    per frame; sets the sample's joints and foot contacts."""

    def __init__(self, config: MotionConfig, model=None) -> None:
        """`model`: an already loaded streaming model (the evaluator's); else `motion.weights` on
        `motion.backend`."""
        from liverig.models.backends import load_model

        self.lookahead_frames = config.lookahead_frames
        if model is None:
            model = load_model(config.backend, PROJECT_ROOT / config.weights)  # absolute paths stay
        self.model = model
        self.share = config.share.network
        light = config.share.detector
        partial = self.share < 1
        self._detector = OneEuroFilter(light.min_cutoff, light.beta, light.d_cutoff) if partial else None

    def reset(self) -> None:
        self.model.reset()
        if self._detector is not None:
            self._detector.reset()

    def __call__(self, sample: MotionSample) -> MotionSample:
        out = self.model.step(sample.joints, sample.image, sample.confidence, aspect=sample.aspect)
        k = self.lookahead_frames
        predicted = (out.joints if k == 0 else out.future[k - 1]).astype(np.float64)
        if self._detector is not None:
            detector = self._detector(sample.joints, sample.time_s)
            predicted = detector + self.share * (predicted - detector)
        return replace(sample, joints=predicted, contact=out.contact.astype(np.float64))
