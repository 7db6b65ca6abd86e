"""The deadband (runtime/deadband.py): calm where a joint stays put, no lag where it moves."""

from __future__ import annotations

import numpy as np
import pytest

from liverig.core.config import ConfigError, DeadbandConfig, load_config
from liverig.runtime.deadband import Deadband
from tests.motion_support import sample

FPS = 30.0
CONFIG = DeadbandConfig(cutoff_hz=0.5, inner_m=0.015, outer_m=0.040)


def run(stage: Deadband, joints: np.ndarray) -> np.ndarray:
    return np.stack([stage(sample(t / FPS, j)).joints for t, j in enumerate(joints)])


def test_a_still_joints_jitter_is_averaged_away():
    rng = np.random.default_rng(0)
    joints = np.array([0.1, 1.2, -0.3]) + rng.normal(0.0, 0.002, (300, 22, 3))  # ~2 mm of detector jitter
    out = run(Deadband(CONFIG), joints)
    jitter_in = np.linalg.norm(np.diff(joints[30:], axis=0), axis=-1).mean()
    jitter_out = np.linalg.norm(np.diff(out[30:], axis=0), axis=-1).mean()
    assert jitter_out < 0.15 * jitter_in
    assert np.abs(out[30:] - [0.1, 1.2, -0.3]).max() < 0.005  # held at the pose itself, not off it


def test_a_moving_joint_is_followed_without_lag():
    """Faster than the band can hold (the average falls `outer_m` behind within frames), the output
    is the input itself: no delay at all."""
    t = np.arange(90)[:, None, None]
    joints = np.zeros((90, 22, 3)) + t * [0.03, 0.0, 0.0]  # 0.9 m/s
    out = run(Deadband(CONFIG), joints)
    np.testing.assert_allclose(out[10:], joints[10:], rtol=0, atol=1e-12)


def test_starting_to_move_catches_up_without_a_jump():
    """From rest into motion the output trails by at most the band, then passes from the average to
    the input within a few frames: faster than the input meanwhile (at most twice), never a jump."""
    rng = np.random.default_rng(1)
    still = np.zeros((60, 22, 3)) + rng.normal(0.0, 0.002, (60, 22, 3))
    ramp = still[-1] + np.cumsum(np.full((60, 22, 3), [0.01, 0.0, 0.0]), axis=0)  # 0.3 m/s
    joints = np.concatenate([still, ramp])
    out = run(Deadband(CONFIG), joints)
    behind = np.linalg.norm(joints[60:] - out[60:], axis=-1)
    assert behind.max() <= CONFIG.outer_m
    steps = np.linalg.norm(np.diff(out[59:], axis=0), axis=-1)
    assert steps.max() <= 2 * 0.01
    assert behind[10:].max() < 1e-9  # caught up within 10 frames (a third of a second)


def test_reset_starts_from_the_input():
    stage = Deadband(CONFIG)
    run(stage, np.zeros((20, 22, 3)))
    stage.reset()
    moved = np.full((22, 3), 0.01)  # inside the band of the old average: would be held without the reset
    np.testing.assert_array_equal(stage(sample(10.0, moved)).joints, moved)


def test_a_band_whose_outer_edge_is_inside_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("motion:\n  deadband: {inner_m: 0.05, outer_m: 0.02}\n")
    needle = r"bad\.yaml: key 'motion\.deadband'.*outer_m \(0\.02\) must be larger"
    with pytest.raises(ConfigError, match=needle):
        load_config(path)
