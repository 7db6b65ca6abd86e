"""Voice calibration: a speaker's own silence and vowels, measured once, for the lip sync.

    python run_node.py calibrate voice me.yaml --source mic:default   # then voice.calibration: me.yaml
    python run_node.py calibrate voice me.yaml --source audio:me.wav  # the same phases, recorded

Phases, prompted one after the other (a recording must follow the same timing): `--silence-s`
(2 s) of quiet, then A ("father"), I ("see"), U ("food"), E ("bed"), O ("go"), `--vowel-s` (1.5 s)
each, held. From the 10 ms hops' features (runtime/lipsync.py `features_of`, what the lip sync
computes):

- the room's level: the median loudness of the silence phase;
- per vowel, the hops louder than that by `MARGIN_DB`, less `TRIM_HOPS` at each end of the phase's
  voiced hops (the glide into and out of the vowel): the mean cepstrum over the classifier's context,
  and the spread pooled over the vowels (runtime/voice_profile.py says how the lip sync uses them).

A phase with too few voiced hops (nothing said, said too softly, or a silence that was not quiet)
is a one-line error naming the phase, and nothing is written. The output is a regular file, an
existing one replaced only with `--overwrite`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np

from liverig.runtime.lipsync import CONTEXT, HOP, SAMPLE_RATE, features_of
from liverig.runtime.voice_profile import (
    CEPSTRA,
    VOWELS,
    VoiceProfile,
    VoiceProfileError,
    save_profile,
)

PROMPTS = {
    "silence": "stay quiet",
    "A": 'say and hold "aah" (as in "father")',
    "I": 'say and hold "ee" (as in "see")',
    "U": 'say and hold "oo" (as in "food")',
    "E": 'say and hold "eh" (as in "bed")',
    "O": 'say and hold "oh" (as in "go")',
}
MARGIN_DB = 9.0  # a vowel's hops are at least this far above the silence (voice.margin_db's default)
TRIM_HOPS = 3  # the first and last voiced hops of a phase are the glide in and out: left out
MIN_HOPS = 15  # a vowel needs this many hops (0.15 s) after trimming
MIN_SILENCE_HOPS = 50


def context_cepstra(mfcc: np.ndarray) -> np.ndarray:
    """(T, N_MFCC) -> (T, N_MFCC): each hop's MFCCs averaged over the classifier's context hops,
    exactly what the lip sync compares with the templates (the first hops repeat hop 0)."""
    rows = np.arange(len(mfcc))
    return np.mean([mfcc[np.maximum(rows - k, 0)] for k in CONTEXT], axis=0)


def build_profile(
    silence_loudness: np.ndarray, vowels: dict[str, np.ndarray], vowel_loudness: np.ndarray
) -> VoiceProfile:
    """A profile from the silence's per-hop loudness (dBFS) and each vowel's context-averaged MFCCs
    (n, N_MFCC); the evaluation calls this with labelled hops, the calibration with prompted ones."""
    if len(silence_loudness) < 1:
        raise VoiceProfileError("voice calibration: the silence phase holds no audio")
    for name in VOWELS:
        if len(vowels.get(name, ())) < 2:
            raise VoiceProfileError(f"voice calibration: phase '{name}': too few voiced hops")
    means = {name: vowels[name][:, CEPSTRA].mean(axis=0) for name in VOWELS}
    residuals = np.concatenate([vowels[name][:, CEPSTRA] - means[name] for name in VOWELS])
    spread = np.sqrt(np.mean(residuals**2, axis=0)) + 0.05  # never 0: a flat tone or digital signal
    return VoiceProfile(
        silence_db=float(np.clip(np.median(silence_loudness), -120, 0)),
        voice_db=float(np.clip(np.median(vowel_loudness), -120, 0)),
        vowels={name: [float(v) for v in means[name]] for name in VOWELS},
        spread=[float(v) for v in spread],
        hops={"silence": len(silence_loudness), **{name: len(vowels[name]) for name in VOWELS}},
    )


def measure(audio: np.ndarray, silence_s: float = 2.0, vowel_s: float = 1.5) -> VoiceProfile:
    """The profile of a recording (16 kHz mono float) made of the phases in order."""
    mfcc, loudness = features_of(np.asarray(audio, dtype=np.float64))
    cepstra = context_cepstra(mfcc)
    silence_hops = round(silence_s * SAMPLE_RATE / HOP)
    vowel_hops = round(vowel_s * SAMPLE_RATE / HOP)
    needed = silence_hops + len(VOWELS) * vowel_hops
    if len(loudness) < needed:
        raise VoiceProfileError(
            f"voice calibration: the recording is {len(loudness) * HOP / SAMPLE_RATE:.1f} s, the phases "
            f"need {needed * HOP / SAMPLE_RATE:.1f} s ({silence_s:g} s of silence, then A I U E O "
            f"{vowel_s:g} s each)"
        )
    silence = loudness[:silence_hops]
    if len(silence) < MIN_SILENCE_HOPS:
        raise VoiceProfileError(f"voice calibration: phase 'silence': needs at least {MIN_SILENCE_HOPS} hops")
    level = float(np.median(silence))
    vowels, louds = {}, []
    for index, name in enumerate(VOWELS):
        start = silence_hops + index * vowel_hops
        voiced = start + np.flatnonzero(loudness[start : start + vowel_hops] > level + MARGIN_DB)
        kept = voiced[TRIM_HOPS : len(voiced) - TRIM_HOPS]
        if len(kept) < MIN_HOPS:
            raise VoiceProfileError(
                f"voice calibration: phase '{name}' ({PROMPTS[name]}): {len(kept)} hops above the "
                f"silence by {MARGIN_DB:g} dB, needs {MIN_HOPS}: say it louder and hold it"
            )
        vowels[name] = cepstra[kept]
        louds.append(loudness[kept])
    return build_profile(silence, vowels, np.concatenate(louds))


def record(spec: str, silence_s: float, vowel_s: float, say: Callable[[str], None]) -> np.ndarray:
    """The phases' audio (16 kHz mono): a whole sound file, or the microphone with a prompt per phase."""
    from liverig.core.config import SourceConfig
    from liverig.runtime.audio import AudioFile, open_audio

    source = open_audio(spec, SourceConfig(realtime=False))
    try:
        if isinstance(source, AudioFile):
            blocks = []
            while (block := source.read(SAMPLE_RATE)) is not None:
                blocks.append(block)
            return np.concatenate(blocks)
        source.start()
        blocks = []
        phases = [("silence", silence_s)] + [(name, vowel_s) for name in VOWELS]
        for index, (name, seconds) in enumerate(phases):
            say(f"liverig: voice calibration {index + 1}/{len(phases)} ({seconds:g} s): {PROMPTS[name]}")
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                time.sleep(0.02)
                blocks.append(source.take())
            if source.lost:
                raise VoiceProfileError(f"{source.name}: the microphone was lost during phase '{name}'")
        blocks.append(source.take())
        return np.concatenate(blocks)
    finally:
        source.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="run_node.py calibrate voice",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", metavar="OUT.yaml", help="the profile to write")
    parser.add_argument("--source", default="mic:default", help="mic:N, mic:default or audio:PATH")
    parser.add_argument("--silence-s", type=float, default=2.0, help="the silence phase (s)")
    parser.add_argument("--vowel-s", type=float, default=1.5, help="each vowel's phase (s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT.yaml")
    args = parser.parse_args(argv)
    from liverig.core.safe_io import output_refusal
    from liverig.runtime.audio import AudioError

    if not 0.5 <= args.silence_s <= 30 or not 0.5 <= args.vowel_s <= 30:
        parser.error("--silence-s and --vowel-s must be between 0.5 and 30 s")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        parser.error(f"{args.out}: cannot write into {folder}")
    refusal = output_refusal(args.out, args.overwrite)
    if refusal is not None:
        parser.error(refusal)
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        audio = record(args.source, args.silence_s, args.vowel_s, say)
        profile = measure(audio, args.silence_s, args.vowel_s)
    except (AudioError, VoiceProfileError) as error:
        print(f"run_node.py calibrate voice: error: {error}", file=sys.stderr)
        return 1 if isinstance(error, VoiceProfileError) else 2
    save_profile(args.out, profile)
    say(
        f"liverig: wrote voice profile {args.out} (silence {profile.silence_db:.0f} dBFS, vowels "
        f"{profile.voice_db:.0f} dBFS; hops per phase: {profile.hops}); use it via voice.calibration"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
