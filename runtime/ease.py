"""The one easing curve the stages share (rest pose, unseen legs, re-entry glide, twist weights)."""

from __future__ import annotations

import numpy as np


def smoothstep(t):
    """0 -> 1 as t goes 0 -> 1 (clipped outside), with zero slope at both ends: an eased blend
    starts and stops without a velocity jump. Scalars or arrays."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
