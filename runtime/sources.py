"""Sources: where frames come from (`--source SPEC`).

    webcam:N       OpenCV camera N, captured in its own thread; newest frame wins
    video:PATH     a video file, paced at its own frame rate like a live camera (or as fast as
                   possible with source.realtime: false, which never drops a frame)
    replay:PATH    a landmark recording (runtime/recording.py), perception is skipped
    audio:PATH     a sound file, mic:N / mic:default a microphone: the audio-only avatar
                   (runtime/audio.py: frames at source.fps carrying audio, no image)

Live sources never queue: the capture thread overwrites a frame nobody has taken yet and counts
it as dropped, because a queued frame is latency.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2

from liverig.core.config import SourceConfig
from liverig.core.safe_io import input_file_problem, shown
from liverig.core.types import Frame, Observation, Timing
from liverig.runtime.finite import ReplayClock
from liverig.runtime.recording import iter_landmark_recording

MAX_CAMERA = 9999  # OpenCV takes an int; 40 digits overflowed it (4 digits at most)


class SourceError(ValueError):
    """A source spec that cannot be opened; the message names the spec."""


class LatestSlot:
    """A one-element mailbox: put() replaces what is there (counting a drop), take() waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> Any:
        """The newest item, or None once closed and empty (or on timeout)."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item


class ThreadedSource:
    """Runs `_capture_loop` in a daemon thread feeding a LatestSlot; iterate to get frames."""

    name = "source"

    def __init__(self) -> None:
        self._slot = LatestSlot()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture {self.name}", daemon=True)
        self._index = 0
        self._t0 = time.perf_counter()

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def start(self) -> ThreadedSource:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._capture_loop()
        finally:
            self._slot.close()

    def _emit(self, image, time_s: float | None = None) -> None:
        now = time.perf_counter()
        t = now - self._t0 if time_s is None else time_s
        self._slot.put(Frame(index=self._index, time_s=t, timing=Timing(capture=now), image=image))
        self._index += 1

    def _capture_loop(self) -> None:
        raise NotImplementedError

    def frames(self) -> Iterator[Frame]:
        while True:
            frame = self._slot.take()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=2.0)
        else:
            self._release()

    def _release(self) -> None:
        """Free the device or file of a source that was opened but never started."""
        capture = getattr(self, "_capture", None)
        if capture is not None:
            capture.release()


def _open_camera(index: int, config: SourceConfig) -> cv2.VideoCapture | None:
    level = cv2.utils.logging.getLogLevel()
    # Probing for a camera that is not there is not an error worth printing.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        capture = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not capture.isOpened():
        capture.release()
        return None
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
    capture.set(cv2.CAP_PROP_FPS, config.fps)
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # do not let the driver queue stale frames either
    return capture


def _release_quietly(capture: Any) -> None:
    """Release a camera that is already failing; its own error must not hide why it failed."""
    with contextlib.suppress(Exception):
        capture.release()


class WebcamSource(ThreadedSource):
    """A live camera. Losing it (a failed or raising read) is reported once and retried; the process
    keeps running.

    With probe_frame=True the camera must also deliver a first frame within
    `source.first_frame_timeout_s`, else SourceError: a camera that opens but never delivers (a
    laptop with its lid shut) is no camera for a caller that has something else to fall back on.
    """

    def __init__(
        self,
        index: int,
        config: SourceConfig,
        open_camera: Callable[[int, SourceConfig], Any] = _open_camera,
        log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
        probe_frame: bool = False,
    ) -> None:
        self.name = f"webcam:{index}"
        super().__init__()
        self._camera_index = index
        self._config = config
        self._open_camera = open_camera
        self._log = log
        self.reconnects = 0
        self._capture = open_camera(index, config)
        if self._capture is None:
            raise SourceError(f"{self.name}: no camera with index {index} could be opened")
        if probe_frame:
            self._probe_first_frame()

    def _probe_first_frame(self) -> None:
        """Raise SourceError unless a read succeeds within `source.first_frame_timeout_s`.

        The read runs in its own thread because a driver may block in it for much longer; a read still
        blocked when we give up keeps the camera and releases it once it returns.
        """
        capture, lock, outcome = self._capture, threading.Lock(), {}

        def probe() -> None:
            _, why = self._read(capture)
            with lock:
                outcome["why"] = why
                abandoned = outcome.get("abandoned", False)
            if abandoned:
                _release_quietly(capture)

        thread = threading.Thread(target=probe, name=f"probe {self.name}", daemon=True)
        thread.start()
        thread.join(self._config.first_frame_timeout_s)
        with lock:
            if "why" not in outcome:
                outcome["abandoned"] = True
            why = outcome.get("why", f"nothing within {self._config.first_frame_timeout_s:g} s")
        if why is None:
            return
        if not outcome.get("abandoned"):
            _release_quietly(capture)
        self._capture = None
        raise SourceError(f"{self.name}: camera {self._camera_index} opened but delivered no frame ({why})")

    @staticmethod
    def _read(capture: Any) -> tuple[Any, str | None]:
        """(image, None) or (None, why the camera counts as lost)."""
        try:
            ok, image = capture.read()
        except Exception as error:  # cv2.error from a driver that fails instead of returning False
            return None, f"read raised {error!r}".replace("\n", " ")
        return (image, None) if ok else (None, "read failed")

    def _reopen(self) -> Any:
        try:
            return self._open_camera(self._camera_index, self._config)
        except Exception:  # a device half-gone can make opening raise too: still lost, keep trying
            return None

    def _capture_loop(self) -> None:
        capture, lost = self._capture, False
        while not self._stop.is_set():
            image, why = self._read(capture)
            if why is None:
                if lost:  # back only once it delivers again, so a flapping camera is reported once
                    lost = False
                    self.reconnects += 1
                    self._log(f"{self.name}: camera back")
                self._emit(image)
                continue
            if capture is not None:
                _release_quietly(capture)
            if not lost:
                lost = True
                self._log(
                    f"{self.name}: camera lost ({why}); retrying every {self._config.reconnect_interval_s} s"
                )
            capture = None
            while capture is None and not self._stop.wait(self._config.reconnect_interval_s):
                capture = self._reopen()
        if capture is not None:
            capture.release()


class VideoSource(ThreadedSource):
    """A video file. Paced in real time it drops frames like a camera; otherwise it drops none."""

    def __init__(self, path: Path, config: SourceConfig) -> None:
        self.name = f"video:{path}"
        super().__init__()
        self._path = path
        self._realtime = config.realtime
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise SourceError(f"{self.name}: cannot open the video file")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or config.fps
        if not self._realtime:
            self._slot = _Queue()

    def _capture_loop(self) -> None:
        start = time.perf_counter()
        index = 0
        while not self._stop.is_set():
            ok, image = self._capture.read()
            if not ok:
                break
            media_time = index / self.fps
            if self._realtime:
                delay = start + media_time - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            self._emit(image, media_time)
            index += 1
        self._capture.release()


class _Queue(LatestSlot):
    """Back-pressure instead of dropping: the producer waits until the frame was taken.

    A file read as fast as the loop can take it has no capture moment of its own: a frame counts as
    captured when the loop takes it, so the time it was decoded ahead is not reported as latency.
    """

    def put(self, item: Any) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._item is None or self._closed)
            self._item = item
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> Any:
        item = super().take(timeout)
        if item is not None:
            item.timing.capture = time.perf_counter()
        with self._cond:
            self._cond.notify_all()
        return item


class RecordedPerception:
    """The perception stage for sources without pictures: a landmark replay's frames carry the
    observation that was perceived when it was recorded; an audio source's carry nobody. The same
    `reset()` + `(frame) -> Observation` stage as the detector (runtime/perception.py), without
    loading it."""

    def reset(self) -> None:
        """Nothing to forget: each frame carries its own observation."""

    def __call__(self, frame: Frame) -> Observation:
        observation = frame.replayed or Observation.absent(frame.index, frame.time_s, frame.timing)
        frame.timing.mark("perception")
        return observation

    def close(self) -> None:
        pass


class ReplaySource:
    """Plays a landmark recording back; each Frame carries the recorded Observation. The file is read
    as it plays (constant memory, any length); a bad line met on the way raises SourceError."""

    def __init__(self, path: Path, config: SourceConfig) -> None:
        self.name = f"replay:{path}"
        self.dropped = 0
        self._realtime = config.realtime
        self._fps = config.fps
        try:
            self.header, self._observations = iter_landmark_recording(path)
        except (OSError, ValueError) as error:
            raise SourceError(f"{self.name}: {error}") from None

    def start(self) -> ReplaySource:
        return self

    def frames(self) -> Iterator[Frame]:
        start, first = time.perf_counter(), None
        clock = ReplayClock(self._fps)  # monotonic, gaps of at most 1 s: never a day's sleep
        for observation in self._recorded():
            observation.time_s = clock(observation.time_s)
            first = observation.time_s if first is None else first
            if self._realtime:
                delay = start + observation.time_s - first - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            timing = Timing(capture=time.perf_counter())
            observation.timing = timing
            yield Frame(observation.index, observation.time_s, timing, replayed=observation)

    def _recorded(self) -> Iterator:
        try:
            yield from self._observations
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SourceError(f"{self.name}: {error}") from None

    def close(self) -> None:
        self._observations.close()  # the file, however far playback got


def parse_source_spec(spec: str) -> tuple[str, str]:
    """'kind:argument' -> (kind, argument); raises SourceError for anything else (one line: the spec
    is shown with control characters escaped and cut to a readable length)."""
    kind, sep, argument = spec.partition(":")
    if kind in ("audio", "mic") and sep:
        from liverig.runtime.audio import AudioError, parse_audio_spec

        try:
            return parse_audio_spec(spec)
        except AudioError as error:
            raise SourceError(str(error)) from None
    if not sep or kind not in ("webcam", "video", "replay") or not argument:
        raise SourceError(
            f"bad source spec '{shown(spec)}': expected webcam:N, video:PATH, replay:PATH, audio:PATH "
            "or mic:N"
        )
    if kind == "webcam" and not (argument.isascii() and argument.isdigit() and len(argument) <= 4):
        raise SourceError(
            f"bad source spec '{shown(spec)}': webcam index must be a number from 0 to "
            f"{MAX_CAMERA}, e.g. webcam:0"
        )
    if kind in ("video", "replay"):
        problem = input_file_problem(argument)
        if problem is not None:
            raise SourceError(f"source '{shown(spec)}': {problem}")
    return kind, argument


def open_source(spec: str, config: SourceConfig):
    """Open (but do not start) the source a spec names."""
    kind, argument = parse_source_spec(spec)
    if kind in ("audio", "mic"):
        from liverig.runtime.audio import AudioError, AudioOnlySource, open_audio

        try:
            return AudioOnlySource(open_audio(spec, config), config)
        except AudioError as error:
            raise SourceError(str(error)) from None
    if kind == "webcam":
        return WebcamSource(int(argument), config)
    if kind == "video":
        return VideoSource(Path(argument), config)
    return ReplaySource(Path(argument), config)
