"""Perception stage: MediaPipe's PoseLandmarker turns each camera frame into 33 pose landmarks.

VIDEO running mode (not IMAGE) so the landmarker tracks the person from the previous frame instead of
running the detector every time; that needs strictly increasing timestamps, which `VideoClock`
guarantees per landmarker (runtime/landmarkers.py). CPU delegate: the GPU delegate does not work on
the machines we target.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from mediapipe.tasks.python.vision import PoseLandmarker, PoseLandmarkerOptions

from liverig.core.config import PerceptionConfig
from liverig.core.types import Frame, Observation
from liverig.runtime.assets import pose_model_path
from liverig.runtime.landmarkers import (
    INFERENCE_NOISE,
    NOISE,
    VideoClock,
    filtered_stderr,
    open_landmarker,
    to_mp_image,
)

NUM_LANDMARKS = 33


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
        self._clock = VideoClock()

    def reset(self) -> None:
        """Forget the tracked person (a new source, a restart): VIDEO mode keeps tracking state inside
        the landmarker, so a fresh one is made. The clock is kept: its stamps must keep increasing."""
        if self._landmarker is None:
            raise RuntimeError("PoseEstimator is closed")
        with filtered_stderr(NOISE):
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
        image, stamp = to_mp_image(frame.image), self._clock(frame.time_s)
        with filtered_stderr(NOISE + INFERENCE_NOISE):
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
            with filtered_stderr(NOISE):
                self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
