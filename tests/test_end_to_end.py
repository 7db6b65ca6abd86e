"""Video of a rendered person with known truth -> PoseLandmarker -> motion model -> record.

The fixture (tests/fixtures/README.md) is real CMU motion rendered on a skinned figure; the truth is
its canonical joints in the camera frame. Bounds come from measured figures on this fixture (the
comments say which), with a margin for detector differences between machines.
"""

from pathlib import Path

import numpy as np
import pytest

from runtime.recording import read_output_recording
from tests.node_support import ROOT, run_node

FIXTURE = ROOT / "tests" / "fixtures"
TRUTH = np.load(FIXTURE / "rendered_clip_truth.npz")
WEIGHTS = ROOT / "models" / "weights" / "stcnn.onnx"


def _run(tmp_path: Path, method: str):
    config = tmp_path / "node.yaml"
    fov = float(TRUTH["fov_deg"])
    config.write_text(f"source: {{realtime: false}}\nperception: {{horizontal_fov_deg: {fov}}}\n")
    out = tmp_path / f"{method}.jsonl"
    result = run_node("--source", f"video:{FIXTURE / 'rendered_clip.mp4'}", "--config", config,
                      "--motion", method, "--out", f"record:{out}")
    assert result.returncode == 0, result.stderr
    _, frames = read_output_recording(out)
    assert len(frames) == len(TRUTH["truth"]) and all(f["present"] for f in frames)
    joints = np.array([f["joints"] for f in frames])
    root = np.array([f["root"] for f in frames])
    assert np.all(np.isfinite(joints)) and np.all(np.isfinite(root))
    return joints, root


def _mpjpe_mm(joints: np.ndarray) -> float:
    """Hip-aligned (both root-relative) mean joint error over the 21 non-root joints."""
    return float(np.linalg.norm(joints[:, 1:] - TRUTH["truth"][:, 1:], axis=-1).mean() * 1000)


def test_raw_detector_error_through_the_node(tmp_path):
    joints, root = _run(tmp_path, "raw")
    assert _mpjpe_mm(joints) < 125  # measured 103.4 mm (raw BlazePose full, 75 frames)
    # The Hips placed in camera space by reprojection, with the camera's field of view.
    assert np.linalg.norm(root - TRUTH["root"], axis=-1).mean() < 0.35  # measured 0.21 m, mostly depth


@pytest.mark.skipif(not WEIGHTS.exists(), reason="no trained weights in models/weights/ yet")
def test_learned_motion_through_the_node(tmp_path):
    joints, _ = _run(tmp_path, "stcnn")
    assert _mpjpe_mm(joints) < 125
