"""Face calibration: a person's own neutral face, shut eyes and open mouth, measured once.

The face model's scores differ from person to person and camera to camera: one person's relaxed
eyes score 0.05 on eyeBlink, another's (hooded lids, glasses) 0.25; one person's shut eyes reach 0.7,
another's 0.45. The default blink thresholds (config `perception.face.blink_*`) suit most faces;
a calibration fits them to one:

    python run_node.py --calibrate-face me.yaml      # then set perception.face.calibration: me.yaml

It asks for three short phases (`perception.face.calibration_phase_s` each, default 3 s): a neutral
face with the eyes open, the eyes shut, the mouth wide open. From the model's raw scores:

- per eye, the blink range: `open` = the neutral phase's median score (+0.05), `closed` = the shut
  phase's 80th percentile; the latch shuts at 60 % of the way and opens below 30 %;
- every other shape's neutral baseline (the neutral phase's median): afterwards a shape reads
  (raw - baseline) / (1 - baseline), so a resting face sends zeros;
- the jaw's range: jawOpen reads (raw - baseline) / (open-mouth 90th percentile - baseline).

A phase that did not show what it asked for (eyes that did not close, a mouth that did not open,
no face at all) is an error naming the phase, and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from liverig.runtime.expressions import BLINKS, MODEL_NAMES
from liverig.runtime.face_calibration import CalibrationError, EyeCalibration, FaceCalibration

PHASES = (
    ("neutral", "look at the camera with a relaxed, neutral face, eyes open, mouth closed"),
    ("eyes_shut", "shut your eyes (keep your face relaxed)"),
    ("mouth_open", "open your mouth as wide as is comfortable"),
)
MIN_BLINK_RANGE = 0.15  # shut eyes must score at least this much above open ones
MIN_JAW_RANGE = 0.15


def calibrate(phases: dict[str, list[dict[str, float]]]) -> FaceCalibration:
    """A calibration from each phase's raw score dicts (one per frame with a face)."""
    for phase, _ in PHASES:
        if not phases.get(phase):
            raise CalibrationError(f"no face was seen during the '{phase}' phase; nothing written")

    def column(phase: str, name: str) -> np.ndarray:
        return np.array([scores.get(name, 0.0) for scores in phases[phase]], dtype=np.float64)

    eyes = {}
    for name in BLINKS:
        opened = float(np.median(column("neutral", name))) + 0.05
        closed = float(np.percentile(column("eyes_shut", name), 80))
        if closed - opened < MIN_BLINK_RANGE:
            raise CalibrationError(
                f"the eyes did not close in the 'eyes_shut' phase ({name} {closed:.2f}, open {opened:.2f}); "
                "nothing written"
            )
        span = closed - opened
        eyes[name] = EyeCalibration(
            open=opened, closed=closed, on=opened + 0.6 * span, off=opened + 0.3 * span
        )
    baseline = {name: float(np.median(column("neutral", name))) for name in MODEL_NAMES if name not in BLINKS}
    jaw = float(np.percentile(column("mouth_open", "jawOpen"), 90))
    if jaw - baseline["jawOpen"] < MIN_JAW_RANGE:
        raise CalibrationError(
            f"the mouth did not open in the 'mouth_open' phase (jawOpen {jaw:.2f}, neutral "
            f"{baseline['jawOpen']:.2f}); nothing written"
        )
    frames = {phase: len(phases[phase]) for phase, _ in PHASES}
    return FaceCalibration(eyes=eyes, baseline=baseline, jaw_open=jaw, frames=frames)


def save_calibration(path: str | Path, calibration: FaceCalibration) -> None:
    data = calibration.model_dump()
    data["eyes"] = {k: {n: round(v, 4) for n, v in e.items()} for k, e in data["eyes"].items()}
    data["baseline"] = {k: round(v, 4) for k, v in data["baseline"].items()}
    data["jaw_open"] = round(data["jaw_open"], 4)
    header = "# liverig face calibration (run_node.py --calibrate-face); use: perception.face.calibration\n"
    Path(path).write_text(header + yaml.safe_dump(data, sort_keys=False))


class FaceCalibrator:
    """Collects the face part's raw scores phase by phase (by media time) for `--calibrate-face`."""

    def __init__(self, phase_s: float, say=print) -> None:
        self.phase_s = phase_s
        self.say = say
        self.collected: dict[str, list[dict[str, float]]] = {phase: [] for phase, _ in PHASES}
        self._start: float | None = None
        self._announced = -1
        self.done = False

    def phase_at(self, time_s: float) -> int:
        if self._start is None:
            self._start = time_s
        return int((time_s - self._start) // self.phase_s)

    def __call__(self, scores: dict[str, float] | None, time_s: float) -> None:
        """One frame: the face's raw scores (None: no face this frame)."""
        index = self.phase_at(time_s)
        if index >= len(PHASES):
            self.done = True
            return
        if index != self._announced:
            self._announced = index
            name, instruction = PHASES[index]
            self.say(
                f"liverig: face calibration {index + 1}/{len(PHASES)} ({self.phase_s:g} s): {instruction}"
            )
        if scores is not None:
            self.collected[PHASES[index][0]].append(dict(scores))

    def unfinished(self) -> str | None:
        """The phase the source ended in, if it ended before the last one was through."""
        if self.done:
            return None
        return PHASES[max(self._announced, 0)][0]
