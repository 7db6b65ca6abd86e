import json

import numpy as np
import pytest

from runtime.recording import (
    LandmarkRecorder,
    read_landmark_recording,
    read_output_recording,
)
from runtime.types import Observation, Timing


def _observation(i, present=True):
    rng = np.random.default_rng(i)
    if not present:
        return Observation.absent(i, i / 30, Timing(0.0), (640, 480))
    return Observation(i, i / 30, Timing(0.0), True, (640, 480), rng.random((33, 3)),
                       rng.standard_normal((33, 3)) * 0.3, rng.random(33))


def test_landmark_recording_round_trip(tmp_path):
    path = tmp_path / "lm.jsonl"
    recorder = LandmarkRecorder(path)
    written = [_observation(i, present=i != 2) for i in range(5)]
    for obs in written:
        recorder.write(obs)
    recorder.close()
    header, read = read_landmark_recording(path)
    assert header["format"] == "liverig-landmarks" and len(header["landmark_names"]) == 33
    assert [o.present for o in read] == [True, True, False, True, True]
    for a, b in zip(written, read, strict=True):
        assert a.index == b.index and a.time_s == pytest.approx(b.time_s, abs=1e-6)
        if a.present:
            np.testing.assert_allclose(a.world_landmarks, b.world_landmarks, atol=1e-6)
            np.testing.assert_allclose(a.visibility, b.visibility, atol=1e-6)


def test_killed_writer_leaves_a_readable_file(tmp_path):
    path = tmp_path / "lm.jsonl"
    recorder = LandmarkRecorder(path)
    for i in range(3):
        recorder.write(_observation(i))
    # Simulate a kill in the middle of writing the fourth line.
    with open(path, "a") as handle:
        handle.write('{"index": 3, "time_s": 0.1, "pre')
    _, read = read_landmark_recording(path)
    assert len(read) == 3


def test_wrong_format_is_rejected(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"format": "something-else", "version": 1}) + "\n")
    with pytest.raises(ValueError, match="not a liverig-landmarks recording"):
        read_landmark_recording(path)
    with pytest.raises(ValueError, match="not a liverig-output recording"):
        read_output_recording(path)
    path.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_landmark_recording(path)
