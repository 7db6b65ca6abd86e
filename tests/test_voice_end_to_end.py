"""The voice path through the whole node, as a user runs it: `run_node.py --source audio:<real speech>
--out vmc://...`, the datagrams decoded by liblo's oscdump (an OSC parser that shares no code with
ours). The clip is real speech (LibriVox, public domain) with phones force-aligned by pocketsphinx;
room noise from the clip's own start is put before and after it, as silences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from tests.bridges_support import OscDump, needs_oscdump
from tests.node_support import run_node

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLIP = FIXTURES / "speech_librivox_0880.wav"
PAD_S = 1.0
VOWELS = ("A", "I", "U", "E", "O")
EDGE_S = 0.35  # silences are judged this far from the speech's edges


def padded_clip(tmp_path: Path) -> tuple[Path, list[tuple[float, float, str]]]:
    """The clip with PAD_S of its own leading room noise (0..0.2 s, before the first word) tiled
    before and after it, and the phone segments shifted to match."""
    audio, rate = soundfile.read(CLIP, dtype="float32")
    noise = audio[: int(0.2 * rate)]
    pad = np.tile(noise, int(np.ceil(PAD_S * rate / len(noise))))[: int(PAD_S * rate)]
    path = tmp_path / "speech.wav"
    soundfile.write(path, np.concatenate([pad, audio, pad]), rate)
    phones = []
    for line in (FIXTURES / "speech_librivox_0880_phones.txt").read_text().splitlines():
        if not line.startswith("#"):
            start, end, phone = line.split()
            phones.append((float(start) + PAD_S, float(end) + PAD_S, phone))
    return path, phones


def vmc_frames(messages: list[tuple[str, str, list[str]]]) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Each frame's media time (/VMC/Ext/T) and blendshape values (the /VMC/Ext/Blend/Val messages up
    to each /VMC/Ext/Blend/Apply)."""
    times, frames, current, now = [], [], {}, float("nan")
    for address, _, args in messages:
        if address == "/VMC/Ext/T":
            now = float(args[0])
        elif address == "/VMC/Ext/Blend/Val":
            current[args[0]] = float(args[1])
        elif address == "/VMC/Ext/Blend/Apply":
            times.append(now)
            frames.append(current)
            current = {}
    return np.array(times), frames


@needs_oscdump
def test_audio_source_drives_vowels_that_follow_speech_through_vmc(tmp_path):
    clip, phones = padded_clip(tmp_path)
    dump = OscDump(tmp_path)
    try:
        result = run_node("--source", f"audio:{clip}", "--out", f"vmc://127.0.0.1:{dump.port}")
        assert result.returncode == 0, result.stderr
        messages = dump.messages(expect=10**9, timeout=3.0)
    finally:
        dump.close()
    times, frames = vmc_frames(messages)
    total_s = 2 * PAD_S + 2.99
    # 30 fps in real time (a loaded machine may skip a few ticks; an unpaced file would give them all
    # at once, and so would a clock running fast)
    assert 0.7 * total_s * 30 < len(frames) <= total_s * 30 + 3, len(frames)
    assert all(set(VOWELS) <= set(frame) for frame in frames)
    assert np.all(np.isfinite(times)) and np.all(np.diff(times) > 0)
    mouth = np.array([max(frame[v] for v in VOWELS) for frame in frames])
    # Silences (the room noise before and after the speech): the mouth stays closed. Judged
    # EDGE_S away from the speech: on a loaded machine a frame may carry audio up to a frame or two
    # later than its media time, and the mouth's release takes a few hops, so a frame at the edge
    # can show the last syllable closing; that still leaves ~0.6 s of room noise at each end.
    quiet = (times < PAD_S - EDGE_S) | (times > PAD_S + 2.99 + EDGE_S)
    assert quiet.sum() > 25, quiet.sum()
    assert mouth[quiet].max() < 0.05, mouth[quiet].max()
    # Speech: the mouth opens on the labelled vowels and follows them (correlation with the labels).
    vowel_phones = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
    in_vowel = np.array([any(s <= t < e and p in vowel_phones for s, e, p in phones) for t in times])
    assert in_vowel.sum() > 20
    assert np.mean(mouth[in_vowel] > 0.1) > 0.6, np.mean(mouth[in_vowel] > 0.1)
    speech = np.array([any(s <= t < e and p != "SIL" for s, e, p in phones) for t in times])
    assert np.corrcoef(mouth, speech.astype(float))[0, 1] > 0.5
    # More than one vowel shape is shown (the classifier, not just a volume meter).
    dominant = {max(VOWELS, key=frame.get) for frame, m in zip(frames, mouth, strict=True) if m > 0.1}
    assert len(dominant) >= 3, dominant
    # The audio-only avatar lives: it blinks, its head moves, and it is tracking.
    assert max(frame.get("Blink", 0.0) for frame in frames) > 0.5
    bones = [args for address, _, args in messages if address == "/VMC/Ext/Bone/Pos" and args[0] == "Head"]
    head_w = np.array([float(args[7]) for args in bones])
    assert len(head_w) > 10 and np.ptp(head_w) > 1e-4
    oks = [args for address, _, args in messages if address == "/VMC/Ext/OK"]
    assert oks and all(args[3] == "1" for args in oks)


def test_bad_audio_specs_are_one_line_errors(tmp_path):
    missing = run_node("--source", f"audio:{tmp_path / 'nope.wav'}")
    assert missing.returncode == 2 and "file not found" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a sound file at all")
    bad = run_node("--source", f"audio:{junk}")
    assert bad.returncode == 2 and "cannot read the sound file" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    for spec in ("mic:left", "mic:"):
        wrong = run_node("--source", spec)
        assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    both = run_node("--source", f"audio:{CLIP}", "--audio", "mic:default")
    assert both.returncode == 2 and "--audio" in both.stderr and len(both.stderr.strip().splitlines()) == 1


def test_a_missing_microphone_is_a_one_line_error():
    """This machine has no microphone (or no PortAudio): starting on one says so in one line."""
    result = run_node("--source", "mic:default")
    assert result.returncode == 2, result.stderr
    assert "mic:default" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    numbered = run_node("--source", "mic:7")
    assert numbered.returncode == 2 and "mic:7" in numbered.stderr


def test_bad_voice_config_names_the_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(f"voice: {{weights: {tmp_path / 'missing.npz'}}}\n")
    result = run_node(
        "--config", config, "--source", f"audio:{CLIP}", "--out", f"record:{tmp_path / 'o.jsonl'}"
    )
    assert result.returncode == 2 and "key 'voice.weights'" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.jsonl").exists()  # nothing was written
