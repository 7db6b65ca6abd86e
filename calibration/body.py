"""Body calibration: the person's bone lengths, measured once and written as a body profile.

    python run_node.py calibrate body me.yaml      # then set motion.body.profile: me.yaml

The measuring itself is the motion stage's bone hold (runtime/body.py `BodyCalibration`), which
measures in every run; the calibration runs the node until it is `calibrated` and writes what it
measured here. The node reads the profile back with runtime/body.py `load_profile`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from liverig.runtime.body import BONE_NAMES, PROFILE_VERSION


def save_profile(path: str | Path, lengths: np.ndarray) -> None:
    """Write the measured bone lengths (NaN ones are left out) as a body profile."""
    bones = {name: round(float(v), 4) for name, v in zip(BONE_NAMES, lengths, strict=True) if np.isfinite(v)}
    header = "# liverig body profile: bone lengths in metres, each bone named by the joint it ends at\n"
    body = yaml.safe_dump({"liverig_body_profile": PROFILE_VERSION, "bones": bones}, sort_keys=False)
    Path(path).write_text(header + body)
