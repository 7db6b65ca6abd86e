"""Lip sync from audio: every 10 ms hop of 16 kHz mono -> voice activity, loudness, viseme class.

    hop (160 samples) -> loudness (dBFS), noise floor, periodicity, webrtcvad
                      -> MFCCs (25 ms causal window) -> a small classifier: silence, A, I, U, E, O,
                         closed (p/b/m), other consonant
                      -> gate: above the floor by margin_db AND periodic AND speech to the classifier,
                         confirmed by webrtcvad within confirm_hops
                      -> expressions: VRM A I U E O and ARKit jawOpen, mouthFunnel, mouthPucker,
                         mouthClose (0..1)

Why several votes: webrtcvad alone fires on music and keyboard clicks and reacts 30..60 ms late, and a
loudness threshold alone on any fan turned up. The floor is the quietest hop of the last 2 s, so
steady noise (fans, hiss, room tone) never opens the mouth; the classifier was trained to call
recorded music, drums and sound effects silence (models/training/voice_nonspeech.py), so they rarely do
(docs/voice.md). Everything is causal: a hop's output depends on it and the hops before it, so the
lip sync adds no look-ahead latency.

The classifier's weights (`models/weights/viseme.npz`, a few KB) are trained on real speech with
time-aligned phones by `python -m liverig.models.training.voice_train`; its figures are in docs/voice.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.fft import dct, irfft, rfft

from liverig.runtime.voice_profile import FLOOR_SLACK_DB, VoiceProfile

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
WINDOW = 400  # 25 ms, ending at the hop's end (causal)
N_FFT = 512
N_MELS = 26
N_MFCC = 13
CONTEXT = (0, 2, 4)  # hops back stacked into one feature vector (causal context, 40 ms)
CLASSES = ("silence", "A", "I", "U", "E", "O", "closed", "other")
SCORED = CLASSES[:7]  # what the evaluation scores (silence + vowels + closed lips)
RISING_HOPS = 4  # a word's voicing starts within 40 ms of its loudness rising out of a pause
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "weights" / "viseme.npz"

# ARPAbet (CMU dictionary, pocketsphinx and CMU ARCTIC labels) -> viseme class.
PHONE_CLASS = {
    **dict.fromkeys(("sil", "pau", "sp", "h#", "", "+nsn+", "+spn+", "+noise+"), "silence"),
    **dict.fromkeys(("aa", "ae", "ah", "ax", "ay", "aw"), "A"),
    **dict.fromkeys(("iy", "ih", "y"), "I"),
    **dict.fromkeys(("uw", "uh", "w"), "U"),
    **dict.fromkeys(("eh", "ey", "er", "axr"), "E"),
    **dict.fromkeys(("ao", "ow", "oy"), "O"),
    **dict.fromkeys(("p", "b", "m"), "closed"),
}


def phone_class(phone: str) -> int:
    """The viseme class index of an ARPAbet phone (stress digits ignored); unknown ones are 'other'."""
    name = phone.lower().rstrip("012")
    return CLASSES.index(PHONE_CLASS.get(name, "other"))


def _mel_filterbank() -> np.ndarray:
    """(N_MELS, N_FFT//2+1) triangular filters, 80 Hz .. 7.6 kHz on the HTK mel scale."""
    mel = np.linspace(2595 * np.log10(1 + 80 / 700), 2595 * np.log10(1 + 7600 / 700), N_MELS + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    bins = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


_MEL = _mel_filterbank()
_WINDOW = np.hanning(WINDOW).astype(np.float64)


_PITCH_LAGS = slice(SAMPLE_RATE // 400, SAMPLE_RATE // 70)  # 70..400 Hz
# The window's own autocorrelation: dividing by it undoes the taper's bias against long lags
# (Boersma 1993), so a low voice counts as periodic as a high one.
_WINDOW_AC = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(WINDOW), 2 * N_FFT)) ** 2)
_WINDOW_AC = _WINDOW_AC / _WINDOW_AC[0]


def hop_features(window: np.ndarray, voicing: bool = False):
    """MFCCs (N_MFCC,) and loudness (dBFS, RMS of the newest hop) of one 25 ms window of float
    samples in [-1, 1]; with voicing=True also the periodicity (0..1: the normalised autocorrelation's
    peak at a voice's pitch, 70..400 Hz) and that pitch (Hz). Why MFCCs: they carry the vocal
    tract's shape (formants) and little of the voice's pitch, which is what separates vowels across
    speakers."""
    hop = window[-HOP:]
    loudness = 10.0 * np.log10(float(np.mean(hop * hop)) + 1e-10)
    emphasised = np.append(window[0], window[1:] - 0.97 * window[:-1])
    power = np.abs(rfft(emphasised * _WINDOW, N_FFT)) ** 2
    logmel = np.log(_MEL @ power + 1e-8)
    mfcc = dct(logmel, type=2, norm="ortho")[:N_MFCC]
    if not voicing:
        return mfcc, loudness
    plain = np.abs(rfft(window * _WINDOW, 2 * N_FFT)) ** 2
    autocorrelation = irfft(plain)
    lags = autocorrelation[_PITCH_LAGS] / _WINDOW_AC[_PITCH_LAGS]
    peak = int(np.argmax(lags))
    periodicity = float(lags[peak] / (autocorrelation[0] + 1e-12))
    return mfcc, loudness, periodicity, SAMPLE_RATE / (_PITCH_LAGS.start + peak)


def features_of(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-hop MFCCs (T, N_MFCC) and loudness (T,) of a whole clip (float, 16 kHz), hop t ending at
    sample (t+1)*HOP: exactly what the streaming `LipSync` computes, for training and evaluation."""
    padded = np.concatenate([np.zeros(WINDOW - HOP), audio.astype(np.float64)])
    count = len(audio) // HOP
    mfcc = np.zeros((count, N_MFCC))
    loud = np.zeros(count)
    for t in range(count):
        mfcc[t], loud[t] = hop_features(padded[t * HOP : t * HOP + WINDOW])
    return mfcc, loud


def stack_context(mfcc: np.ndarray) -> np.ndarray:
    """(T, N_MFCC) -> (T, N_MFCC * len(CONTEXT)): each hop with the ones CONTEXT hops before it
    (the first hops repeat hop 0)."""
    rows = np.arange(len(mfcc))
    return np.concatenate([mfcc[np.maximum(rows - k, 0)] for k in CONTEXT], axis=1)


@dataclass
class VisemeModel:
    """A two-layer perceptron over normalised, stacked MFCCs; numpy only at run time."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @classmethod
    def load(cls, path: str | Path = DEFAULT_WEIGHTS) -> VisemeModel:
        with np.load(path) as data:
            model = cls(*(data[key].astype(np.float64) for key in ("mean", "scale", "w1", "b1", "w2", "b2")))
        if model.w2.shape[1] != len(CLASSES) or model.w1.shape[0] != N_MFCC * len(CONTEXT):
            raise ValueError(f"{path}: viseme weights of the wrong shape {model.w1.shape}, {model.w2.shape}")
        return model

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, **{k: v.astype(np.float32) for k, v in self.__dict__.items()})

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(…, F) stacked MFCCs -> (…, len(CLASSES)) class probabilities."""
        hidden = np.maximum(0.0, ((features - self.mean) / self.scale) @ self.w1 + self.b1)
        logits = hidden @ self.w2 + self.b2
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=-1, keepdims=True)


@dataclass
class HopResult:
    """What one hop perceives: the gate's parts, the class probabilities, the mouth it drives."""

    loudness_db: float
    floor_db: float
    vad: bool
    speaking: bool
    probabilities: np.ndarray  # (len(CLASSES),)
    viseme: str
    openness: float  # 0..1
    expressions: dict[str, float]
    pitch_hz: float = 0.0  # the voice's pitch while speaking and voiced, else 0


MOUTH_KEYS = ("A", "I", "U", "E", "O", "jawOpen", "mouthFunnel", "mouthPucker", "mouthClose")

# How open the jaw is, how rounded (funnel) and pushed forward (pucker) the lips are, per viseme:
# a coarse articulatory table (after the Oculus/ARKit viseme references), scaled by loudness.
_SHAPES = {  # class: (jawOpen, mouthFunnel, mouthPucker)
    "A": (1.0, 0.0, 0.0),
    "I": (0.35, 0.0, 0.0),
    "U": (0.25, 0.45, 0.9),
    "E": (0.6, 0.0, 0.0),
    "O": (0.7, 0.8, 0.3),
    "other": (0.35, 0.0, 0.0),
}


def mouth_expressions(probabilities: np.ndarray, openness: float) -> dict[str, float]:
    """Viseme probabilities + openness (0..1) -> the mouth's VRM and ARKit values (all MOUTH_KEYS).

    VRM's A..O presets share the openness in proportion to the vowels' probabilities (an 'other'
    consonant lends its weight to them as they stand, a closed one takes it away); ARKit's jaw,
    funnel and pucker come from the articulatory table; closed lips press (mouthClose) and shut the
    jaw."""
    p = dict(zip(CLASSES, (float(v) for v in probabilities), strict=True))
    speech = max(1.0 - p["silence"], 1e-6)
    # An 'other' consonant shows the vowel shapes as a neutral, half-open mouth would.
    vowels = np.array([p[k] for k in "AIUEO"]) + p["other"] * np.array([0.4, 0.2, 0.0, 0.4, 0.0])
    share = vowels / max(float(vowels.sum()), 1e-6)
    closed = min(1.0, p["closed"] / speech)
    open_level = openness * (1.0 - closed)
    out = {k: float(open_level * s) for k, s in zip("AIUEO", share, strict=True)}
    weights = {k: p[k] for k in _SHAPES}
    total = max(sum(weights.values()), 1e-6)
    jaw, funnel, pucker = (sum(weights[k] * _SHAPES[k][i] for k in _SHAPES) / total for i in range(3))
    out["jawOpen"] = float(open_level * jaw)
    out["mouthFunnel"] = float(open_level * funnel)
    out["mouthPucker"] = float(open_level * pucker)
    out["mouthClose"] = float(min(1.0, openness * 2.0) * closed * 0.6)
    return out


def closed_mouth() -> dict[str, float]:
    return dict.fromkeys(MOUTH_KEYS, 0.0)


class LipSync:
    """The streaming lip sync: feed float samples (16 kHz, any count), get one HopResult per full hop.

    Settings (config `voice`): vad_mode (webrtcvad 0..3, higher rejects more noise), floor margin
    (dB above the noise floor the voice must be), loud_range (dB from there to a fully open mouth),
    attack/release (s) of the mouth."""

    def __init__(
        self,
        model: VisemeModel | None = None,
        vad_mode: int = 3,
        margin_db: float = 9.0,
        loud_range_db: float = 24.0,
        attack_s: float = 0.02,
        release_s: float = 0.03,
        hangover_hops: int = 3,
        floor_s: float = 2.0,
        votes: int = 1,
        speech_threshold: float = 0.35,
        voicing_threshold: float = 0.3,
        confirm_hops: int = 8,
        trial_hops: int = 0,
        onset_quiet_hops: int = 8,
        profile: VoiceProfile | None = None,
    ) -> None:
        import webrtcvad

        self.model = model if model is not None else VisemeModel.load()
        self._vad = webrtcvad.Vad(vad_mode)
        self.margin_db = margin_db
        self.loud_range_db = loud_range_db
        self._attack = 1.0 - np.exp(-HOP / SAMPLE_RATE / attack_s)
        self._release = 1.0 - np.exp(-HOP / SAMPLE_RATE / release_s)
        self.hangover_hops = hangover_hops
        self.votes = votes
        self.speech_threshold = speech_threshold
        self.voicing_threshold = voicing_threshold
        self.confirm_hops = confirm_hops
        self.trial_hops = trial_hops
        self.onset_quiet_hops = onset_quiet_hops
        self.floor_hops = max(1, round(floor_s * SAMPLE_RATE / HOP))
        # A speaker's calibration (runtime/voice_profile.py): their vowel templates re-divide the
        # classifier's vowel share, and their room's level bounds the noise floor from below.
        self.templates = profile.templates() if profile is not None else None
        self.lowest_floor_db = profile.silence_db - FLOOR_SLACK_DB if profile is not None else -90.0
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(WINDOW - HOP)
        self._history = np.zeros((max(CONTEXT) + 1, N_MFCC))
        self._filled = 0
        self.floor_db = -60.0
        self._recent = np.full(self.floor_hops, np.inf)  # the last floor_hops loudness values (ring)
        self._votes: list[bool] = []
        self._run = 0
        self._vad_age = 1000
        self._quiet = 0
        self._rising = 0  # hops left in which a sound rising out of a pause may start a trial
        self._trial = 0
        self._speech = 0.0
        self._hang = 0
        self._mouth = closed_mouth()
        self._probabilities = np.eye(len(CLASSES))[0]

    def feed(self, samples: np.ndarray) -> list[HopResult]:
        """Process every complete hop in the samples given so far; the remainder waits for more."""
        samples = np.asarray(samples, dtype=np.float64).ravel()
        samples = np.where(np.isfinite(samples), np.clip(samples, -1.0, 1.0), 0.0)
        self._buffer = np.concatenate([self._buffer, samples])
        results = []
        while len(self._buffer) >= WINDOW:
            results.append(self._hop(self._buffer[:WINDOW]))
            self._buffer = self._buffer[HOP:]
        return results

    def _hop(self, window: np.ndarray) -> HopResult:
        mfcc, loudness, periodicity, pitch = hop_features(window, voicing=True)
        self._history = np.roll(self._history, 1, axis=0)
        self._history[0] = mfcc
        if self._filled == 0:
            self._history[:] = mfcc
        pcm = (window[-HOP:] * 32767).astype("<i2").tobytes()
        vad = bool(self._vad.is_speech(pcm, SAMPLE_RATE))
        self._update_floor(loudness)
        above = loudness > self.floor_db + self.margin_db
        probabilities = self.model.probabilities(self._history[list(CONTEXT)].ravel())
        if self.templates is not None:
            probabilities = self.templates.adapt(probabilities, self._history[list(CONTEXT)].mean(axis=0))
        # The classifier's own speech vote (it was trained to call noise, clicks and music silence),
        # smoothed over ~15 ms so that one odd hop neither opens nor closes the mouth.
        self._speech += 0.6 * (1.0 - probabilities[0] - self._speech)
        # `votes` of the last three hops voiced (webrtcvad), above the floor and speech to the
        # classifier start speech (one click does not); the hangover bridges short pauses in a word.
        # A voice is periodic (its pitch): clicks, thumps, hiss and fans are not.
        voiced = periodicity > self.voicing_threshold
        # The classifier needs 50..130 ms of a word to call it speech: words begin with consonants,
        # which look like the clicks, hiss and drums it learned to ignore. With `trial_hops` > 0 a
        # voiced sound rising out of a pause (`onset_quiet_hops` below the gate) opens the mouth on
        # trial at once; unless the classifier agrees within `trial_hops`, the mouth shuts again and
        # stays shut until the next pause. Off by default: onsets +40 instead of +80 ms, but a click
        # in room noise or a drum after a pause flicks the mouth (docs/voice.md).
        if above:
            if self._quiet >= self.onset_quiet_hops:
                self._rising = RISING_HOPS
            self._quiet = 0
        else:
            self._quiet += 1
            self._rising = 0
        if self._rising > 0 and voiced:
            self._trial, self._rising = self.trial_hops, 0
        self._rising = max(0, self._rising - 1)
        trusted = self._speech > self.speech_threshold
        candidate = above and voiced and (trusted or self._trial > 0)
        self._trial = 0 if trusted else max(0, self._trial - 1)
        self._run = self._run + 1 if candidate else 0
        self._vad_age = 0 if vad else self._vad_age + 1
        # webrtcvad reacts 30..60 ms late, so it confirms rather than starts: the mouth opens on the
        # classifier's vote at once and closes again unless webrtcvad agrees within `confirm_hops`.
        confirmed = self._vad_age < self.confirm_hops or self._run <= self.confirm_hops
        self._votes = (self._votes + [candidate and confirmed])[-3:]
        if sum(self._votes) >= self.votes:
            self._hang = self.hangover_hops
        elif self._hang > 0:
            self._hang -= 1
        speaking = self._hang > 0 and above
        if speaking:
            openness = float(np.clip((loudness - self.floor_db - self.margin_db) / self.loud_range_db, 0, 1))
            openness = openness**0.7  # quieter syllables still open visibly
            heard = probabilities.copy()
            heard[0] = 0.0  # the gate decides silence; the classifier only the shape
            heard /= heard.sum()
            target = mouth_expressions(heard, openness)
        else:
            openness, target = 0.0, closed_mouth()
        for key, value in target.items():
            rate = self._attack if value > self._mouth[key] else self._release
            self._mouth[key] += rate * (value - self._mouth[key])
        self._filled += 1
        viseme = CLASSES[int(np.argmax(probabilities[1:])) + 1] if speaking else "silence"
        pitch = pitch if speaking and voiced else 0.0
        return HopResult(
            loudness,
            self.floor_db,
            vad,
            speaking,
            probabilities,
            viseme,
            openness,
            dict(self._mouth),
            pitch,
        )

    def _update_floor(self, loudness: float) -> None:
        """The room's noise level: the quietest hop of the last `floor_s` seconds (minimum
        statistics). Speech always has quiet moments (stops, breaths) within two seconds, so the floor
        stays at the room's level while someone talks; a fan or music playing on for two seconds lifts
        it to its own level, and only what rises `margin_db` above that can open the mouth."""
        self._recent[self._filled % self.floor_hops] = loudness
        self.floor_db = max(float(self._recent.min()), self.lowest_floor_db)
