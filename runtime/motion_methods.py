"""The motion stage by name (`motion.method`): raw, one_euro or the learned stcnn. Above the stage
classes (runtime/motion.py, runtime/learned_motion.py) so that neither imports the other."""

from __future__ import annotations

from liverig.core.config import MotionConfig, PerceptionConfig
from liverig.runtime.learned_motion import LearnedMotion
from liverig.runtime.motion import MotionStage, OneEuroMotion, RawMotion


def make_motion(config: MotionConfig, perception: PerceptionConfig) -> MotionStage:
    if config.method == "one_euro":
        return OneEuroMotion(config, perception)
    if config.method == "raw":
        return RawMotion(config, perception)
    return LearnedMotion(config, perception)
