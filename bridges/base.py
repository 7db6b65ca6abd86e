"""What every output (`--out SPEC`) looks like to the loop.

An output receives each frame's canonical Pose and the retargeted RigFrame and must return quickly:
network outputs hand the frame to a bounded outbox or a non-blocking socket; they never stall the loop.
"""

from __future__ import annotations

from typing import Protocol

from liverig.core.types import Pose, RigFrame


class Output(Protocol):
    name: str  # for status lines and errors, e.g. "vmc://127.0.0.1:39539"

    def send(self, pose: Pose, rig: RigFrame) -> None: ...

    def close(self) -> None: ...
