"""Audio in: a file or a microphone, 16 kHz mono float samples for the lip sync (runtime/lipsync.py).

    audio:PATH     a wav/flac/ogg file (soundfile), paced in real time like a video (or as fast as
                   the node runs with source.realtime: false, then nothing is ever dropped)
    mic:N          sounddevice input device N; mic:default (also written audio:mic) the system's
                   default input; mic:NAME the input device whose name holds NAME (sounddevice's
                   match: case-insensitive, spaces and colons allowed, e.g. "mic:USB Audio: - (hw:1,0)")

Two uses (run_node.py): `--source audio:clip.wav` / `--source mic:default` drive the node alone
(`AudioOnlySource`: frames at `source.fps` that carry no image, only the audio that arrived since
the last frame), or `--audio mic:default` beside a camera: then the audio is read in its own thread
into a ring buffer and the voice part takes the newest samples each video frame, so camera and
microphone share the video frame's clock. A microphone that disappears (unplugged, the stream
stops or errors, or it stays open but delivers nothing for STALL_S) is reported once and reopened
every `source.reconnect_interval_s`, like the webcam.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from liverig.core.config import SourceConfig
from liverig.core.safe_io import input_file_problem, shown
from liverig.core.types import Frame, Timing
from liverig.runtime.lipsync import SAMPLE_RATE

AUDIO_KINDS = ("audio", "mic")
BLOCK_S = 0.01  # a file is read, and a microphone delivers, in 10 ms blocks
RING_S = 2.0  # at most this much audio waits for the loop; older samples are dropped (latency)
RATES = (4000, 768000)  # sample rates read, Hz: beyond them a file is damaged or hostile (refused)
MAX_RATIO_TERM = 1000  # 16 kHz / rate as a ratio of integers up to this: the filter stays small
STALL_S = 2.0  # an open stream that delivered nothing for this long is lost (a device that stopped)
MAX_NAME = 100  # characters of a device name in mic:NAME (ALSA's longest are about 60)


class AudioError(ValueError):
    """An audio spec that cannot be opened; the message names the spec (one line)."""


def parse_audio_spec(spec: str) -> tuple[str, str]:
    """'audio:PATH' -> ('audio', PATH); 'mic:N' / 'mic:default' / 'mic:NAME' / 'audio:mic' ->
    ('mic', N|'default'|NAME). Only the first colon splits: device names hold colons ("hw:1,0")."""
    kind, sep, argument = spec.partition(":")
    if not sep or kind not in AUDIO_KINDS or not argument:
        raise AudioError(
            f"bad audio spec '{shown(spec)}': expected audio:PATH, mic:N, mic:NAME or mic:default"
        )
    if kind == "audio" and argument == "mic" and not Path(argument).exists():
        return "mic", "default"
    if kind == "mic":
        number = argument.isascii() and argument.isdigit()
        if (number and len(argument) > 4) or not argument.isprintable() or len(argument) > MAX_NAME:
            raise AudioError(
                f"bad audio spec '{shown(spec)}': the microphone is a device number (0 to 9999), "
                f"part of its name (printable, up to {MAX_NAME} characters) or 'default', e.g. "
                "mic:0, mic:USB or mic:default"
            )
        return kind, argument
    problem = input_file_problem(argument)
    if problem is not None:
        raise AudioError(f"audio '{shown(spec)}': {problem}")
    return kind, argument


class AudioRing:
    """Samples written by a capture thread, taken by the loop: take() returns everything that arrived
    since the last take (at most RING_S; what overflowed is counted as dropped)."""

    def __init__(self, capacity_s: float = RING_S) -> None:
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._size = 0
        self._capacity = int(capacity_s * SAMPLE_RATE)
        self.dropped_samples = 0
        self.written_at: float | None = None  # perf_counter of the newest write

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            self._chunks.append(np.asarray(samples, dtype=np.float32).ravel())
            self._size += len(self._chunks[-1])
            while self._size - len(self._chunks[0]) >= self._capacity:
                self._size -= len(self._chunks[0])
                self.dropped_samples += len(self._chunks.pop(0))
            self.written_at = time.perf_counter()

    def take(self) -> np.ndarray:
        with self._lock:
            out = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
            self._chunks, self._size = [], 0
            return out


class Resampler:
    """Streaming conversion of a device's or file's rate to 16 kHz mono with scipy's polyphase filter.
    Each block is filtered with the block before it and the block after it around it, so block
    edges leave no ripple; that costs one block (10 ms) of delay at rates other than 16 kHz."""

    def __init__(self, rate: int) -> None:
        # An odd rate (44101 Hz) would make a filter of millions of taps, designed every block: the
        # nearest ratio of small integers instead (exact for every common rate; 44101 Hz is off by
        # less than one part in a million).
        ratio = Fraction(SAMPLE_RATE, int(rate)).limit_denominator(MAX_RATIO_TERM)
        self.up, self.down = ratio.numerator, ratio.denominator
        self._left = np.zeros(0)
        self._mid: np.ndarray | None = None

    def __call__(self, block: np.ndarray) -> np.ndarray:
        # A float file may hold NaN, inf or 1e38 (a damaged or hostile file): silence and full scale
        # instead, so nothing non-finite reaches the lip sync or the outputs.
        with np.errstate(invalid="ignore", over="ignore"):
            block = np.nan_to_num(np.asarray(block, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        block = np.clip(block, -1.0, 1.0)
        mono = block.mean(axis=1) if block.ndim == 2 else block
        if self.up == self.down:
            return mono.astype(np.float32)
        if self._mid is None:
            self._mid = mono
            return np.zeros(0, np.float32)
        out = self._convert(np.concatenate([self._left, self._mid, mono]))
        keep = len(self._mid) // self.down * self.down  # whole input periods: outputs stay aligned
        self._left, self._mid = self._mid[len(self._mid) - keep :], mono
        return out

    def _convert(self, signal: np.ndarray) -> np.ndarray:
        converted = resample_poly(signal, self.up, self.down)
        start = len(self._left) * self.up // self.down
        out = converted[start : start + len(self._mid) * self.up // self.down]
        return np.clip(out, -1.0, 1.0).astype(np.float32)  # the filter's ripple may pass full scale

    def flush(self) -> np.ndarray:
        """The block still held back (the end of a file)."""
        if self._mid is None or self.up == self.down:
            return np.zeros(0, np.float32)
        out = self._convert(np.concatenate([self._left, self._mid]))
        self._mid = None
        return out


def _reason(error: BaseException) -> str:
    """libsndfile's own words without the file name it repeats (the message names the file once)."""
    reason = getattr(error, "error_string", None) or (str(error).splitlines() or [""])[0]
    return shown(reason or type(error).__name__, 200)


class AudioFile:
    """A sound file read in 10 ms blocks. Paced (realtime) it runs in its own thread into the ring,
    like a microphone; unpaced, `read(n)` hands the loop exactly the samples it asks for."""

    def __init__(self, path: Path, realtime: bool, log: Callable[[str], None] | None = None) -> None:
        import soundfile

        self.name = shown(f"audio:{path}", 200)  # one line, whatever the path holds
        self.error: str | None = None  # why the file ended early (damaged past its header), one line
        self._log = log  # where that is said when the file runs in its own thread (--audio)
        try:
            self._file = soundfile.SoundFile(str(path))
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise AudioError(f"{self.name}: cannot read the sound file ({_reason(error)})") from None
        if self._file.frames == 0:
            self._file.close()
            raise AudioError(f"{self.name}: the sound file holds no audio")
        if not RATES[0] <= self._file.samplerate <= RATES[1]:
            self._file.close()
            raise AudioError(
                f"{self.name}: a sample rate of {self._file.samplerate} Hz (read {RATES[0]} to {RATES[1]} Hz)"
            )
        self.realtime = realtime
        self.rate = self._file.samplerate
        self.seconds = self._file.frames / self.rate
        self._resample = Resampler(self.rate)
        self._block = max(1, round(self.rate * BLOCK_S))
        self.ring = AudioRing()
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending = np.zeros(0, np.float32)
        self._done = False
        self._position = 0  # frames read from the file

    def start(self) -> None:
        if self.realtime and self._thread is None:
            self._thread = threading.Thread(target=self._pace, name=f"audio {self.name}", daemon=True)
            self._thread.start()

    def _next_block(self) -> np.ndarray | None:
        if self._done:
            return None
        import soundfile

        try:
            block = self._file.read(self._block, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError) as error:
            # Damaged past its header: what was read so far was played; the file ends here.
            seconds = self._position / self.rate
            self.error = f"{self.name}: cannot read the sound file after {seconds:.2f} s ({_reason(error)})"
            block = np.zeros((0, 1), np.float32)
        if len(block):
            self._position += len(block)
            return self._resample(block)
        self._done = True
        rest = self._resample.flush()
        return rest if len(rest) else None

    def _pace(self) -> None:
        start, read = time.perf_counter(), 0
        while not self._stop.is_set():
            block = self._next_block()
            if block is None:
                break
            read += self._block
            delay = start + read / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # a block is delivered when it would have finished being spoken
            self.ring.write(block)
        if self.error is not None and self._log is not None:
            self._log(f"liverig: {self.error}; the rest is silence")
        self.ended.set()

    def read(self, count: int) -> np.ndarray | None:
        """Unpaced: the next `count` samples at 16 kHz (fewer at the end); None once the file is done."""
        while len(self._pending) < count:
            block = self._next_block()
            if block is None:
                break
            self._pending = np.concatenate([self._pending, block])
        if len(self._pending) == 0:
            return None
        out, self._pending = self._pending[:count], self._pending[count:]
        return out

    def take(self) -> np.ndarray:
        return self.ring.take()

    @property
    def lost(self) -> bool:
        return False

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._file.close()


def _sounddevice() -> Any:
    """The sounddevice module, or AudioError when PortAudio is missing (it raises OSError on import)."""
    try:
        import sounddevice
    except (ImportError, OSError) as error:
        raise AudioError(
            f"no audio input: sounddevice cannot start ({error}); install PortAudio "
            "(Debian/Ubuntu: libportaudio2)"
        ) from None
    return sounddevice


def _open_stream(device: int | str | None, callback: Callable, latency: str = "high") -> Any:
    """A started sounddevice InputStream on `device` (None: the default input; a str: the input whose
    name holds it), mono, at the device's own rate (converted to 16 kHz in the callback). Raises
    AudioError when there is no such input, or a name that several hold (the first three are named)."""
    sd = _sounddevice()
    try:
        info = sd.query_devices(device, "input")
    except (ValueError, sd.PortAudioError) as error:
        first, *matches = str(error).splitlines() or [type(error).__name__]
        if matches:  # a name that several inputs hold: sounddevice lists them, one a line
            listed = ", ".join(match.strip() for match in matches[:3]) + (", ..." if len(matches) > 3 else "")
            raise AudioError(f"more than one input device matches that name ({shown(listed, 200)})") from None
        if isinstance(device, str):  # (sounddevice's words would repeat the name the message starts with)
            raise AudioError("no input device matches that name") from None
        which = "no default input device" if device is None else f"no input device {device}"
        raise AudioError(f"{which} ({shown(first, 200)})") from None
    device = info["index"]  # what a name matched (matched afresh on each reopen: replugged, it may move)
    rate = int(info["default_samplerate"])
    stream = sd.InputStream(
        device=device,
        channels=1,
        samplerate=rate,
        blocksize=round(rate * BLOCK_S),
        dtype="float32",
        callback=callback,
        latency=latency,  # source.mic_latency
    )
    stream.start()
    return stream, rate


class Microphone:
    """A live microphone through sounddevice, delivered into a ring buffer by PortAudio's callback.
    Losing it (the stream stops, errors or the device vanishes, or the stream stays open but no
    samples come for STALL_S: a device that stopped, whose reads PortAudio waits on) is reported once
    and retried."""

    def __init__(
        self,
        device: str,
        config: SourceConfig,
        open_stream: Callable[[int | str | None, Callable], Any] | None = None,
        log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    ) -> None:
        self.name = shown(f"mic:{device}", 4 + MAX_NAME)
        self._device: int | str | None = (
            None if device == "default" else int(device) if device.isascii() and device.isdigit() else device
        )
        self._config = config
        self._open_stream = open_stream or partial(_open_stream, latency=config.mic_latency)
        self._log = log
        self.ring = AudioRing()
        self.ended = threading.Event()  # a microphone never ends
        self.reconnects = 0
        self.lost = False
        self._stop = threading.Event()
        self._resample: Resampler | None = None
        self._opened_at = self._heard_at = 0.0  # perf_counter of the last (re)open and callback
        try:
            self._stream = self._open()
        except AudioError as error:
            raise AudioError(f"{self.name}: {error}") from None
        except Exception as error:  # PortAudio's own errors opening a device that is there
            raise AudioError(
                f"{self.name}: cannot open the microphone ({str(error).splitlines()[0]})"
            ) from None
        self._watch = threading.Thread(target=self._watchdog, name=f"audio {self.name}", daemon=True)

    def _open(self) -> Any:
        self._resample = None
        self._opened_at = time.perf_counter()
        stream, rate = self._open_stream(self._device, self._callback)
        self._resample = Resampler(rate)
        return stream

    def _callback(self, indata, frames, time_info, status) -> None:
        self._heard_at = time.perf_counter()
        resample = self._resample
        if resample is not None:  # PortAudio may call before open() has learnt the rate
            self.ring.write(resample(np.asarray(indata)))

    def start(self) -> None:
        if not self._watch.is_alive() and self._watch.ident is None:
            self._watch.start()

    def _state(self) -> str:
        """'delivering', 'starting' (open, nothing heard yet, for less than STALL_S) or 'gone'."""
        try:
            active = bool(self._stream is not None and self._stream.active)
        except Exception:  # a device half-gone can make asking raise too
            return "gone"
        now = time.perf_counter()
        if not active:
            return "gone"
        if self._heard_at >= self._opened_at:
            return "delivering" if now - self._heard_at < STALL_S else "gone"
        return "starting" if now - self._opened_at < STALL_S else "gone"

    def _watchdog(self) -> None:
        """Checks the stream every reconnect interval; reopens it while it is gone."""
        interval = self._config.reconnect_interval_s
        while not self._stop.wait(interval):
            state = self._state()
            if state == "starting":
                continue
            if state == "delivering":
                if self.lost:
                    self.lost = False
                    self.reconnects += 1
                    self._log(f"{self.name}: microphone back")
                continue
            if not self.lost:
                self.lost = True
                self._log(f"{self.name}: microphone lost; retrying every {interval} s")
            self._close_stream()
            try:
                self._stream = self._open()
            except Exception:  # still gone: keep trying
                self._stream = None

    def take(self) -> np.ndarray:
        return self.ring.take()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                # abort, not stop: stop waits for the callback thread, which a stalled device keeps
                # waiting in a read; abort cancels it (an input loses at most its last block)
                stream.abort()
                stream.close()
            except Exception:  # a vanished device cannot be closed cleanly; it is gone either way
                pass

    def close(self) -> None:
        self._stop.set()
        if self._watch.ident is not None:
            self._watch.join(timeout=2.0)
        self._close_stream()


def open_audio(
    spec: str, config: SourceConfig, log: Callable[[str], None] | None = None
) -> AudioFile | Microphone:
    """Open (not start) the audio input a spec names; AudioError with one line otherwise."""
    kind, argument = parse_audio_spec(spec)
    if kind == "mic":
        return Microphone(argument, config, **({"log": log} if log else {}))
    return AudioFile(Path(argument), config.realtime, log)


class AudioOnlySource:
    """The node's source when audio is all there is: frames at `source.fps`, no image; each frame's
    `audio` holds the 16 kHz samples that arrived since the last one. Paced, a frame leaves on the
    video clock's tick with whatever the audio thread delivered; unpaced (a file with
    source.realtime: false) each frame takes exactly 1/fps s of the file, as fast as the loop runs."""

    def __init__(self, audio: AudioFile | Microphone, config: SourceConfig) -> None:
        self.audio = audio
        self.name = audio.name
        self.fps = config.fps
        self.dropped = 0

    def start(self) -> AudioOnlySource:
        self.audio.start()
        return self

    def frames(self) -> Iterator[Frame]:
        period = 1.0 / self.fps
        per_frame = SAMPLE_RATE / self.fps
        start, index = time.perf_counter(), 0
        unpaced = isinstance(self.audio, AudioFile) and not self.audio.realtime
        while True:
            if unpaced:
                want = round((index + 1) * per_frame) - round(index * per_frame)
                samples = self.audio.read(want)
                if samples is None:
                    self._ended()
                    return
            else:
                delay = start + (index + 1) * period - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -period:  # the loop fell behind: skip the missed ticks (counted)
                    missed = int(-delay / period)
                    self.dropped += missed
                    index += missed
                samples = self.audio.take()
                if self.audio.ended.is_set() and len(samples) == 0:
                    self._ended()
                    return
            # Captured when the newest audio arrived: the frame's latency is then the added latency
            # from the end of the last hop to the output (the wait for the frame's tick included).
            arrived = self.audio.ring.written_at if not unpaced and len(samples) else None
            timing = Timing(capture=arrived or time.perf_counter())
            yield Frame(index=index, time_s=index * period, timing=timing, audio=samples)
            index += 1

    def _ended(self) -> None:
        """A file that ended on damage ends the run like a bad line in a replay: one line, exit 1."""
        if getattr(self.audio, "error", None):
            from liverig.runtime.sources import SourceError

            raise SourceError(self.audio.error)

    def close(self) -> None:
        self.audio.close()
