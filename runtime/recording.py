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

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from runtime.skeleton import JOINT_NAMES, LANDMARK_NAMES, PARENTS
from runtime.types import Observation, Pose, RigFrame, Timing

LANDMARK_FORMAT = "liverig-landmarks"
OUTPUT_FORMAT = "liverig-output"
VERSION = 1


def _rounded(array: np.ndarray | None, digits: int = 6) -> list | None:
    return None if array is None else np.round(np.asarray(array, dtype=np.float64), digits).tolist()


class JsonLinesWriter:
    """Writes one JSON object per line, flushed per line so the file is always readable."""

    def __init__(self, path: str | Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] | None = open(self.path, "w", encoding="utf-8")
        except OSError as error:
            raise ValueError(f"cannot write recording {path}: {error.strerror}") from None
        self.write(header)

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def iter_json_lines(
    path: str | Path, expected_format: str, convert: Callable[[dict], Any] | None = None
) -> tuple[dict, _Frames]:
    """Header (checked now) and the frames (each passed through `convert` if given), read one line at
    a time as they are taken, so a recording of any length plays back in constant memory. An
    incomplete last line (a killed writer) is skipped; a bad line anywhere else raises ValueError
    naming the file and line when it is reached."""
    handle = open(path, encoding="utf-8")  # closed by _Frames, or here on a bad header
    try:
        header = _header(handle.readline(), path, expected_format)
    except BaseException:
        handle.close()
        raise
    return header, _Frames(handle, path, convert)


def _header(line: str, path: str | Path, expected_format: str) -> dict:
    if not line.strip():
        raise ValueError(f"{path} is empty, not a {expected_format} recording")
    try:
        header = json.loads(line)
    except json.JSONDecodeError:
        raise ValueError(f"{path} is not a {expected_format} recording (bad header line)") from None
    if not isinstance(header, dict) or header.get("format") != expected_format:
        raise ValueError(f"{path} is not a {expected_format} recording")
    if header.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported {expected_format} version {header.get('version')}")
    return header


class _Frames:
    """The frame lines of an open recording, parsed one at a time; `close` releases the file whether
    or not reading began (a node that fails to start closes its source before playing it)."""

    def __init__(self, handle: IO[str], path: str | Path, convert: Callable[[dict], Any] | None) -> None:
        self._handle, self._path, self._convert = handle, path, convert
        self._number, self._line = 2, handle.readline()

    def __iter__(self) -> _Frames:
        return self

    def __next__(self) -> Any:
        if not self._line:
            self.close()
            raise StopIteration
        line, self._line = self._line, self._handle.readline()  # one line ahead: is this the last?
        try:
            frame = json.loads(line)
        except json.JSONDecodeError:
            if not self._line:
                self.close()
                raise StopIteration from None  # cut off mid-line by a kill: all before it is intact
            raise ValueError(f"{self._path}:{self._number}: not a JSON object") from None
        self._number += 1
        return frame if self._convert is None else self._convert(frame)

    def close(self) -> None:
        self._line = ""
        self._handle.close()


def read_json_lines(path: str | Path, expected_format: str) -> tuple[dict, list[dict]]:
    """Header and all frames of a recording, in memory (analysis and tests; playback streams)."""
    header, frames = iter_json_lines(path, expected_format)
    return header, list(frames)


class LandmarkRecorder:
    """The raw landmark stream, exactly what `replay:` plays back."""

    name = "landmarks"

    def __init__(self, path: str | Path) -> None:
        header = {
            "format": LANDMARK_FORMAT,
            "version": VERSION,
            "landmark_names": list(LANDMARK_NAMES),
            "world_axes": "mediapipe: x right, y down, z away from the camera; metres; hip-centred",
            "image_axes": "x, y normalised to [0,1] from the top-left; z relative depth",
        }
        self._writer = JsonLinesWriter(path, header)

    def write(self, observation: Observation) -> None:
        self._writer.write({
            "index": observation.index,
            "time_s": round(observation.time_s, 6),
            "present": observation.present,
            "image_size": list(observation.image_size),
            "image": _rounded(observation.image_landmarks) if observation.present else None,
            "world": _rounded(observation.world_landmarks) if observation.present else None,
            "visibility": _rounded(observation.visibility) if observation.present else None,
        })

    def close(self) -> None:
        self._writer.close()


def iter_landmark_recording(path: str | Path) -> tuple[dict, _Frames]:
    """Header (checked now) and the recorded Observations, read lazily (see iter_json_lines)."""
    return iter_json_lines(path, LANDMARK_FORMAT, _observation)


def read_landmark_recording(path: str | Path) -> tuple[dict, list[Observation]]:
    header, observations = iter_landmark_recording(path)
    return header, list(observations)


def _observation(record: dict) -> Observation:
    timing = Timing(capture=0.0)
    size = tuple(record.get("image_size") or (0, 0))
    if not record.get("present"):
        return Observation.absent(record["index"], record["time_s"], timing, size)
    return Observation(
        index=record["index"],
        time_s=record["time_s"],
        timing=timing,
        present=True,
        image_size=size,
        image_landmarks=np.asarray(record["image"], dtype=np.float64).reshape(33, 3),
        world_landmarks=np.asarray(record["world"], dtype=np.float64).reshape(33, 3),
        visibility=np.asarray(record["visibility"], dtype=np.float64).reshape(33),
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
