"""From the face model's 52 blendshape scores to what avatars read: smoothed ARKit (Perfect Sync)
values, blinks that stay blinks, and the VRM presets derived from them.

Kept free of MediaPipe so that the logic is testable with plain numbers (tests/test_face.py feeds a
synthetic 100 ms blink through it) and reusable by other parts (the voice part fuses its mouth
shapes with these).

Why the blinks are treated apart: a blink lasts 100-150 ms, three to four frames at 30 fps. Any
low-pass filter that calms the other shapes (One Euro at a few hertz) takes half of that to rise,
so the eyes would never close on the avatar. The face model's raw blink score also tops out well
below 1 on real closed eyes (0.5-0.7 measured on the carphone clip's blinks), so it is mapped
through a per-eye open/closed range and a hysteresis latch: once the score crosses `on`, the eye
counts as shut (value 1) until the score falls below `off`.

Left and right are the PERSON's (ARKit's convention). MediaPipe's blendshape names follow it too:
checked on real frames by pasting one eye of a closed-eyes frame into the previous, open-eyes frame
of the carphone clip: the eye on the image's right (the person's left) raised `eyeBlinkLeft`
(0.46 vs 0.18), the other one `eyeBlinkRight` (0.51 vs 0.09); tests/test_face.py repeats this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liverig.runtime.ease import smoothstep
from liverig.runtime.one_euro import OneEuroFilter

# The 52 ARKit blendshapes in Apple's order (Perfect Sync names). The face model scores all but
# tongueOut (it has a "_neutral" category instead), so tongueOut is never sent.
ARKIT_NAMES: tuple[str, ...] = tuple(
    (
        "eyeBlinkLeft eyeLookDownLeft eyeLookInLeft eyeLookOutLeft eyeLookUpLeft eyeSquintLeft eyeWideLeft "
        "eyeBlinkRight eyeLookDownRight eyeLookInRight eyeLookOutRight eyeLookUpRight eyeSquintRight "
        "eyeWideRight jawForward jawLeft jawRight jawOpen mouthClose mouthFunnel mouthPucker mouthLeft "
        "mouthRight mouthSmileLeft mouthSmileRight mouthFrownLeft mouthFrownRight mouthDimpleLeft "
        "mouthDimpleRight mouthStretchLeft mouthStretchRight mouthRollLower mouthRollUpper "
        "mouthShrugLower mouthShrugUpper mouthPressLeft mouthPressRight mouthLowerDownLeft "
        "mouthLowerDownRight mouthUpperUpLeft mouthUpperUpRight browDownLeft browDownRight browInnerUp "
        "browOuterUpLeft browOuterUpRight cheekPuff cheekSquintLeft cheekSquintRight noseSneerLeft "
        "noseSneerRight tongueOut"
    ).split()
)
MODEL_NAMES: tuple[str, ...] = tuple(name for name in ARKIT_NAMES if name != "tongueOut")
BLINKS = ("eyeBlinkLeft", "eyeBlinkRight")
# VRM presets, VRM 0.x spelling (VRM 1.0 names are mapped per rig: configs/rigs/vrm1.yaml).
VRM_PRESETS: tuple[str, ...] = (
    "Blink",
    "Blink_L",
    "Blink_R",
    "A",
    "I",
    "U",
    "E",
    "O",
    "Joy",
    "Angry",
    "Sorrow",
    "Fun",
    "Surprised",
    "Neutral",
    "LookUp",
    "LookDown",
    "LookLeft",
    "LookRight",
)


@dataclass
class BlinkSettings:
    """Per-eye mapping of the raw blink score: `open` maps to 0, `closed` to 1; the latch shuts at
    `on` and opens again below `off` (on > off: hysteresis, no chatter). Blinks are made with both
    eyes: when one eye latches, the other latches too if its own score is at least `link` (a wink
    leaves the open eye near 0.1-0.2; a real blink's slower eye is often just under `on`)."""

    open: float = 0.15
    closed: float = 0.5
    on: float = 0.4
    off: float = 0.25
    link: float = 0.3


class BlinkLatch:
    """One eye: the raw score mapped to 0..1, held at 1 while the latch is shut. Unfiltered in time,
    so a blink of one frame is sent in that frame.

    `sparse`: the face was last looked at long ago (the scheduler runs it at a reduced rate): a blink
    is then seen in one sample or not at all, often on its way in or out, so the eye latches from
    `link` (what the slower eye of a real blink reaches) instead of `on`."""

    def __init__(self, settings: BlinkSettings) -> None:
        self.settings = settings
        self.shut = False
        self.raw = 0.0  # the last raw score

    def reset(self) -> None:
        self.shut = False
        self.raw = 0.0

    def closing(self, raw: float) -> bool:
        """The eye is on its way shut (above the open level and rising since the last sample, not yet
        latched): what the scheduler looks again for on the next frame (`FacePart.urgent`)."""
        return not self.shut and raw >= self.settings.open and raw > self.raw + CLOSING_RISE

    def __call__(self, raw: float, other_shut: bool = False, sparse: bool = False) -> float:
        """This frame's value from the raw score; `other_shut`: the other eye latched this frame."""
        s = self.settings
        on = min(s.on, s.link) if sparse else s.on
        self.raw = raw
        if self.shut and raw < s.off:
            self.shut = False
        elif not self.shut and (raw >= on or (other_shut and raw >= s.link)):
            self.shut = True
        if self.shut:
            return 1.0
        return float(np.clip((raw - s.open) / max(s.closed - s.open, 1e-6), 0.0, 1.0))


# A raw blink score that rose by more than this since the last sample: the eye is closing.
CLOSING_RISE = 0.03
# Samples further apart than this (the scheduler runs the face below 20 Hz) are sparse: BlinkLatch.
SPARSE_GAP_S = 0.05


def _clip(x: float) -> float:
    return float(min(max(x, 0.0), 1.0))


def vrm_presets(arkit: dict[str, float]) -> dict[str, float]:
    """VRM presets from (already blink-mapped) ARKit values. Blink is what both eyes share;
    Blink_L/R only the rest, so an avatar with all three never closes an eye twice over."""
    g = arkit.get
    left, right = g("eyeBlinkLeft", 0.0), g("eyeBlinkRight", 0.0)
    both = min(left, right)
    out = {"Blink": both, "Blink_L": left - both, "Blink_R": right - both}
    # Mouth vowels from the mouth's shape: open (jaw), rounded (funnel, pucker), spread (stretch, smile).
    jaw = g("jawOpen", 0.0)
    funnel, pucker = g("mouthFunnel", 0.0), g("mouthPucker", 0.0)
    stretch = 0.5 * (g("mouthStretchLeft", 0.0) + g("mouthStretchRight", 0.0))
    smile = 0.5 * (g("mouthSmileLeft", 0.0) + g("mouthSmileRight", 0.0))
    spread = _clip(2.0 * stretch + smile)
    rounded = max(funnel, pucker)
    opening = _clip(1.6 * jaw)
    vowels = {
        "A": opening * (1.0 - rounded) * (1.0 - 0.5 * spread),
        "I": (1.0 - opening) * spread * (1.0 - rounded),
        "U": (1.0 - opening) * _clip(1.5 * pucker),
        "E": 4.0 * opening * (1.0 - opening) * spread * (1.0 - rounded),
        "O": _clip(1.5 * funnel) * _clip(0.3 + opening),
    }
    total = sum(vowels.values())
    scale = 1.0 / total if total > 1.0 else 1.0  # the mouth makes one vowel at full strength at most
    out |= {name: _clip(value * scale) for name, value in vowels.items()}
    # Emotions: a small dead zone keeps a resting face neutral.
    squint = 0.5 * (g("eyeSquintLeft", 0.0) + g("eyeSquintRight", 0.0))
    cheek = 0.5 * (g("cheekSquintLeft", 0.0) + g("cheekSquintRight", 0.0))
    frown = 0.5 * (g("mouthFrownLeft", 0.0) + g("mouthFrownRight", 0.0))
    brow_down = 0.5 * (g("browDownLeft", 0.0) + g("browDownRight", 0.0))
    wide = 0.5 * (g("eyeWideLeft", 0.0) + g("eyeWideRight", 0.0))

    def emotion(x: float) -> float:
        return _clip((x - 0.2) / 0.6)

    happy = emotion(smile)
    crinkled = _clip(max(squint, cheek) * 2.0)  # a Duchenne smile narrows the eyes: Joy, else Fun
    out["Joy"] = happy * crinkled
    out["Fun"] = happy * (1.0 - crinkled)
    out["Angry"] = emotion(brow_down + 0.5 * g("noseSneerLeft", 0.0) + 0.5 * g("noseSneerRight", 0.0)) * (
        1.0 - happy
    )
    out["Sorrow"] = emotion(frown + 0.5 * g("browInnerUp", 0.0)) * (1.0 - happy)
    # (not from the jaw: talking opens it all the time)
    out["Surprised"] = emotion(0.6 * wide + 0.6 * g("browInnerUp", 0.0)) * (1.0 - happy)
    out["Neutral"] = 1.0 - max(out["Joy"], out["Fun"], out["Angry"], out["Sorrow"], out["Surprised"])
    # Gaze, the person's left/right: the left eye looks out and the right eye in when looking left.
    up = 0.5 * (g("eyeLookUpLeft", 0.0) + g("eyeLookUpRight", 0.0))
    down = 0.5 * (g("eyeLookDownLeft", 0.0) + g("eyeLookDownRight", 0.0))
    look_left = 0.5 * (g("eyeLookOutLeft", 0.0) + g("eyeLookInRight", 0.0))
    look_right = 0.5 * (g("eyeLookInLeft", 0.0) + g("eyeLookOutRight", 0.0))
    out["LookUp"], out["LookDown"] = _clip(up - down), _clip(down - up)
    out["LookLeft"], out["LookRight"] = _clip(look_left - look_right), _clip(look_right - look_left)
    return {name: _clip(value) for name, value in out.items()}


class ExpressionFilter:
    """Raw scores → smoothed ARKit values + VRM presets, every frame.

    Blinks: latch per eye, no time filter. Everything else: a light One Euro (a few hertz at rest,
    faster when the shape moves, so a mouth opening arrives within a frame or so). When the face is
    lost, `lost(t)` eases every value to neutral (0, Neutral 1) over `lost_ease_s`.
    """

    def __init__(
        self,
        blink: BlinkSettings | dict[str, BlinkSettings] | None = None,
        min_cutoff: float = 3.0,
        beta: float = 5.0,
        lost_ease_s: float = 0.3,
        normalise=None,
    ) -> None:
        """`blink`: one setting for both eyes, or one per eye ({"eyeBlinkLeft": ..., ...}: a face
        calibration); `normalise(scores) -> scores`: a calibration's neutral baselines, if any."""
        blink = blink or BlinkSettings()
        per_eye = blink if isinstance(blink, dict) else {name: blink for name in BLINKS}
        self._latches = {name: BlinkLatch(per_eye[name]) for name in BLINKS}
        self._normalise = normalise
        self._others = [name for name in MODEL_NAMES if name not in BLINKS]
        self._filter = OneEuroFilter(min_cutoff=min_cutoff, beta=beta, d_cutoff=1.0)
        self._lost_ease_s = lost_ease_s
        self.reset()

    def reset(self) -> None:
        for latch in self._latches.values():
            latch.reset()
        self._filter.reset()
        self._last: dict[str, float] = {}
        self._lost_since: float | None = None
        self._time: float | None = None  # when the last scores came
        self.closing = False  # an eye was on its way shut at the last scores (BlinkLatch.closing)
        self.just_shut = False  # an eye latched shut at the last scores

    def __call__(self, scores: dict[str, float], t: float) -> dict[str, float]:
        """This frame's expressions from the model's scores (names as MODEL_NAMES; missing: 0)."""
        if self._normalise is not None:
            scores = self._normalise(scores)
        raw = np.array([scores.get(name, 0.0) for name in self._others], dtype=np.float64)
        raw = np.clip(np.nan_to_num(raw, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        if self._lost_since is not None:  # a face after a gap: start afresh, no glide from stale values
            self._filter.reset()
        smooth = np.clip(self._filter(raw, t), 0.0, 1.0)
        arkit = {name: float(v) for name, v in zip(self._others, smooth, strict=True)}
        raws = {}
        for name in BLINKS:
            value = float(scores.get(name, 0.0))
            raws[name] = value if np.isfinite(value) else 0.0
        left, right = self._latches["eyeBlinkLeft"], self._latches["eyeBlinkRight"]
        sparse = self._time is not None and t - self._time > SPARSE_GAP_S
        self.closing = any(self._latches[name].closing(raws[name]) for name in BLINKS)
        was_shut = left.shut or right.shut
        arkit["eyeBlinkLeft"] = left(raws["eyeBlinkLeft"], sparse=sparse)
        arkit["eyeBlinkRight"] = right(raws["eyeBlinkRight"], other_shut=left.shut, sparse=sparse)
        if right.shut and not left.shut:  # the right eye went first: the left may follow it
            arkit["eyeBlinkLeft"] = left(raws["eyeBlinkLeft"], other_shut=True, sparse=sparse)
        self.just_shut = not was_shut and (left.shut or right.shut)
        self._last = arkit | vrm_presets(arkit)
        self._lost_since = None
        self._time = t
        return dict(self._last)

    def lost(self, t: float) -> dict[str, float]:
        """No face this frame: the last values eased towards neutral, then held there (all 0, Neutral
        1: receivers keep the last value they got, so neutral must be sent); {} if no face was seen yet."""
        if not self._last:
            return {}
        if self._lost_since is None:
            self._lost_since = t
            for latch in self._latches.values():
                latch.reset()
        fade = 1.0 - float(smoothstep((t - self._lost_since) / self._lost_ease_s))
        out = {name: value * fade for name, value in self._last.items()}
        out["Neutral"] = 1.0 - fade * (1.0 - self._last.get("Neutral", 1.0))
        return out
