"""The face part: expressions, blinks, gaze and the head's turn from MediaPipe's FaceLandmarker.

Per frame (runtime/parts.py contract), on the same frame as the body (see `perception.parallel` below):

1. Crop around the head. The face detector is short-range (faces that fill a good part of the image):
   on a full-body view it finds nothing, so, as MediaPipe's Holistic graph does, the body's own head
   landmarks (pose landmarks 0-10: nose, eyes, ears, mouth) place a square crop with a margin. With no
   body, or no visible head landmarks (a webcam at a desk, close up), the whole frame is used.
2. FaceLandmarker (VIDEO mode: it tracks the face from the previous frame; strictly increasing
   timestamps from `runtime.landmarkers.VideoClock`) gives 52 blendshape scores and the facial
   transformation matrix.
3. `runtime.expressions.ExpressionFilter`: ARKit values (person's left/right), blink latches and VRM
   presets into `pose.expressions`; eased to neutral when the face is lost.
4. The head's turn (`pose.bone_rotations["Head"]`): the matrix's rotation is the head's turn from
   facing the camera, in camera axes, which are the canonical axes (x: the person's left when they
   face the camera, y up, z towards the camera). The Head bone is driven relative to its parent, so
   the body's neck turn (from the pose joints) is taken out. Blended with the body's own head turn by
   a weight that eases to 1 while the face is found and back to 0 when it is lost, so the two never
   jump apart. The eyes (`LeftEye`, `RightEye`) turn from the eyeLook* shapes.

With `perception.parallel` (the default) steps 1-3 and the face turn's smoothing start before the
body's perception, on the part's own thread, cropped where the previous frame's body had its head
(`submit`, runtime/parts.py); only the fusion with the body's neck (step 4) runs on the node's
thread, once the result is in.

`observation.extras["face"]` holds a `FaceObservation`. The scheduler (runtime/scheduler.py) may skip
the inference on some frames: `hold()` then writes the last values, so the avatar keeps its face.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions
from scipy.spatial.transform import Rotation, Slerp

from liverig.core import skeleton
from liverig.core.config import FaceConfig
from liverig.core.types import Frame, Observation, Pose
from liverig.runtime.assets import face_model_path
from liverig.runtime.ease import smoothstep
from liverig.runtime.expressions import BlinkSettings, ExpressionFilter
from liverig.runtime.face_calibration import load_calibration
from liverig.runtime.landmarkers import (
    INFERENCE_NOISE,
    NOISE,
    VideoClock,
    filtered_stderr,
    open_landmarker,
    to_mp_image,
)
from liverig.runtime.one_euro import OneEuroFilter
from liverig.runtime.parts import MISSING, Prefetch

# What the face graph prints when it is created, whatever the input: harmless, and alarming to a user.
_FACE_NOISE = (
    "Sets FaceBlendshapesGraph acceleration to xnnpack by default",
    "Feedback manager requires a model with a single signature inference",
    "Logging before InitGoogle() is written to STDERR",
)
# --stats: the node's wait for the detector and its filters (their run, when not prefetched); "face": the rest
DETECTOR_STAGE = "face_detector"
HEAD_LANDMARKS = np.arange(11)  # pose landmarks 0-10: nose, eyes (inner, centre, outer), ears, mouth
_IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


@dataclass
class FaceObservation:
    """What the face part saw on one frame (`observation.extras["face"]`)."""

    found: bool
    crop: tuple[int, int, int, int] | None  # x0, y0, x1, y1 in pixels; None: the whole frame
    scores: dict[str, float] = field(default_factory=dict)  # raw blendshape scores, model names
    transform: np.ndarray | None = None  # (4, 4) facial transformation matrix, camera axes, cm
    ran: bool = True  # False: the scheduler skipped the inference, values were held


def head_crop(
    observation: Observation, margin: float, min_visibility: float = 0.5
) -> tuple[int, int, int, int] | None:
    """A square pixel box around the head from the body's head landmarks, or None when the body
    gives no usable head (then the caller uses the whole frame).

    The head landmarks span the ears across (about the head's width) but only eyes to mouth down
    (a third of its height); the box side is `margin` × the larger of the width and 2.5 × that height.
    """
    if not observation.present or observation.image_landmarks is None or observation.visibility is None:
        return None
    width, height = observation.image_size
    if width <= 0 or height <= 0:
        return None
    points = observation.image_landmarks[HEAD_LANDMARKS, :2]
    seen = observation.visibility[HEAD_LANDMARKS] >= min_visibility
    points = points[seen & np.all(np.isfinite(points), axis=1)]
    if len(points) < 3:
        return None
    pixels = points * np.array([width, height])
    extent = pixels.max(axis=0) - pixels.min(axis=0)
    side = margin * max(float(extent[0]), 2.5 * float(extent[1]), 8.0)
    cx, cy = pixels.mean(axis=0)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = int(round(cx + side / 2)), int(round(cy + side / 2))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    if (x1 - x0) * (y1 - y0) >= 0.8 * width * height:  # the head fills the frame: no crop needed
        return None
    return x0, y0, x1, y1


def _frame(x_hint: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """A rotation matrix with columns (x, y, z): y as given, x the hint made perpendicular to it."""
    ny = np.linalg.norm(y)
    if not np.isfinite(ny) or ny < 1e-6:
        return None
    y = y / ny
    x = x_hint - np.dot(x_hint, y) * y
    nx = np.linalg.norm(x)
    if not np.isfinite(nx) or nx < 1e-6:
        return None
    x = x / nx
    return np.stack([x, y, np.cross(x, y)], axis=1)


def _neck_frame(joints: np.ndarray) -> np.ndarray | None:
    """The neck's frame: up along Neck→Head, left along the shoulders (as the rigs aim the Neck and
    take its roll from the chest)."""
    j = skeleton.JOINT_INDEX
    return _frame(
        joints[j["LeftUpperArm"]] - joints[j["RightUpperArm"]], joints[j["Head"]] - joints[j["Neck"]]
    )


def _head_frame(joints: np.ndarray) -> np.ndarray | None:
    """The body's head frame: forward along Head→HeadEnd (ears to nose), up from the neck (the rigs'
    Head drive)."""
    j = skeleton.JOINT_INDEX
    forward = joints[j["HeadEnd"]] - joints[j["Head"]]
    frame = _frame(joints[j["Head"]] - joints[j["Neck"]], forward)  # columns: up', forward, ...
    if frame is None:
        return None
    up, fwd = frame[:, 0], frame[:, 1]
    return np.stack([np.cross(up, fwd), up, fwd], axis=1)


_REST = skeleton.rest_pose()
_NECK_REST = _neck_frame(_REST)
_HEAD_REST = _head_frame(_REST)


def neck_turn(joints: np.ndarray) -> np.ndarray | None:
    """The body's neck turn from its rest pose, canonical world axes."""
    neck = _neck_frame(joints)
    return None if neck is None else neck @ _NECK_REST.T


def body_turns(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(neck turn, head turn) of the body's skeleton from its rest pose, canonical world axes."""
    neck, head = neck_turn(joints), _head_frame(joints)
    if neck is None or head is None:
        return None
    return neck, head @ _HEAD_REST.T


def face_turn(transform: np.ndarray) -> np.ndarray | None:
    """The rotation part of a facial transformation matrix (made orthonormal), or None if unusable."""
    m = np.asarray(transform, dtype=np.float64)[:3, :3]
    if not np.all(np.isfinite(m)):
        return None
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        return None
    return r


def eye_turns(arkit: dict[str, float], yaw_deg: float, pitch_deg: float) -> dict[str, np.ndarray]:
    """LeftEye/RightEye turns (quaternions, canonical axes) from the eyeLook* shapes.

    Looking towards the person's left is a turn about +y; looking up a turn about -x."""
    g = arkit.get
    angles = []
    for side, towards_left_out in (("Left", True), ("Right", False)):
        look_out, look_in = g(f"eyeLookOut{side}", 0.0), g(f"eyeLookIn{side}", 0.0)
        leftwards = (look_out - look_in) if towards_left_out else (look_in - look_out)
        upwards = g(f"eyeLookUp{side}", 0.0) - g(f"eyeLookDown{side}", 0.0)
        angles.append([-upwards * pitch_deg, leftwards * yaw_deg, 0.0])
    left, right = Rotation.from_euler("xyz", np.radians(angles)).as_quat()  # both eyes in one call
    return {"LeftEye": left, "RightEye": right}


class FacePart:
    """The "face" part (see the module docstring)."""

    name = "face"

    def __init__(self, config: FaceConfig | None = None, model_path: str | Path | None = None) -> None:
        self.config = config or FaceConfig()
        c = self.config
        path = Path(model_path) if model_path is not None else face_model_path()
        self._landmarker: FaceLandmarker | None = open_landmarker(
            FaceLandmarker,
            FaceLandmarkerOptions,
            path,
            _FACE_NOISE,
            num_faces=1,
            min_face_detection_confidence=c.min_face_detection_confidence,
            min_face_presence_confidence=c.min_face_presence_confidence,
            min_tracking_confidence=c.min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        blink = BlinkSettings(c.blink_open, c.blink_closed, c.blink_on, c.blink_off, c.blink_link)
        normalise = None
        if c.calibration is not None:  # the person's own ranges (runtime/face_calibration.py)
            calibration = load_calibration(c.calibration)
            blink = {name: eye.settings(c.blink_link) for name, eye in calibration.eyes.items()}
            normalise = calibration.normalise
        self._expressions = ExpressionFilter(blink, c.min_cutoff, c.beta, c.lost_ease_s, normalise)
        # Called with (raw scores or None, media time) on every frame the model runs: calibration.
        self.listener = None
        # For the scheduler: what one inference costs (ms, running average) and how fast the face moves.
        self.cost_ms = 12.0
        self.min_rate_hz = c.min_rate_hz
        self.input_px = c.input_px  # the crop is scaled down to at most this side (0: as is)
        self.max_rate_hz = c.max_rate_hz
        # Detail levels the scheduler may pick when a frame runs late: a smaller input image.
        smaller = [px for px in (256, 160) if not c.input_px or px < c.input_px]
        self.details: tuple[int, ...] = (c.input_px, *smaller)
        self._clock = VideoClock()
        self._prefetch = Prefetch(self.name)
        self.model_ms = 0.0  # the last inference's own time, inside the part's
        self.reset()

    def reset(self) -> None:
        # (not the clock: the landmarker remembers its last timestamp across a reset)
        self._prefetch.drop()
        self._body: Observation | None = None  # the last frame's body: where `submit` crops
        self._expressions.reset()
        self._head_filter = OneEuroFilter(self.config.head_min_cutoff, self.config.head_beta)
        self._box: np.ndarray | None = None
        self._weight = 0.0  # how much the face (vs the body) drives the head: eases 0..1
        self._weight_time: float | None = None
        self._linear = 0.0  # the weight before easing: rises/falls linearly over head_ease_s
        self._face_turn: np.ndarray | None = None  # last smoothed face turn, canonical world (quat)
        self._last_quat: np.ndarray | None = None
        self._held: dict[str, float] = {}
        self._held_eyes: dict[str, np.ndarray] = {}
        self.activity = 0.0  # how much the expressions changed lately (0..1 per second scale)
        self.urgent = False  # the eyes are closing: the scheduler runs the part on the next frame

    # --- per frame -------------------------------------------------------------------------------

    def __call__(self, frame: Frame, observation: Observation, pose: Pose) -> None:
        """Run the face model on this frame (see the module docstring)."""
        if frame.image is None or self._landmarker is None:  # a landmark replay: no image to look at
            self.hold(frame, observation, pose)
            return
        started = time.perf_counter()
        seen = self._prefetch.take(frame.index)  # started by `submit` beside the body's perception
        if seen is MISSING:
            seen = self._perceive(frame, self._crop(observation, frame.image.shape))
        pose.timing.mark(DETECTOR_STAGE)  # the wait for the detector (or its run, on this thread)
        self._body = observation
        observation.extras[self.name] = seen
        if self.listener is not None:
            self.listener(seen.scores if seen.found else None, frame.time_s)
        self._write(pose, frame.time_s, found=seen.found)
        elapsed = (time.perf_counter() - started) * 1000.0
        self.cost_ms += 0.2 * (elapsed - self.cost_ms)
        pose.timing.mark(self.name)

    def submit(self, frame: Frame) -> None:
        """Start this frame's face inference on the part's own thread, cropped where the previous
        frame's body had its head (runtime/parts.py); `__call__` then takes the result."""
        if frame.image is None or self._landmarker is None:
            return
        height, width = frame.image.shape[:2]
        body = self._body
        # (a camera that changed its size since: the old body's pixels do not apply; look everywhere)
        usable = body is not None and tuple(body.image_size) == (width, height)
        crop = self._crop(body, frame.image.shape) if usable else None
        self._prefetch.submit(frame.index, lambda: self._perceive(frame, crop))

    def _perceive(self, frame: Frame, crop: tuple[int, int, int, int] | None) -> FaceObservation:
        """The model on the crop and everything that follows from the image alone: the expressions'
        filters and latches, the smoothed face turn, the eyes (all but the fusion with the body's
        neck). On the part's own thread when prefetched; the node's thread reads what it set only
        after it is done (`Prefetch.take`/`drop`)."""
        result = self._detect(frame, crop)
        if result is None or not result.face_blendshapes:
            self.urgent = False
            self._held = self._expressions.lost(frame.time_s)  # eased towards neutral, eyes too
            yaw, pitch = self.config.eye_yaw_deg, self.config.eye_pitch_deg
            self._held_eyes = eye_turns(self._held, yaw, pitch) if self._held else {}
            return FaceObservation(found=False, crop=crop)
        scores = {c.category_name: float(c.score) for c in result.face_blendshapes[0]}
        transform = None
        if result.facial_transformation_matrixes:
            transform = np.asarray(result.facial_transformation_matrixes[0], dtype=np.float64)
        values = self._expressions(scores, frame.time_s)
        # An eye closing (or just shut): look again next frame, over budget if need be, so a short
        # blink is seen closed and opening (runtime/scheduler.py, `urgent`).
        self.urgent = self._expressions.closing or self._expressions.just_shut
        self._track_activity(values)
        self._held = values
        turn = face_turn(transform) if transform is not None else None
        if turn is not None:
            self._update_face_turn(turn, frame.time_s)
        self._held_eyes = eye_turns(values, self.config.eye_yaw_deg, self.config.eye_pitch_deg)
        return FaceObservation(True, crop, scores, transform)

    def set_detail(self, level: int) -> None:
        """The scheduler's choice: input image side `details[level]` (0: as it comes)."""
        self.input_px = self.details[level]

    def hold(self, frame: Frame, observation: Observation, pose: Pose) -> None:
        """A frame the scheduler skipped: the last values again (no inference)."""
        self._prefetch.drop()
        self._body = observation
        observation.extras[self.name] = FaceObservation(False, None, ran=False)
        self._write(pose, frame.time_s, found=None)
        pose.timing.mark(self.name)

    def close(self) -> None:
        self._prefetch.close()
        if self._landmarker is not None:
            with filtered_stderr(NOISE + _FACE_NOISE):
                self._landmarker.close()
            self._landmarker = None

    # --- helpers ---------------------------------------------------------------------------------

    def _crop(self, observation: Observation, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
        box = head_crop(observation, self.config.crop_margin)
        if box is None:
            self._box = None
            return None
        new = np.array(box, dtype=np.float64)
        if self._box is not None:
            side = max(self._box[2] - self._box[0], 1.0)
            if np.max(np.abs(new - self._box)) < 0.5 * side:  # steady the box; a jump is followed at once
                new = self._box + 0.5 * (new - self._box)
        self._box = new
        x0, y0, x1, y1 = (int(round(v)) for v in new)
        return x0, y0, x1, y1

    def _detect(self, frame: Frame, crop: tuple[int, int, int, int] | None):
        image = frame.image
        if crop is not None:
            x0, y0, x1, y1 = crop
            image = image[y0:y1, x0:x1]
        side = max(image.shape[:2])
        if self.input_px and side > self.input_px:
            scale = self.input_px / side
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rgb = to_mp_image(image)
        stamp = self._clock(frame.time_s)
        started = time.perf_counter()
        try:
            with filtered_stderr(NOISE + _FACE_NOISE + INFERENCE_NOISE):
                return self._landmarker.detect_for_video(rgb, stamp)
        finally:
            self.model_ms = (time.perf_counter() - started) * 1000.0  # the model alone (benchmarks)

    def _update_face_turn(self, turn: np.ndarray, t: float) -> None:
        quat = Rotation.from_matrix(turn).as_quat()
        if self._face_turn is not None and np.dot(quat, self._face_turn) < 0:
            quat = -quat
        smooth = self._head_filter(quat, t)
        norm = np.linalg.norm(smooth)
        self._face_turn = smooth / norm if norm > 1e-6 else quat

    def _track_activity(self, values: dict[str, float]) -> None:
        if self._held:
            change = max(abs(values.get(k, 0.0) - v) for k, v in self._held.items())
            self.activity += 0.3 * (change - self.activity)

    def _write(self, pose: Pose, t: float, found: bool | None) -> None:
        """Expressions and bones into the pose; `found` None: a held frame (the weight stays)."""
        if self._held:
            pose.expressions.update(self._held)
        for name, quat in self._held_eyes.items():
            pose.bone_rotations[name] = quat
        if found is not None:
            self._ease_weight(found, t)
        if self._weight <= 0.0 or self._face_turn is None:
            return
        joints = np.asarray(pose.joints, dtype=np.float64)
        face = Rotation.from_quat(self._face_turn).as_matrix()
        if self._weight >= 1.0:  # the face drives the head alone (the usual case): no body head turn
            neck = neck_turn(joints)
            if neck is None:
                return
            quat = Rotation.from_matrix(neck.T @ face).as_quat()
        else:  # easing between the body's head turn and the face's
            turns = body_turns(joints)
            if turns is None:
                return
            neck, body_head = turns
            neck_inv = neck.T
            # Both in the neck's frame, converted in one call, then slerped.
            both = Rotation.from_matrix(np.stack([neck_inv @ body_head, neck_inv @ face]))
            quat = Slerp([0.0, 1.0], both)([self._weight]).as_quat()[0]
        if self._last_quat is not None and np.dot(quat, self._last_quat) < 0:
            quat = -quat
        self._last_quat = quat
        if np.all(np.isfinite(quat)):
            pose.bone_rotations["Head"] = quat

    def _ease_weight(self, found: bool, t: float) -> None:
        dt = 0.0 if self._weight_time is None else max(t - self._weight_time, 0.0)
        self._weight_time = t
        step = dt / self.config.head_ease_s
        self._linear = min(1.0, self._linear + step) if found else max(0.0, self._linear - step)
        self._weight = float(smoothstep(self._linear))


def open_face(config: FaceConfig) -> FacePart:
    """The face part for the node (the model is fetched on first use)."""
    return FacePart(config)
