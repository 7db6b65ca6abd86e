"""Real non-speech for the viseme classifier's silence class: music and impacts from recorded samples.

The lip sync must keep the mouth shut while music plays or something bangs (docs/voice.md). Synthetic
tones taught the classifier to call real vowels silence; recorded instruments, drums and sound effects
are what a microphone actually hears. They come from the MuseScore General soundfont:

    Debian musescore-general-soundfont-small 0.2.1-1 (MuseScore_General_Lite.sf3, 40 MB, in the cache)
    licence: MIT (Fluid R3 Mono GM, MuseScore General), parts public domain or CC0 (licenses/)

A soundfont is a bank of real recordings: every instrument sampled at a few pitches, drum kits,
percussion and General MIDI's sound effects (gunshot, helicopter, applause, sea shore, telephone...).
The voice-like samples (choirs' "ahh"/"ohh", solo vox, breath noise) are left out: they are vowels.
`music()` plays the samples as a sampler would (pitched by resampling, sustained over their loop,
enveloped): chords, a bass line, a melody and often a drum kit at a random tempo; `impacts()` strings
percussion and effects one-shots together at random gaps and levels. Both at 16 kHz, causal-agnostic.

pygame's example sounds stay the untouched held-out check (models/voice_eval.py): never trained on.

    python -m liverig.models.training.voice_nonspeech OUT.wav [--seconds S] [--kind music|impacts]
                                                      [--seed N] [--parts ...]
        writes a sample to listen to (or a test fixture)
"""

from __future__ import annotations

import argparse
import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from liverig.core.fetch import apt_download, cache_dir, extract
from liverig.runtime.lipsync import SAMPLE_RATE

SOUNDFONT = (
    "musescore-general-soundfont-small",
    "0.2.1-1",
    "65f9c1cb658c49e8713d2c95238d5d26868f520341f74a4fe26248a8f763c739",
)
SF3_MEMBER = "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"
# Voices are speech's own sound: never negatives.
VOICE_LIKE = re.compile(r"choir|voices|vox|synthvz|breath", re.IGNORECASE)
# One-shots: drums, percussion and sound effects (by the soundfont's sample names).
PERCUSSIVE = re.compile(
    r"kick|snr|snare|tom|hat|cym|crash|ride|clap|conga|bongo|timbale|tumba|taiko|agogo|block|clave|"
    r"cow ?bell|cabasa|maracas|shaker|tambourine|guiro|castanet|triangle|splash|china|studio|mbass|mtnr|"
    r"^5[58]_|sticks|rim|slap$|quica|vibra slap|metronome|scratch|orch hit|timpani|bell tree|sleigh|"
    r"windchimes|^pop|gun|heli|bird|telephone|sea shore|^wind|applause|reversecymbal|whistle|fretnoise|"
    r"brush|power|bass drum|tap|sizz|smash|zin|^58_93|steel drum",
    re.IGNORECASE,
)


@dataclass
class Sample:
    """One recording of the soundfont at 16 kHz: its root pitch (MIDI key) and sustain loop."""

    name: str
    audio: np.ndarray
    root: int
    loop: tuple[int, int]  # [start, end) in samples at 16 kHz; empty when it has none


def _chunks(data: bytes, offset: int, end: int):
    """RIFF chunks (id, data offset, size) between offset and end. SF3 files omit the pad byte after
    an odd-sized chunk that RIFF prescribes, so the pad is skipped only where a chunk id follows it."""
    while offset + 8 <= end:
        cid, size = struct.unpack_from("<4sI", data, offset)
        yield cid, offset + 8, size
        offset += 8 + size
        if size & 1 and not data[offset : offset + 4].isalnum():
            offset += 1


def _read_sf3(path: Path) -> list[Sample]:
    """Every sample of an SF2/SF3 soundfont (SoundFont 2.04 'shdr' headers; SF3 stores each sample
    as an Ogg Vorbis stream, decoded here by soundfile/libsndfile), resampled to 16 kHz."""
    from math import gcd

    from scipy.signal import resample_poly

    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise ValueError(f"{path}: not a soundfont")
    found = {}
    for cid, offset, size in _chunks(data, 12, len(data)):
        if cid == b"LIST":
            for sub, sub_offset, sub_size in _chunks(data, offset + 4, offset + size):
                found[sub] = (sub_offset, sub_size)
    smpl, _ = found[b"smpl"]
    shdr, size = found[b"shdr"]
    samples = []
    for i in range(size // 46 - 1):  # the last header is the terminal 'EOS'
        raw_name, start, end, loop_start, loop_end, rate, root, _, _, kind = struct.unpack_from(
            "<20sIIIIIBbHH", data, shdr + 46 * i
        )
        name = raw_name.split(b"\0")[0].decode("latin-1")
        if kind & 0x8000 or VOICE_LIKE.search(name) or not rate:
            continue  # ROM samples have no data; voices are not negatives
        if kind & 0x10:  # SF3: Ogg Vorbis bytes [start, end) of smpl, loop points in decoded samples
            audio, rate = soundfile.read(io.BytesIO(data[smpl + start : smpl + end]), dtype="float64")
        else:  # SF2: 16-bit PCM, positions in samples
            audio = np.frombuffer(data, "<i2", end - start, smpl + 2 * start) / 32768.0
            loop_start, loop_end = loop_start - start, loop_end - start
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        divisor = gcd(SAMPLE_RATE, int(rate))
        audio = resample_poly(audio, SAMPLE_RATE // divisor, int(rate) // divisor)
        scale = SAMPLE_RATE / rate
        loop = (int(loop_start * scale), int(loop_end * scale))
        if not 0 <= loop[0] < loop[1] - 32 <= len(audio):
            loop = (0, 0)
        samples.append(Sample(name, audio.astype(np.float32), int(root) if root <= 127 else 60, loop))
    return samples


_SAMPLES: list[Sample] | None = None


def load_samples() -> list[Sample]:
    """The soundfont's samples (fetched once, pinned and checksummed; decoded once per process)."""
    global _SAMPLES
    if _SAMPLES is None:
        path = cache_dir("voice", "nonspeech") / Path(SF3_MEMBER).name
        if not path.is_file():
            extract(apt_download(*SOUNDFONT), SF3_MEMBER, path)
        _SAMPLES = _read_sf3(path)
    return _SAMPLES


def _note(sample: Sample, key: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """The sample played at MIDI `key` for `seconds`: resampled to the pitch, sustained by repeating
    its loop, with a short attack and a release."""
    ratio = 2.0 ** ((key - sample.root) / 12.0)
    n = max(int(seconds * SAMPLE_RATE), 160)
    source = sample.audio
    need = int(n * ratio) + 2
    if len(source) < need and sample.loop[1] > sample.loop[0]:
        body = source[: sample.loop[1]]
        loop = source[sample.loop[0] : sample.loop[1]]
        source = np.concatenate([body, np.tile(loop, int(np.ceil((need - len(body)) / len(loop))) + 1)])
    positions = np.arange(n) * ratio
    positions = positions[positions < len(source) - 1]
    out = np.interp(positions, np.arange(len(source)), source)
    release = min(len(out), int(rng.uniform(0.02, 0.2) * SAMPLE_RATE))
    if release:
        out[-release:] *= np.linspace(1.0, 0.0, release)
    return out


def _place(track: np.ndarray, sound: np.ndarray, at: int, gain: float) -> None:
    end = min(len(track), at + len(sound))
    if end > at:
        track[at:end] += gain * sound[: end - at]


def music(rng: np.random.Generator, seconds: float, parts: tuple[str, ...] = ()) -> np.ndarray:
    """A few seconds of music: chords, a bass line and a melody on random instruments, often with a
    drum kit, at a random tempo and key (`parts`: which of chords/bass/melody/drums; random when
    empty); normalised to RMS 1."""
    samples = load_samples()
    melodic = [s for s in samples if not PERCUSSIVE.search(s.name)]
    drums = [s for s in samples if PERCUSSIVE.search(s.name)]
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(60, 170)
    tonic = int(rng.integers(36, 60))
    scale = np.array([0, 2, 4, 5, 7, 9, 11]) if rng.random() < 0.6 else np.array([0, 2, 3, 5, 7, 8, 10])
    parts = parts or rng.choice(
        ["chords", "bass", "melody", "drums"], size=int(rng.integers(1, 5)), replace=False
    )
    for part in parts:
        if part == "drums":
            kit = [drums[i] for i in rng.choice(len(drums), size=3, replace=False)]
            step = beat / rng.choice([1, 2, 4])
            pattern = rng.random((16, 3)) < [0.5, 0.3, 0.6]
            for k, at in enumerate(np.arange(0, seconds, step)):
                for j in np.flatnonzero(pattern[k % 16]):
                    _place(
                        out,
                        kit[j].audio[: int(1.5 * SAMPLE_RATE)],
                        int(at * SAMPLE_RATE),
                        rng.uniform(0.3, 1.0),
                    )
            continue
        instrument = melodic[int(rng.integers(len(melodic)))]
        octave = {"chords": 12, "bass": -12, "melody": 24}[part]
        length = beat * rng.choice([0.5, 1, 2, 4] if part != "melody" else [0.25, 0.5, 1])
        level = rng.uniform(0.3, 1.0)
        for at in np.arange(0, seconds, length):
            if rng.random() < 0.15:
                continue  # a rest
            degree = int(rng.integers(7))
            chord = (0, 2, 4) if part == "chords" else (0,)
            for step in chord:
                d = degree + step
                key = tonic + octave + scale[d % 7] + 12 * (d // 7)
                sound = _note(instrument, int(np.clip(key, 24, 108)), length * rng.uniform(0.6, 1.2), rng)
                _place(out, sound, int(at * SAMPLE_RATE), level)
    return out / (np.sqrt(np.mean(out**2)) + 1e-9)


def impacts(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Percussion and sound-effect one-shots (drums, claps, blocks, gunshots, a helicopter...) at
    random gaps, levels and slight pitch shifts; normalised to RMS 1."""
    drums = [s for s in load_samples() if PERCUSSIVE.search(s.name)]
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    at = int(rng.uniform(0, 0.3) * SAMPLE_RATE)
    while at < n:
        sample = drums[int(rng.integers(len(drums)))]
        sound = _note(
            sample, sample.root + int(rng.integers(-7, 8)), min(2.0, len(sample.audio) / SAMPLE_RATE), rng
        )
        _place(out, sound, at, 10 ** rng.uniform(-1, 0))
        at += int(rng.uniform(0.05, 0.8) * SAMPLE_RATE)
    return out / (np.sqrt(np.mean(out**2)) + 1e-9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--kind", choices=("music", "impacts"), default="music")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", nargs="*", default=[], choices=("chords", "bass", "melody", "drums"))
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    audio = (
        music(rng, args.seconds, tuple(args.parts)) if args.kind == "music" else impacts(rng, args.seconds)
    )
    soundfile.write(args.out, 0.5 * audio / (np.abs(audio).max() + 1e-9), SAMPLE_RATE)
    print(f"wrote {args.out}: {args.seconds} s of {args.kind} from {len(load_samples())} samples")


if __name__ == "__main__":
    main()
