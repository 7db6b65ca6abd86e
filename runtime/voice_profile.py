"""A speaker's vowel profile: what `run_node.py calibrate voice` measured, as the lip sync uses it.

The shipped viseme classifier (runtime/lipsync.py) was trained on a handful of speakers; a new
voice's vowels sit elsewhere in MFCC space (another vocal tract, another microphone and room), so it
confuses them (docs/voice.md: I, U and O are mostly called E or A). A profile holds one speaker's own
statistics, measured from a short recording of them saying A, I, U, E, O after a few seconds of
silence (calibration/voice.py):

- `silence_db`: the room's level through that microphone: the noise floor is never taken below it
  (minus `FLOOR_SLACK_DB`), so a noise gate's digital silence between words does not drop the floor
  and let the room's own noise open the mouth afterwards;
- `vowels`: each vowel's mean cepstrum (MFCC 1..12 averaged over the context the classifier sees;
  c0, the loudness, is left out) and `spread`, the pooled within-vowel standard deviation: a
  Gaussian template per vowel (the idea of uLipSync's per-user MFCC templates). While the gate says
  speech, the classifier's vowel share is re-divided between A..O by the product of its own vowel
  probabilities and the templates' (`weight` the templates' exponent): the classifier still decides
  silence, closed lips and consonants, the user's templates mostly which vowel.

The file is YAML, a regular file read with the project's size and depth limits; any problem is one
line naming the file and key (`VoiceProfileError`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from liverig.core.safe_io import read_yaml_file

VOWELS = ("A", "I", "U", "E", "O")
CEPSTRA = slice(1, 13)  # MFCC 1..12: the vocal tract's shape; c0 (loudness) is left out
FLOOR_SLACK_DB = 3.0  # the noise floor may sit this far below the calibrated silence


class VoiceProfileError(ValueError):
    """A voice profile that cannot be made or read; the message is one line."""


class VoiceProfile(BaseModel):
    """One speaker's statistics (the file's contents)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    silence_db: float = Field(ge=-120, le=0)  # the room's loudness (dBFS per 10 ms hop, median)
    voice_db: float = Field(ge=-120, le=0)  # the vowels' loudness (median), for the record
    vowels: dict[str, list[float]]  # per vowel: mean MFCC 1..12
    spread: list[float]  # pooled within-vowel standard deviation of MFCC 1..12
    weight: float = Field(1.0, ge=0, le=4)  # how much the templates count against the classifier
    hops: dict[str, int] = Field(default_factory=dict)  # hops measured per phase

    @field_validator("vowels")
    @classmethod
    def _five_vowels(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        if set(value) != set(VOWELS):
            raise ValueError(f"needs exactly {', '.join(VOWELS)}")
        for name, mean in value.items():
            if len(mean) != CEPSTRA.stop - CEPSTRA.start:
                raise ValueError(f"{name}: needs {CEPSTRA.stop - CEPSTRA.start} numbers, got {len(mean)}")
        return value

    @field_validator("spread")
    @classmethod
    def _positive_spread(cls, value: list[float]) -> list[float]:
        if len(value) != CEPSTRA.stop - CEPSTRA.start or min(value) <= 0:
            raise ValueError(f"needs {CEPSTRA.stop - CEPSTRA.start} positive numbers")
        return value

    def templates(self) -> VowelTemplates:
        return VowelTemplates(
            np.array([self.vowels[v] for v in VOWELS], dtype=np.float64),
            np.array(self.spread, dtype=np.float64),
            self.weight,
        )


class VowelTemplates:
    """The profile's Gaussian vowel templates, ready for one call per hop."""

    def __init__(self, means: np.ndarray, spread: np.ndarray, weight: float) -> None:
        self.means = means / spread  # (5, 12), in units of the spread
        self.spread = spread
        self.weight = weight

    def log_likelihoods(self, mfcc: np.ndarray) -> np.ndarray:
        """(…, N_MFCC) cepstra -> (…, 5) log-likelihoods of A, I, U, E, O (up to a constant)."""
        x = mfcc[..., CEPSTRA] / self.spread
        return -0.5 * ((x[..., None, :] - self.means) ** 2).sum(axis=-1)

    def adapt(self, probabilities: np.ndarray, mfcc: np.ndarray) -> np.ndarray:
        """Class probabilities (CLASSES order: silence, A, I, U, E, O, closed, other) with the vowels'
        share re-divided by the templates: p(vowel) ∝ p_classifier(vowel) x p_template(vowel)^weight,
        their sum unchanged."""
        vowels = probabilities[1:6]
        mass = float(vowels.sum())
        log = np.log(np.maximum(vowels, 1e-9)) + self.weight * self.log_likelihoods(mfcc)
        share = np.exp(log - log.max())
        out = probabilities.copy()
        out[1:6] = mass * share / share.sum()
        return out


def save_profile(path: str | Path, profile: VoiceProfile) -> None:
    data = profile.model_dump()
    data["silence_db"] = round(data["silence_db"], 2)
    data["voice_db"] = round(data["voice_db"], 2)
    data["vowels"] = {k: [round(v, 4) for v in mean] for k, mean in data["vowels"].items()}
    data["spread"] = [round(v, 4) for v in data["spread"]]
    header = "# liverig voice profile (run_node.py calibrate voice); use: voice.calibration\n"
    Path(path).write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def load_profile(path: str | Path) -> VoiceProfile:
    """A profile file; any problem is a one-line VoiceProfileError naming the file (and key)."""
    data = read_yaml_file(path, "voice profile", VoiceProfileError)
    try:
        return VoiceProfile.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise VoiceProfileError(f"voice profile {path}: key '{key}': {first['msg']}") from None
