"""The voice part: audio -> lip sync -> the mouth in `pose.expressions` (runtime/parts.py seam).

Each video frame it takes the audio that arrived since the last frame (the frame's own, from an
audio-only source, or the newest samples of the `--audio` input's ring buffer), runs every 10 ms
hop through the lip sync (runtime/lipsync.py) and writes the last hop's mouth: VRM A I U E O and
ARKit jawOpen, mouthFunnel, mouthPucker, mouthClose, fused with whatever mouth the face part
wrote this frame (runtime/fusion.py, `voice.fusion`). What it heard goes to
`observation.extras["voice"]` (a VoiceState) for the parts after it (the audio-only avatar,
runtime/alive.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liverig.core.config import VoiceConfig
from liverig.core.types import Frame, Observation, Pose
from liverig.runtime.fusion import VOICE_KEYS, fuse_mouth
from liverig.runtime.lipsync import DEFAULT_WEIGHTS, LipSync, VisemeModel, closed_mouth
from liverig.runtime.voice_profile import VoiceProfile, load_profile

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DROPOUT_FRAMES = 5  # this many frames without audio: the voice counts as gone (fusion: face alone)


@dataclass
class VoiceState:
    """What the voice part heard on one frame (Observation.extras["voice"])."""

    speaking: bool
    loudness_db: float
    floor_db: float
    openness: float  # 0..1, the newest hop's
    viseme: str
    pitch_hz: float  # 0 when unvoiced or silent
    hops: int  # hops processed this frame
    present: bool  # audio is arriving (False: no samples for DROPOUT_FRAMES frames, or the mic is lost)


def load_viseme_model(weights: str | None) -> VisemeModel:
    """The classifier's weights (`voice.weights`: relative to the project root, or absolute)."""
    path = DEFAULT_WEIGHTS if not weights else Path(weights)
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    return VisemeModel.load(path)


class VoicePart:
    name = "voice"

    def __init__(
        self,
        config: VoiceConfig,
        audio=None,
        model: VisemeModel | None = None,
        profile: VoiceProfile | None = None,
    ) -> None:
        """`audio`: the `--audio` input (runtime/audio.py), started here; None when the frames carry
        their own audio (an audio-only source). `profile`: the speaker's calibration
        (`voice.calibration`, runtime/voice_profile.py), read from the config when not given."""
        if profile is None and config.calibration:
            profile = load_profile(config.calibration)
        self.config = config
        self.audio = audio
        self.lipsync = LipSync(
            model if model is not None else load_viseme_model(config.weights),
            vad_mode=config.vad_mode,
            margin_db=config.margin_db,
            loud_range_db=config.loud_range_db,
            attack_s=config.attack_s,
            release_s=config.release_s,
            hangover_hops=max(0, round(config.hangover_s / 0.01)),
            trial_hops=round(config.trial_s / 0.01),
            onset_quiet_hops=max(1, round(config.onset_pause_s / 0.01)),
            profile=profile,
        )
        if audio is not None:
            audio.start()
        self.reset()

    def reset(self) -> None:
        self.lipsync.reset()
        self._mouth = closed_mouth()
        self._quiet_frames = DROPOUT_FRAMES
        self._last = None

    def __call__(self, frame: Frame, observation: Observation, pose: Pose) -> None:
        samples = frame.audio if frame.audio is not None else (self.audio.take() if self.audio else None)
        results = self.lipsync.feed(samples) if samples is not None and len(samples) else []
        lost = bool(getattr(self.audio, "lost", False))
        self._quiet_frames = 0 if results else self._quiet_frames + 1
        present = not lost and self._quiet_frames < DROPOUT_FRAMES
        if results:
            self._last = results[-1]
            self._mouth = dict(results[-1].expressions)
        elif not present:
            self._mouth = closed_mouth()
        last = self._last
        speaking = bool(present and last is not None and last.speaking)
        observation.extras[self.name] = VoiceState(
            speaking=speaking,
            loudness_db=last.loudness_db if last else -100.0,
            floor_db=last.floor_db if last else -100.0,
            openness=last.openness if last and present else 0.0,
            viseme=last.viseme if last and present else "silence",
            pitch_hz=last.pitch_hz if last and present else 0.0,
            hops=len(results),
            present=present,
        )
        fusion = self.config.fusion
        voice = {k: float(np.clip(self._mouth[k], 0.0, 1.0)) for k in VOICE_KEYS} if present else None
        face_only = voice is None and not any(k in pose.expressions for k in VOICE_KEYS)
        if face_only:  # neither: the voice's closed mouth rather than nothing (it was the only source)
            voice = closed_mouth()
        pose.expressions = fuse_mouth(pose.expressions, voice, speaking, fusion.timing, fusion.shape)
        pose.timing.mark(self.name)

    def close(self) -> None:
        if self.audio is not None:
            self.audio.close()
