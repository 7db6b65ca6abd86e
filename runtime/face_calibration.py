"""A face calibration profile as the face part (runtime/face.py) loads it: the person's own blink
ranges, neutral baselines and jaw range. Measuring one is calibration/face.py
(`run_node.py calibrate face me.yaml`, docs/face.md); this module only reads and applies it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from liverig.core.safe_io import read_yaml_file
from liverig.runtime.expressions import BLINKS, BlinkSettings


class CalibrationError(ValueError):
    """A calibration that cannot be made or read; the message is one line."""


class EyeCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    open: float = Field(ge=0, le=1)
    closed: float = Field(ge=0, le=1)
    on: float = Field(ge=0, le=1)
    off: float = Field(ge=0, le=1)

    def settings(self, link: float) -> BlinkSettings:
        return BlinkSettings(self.open, self.closed, self.on, self.off, min(link, self.on))


class FaceCalibration(BaseModel):
    """What a calibration measured (the file's contents)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    eyes: dict[str, EyeCalibration]  # by blendshape name: eyeBlinkLeft, eyeBlinkRight
    baseline: dict[str, float]  # neutral-face score per shape
    jaw_open: float = Field(gt=0, le=1)  # the jawOpen score of a wide-open mouth
    frames: dict[str, int] = Field(default_factory=dict)  # face frames measured per phase

    def normalise(self, scores: dict[str, float]) -> dict[str, float]:
        """Scores relative to this face's neutral one (blinks untouched: the eye latches use them)."""
        out = dict(scores)
        for name, base in self.baseline.items():
            if name in out and name not in BLINKS:
                top = self.jaw_open if name == "jawOpen" else 1.0
                out[name] = float(np.clip((out[name] - base) / max(top - base, 1e-3), 0.0, 1.0))
        return out


def load_calibration(path: str | Path) -> FaceCalibration:
    """A calibration file; any problem is a one-line CalibrationError naming the file (and key)."""
    data = read_yaml_file(
        path, "face calibration", CalibrationError
    )  # regular files, size-, depth-limited, UTF-8
    try:
        calibration = FaceCalibration.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise CalibrationError(f"face calibration {path}: key '{key}': {first['msg']}") from None
    if set(calibration.eyes) != set(BLINKS):
        raise CalibrationError(f"face calibration {path}: key 'eyes': needs exactly {', '.join(BLINKS)}")
    return calibration
