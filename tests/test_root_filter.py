"""The root filter (runtime/motion.py RootFilter): precise across the camera's view, smoothed along it."""

import numpy as np

from liverig.core.config import RootConfig
from liverig.models.evaluation.methods import root_filtered
from liverig.runtime.motion import RootFilter
from tests.motion_support import sample

FPS = 30.0


def filtered(roots: np.ndarray, config: RootConfig | None = None) -> np.ndarray:
    root_filter = RootFilter.from_config(config or RootConfig())
    return np.array(
        [root_filter(sample(i / FPS, np.zeros((1, 3)), root=r)).root for i, r in enumerate(roots)]
    )


def _on_ray(direction: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Camera-space points (T, 3) at `distance` along the ray through image direction (x/-z, y/-z)."""
    return np.column_stack([direction[0] * distance, direction[1] * distance, -distance])


def test_distance_error_never_moves_the_avatar_sideways():
    # A person standing off-centre; the reprojected distance wobbles by ~10 cm, as the detector's
    # apparent body size does. Filtering x, y, z alike would turn that into a sideways wobble.
    rng = np.random.default_rng(0)
    direction = np.array([0.3, -0.1])
    distance = 3.0 + 0.1 * rng.standard_normal(150)
    roots = _on_ray(direction, distance)
    out = filtered(roots)
    np.testing.assert_allclose(out[:, :2] / -out[:, 2:3], np.tile(direction, (150, 1)), atol=1e-12)
    assert np.std(np.diff(out[:, 2])) < 0.2 * np.std(np.diff(roots[:, 2]))


def test_a_sideways_step_is_followed_within_about_a_frame():
    # 0.5 m to the right in one second at 3 m, then standing: the image position is precise, so the
    # filter may trail it by at most ~a frame of the motion and must settle on the new position.
    x = np.concatenate([np.zeros(15), np.linspace(0.0, 0.5, 31)[1:], np.full(30, 0.5)])
    roots = np.column_stack([x, np.zeros_like(x), np.full_like(x, -3.0)])
    out = filtered(roots)
    per_frame = 0.5 / 30
    ramp = slice(25, 45)  # steady motion, away from the ramp's start
    assert np.all(roots[ramp, 0] - out[ramp, 0] < 1.3 * per_frame)
    assert np.all(roots[ramp, 0] - out[ramp, 0] > 0.0)  # causal: it never runs ahead
    assert abs(out[-1, 0] - 0.5) < 1e-3
    # the same step along the view (towards the camera) is smoothed much harder
    towards = np.column_stack([np.zeros_like(x), np.zeros_like(x), -3.0 + x])
    along = filtered(towards)
    assert np.max(towards[ramp, 2] - along[ramp, 2]) > 2.5 * per_frame


def test_the_evaluation_tunes_the_filter_the_node_runs():
    # models/evaluation/tuning.py runs many settings at once to tune `motion.root`; it must compute
    # exactly what
    # RootFilter does, including the restart when the person comes back after a gap.
    rng = np.random.default_rng(1)
    roots = _on_ray(np.array([0.1, 0.05]), 2.5 + 0.05 * rng.standard_normal(60))
    roots[:, 0] += np.linspace(0, 0.4, 60)
    present = np.ones(60, dtype=bool)
    present[25:30] = False
    config = RootConfig()
    ray = (config.ray.min_cutoff, config.ray.beta)
    distance = (config.distance.min_cutoff, config.distance.beta)
    seq = {"observed_root": roots, "present": present}
    tuned = root_filtered(seq, ray, distance)
    root_filter, node = RootFilter.from_config(config), np.zeros_like(roots)
    for t in range(60):
        if not present[t]:
            node[t] = node[t - 1]
            root_filter.reset()
            continue
        node[t] = root_filter(sample(t / FPS, np.zeros((1, 3)), root=roots[t])).root
    np.testing.assert_allclose(tuned, node, atol=1e-12)
    many = root_filtered(seq, ([ray[0], 8.0], [ray[1], 0.0]), distance)  # two settings at once
    np.testing.assert_allclose(many[:, 0], node, atol=1e-12)
