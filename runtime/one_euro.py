"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012): the classic adaptive low-pass baseline.

The cut-off rises with speed, fc = min_cutoff + beta * |dx/dt|, so still poses are smoothed hard and
fast motion lags little. Works on arrays of any shape; every element is filtered independently.
"""

from __future__ import annotations

import math

import numpy as np


def smoothing_factor(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray | float:
    """The weight of a new sample in an exponential low-pass with this cut-off, `dt` seconds on."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter sample `x` taken at time `t` (seconds); returns the smoothed sample."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or t <= self._t:
            dt = None if self._t is None else t - self._t
            if self._x is None or dt is None:
                self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
                return x.copy()
            t = self._t + 1e-3  # repeated timestamp: treat as a very short step
        dt = t - self._t
        dx = (x - self._x) / dt
        self._dx = self._dx + smoothing_factor(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + smoothing_factor(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x.copy()


def filter_sequence(x: np.ndarray, fps: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0):
    """Run a One Euro filter over a whole (T, ...) sequence sampled at `fps`."""
    f = OneEuroFilter(min_cutoff, beta, d_cutoff)
    return np.stack([f(x[i], i / fps) for i in range(len(x))])
