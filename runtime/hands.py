"""The hands part: both hands' 30 finger bones from MediaPipe's HandLandmarker, every frame it runs.

Where it looks. With the body in view, one landmarker per hand looks at a square crop around that
hand's wrist, placed and sized from the body's image landmarks (wrist, little/index knuckles, elbow):
a hand is a few percent of a full-body frame, too small for the palm detector on the whole image
(what MediaPipe's Holistic graph does too). Without the body (a webcam at a desk sees hands, no
shoulders), a third landmarker looks at the whole frame for up to two hands.

Whose hand it is. With the body in view, a hand belongs to the wrist it was looked for at, and a
hand found there whose own wrist is nearer the body's other wrist is dropped (two hands close
together in one crop). This follows the body model's left and right, so it is right in mirrored and
unmirrored images alike. Without the body, MediaPipe's handedness label decides; MediaPipe's docs say
it assumes a mirrored (selfie) image, but the Tasks HandLandmarker's label, checked on this
project's test photos, names the side as the image shows it: the person's own side in an unmirrored
camera image (tests/test_hands.py).

What it writes. `pose.bone_rotations` gets 15 finger bones per hand (runtime/fingers.py: turns from
the T-pose in canonical axes, with joint limits); `observation.extras["hands"]` a `HandObservation`
per hand seen. A hand that drops out of view holds its last pose for `hold_s`, then eases to a relaxed,
slightly curled hand over `relax_s`; seen again, it glides to the measured pose over `reenter_s`.
A hand never seen is relaxed. The wrist (LeftHand/RightHand) stays the body's.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mediapipe.tasks.python import BaseOptions
from mediapipe.tasks.python.vision import HandLandmarker, HandLandmarkerOptions, RunningMode
from scipy.spatial.transform import Rotation

from liverig.core.config import HandsConfig
from liverig.core.types import Frame, Observation, Pose
from liverig.runtime.assets import hand_model_path
from liverig.runtime.ease import smoothstep
from liverig.runtime.fingers import (
    DISTAL_PRIOR,
    SIDES,
    finger_rotations,
    hand_shape,
    mediapipe_to_canonical,
    relaxed_rotations,
)
from liverig.runtime.landmarkers import INFERENCE_NOISE, NOISE, VideoClock, filtered_stderr, to_mp_image
from liverig.runtime.one_euro import OneEuroFilter
from liverig.runtime.parts import MISSING, Prefetch

PART_NAME = "hands"
# --stats: the node's wait for the detectors and the finger filters (their run, when not prefetched)
DETECTOR_STAGE = "hands_detector"
# BlazePose landmark indices per side: elbow, wrist, little knuckle, index knuckle.
_BODY_HAND = {"Left": (13, 15, 17, 19), "Right": (14, 16, 18, 20)}
# Crop side as multiples of the wrist-to-knuckles distance and of the forearm (whichever is larger):
# a whole hand, fingers spread, fits with a margin for the palm detector.
_CROP_PER_KNUCKLES = 4.5
_CROP_PER_FOREARM = 1.0
_MIN_CROP_PX = 32
COST_WINDOW = 30  # calls the part's cost median is taken over


@dataclass
class HandObservation:
    """One hand as seen this frame."""

    side: str  # "Left" / "Right": the person's hand
    image_landmarks: np.ndarray  # (21, 3): x, y normalised to the whole frame, z relative depth
    world_landmarks: np.ndarray  # (21, 3) metres, canonical axes, origin near the hand's centre
    score: float  # MediaPipe's handedness score (how sure it is this is a hand of that side)
    source: str  # "crop" (looked for at the body's wrist) or "frame" (the whole image)
    shape: np.ndarray  # (21, 3) what the finger angles are read from (fingers.hand_shape)


class HandsPart:
    """A per-frame part (runtime/parts.py) named "hands"; see the module docstring."""

    name = PART_NAME

    def __init__(self, config: HandsConfig | None = None, model_path: str | Path | None = None) -> None:
        self.config = config or HandsConfig()
        # Detail levels the scheduler may pick when a frame runs late: the lite model (about half the
        # cost). Only with the pinned models (a model file given is used alone).
        lighter = model_path is None and self.config.model == "full"
        self.details: tuple[str, ...] = (self.config.model, "lite") if lighter else (self.config.model,)
        self._sets: dict[str, dict[str, HandLandmarker]] = {}  # model -> its three landmarkers
        self._clocks: dict[str, dict[str, VideoClock]] = {}
        self._landmarkers: dict[str, HandLandmarker] = {}  # the set in use
        self._active: dict[str, VideoClock] = {}
        try:
            self._open_set(self.config.model, Path(model_path) if model_path is not None else None)
        except BaseException:
            self.close()
            raise
        if lighter:  # opened now (about 50 ms), not in the late frame that first asks for it
            try:
                self._open_set("lite")
            except (OSError, ValueError, RuntimeError):  # no lite model here: no lighter level
                self.details = self.details[:1]
            self._open_set(self.config.model)
        self._tracks = {side: _HandTrack(side, self.config) for side in SIDES}
        self._prefetch = Prefetch(self.name)
        self._body: Observation | None = None
        self._costs: deque[float] = deque(maxlen=COST_WINDOW)
        self.min_rate_hz = self.config.min_rate_hz  # the scheduler runs the hands at least this often

    def _open_set(self, model: str, path: Path | None = None) -> None:
        """Make `model`'s landmarkers (one per wrist crop, one for the whole frame) the ones in use,
        opening them the first time."""
        if model not in self._sets:
            path = path or hand_model_path(model)
            opened: dict[str, HandLandmarker] = {}
            try:
                for key, hands in (("Left", 1), ("Right", 1), ("frame", 2)):
                    opened[key] = self._open(path, hands)
            except BaseException:
                with filtered_stderr(NOISE):
                    for landmarker in opened.values():
                        landmarker.close()
                raise
            self._sets[model] = opened
            self._clocks[model] = {key: VideoClock() for key in opened}
        self._landmarkers, self._active = self._sets[model], self._clocks[model]

    def set_detail(self, level: int) -> None:
        """The scheduler's choice: `details[level]`'s model (the full one, or the lite one when late)."""
        self._open_set(self.details[level])

    def _open(self, path: Path, hands: int) -> HandLandmarker:
        c = self.config
        options = HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path), delegate=BaseOptions.Delegate.CPU),
            running_mode=RunningMode.VIDEO,
            num_hands=hands,
            min_hand_detection_confidence=c.min_detection_confidence,
            min_hand_presence_confidence=c.min_presence_confidence,
            min_tracking_confidence=c.min_tracking_confidence,
        )
        with filtered_stderr(NOISE):
            return HandLandmarker.create_from_options(options)

    @property
    def cost_ms(self) -> float:
        """Median milliseconds per call over the last COST_WINDOW calls (0 before the first): what a
        scheduler can budget for this part."""
        return float(np.median(self._costs)) if self._costs else 0.0

    @property
    def speed(self) -> float:
        """How fast the fingers moved at the last measurement: the largest finger-bone turn rate of
        either hand, degrees per second (0 when still or unseen): for a scheduler that gives
        fast-moving parts priority."""
        return max(track.speed for track in self._tracks.values())

    @property
    def activity(self) -> float:
        """The scheduler's priority hint (runtime/scheduler.py), 0..1: a full turn a second or faster
        is fully active, still or unseen hands are not."""
        return min(self.speed / 360.0, 1.0)

    def hold(self, frame: Frame, observation: Observation, pose: Pose) -> None:
        """For a frame the scheduler does not run the part on: the finger bones as last measured (held),
        or still easing to relaxed if the hand was lost, without looking at the image (~0.1 ms).
        Without this the fingers would drop to the rig's rest pose on skipped frames."""
        self._prefetch.drop()
        self._body = observation
        for track in self._tracks.values():
            pose.bone_rotations.update(track.coast(frame.time_s))

    def reset(self) -> None:
        # The clocks stay: a landmarker refuses any time at or before its last one, and the clocks
        # shift a new source's earlier times past it.
        self._prefetch.drop()
        self._body: Observation | None = None  # the last frame's body: where `submit` looks
        for track in self._tracks.values():
            track.reset()

    def __call__(self, frame: Frame, observation: Observation, pose: Pose) -> None:
        started = time.perf_counter()
        ready = self._prefetch.take(frame.index)  # started by `submit` beside the body's perception
        if ready is MISSING:
            image = frame.image if self._landmarkers else None
            ready = self._perceive(image, observation, frame.time_s)
        seen, bones = ready
        pose.timing.mark(DETECTOR_STAGE)  # the wait for the detector (or its run, on this thread)
        self._body = observation
        pose.bone_rotations.update(bones)
        observation.extras[self.name] = seen
        pose.timing.mark(self.name)
        self._costs.append((time.perf_counter() - started) * 1000.0)

    def submit(self, frame: Frame) -> None:
        """Start this frame's hand search on the part's own thread, at the previous frame's wrists
        (runtime/parts.py); `__call__` then takes the result."""
        if frame.image is None or not self._landmarkers:
            return
        body = (
            self._body
            if self._body is not None
            else Observation.absent(frame.index, frame.time_s, frame.timing)
        )
        self._prefetch.submit(frame.index, lambda: self._perceive(frame.image, body, frame.time_s))

    def _perceive(
        self, image: np.ndarray | None, observation: Observation, time_s: float
    ) -> tuple[dict[str, HandObservation], dict[str, np.ndarray]]:
        """The hands seen and the finger bones they give (the tracks' filters and easing): all that
        follows from the image alone. On the part's own thread when prefetched; the node's thread
        touches the tracks only after it is done (`Prefetch.take`/`drop`)."""
        seen = self.detect(image, observation, time_s) if image is not None else {}
        bones: dict[str, np.ndarray] = {}
        for side, track in self._tracks.items():
            hand = seen.get(side)
            bones.update(track.update(None if hand is None else hand.shape, time_s))
        return seen, bones

    def detect(
        self, image: np.ndarray, observation: Observation, time_s: float
    ) -> dict[str, HandObservation]:
        """The hands in `image` (BGR uint8): at the body's wrists if the body is seen, else anywhere."""
        height, width = image.shape[:2]
        boxes = wrist_boxes(observation, width, height, self.config.wrist_min_visibility)
        if not boxes:
            return self._in_frame(image, time_s)
        wrists = {side: box[3] for side, box in boxes.items()}
        seen = {}
        for side, (x0, y0, size, _) in boxes.items():
            crop = _crop(image, x0, y0, size)
            result = self._run(side, crop, time_s)
            if not result.hand_landmarks:
                continue
            points = _points(result.hand_landmarks[0])
            if _extent(points[:, :2]) < self.config.min_hand_fraction:  # in crop units
                continue
            points[:, 0] = (x0 + points[:, 0] * size) / width
            points[:, 1] = (y0 + points[:, 1] * size) / height
            points[:, 2] *= size / width  # z is in the crop's x scale
            if _nearest_wrist(points[0, :2] * (width, height), wrists) != side:
                continue  # the other hand, close to this one
            world = _world(result.hand_world_landmarks[0])
            shape = hand_shape(points, world, width, height)
            score = float(result.handedness[0][0].score)
            seen[side] = HandObservation(side, points, world, score, "crop", shape)
        return seen

    def _in_frame(self, image: np.ndarray, time_s: float) -> dict[str, HandObservation]:
        height, width = image.shape[:2]
        result = self._run("frame", image, time_s)
        seen: dict[str, HandObservation] = {}
        for image_lms, world_lms, labels in zip(
            result.hand_landmarks, result.hand_world_landmarks, result.handedness, strict=False
        ):
            side, score = labels[0].category_name, float(labels[0].score)
            if side not in SIDES or (side in seen and seen[side].score >= score):
                continue
            points = _points(image_lms)
            span = _extent(points[:, :2] * (width, height)) / min(width, height)
            if span < self.config.min_hand_fraction:
                continue
            world = _world(world_lms)
            seen[side] = HandObservation(
                side, points, world, score, "frame", hand_shape(points, world, width, height)
            )
        return seen

    def _run(self, key: str, image: np.ndarray, time_s: float):
        with filtered_stderr(NOISE + INFERENCE_NOISE):
            return self._landmarkers[key].detect_for_video(to_mp_image(image), self._active[key](time_s))

    def close(self) -> None:
        """Release the landmarkers (safe to call twice)."""
        if hasattr(self, "_prefetch"):  # (close() also runs when __init__ failed half way)
            self._prefetch.close()
        sets, self._sets, self._landmarkers = getattr(self, "_sets", {}), {}, {}
        with filtered_stderr(NOISE):
            for opened in sets.values():
                for landmarker in opened.values():
                    landmarker.close()


def wrist_boxes(
    observation: Observation, width: int, height: int, min_visibility: float
) -> dict[str, tuple[int, int, int, np.ndarray]]:
    """Per side whose wrist the body sees: the hand's square crop (x0, y0, side in pixels; it may
    reach past the image) and the wrist's pixel position. Empty when the body is not seen."""
    if not observation.present or observation.image_landmarks is None or observation.visibility is None:
        return {}
    pixels = np.asarray(observation.image_landmarks, dtype=np.float64)[:, :2] * (width, height)
    visibility = np.asarray(observation.visibility, dtype=np.float64)
    boxes = {}
    for side, (elbow, wrist, little, index) in _BODY_HAND.items():
        if not visibility[wrist] >= min_visibility or not np.all(np.isfinite(pixels[[wrist, little, index]])):
            continue
        knuckles = (pixels[little] + pixels[index]) / 2.0
        reach = knuckles - pixels[wrist]
        size = _CROP_PER_KNUCKLES * float(np.linalg.norm(reach))
        if visibility[elbow] >= min_visibility and np.all(np.isfinite(pixels[elbow])):
            size = max(size, _CROP_PER_FOREARM * float(np.linalg.norm(pixels[wrist] - pixels[elbow])))
        size = int(round(min(max(size, _MIN_CROP_PX), max(width, height))))
        centre = pixels[wrist] + reach
        x0, y0 = int(round(centre[0] - size / 2)), int(round(centre[1] - size / 2))
        boxes[side] = (x0, y0, size, pixels[wrist])
    return boxes


def _crop(image: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """The square [x0, x0+size) x [y0, y0+size) of `image`; what lies outside the image is black."""
    height, width = image.shape[:2]
    out = np.zeros((size, size) + image.shape[2:], dtype=image.dtype)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + size, width), min(y0 + size, height)
    if xb > xa and yb > ya:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    return out


def _extent(points: np.ndarray) -> float:
    """The larger side of the landmarks' bounding box."""
    return float(np.max(np.ptp(points, axis=0)))


def _nearest_wrist(point: np.ndarray, wrists: dict[str, np.ndarray]) -> str:
    return min(wrists, key=lambda side: float(np.linalg.norm(point - wrists[side])))


def _points(landmarks) -> np.ndarray:
    return np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float64)


def _world(landmarks) -> np.ndarray:
    return mediapipe_to_canonical(_points(landmarks))


def _slerp(start: dict[str, np.ndarray], end: dict[str, np.ndarray], weight: float) -> dict[str, np.ndarray]:
    """Per bone, `weight` of the way from `start` to `end` along the shortest arc."""
    if weight >= 1.0:
        return dict(end)
    names = list(end)
    first = Rotation.from_quat(np.array([start[name] for name in names]))
    last = Rotation.from_quat(np.array([end[name] for name in names]))
    turns = (first.inv() * last).as_rotvec() * weight
    quats = (first * Rotation.from_rotvec(turns)).as_quat()
    return dict(zip(names, quats, strict=True))


class _HandTrack:
    """One hand's finger bones over time: measured when seen, eased to relaxed when lost."""

    def __init__(self, side: str, config: HandsConfig) -> None:
        self.side = side
        self.config = config
        self.relaxed = relaxed_rotations(side)
        self._filter = OneEuroFilter(
            config.one_euro.min_cutoff, config.one_euro.beta, config.one_euro.d_cutoff
        )
        self.reset()

    def reset(self) -> None:
        self.shown = dict(self.relaxed)
        self.speed = 0.0  # degrees per second, the largest finger-bone turn rate between measurements
        self._measured: dict[str, np.ndarray] | None = None
        self._measured_at = 0.0
        self._filter.reset()
        self._lost_at: float | None = -np.inf  # never seen: relaxed
        self._lost_from = dict(self.relaxed)
        self._entered_at: float | None = None
        self._entered_from: dict[str, np.ndarray] = {}

    def update(self, points: np.ndarray | None, time_s: float) -> dict[str, np.ndarray]:
        """This frame's 15 bones, given the hand's shape (fingers.hand_shape; None: not seen)."""
        measured = None
        if points is not None and np.all(np.isfinite(points)):
            measured = finger_rotations(self._filter(points, time_s), self.side, distal_prior=DISTAL_PRIOR)
        if measured is not None:
            self.speed = self._turn_rate(measured, time_s)
            self._measured, self._measured_at = measured, time_s
            if self._lost_at is not None:  # back in view: glide from what was shown
                self._lost_at, self._entered_at, self._entered_from = None, time_s, dict(self.shown)
        else:
            self.speed = 0.0
            if self._lost_at is None:  # just lost: hold, then relax from what was shown
                self._lost_at, self._lost_from = time_s, dict(self.shown)
                self._filter.reset()
        return self.coast(time_s)

    def coast(self, time_s: float) -> dict[str, np.ndarray]:
        """The bones at `time_s` from what is known: the last measurement (gliding to it after a
        re-entry), or the ease from the pose held when the hand was lost to the relaxed one."""
        c = self.config
        if self._lost_at is not None:
            weight = float(smoothstep((time_s - self._lost_at - c.hold_s) / c.relax_s))
            self.shown = _slerp(self._lost_from, self.relaxed, weight)
        elif self._measured is not None:
            weight = 1.0
            if self._entered_at is not None:
                weight = float(smoothstep((time_s - self._entered_at) / c.reenter_s))
                if weight >= 1.0:
                    self._entered_at = None
            self.shown = _slerp(self._entered_from, self._measured, weight)
        return dict(self.shown)

    def _turn_rate(self, measured: dict[str, np.ndarray], time_s: float) -> float:
        if self._measured is None or self._lost_at is not None or time_s <= self._measured_at:
            return 0.0
        before = np.array([self._measured[name] for name in measured])
        after = np.array(list(measured.values()))
        cosines = np.clip(np.abs(np.sum(before * after, axis=1)), 0.0, 1.0)
        return float(np.degrees(2.0 * np.arccos(cosines.min())) / (time_s - self._measured_at))
