"""The motion stage by name (`motion.method`): raw, one_euro or the learned stcnn, each the same
MotionStage (runtime/motion.py) with its own smoother. Above the smoothers' modules so that none
imports another."""

from __future__ import annotations

from liverig.core.config import MotionConfig, PerceptionConfig
from liverig.runtime.learned_motion import LearnedSmoother
from liverig.runtime.motion import MotionStage, OneEuroSmoother, RawSmoother


def make_smoother(config: MotionConfig):
    """The method's own filter (a motion filter: `reset()` + one call on a MotionSample)."""
    if config.method == "one_euro":
        return OneEuroSmoother(config.one_euro)
    if config.method == "raw":
        return RawSmoother()
    return LearnedSmoother(config)


def make_motion(config: MotionConfig, perception: PerceptionConfig) -> MotionStage:
    return MotionStage(config, perception, make_smoother(config))
