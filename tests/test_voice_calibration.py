"""Per-speaker vowel calibration (`run_node.py calibrate voice`, calibration/voice.py) as a user runs
it, on real speech: a recording made of the phases the calibration prompts for (2 s of the room,
then A, I, U, E, O held 1.5 s each), assembled from one LibriVox reader's force-aligned vowels
(models/training/voice_data.py, pinned downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from liverig.calibration.voice import context_cepstra
from liverig.models.training.voice_data import load_clips
from liverig.runtime.lipsync import CLASSES, HOP, SAMPLE_RATE, LipSync, features_of
from liverig.runtime.voice_profile import VOWELS, load_profile
from tests.node_support import run_node

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SILENCE_S, VOWEL_S = 2.0, 1.5


def phases_recording(path: Path) -> dict[str, np.ndarray]:
    """Writes the calibration recording; returns each phase's audio."""
    clips = [c for c in load_clips() if c.group == "librivox"]
    room = clips[0].audio[: 10 * HOP]  # the recording's own room tone, before the first word
    phases = {"silence": np.tile(room, int(SILENCE_S * SAMPLE_RATE) // len(room))}
    for vowel in VOWELS:
        hops = [
            c.audio[t * HOP : (t + 1) * HOP]
            for c in clips
            for t in np.flatnonzero(c.labels == CLASSES.index(vowel))
        ]
        sound = np.concatenate(hops)
        count = int(VOWEL_S * SAMPLE_RATE)
        phases[vowel] = np.tile(sound, int(np.ceil(count / len(sound))))[:count]
    soundfile.write(path, np.concatenate(list(phases.values())), SAMPLE_RATE)
    return phases


def test_calibrate_voice_from_a_recording_writes_a_profile_the_node_uses(tmp_path):
    recording, out = tmp_path / "me.wav", tmp_path / "me.yaml"
    phases = phases_recording(recording)
    result = run_node("calibrate", "voice", out, "--source", f"audio:{recording}")
    assert result.returncode == 0, result.stderr
    assert "wrote voice profile" in result.stderr and "voice.calibration" in result.stderr
    profile = load_profile(out)
    room_db = 10 * np.log10(np.mean(phases["silence"] ** 2))
    assert abs(profile.silence_db - room_db) < 6, (profile.silence_db, room_db)
    assert profile.voice_db > profile.silence_db + 15
    assert all(profile.hops[v] >= 100 for v in VOWELS), profile.hops
    # The templates tell this speaker's vowels apart: each phase's hops go mostly to their own vowel
    # (chance: 1 in 5).
    templates = profile.templates()
    for index, vowel in enumerate(VOWELS):
        mfcc, _ = features_of(phases[vowel])
        picked = templates.log_likelihoods(context_cepstra(mfcc)[5:]).argmax(axis=1)
        assert np.mean(picked == index) > 0.5, (vowel, np.bincount(picked, minlength=5))
    # An existing profile is replaced only with --overwrite.
    before = out.read_text()
    again = run_node("calibrate", "voice", out, "--source", f"audio:{recording}")
    assert again.returncode == 2 and "--overwrite" in again.stderr and out.read_text() == before
    assert (
        run_node("calibrate", "voice", out, "--source", f"audio:{recording}", "--overwrite").returncode == 0
    )
    # The lip sync with the profile: the same gate, the vowels re-divided by the speaker's templates.
    speech, _ = soundfile.read(FIXTURES / "speech_librivox_0880.wav", dtype="float32")
    plain = LipSync().feed(speech)
    tuned = LipSync(profile=profile).feed(speech)
    # The floor never drops below the calibrated room, so the profile can only close hops, not open
    # them; most of the speech still opens the mouth.
    before = np.array([r.speaking for r in plain])
    after = np.array([r.speaking for r in tuned])
    assert not np.any(after & ~before) and after.sum() > 0.8 * before.sum() > 0
    assert all(r.floor_db >= profile.silence_db - 3.0 - 1e-6 for r in tuned)
    shapes = np.array([[r.expressions[v] for v in VOWELS] for r in tuned])
    assert np.all(np.isfinite(shapes)) and shapes.max() > 0.3
    assert not np.allclose(shapes, [[r.expressions[v] for v in VOWELS] for r in plain])
    # ... and through the node, from the config key.
    config = tmp_path / "voice.yaml"
    config.write_text(f"voice: {{calibration: {out}}}\nsource: {{realtime: false}}\n")
    node = run_node(
        "--config",
        config,
        "--source",
        f"audio:{FIXTURES / 'speech_librivox_0880.wav'}",
        "--out",
        f"record:{tmp_path / 'o.jsonl'}",
    )
    assert node.returncode == 0, node.stderr
    assert (tmp_path / "o.jsonl").stat().st_size > 0


def test_calibration_problems_are_one_line_errors(tmp_path):
    speech, rate = soundfile.read(FIXTURES / "speech_librivox_0880.wav", dtype="float32")
    room = np.tile(speech[: int(0.2 * rate)], 50)  # 10 s of room noise: no vowel was said
    quiet = tmp_path / "quiet.wav"
    soundfile.write(quiet, room, rate)
    out = tmp_path / "p.yaml"
    result = run_node("calibrate", "voice", out, "--source", f"audio:{quiet}")
    assert result.returncode == 1 and "phase 'A'" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    short = run_node("calibrate", "voice", out, "--source", f"audio:{FIXTURES / 'speech_librivox_0880.wav'}")
    assert short.returncode == 1 and "the phases need" in short.stderr, short.stderr
    assert len(short.stderr.strip().splitlines()) == 1 and not out.exists()
    missing = run_node("calibrate", "voice", out, "--source", f"audio:{tmp_path / 'nope.wav'}")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    # A profile the node cannot use names the config key and the file's key.
    bad = tmp_path / "bad.yaml"
    bad.write_text("silence_db: -50\nvoice_db: -20\nvowels: {A: [1, 2]}\nspread: [1]\n")
    config = tmp_path / "voice.yaml"
    config.write_text(f"voice: {{calibration: {bad}}}\n")
    node = run_node(
        "--config",
        config,
        "--source",
        f"audio:{FIXTURES / 'speech_librivox_0880.wav'}",
        "--out",
        f"record:{tmp_path / 'o.jsonl'}",
    )
    assert node.returncode == 2 and "key 'voice.calibration'" in node.stderr, node.stderr
    assert "key 'vowels'" in node.stderr and len(node.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.jsonl").exists()
