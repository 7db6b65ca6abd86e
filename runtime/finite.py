"""Finite numbers only: the last line before the outputs, and a replay clock that never jumps.

Inputs are checked where they come in (configs: core/config.py; recordings: runtime/recording.py),
but a NaN can still be born inside a stage (a degenerate bone, a part's division by zero). A receiver
cannot do anything sensible with NaN or 1e39 (OSC packs float32: 1e39 does not even encode), so
`OutputGuard` checks every number a Pose and its RigFrames carry just before they are sent: a bad
value is replaced by the last good value of the same slot (a quaternion row or a position row whole,
so rotations stay unit), or by rest (zero position, identity rotation) when there is none yet. Only
frames that need it are copied; a clean frame costs a few `isfinite` calls (about 10 us).

`ReplayClock` makes a recording's `time_s` safe to pace by and to differentiate: non-finite,
backwards, absurdly close (under MIN_GAP_S: found by runtime.harden, 1/dt overflowed) or far jumps
(a frame at `time_s: 86400`) continue one frame step after the
previous time instead, so the player never sleeps more than `MAX_GAP_S` and the motion stage never
sees a zero or negative time step. Good stretches keep their recorded spacing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from liverig.core.types import Pose, RigFrame

LIMIT = 1e6  # no position (m or cm), rotation component or weight is near this; float32 holds it
MAX_GAP_S = 1.0  # the longest pause a replay may make between two frames
MIN_GAP_S = 1e-4  # closer frames (10 kHz) are no camera's: a step that small overflows 1/dt


def _bad_rows(array: np.ndarray) -> np.ndarray:
    """Per row (per element for 1-D): True where any value is non-finite or beyond LIMIT."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(array) | (np.abs(array) > LIMIT)
    return bad.any(axis=-1) if array.ndim > 1 else bad


def _sane(value: Any) -> bool:
    number = isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)
    return number and math.isfinite(value) and abs(value) <= LIMIT


def _rest_like(array: np.ndarray, quaternion: bool) -> np.ndarray:
    rest = np.zeros_like(array, dtype=np.float64)
    if quaternion:
        rest[..., 3] = 1.0
    return rest


class OutputGuard:
    """Per output stream (the Pose, each RigFrame): bad values replaced by the last good ones."""

    def __init__(self) -> None:
        self._last: dict[tuple, np.ndarray] = {}
        self._last_time: dict[int, float] = {}
        self.replaced = 0  # values replaced since the start (the summary line reports it)

    def _array(self, key: tuple, array: np.ndarray | None, quaternion: bool = False) -> np.ndarray | None:
        if array is None:
            return None
        array = np.asarray(array, dtype=np.float64)
        bad = _bad_rows(array)
        last = self._last.get(key)
        if not bad.any():
            self._last[key] = array.copy()
            return None  # nothing to replace
        fallback = last if last is not None and last.shape == array.shape else _rest_like(array, quaternion)
        fixed = array.copy()
        fixed[bad] = fallback[bad]
        self.replaced += int(bad.sum())
        self._last[key] = fixed.copy()
        return fixed

    def _time(self, stream: int, time_s: float) -> float | None:
        if math.isfinite(time_s) and abs(time_s) <= 1e9:
            self._last_time[stream] = time_s
            return None
        self.replaced += 1
        return self._last_time.get(stream, 0.0)

    @staticmethod
    def _weights(weights: dict[str, Any]) -> dict[str, float] | None:
        """None when every weight is a sane finite number, else the weights without the bad ones."""
        if all(_sane(v) for v in weights.values()):
            return None
        return {k: float(v) for k, v in weights.items() if _sane(v)}

    def pose(self, pose: Pose) -> Pose:
        """`pose`, or a copy of it with every non-finite or absurd value replaced."""
        changes: dict[str, Any] = {}
        for name, quaternion in (
            ("joints", False),
            ("confidence", False),
            ("root_position", False),
            ("foot_contact", False),
        ):
            fixed = self._array(("pose", name), getattr(pose, name), quaternion)
            if fixed is not None:
                changes[name] = fixed
        fixed_time = self._time(-1, pose.time_s)
        if fixed_time is not None:
            changes["time_s"] = fixed_time
        weights = self._weights(pose.expressions)
        if weights is not None:
            self.replaced += len(pose.expressions) - len(weights)
            changes["expressions"] = weights
        rotations = {}
        for bone, quaternion in pose.bone_rotations.items():
            fixed = self._array(("bone", bone), quaternion, True)
            rotations[bone] = quaternion if fixed is None else fixed
        if any(rotations[bone] is not pose.bone_rotations[bone] for bone in rotations):
            changes["bone_rotations"] = rotations
        return dataclasses.replace(pose, **changes) if changes else pose

    def rig(self, stream: int, rig: RigFrame) -> RigFrame:
        """`rig` (the `stream`-th retargeter's frame), or a copy with bad values replaced."""
        changes: dict[str, Any] = {}
        for name, quaternion in (
            ("local_rotations", True),
            ("local_positions", False),
            ("root_position", False),
            ("root_rotation", True),
            ("foot_contact", False),
        ):
            fixed = self._array((stream, name), getattr(rig, name), quaternion)
            if fixed is not None:
                changes[name] = fixed
        fixed_time = self._time(stream, rig.time_s)
        if fixed_time is not None:
            changes["time_s"] = fixed_time
        weights = self._weights(rig.blendshapes)
        if weights is not None:
            self.replaced += len(rig.blendshapes) - len(weights)
            changes["blendshapes"] = weights
        return dataclasses.replace(rig, **changes) if changes else rig

    def __call__(self, pose: Pose, rigs: list[RigFrame]) -> tuple[Pose, list[RigFrame]]:
        return self.pose(pose), [self.rig(i, rig) for i, rig in enumerate(rigs)]


class ReplayClock:
    """Recorded times made monotonic with bounded gaps (see the module docstring)."""

    def __init__(self, fps: float) -> None:
        self.step = min(1.0 / fps, MAX_GAP_S) if fps > 0 and math.isfinite(fps) else 1.0 / 30.0
        self._previous: float | None = None
        self._offset = 0.0  # added to recorded times after a repair, so later spacing is kept
        self.repaired = 0

    def __call__(self, recorded: float) -> float:
        """The time to use for a frame recorded at `recorded`."""
        candidate = recorded + self._offset if math.isfinite(recorded) else math.nan
        previous = self._previous
        if previous is None:
            time_s = candidate if math.isfinite(candidate) and abs(candidate) <= 1e6 else 0.0
        elif math.isfinite(candidate) and previous + MIN_GAP_S <= candidate <= previous + MAX_GAP_S:
            time_s = candidate
        else:
            time_s = previous + self.step
            self.repaired += 1
        if math.isfinite(recorded) and abs(recorded) <= 1e12:
            self._offset = time_s - recorded
        self._previous = time_s
        return time_s
