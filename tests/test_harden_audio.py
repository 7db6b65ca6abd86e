"""Hostile sound files and audio specs (issue 20): what the hardening suite's audio surfaces found,
each pinned here with a real file written by soundfile (libsndfile) and damaged on purpose."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from liverig.core.config import SourceConfig
from liverig.runtime.audio import AudioError, open_audio
from liverig.runtime.sources import SourceError, open_source

ROOT = Path(__file__).resolve().parent.parent
REPLAY = ROOT / "tests" / "fixtures" / "still_hold.landmarks.jsonl"


def _samples(spec: str) -> np.ndarray:
    source = open_source(spec, SourceConfig(realtime=False, fps=30.0))
    try:
        return np.concatenate([frame.audio for frame in source.frames()])
    finally:
        source.close()


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _damaged_flac(path: Path) -> Path:
    """A second of FLAC whose middle frames are overwritten: the header reads, decoding loses sync."""
    soundfile.write(path, _tone(1.0, 44100), 44100, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff\xf8" * 32
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf, 1e30, -3.4e38])
def test_non_finite_and_huge_float_samples_never_reach_the_voice(tmp_path, special):
    for rate in (16000, 44100):  # as read, and through the resampler
        samples = _tone(0.3, rate)
        samples[100:3000:7] = special
        path = tmp_path / f"float_{rate}.wav"
        soundfile.write(path, samples, rate, subtype="FLOAT")
        out = _samples(f"audio:{path}")
        assert len(out) > 0.25 * 16000
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0


@pytest.mark.parametrize("rate", [2, 3999, 768001, 2**31 - 1])
def test_an_absurd_sample_rate_is_one_line_naming_the_file(tmp_path, rate):
    path = tmp_path / "rate.wav"
    soundfile.write(path, _tone(0.2, 16000), 16000)
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", rate)  # the fmt chunk's sample rate
    path.write_bytes(data)
    with pytest.raises(AudioError) as error:
        open_audio(f"audio:{path}", SourceConfig(realtime=False))
    assert str(error.value) == f"audio:{path}: a sample rate of {rate} Hz (read 4000 to 768000 Hz)"


def test_an_odd_sample_rate_plays_at_16_khz_without_a_giant_filter(tmp_path):
    """44101 Hz (gcd 1 with 16 kHz) used to mean a filter of ~900,000 taps designed every 10 ms."""
    path = tmp_path / "odd.wav"
    soundfile.write(path, _tone(1.0, 44101), 44101)
    start = time.perf_counter()
    out = _samples(f"audio:{path}")
    assert abs(len(out) - 16000) <= 400, len(out)
    assert time.perf_counter() - start < 10  # a hang guard; speed is measured by the harden command


def test_a_file_damaged_past_its_header_plays_what_it_can_then_ends_in_one_line(tmp_path):
    path = _damaged_flac(tmp_path / "damaged.flac")
    with pytest.raises(SourceError, match=r"cannot read the sound file after 0\.\d\d s") as error:
        _samples(f"audio:{path}")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def _node(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "run_node.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_node_reports_a_damaged_sound_file_in_one_line(tmp_path):
    path = _damaged_flac(tmp_path / "damaged.flac")
    # The audio-only avatar: the run ends there, exit 1, like a bad line in a replay.
    alone = _node("--source", f"audio:{path}", "--out", f"bvh:{tmp_path / 'a.bvh'}")
    assert alone.returncode == 1, alone.stderr
    assert "Traceback" not in alone.stderr
    assert f"error: audio:{path}: cannot read the sound file after" in alone.stderr
    # Beside a camera (here a replay): said once, the rest is silence, the run goes on.
    beside = _node(
        "--source", f"replay:{REPLAY}", "--audio", f"audio:{path}", "--out", f"bvh:{tmp_path / 'b.bvh'}"
    )
    assert beside.returncode == 0, beside.stderr
    assert beside.stderr.count("cannot read the sound file after") == 1
    assert "Traceback" not in beside.stderr
