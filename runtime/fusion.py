"""Mouth fusion: the face part's mouth (camera) and the voice part's (microphone) into one.

Audio leads on timing and on open/close: while the voice is heard, how far the jaw opens and when
the lips close (p, b, m) follow the audio (weight `timing`), because a camera at 30 fps blurs fast
consonants and misses mumbling. The face leads on shape: which vowel the lips make is blended from
the face (weight `shape`) and the audio's classifier, and every mouth movement the audio does not
know (smiles, frowns, a silent open mouth) is the face's alone. While the voice is silent the face's
mouth passes unchanged.

Drop-outs: no face this frame (the face part wrote no mouth key: lost, or not running) -> the
voice's mouth alone; no voice (no audio part, or the microphone is lost) -> the face's mouth alone;
neither -> the voice part (runtime/voice.py) closes the mouth.
"""

from __future__ import annotations

VOWELS = ("A", "I", "U", "E", "O")
TIMING_KEYS = ("jawOpen", "mouthClose")  # open/close: the audio's
SHAPE_KEYS = ("mouthFunnel", "mouthPucker")  # lip shape: blended
VOICE_KEYS = VOWELS + TIMING_KEYS + SHAPE_KEYS


def fuse_mouth(
    face: dict[str, float],
    voice: dict[str, float] | None,
    speaking: bool,
    timing: float = 0.8,
    shape: float = 0.5,
) -> dict[str, float]:
    """The expressions after fusion: `face` (everything the face part wrote, any keys) with the
    mouth keys of `voice` (VOICE_KEYS, or None when there is no voice) fused in. Pure: neither dict
    is changed. `timing` (0..1): the audio's share of open/close while speaking; `shape` (0..1): the
    face's share of the lips' shape while speaking."""
    out = dict(face)
    if voice is None:
        return out
    face_has_mouth = any(key in face for key in VOICE_KEYS)
    if not face_has_mouth:
        out.update({key: float(voice.get(key, 0.0)) for key in VOICE_KEYS})
        return out
    if not speaking:
        return out  # silent: the face's own mouth (smiles, a silent open mouth) as it is
    for key in TIMING_KEYS:
        out[key] = timing * voice.get(key, 0.0) + (1 - timing) * face.get(key, 0.0)
    for key in SHAPE_KEYS:
        out[key] = shape * face.get(key, 0.0) + (1 - shape) * voice.get(key, 0.0)
    # VRM vowels: how much the mouth is open (their sum) by the timing weight, which vowel by the
    # shape weight (the face's proportions when it shows a vowel at all, else the audio's).
    voice_total = sum(voice.get(k, 0.0) for k in VOWELS)
    face_total = sum(face.get(k, 0.0) for k in VOWELS)
    total = timing * voice_total + (1 - timing) * face_total
    for k in VOWELS:
        voice_share = voice.get(k, 0.0) / voice_total if voice_total > 1e-6 else 0.0
        face_share = face.get(k, 0.0) / face_total if face_total > 0.05 else voice_share
        out[k] = total * (shape * face_share + (1 - shape) * voice_share)
    return {
        key: min(1.0, max(0.0, float(value))) if key in VOICE_KEYS else value for key, value in out.items()
    }
