"""The audio-only avatar: with no camera it still lives (a part after the voice part, runtime/parts.py).

    breathing       the chest and spine rise and fall (3.5..5 s, irregular)
    blinks          at natural, random intervals (mean `voice.alive.blink_interval_s`, some doubles):
                    VRM Blink/Blink_L/Blink_R and ARKit eyeBlinkLeft/Right
    head            nods on the voice's stressed syllables (loudness onsets), a little higher with a
                    higher pitch, slow tilts and turns that grow while speaking
    gaze            saccades to a new point every 1..4 s (more often while silent), the eye bones
    sway            a little upper-body sway

Every slow motion is a sum of sines with incommensurate, seeded random frequencies and phases: smooth
and never a visible loop; every random event comes from one seeded generator, so the same seed and the
same audio give the same motion (deterministic tests). Written as `pose.bone_rotations` (Head, Neck,
Chest, Spine, LeftEye, RightEye: turns from rest, canonical axes) and `pose.expressions`. The body's
motion stage, seeing nobody, holds the rest pose; this part marks the pose as tracking (the avatar is
driven, by the voice).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from liverig.core.config import AliveConfig
from liverig.core.types import Frame, Observation, Pose


class SmoothNoise:
    """A smooth, non-repeating signal in about [-1, 1]: sines at seeded random frequencies."""

    def __init__(self, rng: np.random.Generator, low_hz: float, high_hz: float, count: int = 3) -> None:
        self.freqs = rng.uniform(low_hz, high_hz, count)
        self.phases = rng.uniform(0, 2 * np.pi, count)
        self.weights = rng.uniform(0.5, 1.0, count)
        self.weights /= self.weights.sum()

    def __call__(self, t: float) -> float:
        return float(np.sum(self.weights * np.sin(2 * np.pi * self.freqs * t + self.phases)))


class Spring:
    """A critically damped spring: follows its target smoothly (no overshoot), `time_s` to settle.

    Stepped by the exact solution over `dt` (the target held constant), not by Euler steps: an Euler
    step is unstable once omega * dt passes about 1, which the eyes' 60 ms spring does at 30 fps
    (omega * dt = 2.2: the eyes spun and then went NaN after a few seconds of an audio-only run)."""

    def __init__(self, time_s: float) -> None:
        self.omega = 4.0 / time_s
        self.value = 0.0
        self.velocity = 0.0

    def __call__(self, target: float, dt: float) -> float:
        dt = min(max(dt, 0.0), 0.1)
        offset = self.value - target
        c = self.velocity + self.omega * offset
        decay = float(np.exp(-self.omega * dt))
        self.value = target + (offset + c * dt) * decay
        self.velocity = (self.velocity - self.omega * c * dt) * decay
        return self.value


def _quat(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """A turn in canonical axes (+X the person's left, +Y up, +Z forward): pitch about X (positive
    nods down), yaw about Y (positive turns to the person's left), roll about Z."""
    return Rotation.from_euler("XYZ", [pitch_deg, yaw_deg, roll_deg], degrees=True).as_quat()


class AlivePart:
    name = "alive"

    def __init__(self, config: AliveConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.config.seed)
        rng = self.rng
        self._breath = SmoothNoise(rng, 0.2, 0.28, 2)
        self._sway = [SmoothNoise(rng, 0.03, 0.12) for _ in range(3)]
        self._head = [SmoothNoise(rng, 0.04, 0.2) for _ in range(3)]
        self._springs = {
            k: Spring(s)
            for k, s in (("nod", 0.25), ("pitch", 0.6), ("eyes_x", 0.06), ("eyes_y", 0.06), ("energy", 0.8))
        }
        self._time: float | None = None
        self._next_blink = self._blink_gap()
        self._blink_start = -10.0
        self._double = False
        self._next_saccade = 0.5
        self._gaze = (0.0, 0.0)
        self._nod_target = 0.0
        self._last_loud = -100.0
        self._last_onset = -10.0
        self._pitch_mean = 0.0

    def _blink_gap(self) -> float:
        """Natural blink intervals: a gamma distribution (shape 3) around the mean, at least 1 s."""
        mean = self.config.blink_interval_s
        return max(1.0, float(self.rng.gamma(3.0, mean / 3.0)))

    def __call__(self, frame: Frame, observation: Observation, pose: Pose) -> None:
        t = frame.time_s
        dt = 1 / 30 if self._time is None else t - self._time
        self._time = t
        voice = observation.extras.get("voice")
        speaking = bool(voice is not None and voice.speaking)
        springs = self._springs
        energy = springs["energy"](1.0 if speaking else 0.0, dt)
        gain = self.config.head_gain

        # Nods: a stressed syllable (loudness jumping 6 dB above the last hop heard) dips the head.
        if (
            voice is not None
            and speaking
            and voice.loudness_db > self._last_loud + 6
            and t - self._last_onset > 0.25
        ):
            self._last_onset = t
            self._nod_target = float(np.clip((voice.loudness_db - voice.floor_db) / 30, 0.3, 1.0)) * 4.0
        if voice is not None:
            self._last_loud = voice.loudness_db if speaking else -100.0
        if t - self._last_onset > 0.15:
            self._nod_target = 0.0
        nod = springs["nod"](self._nod_target, dt)
        # Pitch: a higher voice than the speaker's running average lifts the chin a little.
        pitch_up = 0.0
        if voice is not None and voice.pitch_hz > 0:
            self._pitch_mean = (
                voice.pitch_hz if self._pitch_mean == 0 else 0.98 * self._pitch_mean + 0.02 * voice.pitch_hz
            )
            pitch_up = float(np.clip(np.log2(voice.pitch_hz / self._pitch_mean) * 12, -4, 4))
        lift = springs["pitch"](pitch_up, dt)
        amplitude = 1.5 + 2.5 * energy  # degrees: calm when silent, livelier while speaking
        head = _quat(
            gain * (nod - lift + amplitude * 0.6 * self._head[0](t)),
            gain * amplitude * 1.5 * self._head[1](t),
            gain * amplitude * self._head[2](t),
        )
        neck = _quat(gain * 0.4 * (nod - lift), gain * amplitude * 0.5 * self._head[1](t), 0.0)

        # Breathing and sway.
        breath = self._breath(t)
        chest = _quat(-1.2 * breath, 0.0, 0.0)
        spine = _quat(-0.5 * breath + 0.8 * self._sway[0](t), 1.5 * self._sway[1](t), 1.2 * self._sway[2](t))

        # Gaze: saccades to a new point, often back towards the camera while speaking.
        if t >= self._next_saccade:
            spread = 4.0 if speaking else 9.0
            self._gaze = (float(self.rng.normal(0, spread * 0.5)), float(self.rng.normal(0, spread)))
            self._next_saccade = t + float(self.rng.uniform(1.0, 4.0 if speaking else 2.5))
        eye_pitch = springs["eyes_y"](self._gaze[0], dt)
        eye_yaw = springs["eyes_x"](self._gaze[1], dt)
        eyes = _quat(eye_pitch, eye_yaw, 0.0)

        pose.bone_rotations.update(
            {
                "Head": head,
                "Neck": neck,
                "Chest": chest,
                "Spine": spine,
                "LeftEye": eyes,
                "RightEye": eyes.copy(),
            }
        )
        blink = self._blink(t)
        pose.expressions.update(
            {"Blink": blink, "Blink_L": 0.0, "Blink_R": 0.0, "eyeBlinkLeft": blink, "eyeBlinkRight": blink}
        )
        pose.present = True  # driven by the voice: tracking, not lost
        observation.extras[self.name] = {"breath": breath, "blink": blink, "nod_deg": nod}
        pose.timing.mark(self.name)

    def _blink(self, t: float) -> float:
        """0..1: closes in 60 ms, opens in 100 ms; the next blink is drawn when one starts."""
        if t >= self._next_blink:
            self._blink_start = t
            self._double = not self._double and self.rng.random() < 0.1
            self._next_blink = t + (0.25 if self._double else self._blink_gap())
        since = t - self._blink_start
        if since < 0.06:
            return float(since / 0.06)
        if since < 0.16:
            return float(1 - (since - 0.06) / 0.1)
        return 0.0

    def close(self) -> None:
        pass
