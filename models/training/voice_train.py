"""Train the viseme classifier of runtime/lipsync.py on real speech with time-aligned phones.

    python -m liverig.models.training.voice_train                 train on every speaker group, write
                                                 models/weights/viseme.npz (a few KB)
    python -m liverig.models.training.voice_train --hold-out G  train without group G (as the
                                                 evaluation does)

Data: models/training/voice_data.py (real recordings, phones from label files or forced alignment). Each
clip is also seen at other vocal-tract lengths (resampled by 0.88..1.12, which moves the formants
as a shorter or longer vocal tract does) and with noise added at 10..30 dB SNR, because the shipped
model must work for voices it never heard; whole speaker groups are held out to measure that.
Non-speech for the silence class (twice as much as speech): made-up coloured noise and clicks, and
real recorded music and impacts rendered from a soundfont (models/training/voice_nonspeech.py).
A two-layer perceptron (39 -> 24 -> 8) with class-balanced cross-entropy; CPU, seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from liverig.models.training.voice_data import GROUPS, Clip, load_clips
from liverig.models.training.voice_nonspeech import impacts, music
from liverig.runtime.lipsync import CLASSES, DEFAULT_WEIGHTS, VisemeModel, features_of, stack_context

HIDDEN = 24
WARPS = (0.88, 0.94, 1.0, 1.06, 1.12)  # resampling factors (vocal tract length perturbation)
EPOCHS = 400
SEED = 17
# Seconds of non-speech per second of speech (held-out figures, docs/voice.md: 1 -> the real noise
# check opens the mouth on 11..37 % of hops; 2 -> 0..13 %; 3 -> costs speech accuracy).
NEGATIVES = 2.0
NEGATIVE_KINDS = ("noise", "music", "impacts")


def _warped(clip: Clip, factor: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The clip resampled by `factor` (formants x 1/factor... x factor at the original rate), noise
    added, and its labels stretched to match: features (T, F) and labels (T,)."""
    up, down = round(factor * 50), 50
    audio = resample_poly(clip.audio, down, up) if factor != 1.0 else clip.audio.astype(np.float64)
    snr_db = rng.uniform(10, 30)
    level = np.sqrt(np.mean(audio**2)) / 10 ** (snr_db / 20)
    audio = audio + rng.normal(0, level, len(audio))
    mfcc, _ = features_of(audio)
    source = np.minimum(
        (np.arange(len(mfcc)) * len(clip.labels) / max(len(mfcc), 1)).astype(int), len(clip.labels) - 1
    )
    return stack_context(mfcc), clip.labels[source]


def synthetic_noise(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Non-speech the classifier must call silence, made up here (no recording, so no licence and
    nothing shared with the real noise the tests use): coloured noise (fans, hiss), click trains
    (keys), chords of harmonic tones with drums (music), at -55..-10 dBFS."""
    n = int(seconds * 16000)
    kind = rng.integers(2)  # music-like tones taught it to call vowels silence (docs/voice.md)
    white = rng.normal(0, 1, n)
    if kind == 0:  # white, pink or brown noise
        colour = rng.choice([0.0, 0.5, 1.0])
        spectrum = np.fft.rfft(white) / np.maximum(np.arange(n // 2 + 1), 1) ** colour
        audio = np.fft.irfft(spectrum, n)
    elif kind == 1:  # clicks: keys and thumps
        audio = np.zeros(n)
        for at in rng.integers(0, n - 800, int(seconds * rng.uniform(3, 15))):
            burst = rng.normal(0, 1, 800) * np.exp(-np.arange(800) / rng.uniform(30, 300))
            audio[at : at + 800] += burst
    else:  # music: notes of harmonic tones, some with a beat
        audio = np.zeros(n)
        t = np.arange(n) / 16000
        step = int(rng.uniform(0.15, 0.6) * 16000)
        for start in range(0, n, step):
            for _ in range(rng.integers(1, 4)):
                f0 = 55 * 2 ** (rng.integers(0, 48) / 12)
                seg = t[start : start + step]
                tone = sum(np.sin(2 * np.pi * f0 * k * seg) / k ** rng.uniform(0.7, 2) for k in range(1, 8))
                audio[start : start + step] += tone * np.exp(-(seg - seg[0]) * rng.uniform(0, 8))
        if kind == 3:
            for at in range(0, n - 1600, step):
                audio[at : at + 1600] += 3 * white[at : at + 1600] * np.exp(-np.arange(1600) / 200)
    level = 10 ** (rng.uniform(-55, -10) / 20)
    return audio / (np.sqrt(np.mean(audio**2)) + 1e-9) * level


def negative(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A non-speech clip for the silence class, one of three kinds alike: made-up coloured noise or
    clicks (`synthetic_noise`), or real recorded music or impacts (models/training/voice_nonspeech.py), at
    -55..-10 dBFS."""
    kind = rng.choice(NEGATIVE_KINDS)
    if kind == "noise":
        return synthetic_noise(rng, seconds)
    audio = music(rng, seconds) if kind == "music" else impacts(rng, seconds)
    return audio * 10 ** (rng.uniform(-55, -10) / 20)


def dataset(clips: list[Clip], augment: bool, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    if augment:  # NEGATIVES x as much non-speech as speech
        for _ in range(round(sum(len(c.audio) for c in clips) / 16000 / 2 * NEGATIVES)):
            mfcc, _ = features_of(negative(rng, 2.0))
            xs.append(stack_context(mfcc))
            ys.append(np.zeros(len(mfcc), dtype=np.int64))
    for clip in clips:
        for factor in WARPS if augment else (1.0,):
            x, y = (
                _warped(clip, factor, rng)
                if augment
                else (stack_context(features_of(clip.audio)[0]), clip.labels[: len(clip.audio) // 160])
            )
            xs.append(x)
            ys.append(y[: len(x)])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def train(clips: list[Clip], seed: int = SEED, epochs: int = EPOCHS) -> VisemeModel:
    """Fit the perceptron on `clips` (with augmentation); deterministic for a seed."""
    import torch

    torch.manual_seed(seed)
    x, y = dataset(clips, augment=True, seed=seed)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xt = torch.tensor((x - mean) / scale, dtype=torch.float32)
    yt = torch.tensor(y)
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    weights = torch.tensor(
        np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(CLASSES), 0.0), dtype=torch.float32
    )
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(HIDDEN, len(CLASSES)),
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(net(xt), yt)
        loss.backward()
        optimiser.step()
    net.eval()
    first, second = net[0], net[3]
    return VisemeModel(
        mean,
        scale,
        first.weight.detach().numpy().T.astype(np.float64),
        first.bias.detach().numpy().astype(np.float64),
        second.weight.detach().numpy().T.astype(np.float64),
        second.bias.detach().numpy().astype(np.float64),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hold-out", choices=GROUPS, help="leave this speaker group out")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    args = parser.parse_args(argv)
    clips = [c for c in load_clips() if c.group != args.hold_out]
    model = train(clips)
    model.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) from {len(clips)} clips")


if __name__ == "__main__":
    main()
