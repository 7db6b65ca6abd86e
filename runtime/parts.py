"""Per-frame parts: what the node perceives and animates besides the body (face, hands, voice, idle).

The body runs every frame (Perception -> Motion). A part is a small stage that runs after the
motion stage on the same frame and adds to what the body stage produced:

    part.reset()                           forget all state (a new source, a new person)
    part(frame, observation, pose)         perceive (image crops, audio) and write into
                                           `observation.extras[part.name]` and into
                                           `pose.expressions` / `pose.bone_rotations`

A part marks its own timing (`pose.timing.mark(part.name)`) so `--stats` shows its cost. It never
raises on bad input: what it cannot perceive this frame it leaves out (the avatar keeps its last
value or eases to rest, the part's choice). Which parts run on a given frame is the scheduler's
decision (runtime/scheduler.py once it exists); without one, every part runs every frame.
"""

from __future__ import annotations

from typing import Protocol

from liverig.core.types import Frame, Observation, Pose


class Part(Protocol):
    name: str

    def reset(self) -> None: ...

    def __call__(self, frame: Frame, observation: Observation, pose: Pose) -> None: ...

    def close(self) -> None: ...


def run_parts(parts: list[Part], frame: Frame, observation: Observation, pose: Pose) -> None:
    """Every part, in order (the face's expressions first, so the voice can fuse with them)."""
    for part in parts:
        part(frame, observation, pose)
