"""Face calibration from real scores (the bundled clip's own frames: relaxed, shut-eyed and
open-mouthed ones), applied back to the clip; and the command line's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from liverig.calibration.face import calibrate, save_calibration
from liverig.core.config import FaceConfig
from liverig.runtime.assets import sample_path
from liverig.runtime.face import FacePart
from liverig.runtime.face_calibration import CalibrationError, load_calibration
from tests.node_support import run_node
from tests.test_face import CARPHONE_BLINKS, _carphone, _run

NEUTRAL = range(0, 38)  # eyes open, mouth nearly closed
MOUTH_OPEN = range(56, 64)  # the man says a long "a" (jawOpen about 0.6-0.7)


@pytest.fixture(scope="module")
def clip():
    frames = _carphone()
    part = FacePart(FaceConfig())
    try:
        scores = [_run(part, image, i)[1].scores for i, image in enumerate(frames)]
    finally:
        part.close()
    return frames, scores


def _phases(scores, shut=CARPHONE_BLINKS):
    return {
        "neutral": [scores[i] for i in NEUTRAL],
        "eyes_shut": [scores[i] for i in shut] + [scores[i + 1] for i in shut],
        "mouth_open": [scores[i] for i in MOUTH_OPEN],
    }


def test_a_calibration_from_real_frames_fits_the_face_and_keeps_its_blinks(clip, tmp_path):
    frames, scores = clip
    calibration = calibrate(_phases(scores))
    for eye in calibration.eyes.values():
        assert eye.open < eye.off < eye.on < eye.closed
        assert eye.open < 0.2 and eye.closed > 0.35
    assert calibration.baseline["jawOpen"] < 0.15 < 0.5 < calibration.jaw_open
    path = tmp_path / "face.yaml"
    save_calibration(path, calibration)
    assert load_calibration(path).eyes.keys() == calibration.eyes.keys()
    plain, calibrated = FacePart(FaceConfig()), FacePart(FaceConfig(calibration=str(path)))
    try:
        out = {"plain": [], "calibrated": []}
        for i, image in enumerate(frames):
            out["plain"].append(_run(plain, image, i)[0].expressions)
            out["calibrated"].append(_run(calibrated, image, i)[0].expressions)
    finally:
        plain.close()
        calibrated.close()
    blinks = [e["Blink"] for e in out["calibrated"]]
    for frame in CARPHONE_BLINKS:
        assert blinks[frame] >= 0.8
    assert max(blinks[i] for i in NEUTRAL) < 0.2
    # The neutral face reads nearer zero, the open mouth nearer one, than without the calibration.
    for name in ("jawOpen", "mouthSmileLeft", "browInnerUp"):
        resting = [np.mean([e[name] for e in out[kind][5:38]]) for kind in ("plain", "calibrated")]
        assert resting[1] <= resting[0] + 1e-6, name
    jaw = [max(e["jawOpen"] for e in out[kind][56:64]) for kind in ("plain", "calibrated")]
    assert jaw[1] > jaw[0] and jaw[1] > 0.8


def test_phases_that_show_nothing_are_refused(clip):
    _, scores = clip
    with pytest.raises(CalibrationError, match="eyes did not close"):
        calibrate(_phases(scores, shut=(10, 20)))
    phases = _phases(scores)
    phases["mouth_open"] = phases["neutral"]
    with pytest.raises(CalibrationError, match="mouth did not open"):
        calibrate(phases)
    phases["mouth_open"] = []
    with pytest.raises(CalibrationError, match="no face was seen during the 'mouth_open' phase"):
        calibrate(phases)


def test_the_command_line_says_what_fell_short_and_writes_nothing(tmp_path):
    clip = f"video:{sample_path('carphone.mp4')}"
    out = tmp_path / "face.yaml"
    fast = tmp_path / "fast.yaml"
    fast.write_text("source: {realtime: false}\n")
    result = run_node("--source", clip, "--config", fast, "--calibrate-face", out, "--motion", "one_euro")
    assert result.returncode == 1
    assert "face calibration 1/3" in result.stderr and "face calibration 2/3" in result.stderr
    assert "the source ended during the 'eyes_shut' phase" in result.stderr and not out.exists()
    # One-second phases fit the 4 s clip, but the man never shuts his eyes for one.
    fast.write_text("source: {realtime: false}\nperception: {face: {calibration_phase_s: 1.0}}\n")
    result = run_node("--source", clip, "--config", fast, "--calibrate-face", out, "--motion", "one_euro")
    assert result.returncode == 1 and "the eyes did not close" in result.stderr and not out.exists()


def test_a_bad_calibration_file_names_the_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"perception: {{face: {{calibration: {tmp_path / 'missing.yaml'}}}}}\n")
    result = run_node(
        "--source", f"video:{sample_path('carphone.mp4')}", "--config", config, "--max-frames", 1
    )
    assert result.returncode == 2
    assert "key 'perception.face.calibration'" in result.stderr and "not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    (tmp_path / "bad.yaml").write_text("eyes: {}\nbaseline: {}\njaw_open: 2\n")
    config.write_text(f"perception: {{face: {{calibration: {tmp_path / 'bad.yaml'}}}}}\n")
    result = run_node(
        "--source", f"video:{sample_path('carphone.mp4')}", "--config", config, "--max-frames", 1
    )
    assert result.returncode == 2 and "key 'jaw_open'" in result.stderr
    # The hardened reader (core/safe_io.py): no device files, no infinities, one line each.
    for name, text in (("zero", "/dev/zero"), ("inf.yaml", None)):
        target = tmp_path / name
        if text is None:
            target.write_text("eyes: {}\nbaseline: {}\njaw_open: .inf\n")
        config.write_text(f"perception: {{face: {{calibration: {text or target}}}}}\n")
        result = run_node(
            "--source", f"video:{sample_path('carphone.mp4')}", "--config", config, "--max-frames", 1
        )
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
