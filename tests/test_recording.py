import json

import numpy as np
import pytest

from liverig.core.types import Observation, Timing
from liverig.runtime.recording import (
    LANDMARK_FORMAT,
    LandmarkRecorder,
    iter_json_lines,
    iter_landmark_recording,
    read_landmark_recording,
    read_output_recording,
)


def _observation(i, present=True):
    rng = np.random.default_rng(i)
    if not present:
        return Observation.absent(i, i / 30, Timing(0.0), (640, 480))
    return Observation(
        i,
        i / 30,
        Timing(0.0),
        True,
        (640, 480),
        rng.random((33, 3)),
        rng.standard_normal((33, 3)) * 0.3,
        rng.random(33),
    )


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


def test_playback_reads_lazily_and_a_bad_line_is_named_where_it_is_met(tmp_path):
    """The header is checked at once; frames are read as they are taken, so frames before a damaged
    line play, and the damage is reported with its line number when playback reaches it."""
    path = tmp_path / "lm.jsonl"
    recorder = LandmarkRecorder(path)
    for i in range(4):
        recorder.write(_observation(i))
    recorder.close()
    lines = path.read_text().splitlines()
    lines.insert(3, "{not json")  # line 4 of the file: after frames 0 and 1
    path.write_text("\n".join(lines) + "\n")
    _, frames = iter_json_lines(path, LANDMARK_FORMAT)
    assert [next(frames)["index"], next(frames)["index"]] == [0, 1]
    with pytest.raises(ValueError, match=r"lm.jsonl:4: not a JSON object"):
        next(frames)
    with pytest.raises(ValueError, match="not a liverig-output recording"):
        iter_json_lines(path, "liverig-output")  # a wrong header fails before any frame is asked for


def test_playback_memory_does_not_grow_with_the_recording(tmp_path):
    """A long recording plays in the memory of one frame: reading it all at once would hold every
    frame (tens of MB here), streaming holds a few kB."""
    import tracemalloc

    path = tmp_path / "long.jsonl"
    recorder = LandmarkRecorder(path)
    frame = _observation(0)
    for i in range(3000):
        frame.index, frame.time_s = i, i / 30
        recorder.write(frame)
    recorder.close()
    tracemalloc.start()
    try:
        _, observations = iter_landmark_recording(path)
        count = sum(1 for _ in observations)
        _, streaming_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        _, everything = read_landmark_recording(path)
        _, all_at_once_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(everything) == 3000
    assert streaming_peak < 1_000_000 < all_at_once_peak, (streaming_peak, all_at_once_peak)


def test_a_playback_closed_before_it_began_releases_its_file(tmp_path):
    """A node that fails to start closes its source unplayed: the file must be released then too."""
    import gc
    import warnings

    path = tmp_path / "lm.jsonl"
    recorder = LandmarkRecorder(path)
    recorder.write(_observation(0))
    recorder.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        _, observations = iter_landmark_recording(path)
        observations.close()
        del observations
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    _, observations = iter_landmark_recording(path)
    assert [o.index for o in observations] == [0]
