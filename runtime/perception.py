"""Perception stage: MediaPipe's PoseLandmarker turns each camera frame into 33 pose landmarks.

VIDEO running mode (not IMAGE) so the landmarker tracks the person from the previous frame instead of
running the detector every time; that needs strictly increasing timestamps, which `_VideoClock`
guarantees per landmarker. CPU delegate: the GPU delegate does not work on the machines we target.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions
from mediapipe.tasks.python.vision import PoseLandmarker, PoseLandmarkerOptions, RunningMode

from liverig.core.config import PerceptionConfig
from liverig.core.types import Frame, Observation
from liverig.runtime.assets import pose_model_path

NUM_LANDMARKS = 33
# What MediaPipe 1.2.x prints when a landmarker is created or closed: ~38 copies of a harmless
# sparsity warning plus the LiteRT runtime's INFO chatter. Anything else is passed on.
_NOISE = ("Sparsity tensors may not yet be fully supported", "INFO: ")
# Printed by MediaPipe's own graph, whatever the input (its official examples print them too:
# google-ai-edge/mediapipe#5639); harmless, and alarming to a user. Each inference runner prints the
# alignment warning once, on the first input that happens to be misaligned, which may come at any
# frame; so every inference is filtered (0.06 ms a frame, against ~27 ms for the inference).
_INFERENCE_NOISE = (
    "Logging before InitGoogle() is written to STDERR",
    "Input tensor memory is not aligned according to LiteRt's memory alignment requirements",
    "Using NORM_RECT without IMAGE_DIMENSIONS is only supported for the square ROI",
)


class _VideoClock:
    """Turns media times into the strictly increasing integer milliseconds VIDEO mode demands.

    A repeated or backwards time (a looping file, a reconnected camera) is shifted forward, and the
    shift is kept, so later frames keep their real spacing.
    """

    def __init__(self) -> None:
        self._last = -1
        self._offset = 0

    def __call__(self, time_s: float) -> int:
        stamp = round(time_s * 1000.0) + self._offset
        if stamp <= self._last:
            self._offset += self._last + 1 - stamp
            stamp = self._last + 1
        self._last = stamp
        return stamp


def open_landmarker(landmarker, options, model_path: Path, noise: tuple[str, ...] = (), **settings):
    """A MediaPipe landmarker (`landmarker`: PoseLandmarker, FaceLandmarker...; `options` its options
    class) for one video stream, on the CPU in VIDEO mode, with the native start-up chatter (`_NOISE`
    plus the model's own `noise`) kept off stderr. `settings`: the model's own options."""
    base = BaseOptions(model_asset_path=str(model_path), delegate=BaseOptions.Delegate.CPU)
    made = options(base_options=base, running_mode=RunningMode.VIDEO, **settings)
    with _filtered_stderr(_NOISE + noise):
        return landmarker.create_from_options(made)


class PoseEstimator:
    """One PoseLandmarker for one video stream (VIDEO mode keeps tracking state between frames)."""

    def __init__(self, config: PerceptionConfig | None = None, model_path: str | Path | None = None):
        config = config or PerceptionConfig()
        path = Path(model_path) if model_path is not None else pose_model_path(config.model)
        self._open = partial(
            open_landmarker,
            PoseLandmarker,
            PoseLandmarkerOptions,
            path,
            num_poses=1,
            min_pose_detection_confidence=config.min_pose_detection_confidence,
            min_pose_presence_confidence=config.min_pose_presence_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
            output_segmentation_masks=False,
        )
        self._landmarker: PoseLandmarker | None = self._open()
        self._clock = _VideoClock()

    def reset(self) -> None:
        """Forget the tracked person (a new source, a restart): VIDEO mode keeps tracking state inside
        the landmarker, so a fresh one is made. The clock is kept: its stamps must keep increasing."""
        if self._landmarker is None:
            raise RuntimeError("PoseEstimator is closed")
        with _filtered_stderr(_NOISE):
            self._landmarker.close()
        self._landmarker = self._open()

    def __call__(self, frame: Frame) -> Observation:
        """The person's landmarks in `frame` (BGR uint8), or an absent observation if nobody is seen."""
        if self._landmarker is None:
            raise RuntimeError("PoseEstimator is closed")
        if frame.image is None:  # a landmark replay: perception already happened
            observation = frame.replayed or Observation.absent(frame.index, frame.time_s, frame.timing)
            frame.timing.mark("perception")
            return observation
        height, width = frame.image.shape[:2]
        image, stamp = _to_mp_image(frame.image), self._clock(frame.time_s)
        with _filtered_stderr(_NOISE + _INFERENCE_NOISE):
            result = self._landmarker.detect_for_video(image, stamp)
        frame.timing.mark("perception")
        if not result.pose_landmarks or not result.pose_world_landmarks:
            return Observation.absent(frame.index, frame.time_s, frame.timing, (width, height))
        image_lms, world_lms = result.pose_landmarks[0], result.pose_world_landmarks[0]
        return Observation(
            index=frame.index,
            time_s=frame.time_s,
            timing=frame.timing,
            present=True,
            image_size=(width, height),
            image_landmarks=np.array([(p.x, p.y, p.z) for p in image_lms], dtype=np.float32),
            world_landmarks=np.array([(p.x, p.y, p.z) for p in world_lms], dtype=np.float32),
            visibility=np.array([p.visibility or 0.0 for p in image_lms], dtype=np.float32),
        )

    def close(self) -> None:
        """Release the landmarker's native resources (safe to call twice).

        Call it (or use `with`): a landmarker still open at interpreter exit makes MediaPipe print an
        "Exception ignored in __del__" traceback, because its worker threads are already gone.
        """
        if self._landmarker is not None:
            with _filtered_stderr(_NOISE):
                self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_mp_image(image: np.ndarray) -> mp.Image:
    """An OpenCV image (BGR, BGRA or greyscale uint8) as the RGB mp.Image the landmarker expects."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.ndim == 3 and image.shape[2] == 3:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)


@contextmanager
def _filtered_stderr(noise: tuple[str, ...]) -> Iterator[None]:
    """Capture what native code writes to fd 2 and pass on every line that is not known noise.

    The C library writes to the file descriptor directly, so redirecting `sys.stderr` would not help.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not any(text in line for text in noise):
                    print(line, file=sys.stderr)
