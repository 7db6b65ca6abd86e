"""What every MediaPipe landmarker of the node shares: opening one, feeding it, and keeping its noise quiet.

The body (runtime/perception.py), the face (runtime/face.py) and the hands (runtime/hands.py) each run
MediaPipe Tasks landmarkers in VIDEO mode on the CPU. They share:

- `open_landmarker`: one landmarker for one video stream, created with the native start-up chatter
  kept off the user's terminal;
- `VideoClock`: the strictly increasing integer milliseconds VIDEO mode demands, per landmarker;
- `to_mp_image`: an OpenCV image as the RGB `mp.Image` the landmarkers take;
- `filtered_stderr`: what native code writes to file descriptor 2 is captured and passed on minus the
  known noise. The face and hands detectors run on their own threads beside the body's
  (runtime/parts.py, `Prefetch`), and a file descriptor is process-wide, so the redirection is shared:
  the first thread in redirects, the last one out restores and filters (with every caller's noise).
  A per-thread redirection would not work: the second thread would save the first one's capture file
  as "the real stderr" and restore it after the first had closed it, losing stderr for good.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions
from mediapipe.tasks.python.vision import RunningMode

# What MediaPipe 1.2.x prints when a landmarker is created or closed: ~38 copies of a harmless
# sparsity warning plus the LiteRT runtime's INFO chatter. Anything else is passed on.
NOISE = ("Sparsity tensors may not yet be fully supported", "INFO: ")
# Printed by MediaPipe's own graph, whatever the input (its official examples print them too:
# google-ai-edge/mediapipe#5639); harmless, and alarming to a user. Each inference runner prints the
# alignment warning once, on the first input that happens to be misaligned, which may come at any
# frame; so every inference is filtered (0.06 ms a frame, against ~27 ms for the inference).
INFERENCE_NOISE = (
    "Logging before InitGoogle() is written to STDERR",
    "Input tensor memory is not aligned according to LiteRt's memory alignment requirements",
    "Using NORM_RECT without IMAGE_DIMENSIONS is only supported for the square ROI",
)


class VideoClock:
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
    class) for one video stream, on the CPU in VIDEO mode, with the native start-up chatter (`NOISE`
    plus the model's own `noise`) kept off stderr. `settings`: the model's own options."""
    base = BaseOptions(model_asset_path=str(model_path), delegate=BaseOptions.Delegate.CPU)
    made = options(base_options=base, running_mode=RunningMode.VIDEO, **settings)
    with filtered_stderr(NOISE + noise):
        return landmarker.create_from_options(made)


def to_mp_image(image: np.ndarray) -> mp.Image:
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


class _SharedCapture:
    """The process-wide redirection of fd 2 behind `filtered_stderr` (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None
        self._capture = None
        self._noise: set[str] = set()

    def enter(self, noise: tuple[str, ...]) -> None:
        with self._lock:
            self._noise.update(noise)
            self._depth += 1
            if self._depth > 1:
                return
            sys.stderr.flush()
            self._capture = tempfile.TemporaryFile(mode="w+b")
            self._saved = os.dup(2)
            os.dup2(self._capture.fileno(), 2)

    def leave(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth > 0:
                return
            capture, saved, noise = self._capture, self._saved, tuple(self._noise)
            self._capture, self._saved = None, None
            self._noise.clear()
            os.dup2(saved, 2)
            os.close(saved)
            with capture:
                capture.seek(0)
                text = capture.read().decode(errors="replace")
        for line in text.splitlines():
            if line.strip() and not any(part in line for part in noise):
                print(line, file=sys.stderr)


_CAPTURE = _SharedCapture()


@contextmanager
def filtered_stderr(noise: tuple[str, ...]) -> Iterator[None]:
    """Capture what native code writes to fd 2 and pass on every line that is not known noise.

    The C library writes to the file descriptor directly, so redirecting `sys.stderr` would not help.
    Safe to use from several threads at once (see the module docstring).
    """
    _CAPTURE.enter(noise)
    try:
        yield
    finally:
        _CAPTURE.leave()
