"""Per-frame parts: what the node perceives and animates besides the body (face, hands, voice, idle).

The body runs every frame (Perception -> Motion). A part is a small stage that runs after the
motion stage on the same frame and adds to what the body stage produced:

    part.reset()                           forget all state (a new source, a new person)
    part(frame, observation, pose)         perceive (image crops, audio) and write into
                                           `observation.extras[part.name]` and into
                                           `pose.expressions` / `pose.bone_rotations`

An image part may also offer

    part.submit(frame)                     start this frame's detector now, on the part's own thread,
                                           from what it knew on the previous frame (where to crop)

which the node calls before the body's perception (`perception.parallel`, on by default): the face's
and the hands' detectors then run beside the body's instead of after it (MediaPipe lets go of the
interpreter lock while it infers, so on two cores they truly overlap), and `part(frame, ...)` only
waits for the result, usually already there, and applies it. Measured by `run_node.py bench`
against the same runs with the detectors one after the other (the "speed" and "parts" rows). The
crop comes from the previous frame's body: a head or a hand moves a few pixels in 33 ms, and the
crops have margins for it.

A part marks its own timing (`pose.timing.mark(part.name)`) so `--stats` shows its cost. It never
raises on bad input: what it cannot perceive this frame it leaves out (the avatar keeps its last
value or eases to rest, the part's choice). Which parts run on a given frame is the scheduler's
decision (runtime/scheduler.py); without one, every part runs every frame.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

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


def prefetch_parts(parts: list[Part], frame: Frame) -> None:
    """Before the body's perception: start the detectors of the parts that can run beside it."""
    for part in parts:
        submit = getattr(part, "submit", None)
        if submit is not None:
            submit(frame)


MISSING = object()  # `Prefetch.take`: nothing was submitted for that frame


class Prefetch:
    """One part's detector on a thread of its own, one frame's work at a time.

    `submit(index, work)` starts `work()` for frame `index`; `take(index)` waits for it and returns its
    result (its exception is raised there, on the node's thread), or MISSING when nothing was
    submitted for that frame. Work left untaken (a frame the part ended up holding) is waited for
    and dropped before the next starts, so the part's landmarker never runs twice at once. The
    thread is started on the first `submit`: a part that is never prefetched (a test, the evaluator)
    has none."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._job: Future | None = None
        self._index: int | None = None

    def submit(self, index: int, work: Callable[[], Any]) -> None:
        self.drop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"liverig-{self._name}")
        self._index, self._job = index, self._pool.submit(work)

    def take(self, index: int) -> Any:
        if self._job is None or self._index != index:
            self.drop()
            return MISSING
        job, self._job = self._job, None
        return job.result()

    def drop(self) -> None:
        """Wait for the work in flight, if any, and forget it (and any error it raised)."""
        job, self._job = self._job, None
        if job is not None:
            job.exception()

    def close(self) -> None:
        self.drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
