"""Building the motion filters' one sample type (core/types.py MotionSample) in tests."""

from __future__ import annotations

import numpy as np

from liverig.core.types import MotionSample


def sample(time_s, joints, confidence=None, image=None, root=None, contact=None, aspect=1.0) -> MotionSample:
    """A frame for a motion filter; what a test leaves out is fully seen, at the origin."""
    joints = np.asarray(joints, dtype=np.float64)
    count = len(joints)
    confidence = np.ones(count) if confidence is None else np.asarray(confidence, dtype=np.float64)
    image = np.zeros((count, 2)) if image is None else np.asarray(image, dtype=np.float64)
    root = np.zeros(3) if root is None else np.asarray(root, dtype=np.float64)
    contact = None if contact is None else np.asarray(contact, dtype=np.float64)
    return MotionSample(time_s, joints, confidence, image, root, aspect, contact)
