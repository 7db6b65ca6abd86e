import numpy as np

from liverig.runtime.one_euro import OneEuroFilter, filter_sequence


def test_constant_signal_passes_unchanged():
    x = np.full((50, 3), 2.5)
    np.testing.assert_allclose(filter_sequence(x, 30, 1.0, 0.0), x)


def test_reduces_jitter_on_a_still_signal():
    rng = np.random.default_rng(0)
    noisy = 1.0 + 0.01 * rng.standard_normal(300)
    smoothed = filter_sequence(noisy, 30, min_cutoff=0.5, beta=0.0)
    assert np.std(np.diff(smoothed[50:])) < 0.25 * np.std(np.diff(noisy[50:]))


def test_beta_reduces_lag_on_fast_motion():
    t = np.arange(120) / 30
    ramp = 2.0 * t
    slow = filter_sequence(ramp, 30, min_cutoff=0.5, beta=0.0)
    fast = filter_sequence(ramp, 30, min_cutoff=0.5, beta=5.0)
    assert abs(fast[-1] - ramp[-1]) < 0.5 * abs(slow[-1] - ramp[-1])


def test_first_sample_and_repeated_timestamp():
    f = OneEuroFilter(1.0, 0.0)
    np.testing.assert_allclose(f(np.array([1.0, 2.0]), 0.0), [1.0, 2.0])
    out = f(np.array([3.0, 4.0]), 0.0)
    assert np.all(np.isfinite(out))
