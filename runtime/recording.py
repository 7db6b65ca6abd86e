"""Recordings: plain JSON Lines files anyone can read, that survive Ctrl-C.

Two formats share one layout: the first line is a header object, every further line one frame.
Each line is written whole and flushed, so a recording stopped at any moment (Ctrl-C, a crash, a
kill) is still valid: readers skip an incomplete last line.

Landmark recording (`--record-landmarks PATH`, played back by `--source replay:PATH`):
    header: {"format": "liverig-landmarks", "version": 1, "landmark_names": [33 names],
             "world_axes": "mediapipe: x right, y down, z away from the camera; metres; hip-centred",
             "image_axes": "x, y normalised to [0,1] from the top-left; z relative depth"}
    frame:  {"index": int, "time_s": float, "present": bool, "image_size": [w, h],
             "image": [[x, y, z] * 33], "world": [[x, y, z] * 33], "visibility": [33 floats]}
             (image/world/visibility are null when present is false)

Node output recording (`--out record:PATH`):
    header: {"format": "liverig-output", "version": 1, "joint_names": [...], "parents": [...],
             "axes": "right-handed, +Y up, +X image right, +Z towards the camera; metres"}
    frame:  {"index": int, "time_s": float, "present": bool,
             "root": [x, y, z],              Hips in camera space
             "joints": [[x, y, z] * J],      root-relative, named by joint_names
             "confidence": [J floats], "foot_contact": [left, right] or null,
             "stages_ms": {"wait": ms, "perception": ms, "motion": ms, "retarget": ms},
             "latency_ms": capture to this output}
    ("wait" is the frame's age when the loop took it: time spent waiting behind the previous frame.)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from liverig.core.safe_io import UnsafeInput, check_regular, decode_utf8, output_refusal
from liverig.core.skeleton import JOINT_NAMES, LANDMARK_NAMES, PARENTS
from liverig.core.types import Observation, Pose, RigFrame, Timing
from liverig.runtime.failsafe import OutputStopped

LANDMARK_FORMAT = "liverig-landmarks"
OUTPUT_FORMAT = "liverig-output"
VERSION = 1


def _rounded(array: np.ndarray | None, digits: int = 6) -> list | None:
    return None if array is None else np.round(np.asarray(array, dtype=np.float64), digits).tolist()


class JsonLinesWriter:
    """Writes one JSON object per line, flushed per line so the file is always readable.

    Only a regular file is written (a device, FIFO or socket at the path is refused: core/safe_io.py),
    and the node refuses an existing one unless --overwrite (runtime/node.py). A write that fails (disk
    full, I/O error) or a file deleted under it (its folder removed) stops this writer with
    OutputStopped saying what the file keeps; every line before is whole.
    """

    def __init__(self, path: str | Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.lines = 0  # frame lines written (the header not counted)
        refusal = output_refusal(self.path, overwrite=True)  # the --overwrite check is the node's
        if refusal is not None:
            raise ValueError(f"cannot write recording {path}: {refusal}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] | None = open(self.path, "w", encoding="utf-8")
        except OSError as error:
            raise ValueError(f"cannot write recording {path}: {error.strerror}") from None
        self._write(header)

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._write(record)
        self.lines += 1

    def _write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        try:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()
            gone = os.fstat(self._file.fileno()).st_nlink == 0
        except OSError as error:
            self._abandon()
            raise OutputStopped(
                f"{error.strerror or error}; stopped: {self.path} keeps the {self.lines} frames "
                "written before (a cut last line is skipped by readers)"
            ) from None
        if gone:
            self._abandon()
            raise OutputStopped(
                f"{self.path} was deleted (or its folder removed) while recording; "
                f"stopped: nothing kept ({self.lines} frames were lost with it)"
            )

    def _abandon(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):  # flushing what is left fails the same way
                file.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


MAX_LINE_BYTES = 1 << 20  # a landmark frame is about 3 KB; an output frame a few KB more


def iter_json_lines(
    path: str | Path, expected_format: str, convert: Callable[[dict], Any] | None = None
) -> tuple[dict, _Frames]:
    """Header (checked now) and the frames (each passed through `convert` if given), read one line at
    a time as they are taken, so a recording of any length plays back in constant memory. An
    incomplete last line (a killed writer) is skipped; a bad line anywhere else raises ValueError
    naming the file and line when it is reached. Only a regular file is opened (a FIFO would block
    the open forever, core/safe_io.py); a line longer than MAX_LINE_BYTES is a bad line."""
    check_regular(path)  # raises UnsafeInput (a ValueError) or OSError
    handle = open(path, "rb")  # closed by _Frames, or here on a bad header
    try:
        header = _header(_read_line(handle, path, 1), path, expected_format)
    except BaseException:
        handle.close()
        raise
    return header, _Frames(handle, path, convert)


def _read_line(handle: IO[bytes], path: str | Path, number: int) -> str:
    """The next line as text ('' at the end of the file), at most MAX_LINE_BYTES, UTF-8."""
    line = handle.readline(MAX_LINE_BYTES + 1)
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f"{path}:{number}: line longer than {MAX_LINE_BYTES:,} bytes")
    try:
        return decode_utf8(line)
    except UnsafeInput:
        raise ValueError(f"{path}:{number}: not UTF-8 text") from None


def _header(line: str, path: str | Path, expected_format: str) -> dict:
    """The header is line 1: its refusals name it as FILE:1 like every other bad line (the fuzzer
    found they named only the file, and called a file with a blank first line empty)."""
    where = f"{path}:1"
    if not line:
        raise ValueError(f"{where}: the file is empty, not a {expected_format} recording")
    if not line.strip():
        raise ValueError(f"{where}: a blank header line, not a {expected_format} recording")
    try:
        header = json.loads(line)
    except (ValueError, RecursionError):
        raise ValueError(f"{where}: not a {expected_format} recording (bad header line)") from None
    if not isinstance(header, dict) or header.get("format") != expected_format:
        raise ValueError(f"{where}: not a {expected_format} recording")
    if header.get("version") != VERSION or isinstance(header.get("version"), bool):
        raise ValueError(f"{where}: unsupported {expected_format} version {str(header.get('version'))[:20]}")
    return header


class _Frames:
    """The frame lines of an open recording, parsed one at a time; `close` releases the file whether
    or not reading began (a node that fails to start closes its source before playing it)."""

    def __init__(self, handle: IO[bytes], path: str | Path, convert: Callable[[dict], Any] | None) -> None:
        self._handle, self._path, self._convert = handle, path, convert
        self._number = 1
        self._bad: str | None = None  # why the line after `_line` cannot be read, once met
        self._line = self._ahead()

    def _ahead(self) -> str:
        """The next line, or "" with `_bad` set when it cannot be read (too long, not UTF-8)."""
        try:
            return _read_line(self._handle, self._path, self._number + 1)
        except ValueError as error:
            self._bad = str(error)
            return ""

    def __iter__(self) -> _Frames:
        return self

    def __next__(self) -> Any:
        if not self._line:
            self.close()
            if self._bad is not None:
                raise ValueError(self._bad)
            raise StopIteration
        self._number += 1
        line, where = self._line, f"{self._path}:{self._number}"
        self._line = self._ahead()  # one line ahead: is this the last?
        try:
            frame = json.loads(line)  # NaN / Infinity parse: `convert` treats them as unseen
        except (ValueError, RecursionError):
            if not self._line and self._bad is None:
                self.close()
                raise StopIteration from None  # cut off mid-line by a kill: all before it is intact
            raise ValueError(f"{where}: not a JSON object") from None
        if not isinstance(frame, dict):
            raise ValueError(f"{where}: not a JSON object")
        if self._convert is None:
            return frame
        try:
            return self._convert(frame)
        except FrameError as error:
            raise ValueError(f"{where}: {error}") from None

    def close(self) -> None:
        self._line = ""
        self._handle.close()


def read_json_lines(path: str | Path, expected_format: str) -> tuple[dict, list[dict]]:
    """Header and all frames of a recording, in memory (analysis and tests; playback streams)."""
    header, frames = iter_json_lines(path, expected_format)
    return header, list(frames)


class LandmarkRecorder:
    """The raw landmark stream, exactly what `replay:` plays back."""

    name = "landmarks"  # the instance's name adds the path (--record-landmarks PATH)

    def __init__(self, path: str | Path) -> None:
        header = {
            "format": LANDMARK_FORMAT,
            "version": VERSION,
            "landmark_names": list(LANDMARK_NAMES),
            "world_axes": "mediapipe: x right, y down, z away from the camera; metres; hip-centred",
            "image_axes": "x, y normalised to [0,1] from the top-left; z relative depth",
        }
        self.name = f"--record-landmarks {path}"
        self._writer = JsonLinesWriter(path, header)

    def write(self, observation: Observation) -> None:
        self._writer.write(
            {
                "index": observation.index,
                "time_s": round(observation.time_s, 6),
                "present": observation.present,
                "image_size": list(observation.image_size),
                "image": _rounded(observation.image_landmarks) if observation.present else None,
                "world": _rounded(observation.world_landmarks) if observation.present else None,
                "visibility": _rounded(observation.visibility) if observation.present else None,
            }
        )

    def close(self) -> None:
        self._writer.close()


def iter_landmark_recording(path: str | Path) -> tuple[dict, _Frames]:
    """Header (checked now) and the recorded Observations, read lazily (see iter_json_lines)."""
    return iter_json_lines(path, LANDMARK_FORMAT, _observation)


def read_landmark_recording(path: str | Path) -> tuple[dict, list[Observation]]:
    header, observations = iter_landmark_recording(path)
    return header, list(observations)


class FrameError(ValueError):
    """A recorded frame of the wrong shape; the reader adds file:line."""


# Beyond these a value is no landmark (a damaged or forged file): the frame is played as nobody seen.
MAX_IMAGE_COORD = 100.0  # normalised image units (the frame is 0..1; off-screen joints go a little out)
MAX_WORLD_COORD = 100.0  # metres from the hips
MAX_IMAGE_SIDE = 100_000  # pixels
MAX_INDEX = 2**31 - 1  # frame indices travel as OSC int32


def _integer(record: dict, key: str, low: int, high: int) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FrameError(f"key '{key}': expected an integer from {low} to {high}, got {repr(value)[:40]}")
    return value


def _number_array(record: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    value = record.get(key)
    try:
        array = np.asarray(value, dtype=np.float64)
        ok = array.shape == shape and array.dtype == np.float64
    except (ValueError, TypeError, OverflowError):
        ok = False
    if not ok or _has_bool(value):
        raise FrameError(f"key '{key}': expected {' x '.join(map(str, shape))} numbers")
    return array


def _has_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, list) and any(_has_bool(v) for v in value)


def _observation(record: dict) -> Observation:
    """One recorded frame, checked against the schema in the module docstring. A value that is not
    finite or beyond any real landmark's range makes the frame 'nobody seen' (the motion stage
    holds and eases as for an occlusion) instead of reaching the outputs."""
    timing = Timing(capture=0.0)
    index = _integer(record, "index", 0, MAX_INDEX)
    time_s = record.get("time_s")
    if isinstance(time_s, bool) or not isinstance(time_s, int | float):
        raise FrameError(f"key 'time_s': expected a number, got {repr(time_s)[:40]}")
    present = record.get("present")
    if not isinstance(present, bool):
        raise FrameError(f"key 'present': expected true or false, got {repr(present)[:40]}")
    size_value = record.get("image_size")
    if size_value is None and not present:
        size = (0, 0)
    else:
        if not isinstance(size_value, list) or len(size_value) != 2:
            raise FrameError(f"key 'image_size': expected [width, height], got {repr(size_value)[:40]}")
        pair = {"w": size_value[0], "h": size_value[1]}
        size = (_integer(pair, "w", 0, MAX_IMAGE_SIDE), _integer(pair, "h", 0, MAX_IMAGE_SIDE))
    time_s = float(time_s)  # non-finite or jumping times are repaired by the player (runtime/finite.py)
    if not present:
        return Observation.absent(index, time_s, timing, size)
    if min(size) < 1:
        raise FrameError("key 'image_size': a frame with a person needs a positive width and height")
    image = _number_array(record, "image", (33, 3))
    world = _number_array(record, "world", (33, 3))
    visibility = _number_array(record, "visibility", (33,))
    if not (
        np.isfinite(image).all()
        and np.isfinite(world).all()
        and np.isfinite(visibility).all()
        and np.abs(image).max() <= MAX_IMAGE_COORD
        and np.abs(world).max() <= MAX_WORLD_COORD
        and visibility.min() >= -1e-6
        and visibility.max() <= 1 + 1e-6
    ):
        return Observation.absent(index, time_s, timing, size)
    return Observation(
        index=index,
        time_s=time_s,
        timing=timing,
        present=True,
        image_size=size,
        image_landmarks=image,
        world_landmarks=world,
        visibility=np.clip(visibility, 0.0, 1.0),
    )


class OutputRecorder:
    """`--out record:PATH`: what the node produced per frame, with per-stage timings."""

    def __init__(self, path: str | Path) -> None:
        self.name = f"record:{path}"
        header = {
            "format": OUTPUT_FORMAT,
            "version": VERSION,
            "joint_names": list(JOINT_NAMES),
            "parents": PARENTS.tolist(),
            "axes": "right-handed, +Y up, +X image right, +Z towards the camera; metres",
        }
        self._writer = JsonLinesWriter(path, header)

    def send(self, pose: Pose, rig: RigFrame | None = None) -> None:
        record = {
            "index": pose.index,
            "time_s": round(pose.time_s, 6),
            "present": pose.present,
            "root": _rounded(pose.root_position),
            "joints": _rounded(pose.joints),
            "confidence": _rounded(pose.confidence, 4),
            "foot_contact": _rounded(pose.foot_contact, 4),
            "stages_ms": {k: round(v, 3) for k, v in pose.timing.stage_ms().items()},
            "latency_ms": round(pose.timing.total_ms(), 3),
        }
        # What the parts (face, hands...) add, only when they add something (body-only files unchanged).
        if pose.expressions:
            record["expressions"] = {name: round(float(v), 4) for name, v in pose.expressions.items()}
        if pose.bone_rotations:
            record["bone_rotations"] = {name: _rounded(q, 5) for name, q in pose.bone_rotations.items()}
        self._writer.write(record)

    def close(self) -> None:
        self._writer.close()


def read_output_recording(path: str | Path) -> tuple[dict, list[dict]]:
    return read_json_lines(path, OUTPUT_FORMAT)
