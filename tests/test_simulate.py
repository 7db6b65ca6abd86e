"""The BlazePose observation simulator and the training augmentations."""

from __future__ import annotations

import numpy as np
import pytest

from liverig.core.fetch import FetchError
from liverig.core.skeleton import (
    BONES,
    JOINT_INDEX,
    MEDIAPIPE_TO_CANONICAL,
    MIRROR,
    bone_lengths,
    estimate_root_position,
)
from liverig.models.training import mocap, simulate
from liverig.models.training.simulate import TARGETS, NoiseParams, augment, measure_noise, mirror

J = JOINT_INDEX
NO_NOISE = NoiseParams(
    scale_mean=1.0,
    scale_std=0.0,
    offset_mm=(0, 0, 0),
    drift_rel=(0, 0, 0),
    jitter_mm=(0, 0, 0),
    occlusion_rate_hz=0.0,
    swap_rate_hz=0.0,
    image_jitter_px=0.0,
)


@pytest.fixture(scope="module")
def clips() -> dict[str, mocap.Clip]:
    try:
        return {c.name: c for c in mocap.load_clips("all")}
    except FetchError as error:
        pytest.skip(f"mocap sources unavailable: {error}")


@pytest.fixture(scope="module")
def walk(clips) -> np.ndarray:
    return clips["boxing_toes"].joints


def test_shapes_and_ranges(walk):
    out = simulate.simulate(walk, np.random.default_rng(0))
    T = len(walk)
    for key, shape in {
        "world": (T, 22, 3),
        "image": (T, 22, 2),
        "visibility": (T, 22),
        "truth": (T, 22, 3),
        "root": (T, 3),
    }.items():
        assert out[key].shape == shape and out[key].dtype == np.float32 and np.isfinite(out[key]).all(), key
    assert np.all((out["visibility"] >= 0) & (out["visibility"] <= 1))
    np.testing.assert_allclose(out["world"][:, J["Hips"]], 0.0, atol=1e-6)
    np.testing.assert_allclose(out["truth"][:, J["Hips"]], 0.0, atol=1e-6)
    cam = out["camera"]
    assert 50 <= cam["fov_deg"] <= 75 and 0.8 <= cam["height_m"] <= 1.8 and cam["distance_m"] >= 2.5
    assert np.all(out["root"][:, 2] < -2.0)  # in front of the camera, which looks along -Z
    assert np.all(out["truth"][:, J["Head"], 1] > out["truth"][:, J["LeftFoot"], 1])  # upright, no roll
    assert 0.3 < out["image"][:, J["Hips"]].mean() < 0.7


def test_deterministic_for_a_seed(walk):
    a = simulate.simulate(walk, np.random.default_rng(7))
    b = simulate.simulate(walk, np.random.default_rng(7))
    c = simulate.simulate(walk, np.random.default_rng(8))
    for key in ("world", "image", "visibility", "truth", "root"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.allclose(a["world"], c["world"])


def test_noise_free_is_consistent_with_the_skeleton_conventions(walk):
    """Without noise, world == truth and skeleton.estimate_root_position recovers the root."""
    out = simulate.simulate(walk, np.random.default_rng(3), NO_NOISE)
    np.testing.assert_allclose(out["world"], out["truth"], atol=1e-5)
    cam = out["camera"]
    # Joints that are projected points (the torso's image points are mixes of them, as in 2D).
    seen = [j for j in range(22) if j not in (J["Hips"], J["Spine"], J["Chest"], J["Neck"])]
    for t in range(0, len(walk), 97):
        world = out["truth"][t, seen] * MEDIAPIPE_TO_CANONICAL
        image, vis = out["image"][t, seen], out["visibility"][t, seen]
        root = estimate_root_position(world, image, vis, cam["image_size"], cam["fov_deg"])
        np.testing.assert_allclose(root, out["root"][t], atol=1e-4)
    hips = 0.5 * (out["image"][:, J["LeftUpperLeg"]] + out["image"][:, J["RightUpperLeg"]])
    np.testing.assert_allclose(out["image"][:, J["Hips"]], hips, atol=1e-6)


def test_measure_noise_definitions():
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 0.3, (50, 22, 3))
    truth[:, 0] = 0.0
    exact = measure_noise(truth, truth)
    assert exact["rms_z_mm"] == 0 and exact["offset_mm"] == 0 and exact["accel_mm"] == 0
    assert exact["scale"] == pytest.approx(1.0)
    shifted = truth + [0.0, 0.0, 0.05]
    shifted[:, 0] = 0.0  # hips stay the origin
    stats = measure_noise(shifted, truth)
    assert stats["rms_z_mm"] == pytest.approx(50.0) and stats["offset_mm"] == pytest.approx(50.0)
    assert stats["rms_x_mm"] == pytest.approx(0.0) and stats["accel_mm"] == pytest.approx(0.0, abs=1e-9)
    assert measure_noise(truth * 0.9, truth)["scale"] == pytest.approx(0.9)


def test_defaults_reproduce_the_measured_blazepose_error(clips):
    """Pooled over the long real clips and 8 random cameras each: within 20 % of every target."""
    stats = simulate.calibration_report(seeds=8)
    for key, target in TARGETS.items():
        assert stats[key] == pytest.approx(target, rel=0.2), (key, stats[key], target)
    assert stats["rms_z_mm"] > 1.8 * max(stats["rms_x_mm"], stats["rms_y_mm"])  # mostly depth


def test_occlusion_bursts_are_contiguous_limb_spans(walk):
    params = NoiseParams(occlusion_rate_hz=0.3, far_side_visibility=1.0, azimuth_deg=(0, 0))
    out = simulate.simulate(walk, np.random.default_rng(1), params)
    low = out["visibility"] < 0.45
    assert low.any()
    limb_joints = sorted(j for chain in simulate.LIMBS.values() for j in chain)
    assert not np.delete(low, limb_joints, axis=1).any()  # only limb chains are occluded
    runs = np.diff(low[:, J["LeftHand"]].astype(int))
    starts = (runs == 1).sum()
    assert starts <= max(1, low[:, J["LeftHand"]].sum() // 9)  # spans of >= 9 frames, not flicker


def test_swaps_exchange_left_and_right(walk):
    params = NoiseParams(**{**NO_NOISE.__dict__, "swap_rate_hz": 3.0})
    out = simulate.simulate(walk, np.random.default_rng(2), params)
    w, t = out["world"], out["truth"]
    swapped = np.isclose(w[:, J["LeftFoot"]], t[:, J["RightFoot"]], atol=1e-5).all(-1) | np.isclose(
        w[:, J["LeftHand"]], t[:, J["RightHand"]], atol=1e-5
    ).all(-1)
    assert 0 < swapped.mean() < 0.9
    np.testing.assert_allclose(w[~swapped], t[~swapped], atol=1e-5)


def test_mirror(walk):
    np.testing.assert_array_equal(mirror(mirror(walk)), walk)
    m = mirror(walk)
    np.testing.assert_array_equal(m[:, J["LeftHand"], 0], -walk[:, J["RightHand"], 0])
    children = [c for _, c in BONES]
    partner = [children.index(MIRROR[c]) for c in children]  # bone i mirrors onto bone partner[i]
    np.testing.assert_allclose(bone_lengths(m)[:, partner], bone_lengths(walk), atol=1e-6)


def test_augment_keeps_the_body_a_body(clips):
    rng = np.random.default_rng(0)
    for name in ("boxing_toes", "deepmimic_backflip", "cmu_01_01"):
        x = clips[name].joints
        a = augment(x, rng).astype(np.float64)
        assert len(x) / 1.3 - 2 <= len(a) <= len(x) / 0.7 + 2
        limbs = bone_lengths(a)[:, [[c for _, c in BONES].index(J[n]) for n in ("LeftLowerLeg", "RightHand")]]
        assert (limbs.std(0) / limbs.mean(0)).max() < 0.01, name
        np.testing.assert_allclose(simulate.derive_torso(a), a, atol=1e-5)  # torso still on its line
        floor = np.percentile((a[..., 1] - mocap.CONTACT_RADIUS).min(axis=1), 2)
        assert abs(floor) < 0.01, name


def test_speed_and_bone_scaling(walk):
    x = walk.astype(np.float64)
    fast = simulate.change_speed(x, 1.25)
    assert len(fast) == len(np.arange(0, len(x) - 1 + 1e-9, 1.25))
    np.testing.assert_allclose(fast[::4], x[::5][: len(fast[::4])], atol=1e-6)  # every 4th = every 5th
    long_legs = simulate.scale_bones(x, {"thigh": 1.1})
    thigh = [c for _, c in BONES].index(J["LeftLowerLeg"])
    np.testing.assert_allclose(bone_lengths(long_legs)[:, thigh], 1.1 * bone_lengths(x)[:, thigh], rtol=1e-6)
