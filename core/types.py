"""The messages that flow one way through the node: Frame -> Observation -> Pose -> RigFrame.

Every message carries the same `Timing`, so the latency of each stage is measurable anywhere
downstream (and can be streamed with the data). Times are `time.perf_counter()` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Timing:
    """Capture time plus the moment each stage finished, in perf_counter seconds."""

    capture: float
    stages: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str) -> None:
        self.stages[stage] = time.perf_counter()

    def stage_ms(self) -> dict[str, float]:
        """Milliseconds spent in each stage, in the order the stages ran."""
        out: dict[str, float] = {}
        previous = self.capture
        for name, stamp in self.stages.items():
            out[name] = (stamp - previous) * 1000.0
            previous = stamp
        return out

    def total_ms(self) -> float:
        if not self.stages:
            return 0.0
        return (max(self.stages.values()) - self.capture) * 1000.0


@dataclass
class Frame:
    """One captured image (BGR, uint8) or, for landmark replays, an already perceived observation."""

    index: int
    time_s: float  # media time in seconds from the start of the source
    timing: Timing
    image: np.ndarray | None = None
    replayed: Observation | None = None
    # Audio-only sources (runtime/audio.py): the 16 kHz mono samples that arrived since the last frame.
    audio: np.ndarray | None = None


@dataclass
class Observation:
    """MediaPipe's 33 pose landmarks for one frame; `present` is False when nobody is in view."""

    index: int
    time_s: float
    timing: Timing
    present: bool
    image_size: tuple[int, int] = (0, 0)  # (width, height) in pixels
    image_landmarks: np.ndarray | None = None  # (33, 3): x, y normalised to [0,1], z relative depth
    world_landmarks: np.ndarray | None = None  # (33, 3) metres, MediaPipe world axes (x right, y down)
    visibility: np.ndarray | None = None  # (33,) in [0,1]
    # What the per-frame parts (runtime/parts.py) perceive besides the body, by part name (e.g.
    # "face", "hands"); each part documents its own value type. Empty for body-only perception.
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def absent(cls, index: int, time_s: float, timing: Timing, image_size=(0, 0)) -> Observation:
        return cls(index=index, time_s=time_s, timing=timing, present=False, image_size=image_size)


@dataclass
class MotionSample:
    """One frame of a person in view as it passes through the motion stage's filters
    (runtime/motion.py): every filter is `reset()` plus `__call__(MotionSample) -> MotionSample`, so
    the stage is a list run in a plain loop, and the evaluator and the bench drive the same objects.
    A filter returns a new sample (`dataclasses.replace`) with what it changed."""

    time_s: float
    joints: np.ndarray  # (J, 3) metres, root-relative, canonical axes
    confidence: np.ndarray  # (J,) 0..1
    image: np.ndarray  # (J, 2) normalised image positions
    root: np.ndarray  # (3,) the Hips in camera space, metres
    aspect: float = 1.0  # the image's width / height
    contact: np.ndarray | None = None  # (4,) foot contacts, once a filter (the network) gave them


@dataclass
class Pose:
    """The canonical skeleton (see core/skeleton.py): named joints in metres, right-handed, Y up."""

    index: int
    time_s: float
    timing: Timing
    present: bool
    joints: np.ndarray  # (J, 3) positions, root-relative (Hips at the origin)
    confidence: np.ndarray  # (J,) in [0,1]
    root_position: np.ndarray = field(default_factory=lambda: np.zeros(3))  # Hips in camera space, m
    foot_contact: np.ndarray | None = None  # (2,) left, right probabilities
    # Expressions by canonical name, 0..1: the 52 ARKit blendshapes (Perfect Sync names, e.g.
    # "eyeBlinkLeft", "jawOpen") and the VRM presets derived from them ("Blink", "A", "Joy", ...).
    # The person's left/right, as the body joints. Written by the parts (face, voice, idle).
    expressions: dict[str, float] = field(default_factory=dict)
    # Finger and head bones the parts drive, by Unity HumanBodyBones name ("LeftIndexProximal",
    # ...): local rotation (4,) x, y, z, w relative to the bone's rest pose, canonical axes.
    bone_rotations: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class RigFrame:
    """Bone transforms for one target rig, in the rig's own conventions (axes, handedness, units)."""

    index: int
    time_s: float
    timing: Timing
    rig: str
    bone_names: list[str]
    parents: list[int]  # index of each bone's parent in bone_names, -1 for the root bone
    local_rotations: np.ndarray  # (B, 4) quaternions x, y, z, w relative to the parent, rig axes
    local_positions: np.ndarray  # (B, 3) local offsets in rig units
    root_position: np.ndarray  # (3,) rig units
    root_rotation: np.ndarray  # (4,) x, y, z, w
    tracking: bool = True
    blendshapes: dict[str, float] = field(default_factory=dict)
    foot_contact: np.ndarray | None = None  # (2,) the avatar's left, right foot on the ground, 0..1
