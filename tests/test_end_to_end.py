"""Video of a rendered person with known truth -> PoseLandmarker -> motion model -> record.

The fixture (tests/fixtures/README.md) is real CMU motion rendered on a skinned figure; the truth is
its canonical joints in the camera frame. Bounds come from measured figures on this fixture (the
comments say which), with a margin for detector differences between machines.
"""

from pathlib import Path

import numpy as np
import pytest

from liverig.runtime.recording import read_output_recording
from tests.node_support import ROOT, run_node

FIXTURE = ROOT / "tests" / "fixtures"
TRUTH = np.load(FIXTURE / "rendered_clip_truth.npz")
WEIGHTS = ROOT / "models" / "weights" / "stcnn.onnx"


def _config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "node.yaml"
    fov = float(TRUTH["fov_deg"])
    config.write_text(f"source: {{realtime: false}}\nperception: {{horizontal_fov_deg: {fov}}}\n{extra}")
    return config


def _run(tmp_path: Path, method: str, config: Path | None = None):
    config = _config(tmp_path) if config is None else config
    out = tmp_path / f"{method}.jsonl"
    result = run_node(
        "--source",
        f"video:{FIXTURE / 'rendered_clip.mp4'}",
        "--config",
        config,
        "--motion",
        method,
        "--out",
        f"record:{out}",
    )
    assert result.returncode == 0, result.stderr
    _, frames = read_output_recording(out)
    assert len(frames) == len(TRUTH["truth"]) and all(f["present"] for f in frames)
    joints = np.array([f["joints"] for f in frames])
    root = np.array([f["root"] for f in frames])
    assert np.all(np.isfinite(joints)) and np.all(np.isfinite(root))
    return joints, root, out


def _mpjpe_mm(joints: np.ndarray, truth: np.ndarray | None = None) -> float:
    """Hip-aligned (both root-relative) mean joint error over the 21 non-root joints (against the
    rendered clip's truth unless another is given)."""
    truth = TRUTH["truth"] if truth is None else truth
    return float(np.linalg.norm(joints[:, 1:] - truth[:, 1:], axis=-1).mean() * 1000)


def _planted_foot_speed_cm_s(joints: np.ndarray, root: np.ndarray) -> float:
    """Ankle and toe speed in camera space (the node's root + joints) while the truth foot is
    planted (models.training.train.contact_labels, heights along the world's up)."""
    from liverig.models.evaluation.metrics import FEET
    from liverig.models.training.train import contact_labels

    up = TRUTH["camera_rotation"][:, 1]
    planted = contact_labels(TRUTH["truth"], TRUTH["root"], up).astype(bool)
    world = joints + root[:, None]
    speeds = []
    for side, pair in enumerate(FEET):
        speed = np.linalg.norm(np.diff(world[:, pair], axis=0), axis=-1).mean(axis=-1)
        speeds.append(speed[planted[1:, side] & planted[:-1, side]])
    return float(np.concatenate(speeds).mean() * float(TRUTH["fps"]) * 100)


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("raw"), "raw")


@pytest.fixture(scope="module")
def stcnn_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("stcnn"), "stcnn")


def test_raw_detector_error_through_the_node(raw_run):
    joints, root, _ = raw_run
    assert _mpjpe_mm(joints) < 125  # measured 103.4 mm (raw BlazePose full, 75 frames)
    # The Hips placed in camera space by reprojection, with the camera's field of view.
    assert np.linalg.norm(root - TRUTH["root"], axis=-1).mean() < 0.35  # measured 0.21 m, mostly depth


@pytest.mark.skipif(not WEIGHTS.exists(), reason="no trained weights in models/weights/ yet")
def test_learned_motion_beats_the_raw_detector_through_the_node(stcnn_run, raw_run):
    joints, _, _ = stcnn_run
    raw_error, error = _mpjpe_mm(raw_run[0]), _mpjpe_mm(joints)
    assert error < 90  # measured 79.6 mm over 21 joints with the shipped weights (smooth weights: 80.0)
    assert error < 0.85 * raw_error  # measured 0.77 x raw


@pytest.mark.skipif(not WEIGHTS.exists(), reason="no trained weights in models/weights/ yet")
@pytest.mark.parametrize("guard", [True, False], ids=["guarded", "unguarded"])
def test_the_side_guard_undoes_a_real_detector_mix_up_through_the_node(tmp_path, guard):
    """The real PoseLandmarker swapped the arms for six frames on a rolling figure (tests/fixtures/
    README.md); replayed through the node, the side guard keeps the avatar's arms on their sides."""
    from liverig.models.evaluation.metrics import flips

    truth = np.load(FIXTURE / "roll_mixup_truth.npz")
    config = tmp_path / "node.yaml"
    config.write_text(f"source: {{realtime: false}}\nmotion: {{sides: {{guard: {str(guard).lower()}}}}}\n")
    out = tmp_path / "roll.jsonl"
    result = run_node(
        "--source",
        f"replay:{FIXTURE / 'roll_mixup.landmarks.jsonl'}",
        "--config",
        config,
        "--out",
        f"record:{out}",
    )
    assert result.returncode == 0, result.stderr
    _, frames = read_output_recording(out)
    joints = np.array([f["joints"] for f in frames])
    flipped = int(flips(joints, truth["truth"].astype(np.float64)).sum())
    raw = int(flips(truth["world"], truth["truth"].astype(np.float64)).sum())
    assert raw >= 1  # the detector's own mix-up, as the flips metric sees it (measured: 1)
    if guard:
        assert flipped == 0
    else:
        assert flipped >= 1  # the network alone follows the detector (measured: 2 frames)


@pytest.mark.skipif(not WEIGHTS.exists(), reason="no trained weights in models/weights/ yet")
def test_foot_lock_calms_the_planted_feet_through_the_node(tmp_path, stcnn_run):
    """`motion.feet.lock: true`: the feet the model says are planted are held; the jump's landing
    and take-off still come through (the joint error stays near the network's own)."""
    joints, root, _ = _run(tmp_path, "stcnn", _config(tmp_path, "motion: {feet: {lock: true}}\n"))
    free = _planted_foot_speed_cm_s(stcnn_run[0], stcnn_run[1])
    held = _planted_foot_speed_cm_s(joints, root)
    np.testing.assert_array_equal(root, stcnn_run[1])  # the lock bends legs, never moves the root
    assert held < 0.9 * free  # measured 25.7 vs 32.9 cm/s (0.78x; the truth's feet: 6.4)
    assert _mpjpe_mm(joints) < _mpjpe_mm(stcnn_run[0]) + 4  # measured 81.7 vs 79.6 mm (21 joints)


def _still_jitter_mm(joints: np.ndarray) -> float:
    """Mean joint speed (mm/frame) of a pose that should not move at all."""
    return float(np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean() * 1000)


@pytest.mark.skipif(not WEIGHTS.exists(), reason="no trained weights in models/weights/ yet")
def test_the_deadband_calms_a_held_pose_through_the_node(tmp_path):
    """A person standing still, seen by the real PoseLandmarker with webcam-like pixel noise (tests/
    fixtures/README.md): the node's deadband (on by default) takes a good part of the jitter the
    network passes on (the network alone is about as jittery as the detector here), and moves the
    pose hardly further from the truth."""
    truth = np.load(FIXTURE / "still_hold_truth.npz")["truth"].astype(np.float64)
    runs = {}
    for enabled in (True, False):
        config = tmp_path / f"deadband_{enabled}.yaml"
        flag = str(enabled).lower()
        config.write_text(f"source: {{realtime: false}}\nmotion: {{deadband: {{enabled: {flag}}}}}\n")
        out = tmp_path / f"still_{enabled}.jsonl"
        result = run_node(
            "--source",
            f"replay:{FIXTURE / 'still_hold.landmarks.jsonl'}",
            "--config",
            config,
            "--out",
            f"record:{out}",
        )
        assert result.returncode == 0, result.stderr
        _, frames = read_output_recording(out)
        runs[enabled] = np.array([f["joints"] for f in frames])
    calm, free = _still_jitter_mm(runs[True]), _still_jitter_mm(runs[False])
    assert calm < 0.9 * free  # measured 1.63 vs 2.00 mm/frame (0.81x; raw 1.99)
    assert _mpjpe_mm(runs[True], truth) < _mpjpe_mm(runs[False], truth) + 2.0  # measured 60.9 vs 59.9 mm


def test_the_evaluator_scores_node_recordings_the_same_way(raw_run):
    """`python -m liverig.models.evaluation.evaluate --recording OUT --truth T` runs the evaluation on
    any node
    recording."""
    from liverig.models.evaluation.recordings import score_recording

    joints, _, recording = raw_run
    report = score_recording(recording, FIXTURE / "rendered_clip_truth.npz")
    row = next(line for line in report.splitlines() if line.startswith("| node "))
    # The evaluator averages over all 22 joints (the Hips' error is 0 by definition), we over 21.
    assert float(row.split("|")[2]) == pytest.approx(_mpjpe_mm(joints) * 21 / 22, abs=0.1)
    # The root too: across the view, the error after removing the constant offset, in mm.
    offset = (raw_run[1] - TRUTH["root"])[:, :2]
    lateral = np.linalg.norm(offset - offset.mean(axis=0), axis=-1).mean() * 1000
    reported = float(report.split("root: lateral error ")[1].split(" mm")[0])
    assert reported == pytest.approx(lateral, abs=0.06)  # measured 9.5 mm (raw reprojection)


@pytest.mark.skipif(not WEIGHTS.exists(), reason="no trained weights in models/weights/ yet")
def test_body_calibration_then_a_run_with_the_profile(tmp_path):
    """`--calibrate-body` measures the figure's bones and stops; a run with the profile holds them."""
    from liverig.core.skeleton import bone_lengths
    from liverig.runtime.body import load_profile

    profile = tmp_path / "body.yaml"
    config = _config(tmp_path)
    calibration = tmp_path / "calibration.jsonl"
    result = run_node(
        "--source",
        f"video:{FIXTURE / 'rendered_clip.mp4'}",
        "--config",
        config,
        "--calibrate-body",
        profile,
        "--out",
        f"record:{calibration}",
    )
    assert result.returncode == 0, result.stderr
    assert "21/21 bones" in result.stderr
    _, frames = read_output_recording(calibration)
    assert len(frames) == 30 < len(TRUTH["truth"])  # stops once every bone is measured (30 frames)
    lengths = load_profile(profile)
    ratio = lengths / bone_lengths(TRUTH["truth"].astype(np.float64)).mean(axis=0)
    assert np.median(np.abs(ratio - 1)) < 0.2  # measured 7-10 % (per bone; median ratio 1.01)

    config.write_text(config.read_text() + f"motion: {{body: {{lock_bones: true, profile: '{profile}'}}}}\n")
    joints, _, _ = _run(tmp_path, "stcnn", config)
    held = bone_lengths(joints)
    assert np.allclose(held.mean(axis=0), lengths, rtol=0.05)  # projection: ~1 % on average
    assert (held.std(axis=0) / held.mean(axis=0)).mean() < 0.01
    assert _mpjpe_mm(joints) < 90
