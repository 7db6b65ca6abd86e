"""The microphone path through a real PortAudio capture device, without a sound card: sounddevice ->
PortAudio -> ALSA -> alsa-lib's `file` PCM (its `infile` is what the device "hears") over a `null`
slave, defined in an asoundrc in a temporary HOME of the node's subprocess.

alsa-lib's null PCM has no clock (it hands out samples as fast as they are asked for), so the pace is
set by the infile: a Unix socket whose reading end has SO_RCVLOWAT set high, so each read() PortAudio
makes through the file plugin waits until all the bytes it asked for are there, and the test writes
the speech into the other end at real time. The bytes are taken in the format, rate and channel count
the client opened (the file PCM accepts any): the test asks PortAudio (in a subprocess, as the node
sees it) which rate the device offers by default, which is the rate the node opens it at, and writes
float32 mono at that rate. Conversions inside ALSA (a `plug` over the file PCM) are avoided: alsa-lib's
file plugin then reads more of the infile than it delivers, and the speech would come out cut.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly

from tests.bridges_support import OscDump, needs_oscdump
from tests.node_support import ROOT
from tests.test_voice_end_to_end import CLIP, VOWELS, vmc_frames

DEVICE = "liverig_speech"
PAD_S = 1.5  # room noise before and after the 2.99 s of speech
SPEECH_S = 2.99
BLOCK_S = 0.01  # the feeder writes 10 ms at a time


def _room_padded_speech() -> np.ndarray:
    """The clip with PAD_S of its own leading room noise before and after it, 16 kHz float32."""
    audio, _ = soundfile.read(CLIP, dtype="float32")
    noise = audio[:3200]  # 0.2 s before the first word
    pad = np.tile(noise, int(np.ceil(PAD_S * 16000 / len(noise))))[: int(PAD_S * 16000)]
    return np.concatenate([pad, audio, pad])


class FileMicrophone:
    """An ALSA capture device named DEVICE whose samples the test writes, at real time, from a thread.

    `env` is the environment a subprocess needs to see it (HOME holding the asoundrc); `pass_fds` the
    socket end it reads through. `play(samples16k)` queues speech; between and after, room noise (the
    clip's own) is written, so the device never runs dry while the node reads it. `stall()` stops the
    writing (the device delivers nothing: PortAudio's reads block, as with a device that stops),
    `resume()` starts it again."""

    def __init__(self, tmp_path: Path) -> None:
        self._write_end, read_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        read_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 2**30)  # whole reads: see the top
        # A small send buffer: the writer cannot run ahead of the reader by more than a few ms, so the
        # speech starts when the node starts reading, not in a burst of what piled up while it loaded.
        self._write_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        self._read_end = read_end
        self.pass_fds = (read_end.fileno(),)
        home = tmp_path / "home"
        home.mkdir()
        (home / ".asoundrc").write_text(
            f"pcm.{DEVICE} {{\n"
            "    type file\n"
            '    slave.pcm "null"\n'
            '    file "/dev/null"\n'
            f"    infile {read_end.fileno()}\n"
            '    format "raw"\n'
            '    hint.description "liverig test microphone (ALSA file PCM)"\n'
            "}\n"
            # a second input whose name shares "liverig" with the first (for mic:NAME matching two)
            'pcm.liverig_other { type file; slave.pcm "null"; file "/dev/null" }\n'
        )
        self.env = {**os.environ, "HOME": str(home)}
        self.env.pop("ALSA_CONFIG_PATH", None)
        self.index, self.rate = self._query()
        self._queue: list[np.ndarray] = []
        self._lock = threading.Lock()
        noise, _ = soundfile.read(CLIP, dtype="float32", frames=3200)
        self._noise = self._to_rate(noise)
        self._stalled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _query(self) -> tuple[int, int]:
        """PortAudio's number and default rate for the device, asked in a subprocess that sees the
        asoundrc as the node will. A skip only where PortAudio (libportaudio2) or its ALSA host API
        are missing; a device that PortAudio with ALSA does not list is a failure."""
        probe = (
            "import json, sys\n"
            "try:\n"
            "    import sounddevice as sd\n"
            "except OSError as error:\n"
            "    sys.exit(f'SKIP {error}')\n"
            "if not any(api['name'] == 'ALSA' for api in sd.query_hostapis()):\n"
            "    sys.exit('SKIP PortAudio was built without ALSA')\n"
            f"d = sd.query_devices({DEVICE!r}, 'input')\n"
            "print(json.dumps([d['index'], d['default_samplerate']]))\n"
        )
        result = self.python(probe)
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        if last.startswith("SKIP "):
            pytest.skip(f"no PortAudio/ALSA capture here: {last[5:]}")
        assert result.returncode == 0, f"PortAudio does not list the ALSA file PCM: {result.stderr}"
        index, rate = json.loads(result.stdout)
        return int(index), int(rate)

    def _to_rate(self, samples16k: np.ndarray) -> np.ndarray:
        from fractions import Fraction

        ratio = Fraction(self.rate, 16000)
        return resample_poly(samples16k, ratio.numerator, ratio.denominator).astype(np.float32)

    def play(self, samples16k: np.ndarray) -> None:
        with self._lock:
            self._queue.append(self._to_rate(samples16k))

    def stall(self) -> None:
        self._stalled.set()

    def resume(self) -> None:
        self._stalled.clear()

    def _feed(self) -> None:
        block = round(self.rate * BLOCK_S)
        pending, noise_at = np.zeros(0, np.float32), 0
        next_at = time.perf_counter()
        while not self._stop.is_set():
            if self._stalled.is_set():
                time.sleep(BLOCK_S)
                next_at = time.perf_counter()
                continue
            if len(pending) < block:
                with self._lock:
                    if self._queue:
                        pending = np.concatenate([pending, self._queue.pop(0)])
            if len(pending) >= block:
                out, pending = pending[:block], pending[block:]
            else:
                out = np.take(self._noise, np.arange(noise_at, noise_at + block), mode="wrap")
                noise_at = (noise_at + block) % len(self._noise)
            try:
                self._write_end.sendall(out.tobytes())
            except OSError:
                return
            # Real time from when the reader takes the samples: a blocked send resets the clock.
            next_at = max(next_at + BLOCK_S, time.perf_counter() - BLOCK_S)
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    def python(self, code: str, text: bool = True) -> subprocess.CompletedProcess:
        """`code` run by this interpreter in a process that sees the device (its output captured)."""
        return subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            pass_fds=self.pass_fds,
            capture_output=True,
            text=text,
            timeout=60,
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._write_end.close()
        self._read_end.close()


@pytest.fixture
def microphone(tmp_path):
    mic = FileMicrophone(tmp_path)
    yield mic
    mic.close()


def start_node(mic: FileMicrophone, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_node.py"), *map(str, args)],
        cwd=ROOT,
        env=mic.env,
        pass_fds=mic.pass_fds,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_file_device_delivers_the_samples_written_in_real_time(microphone):
    """The device itself, as sounddevice sees it: what the node records is what the test wrote."""
    ramp = (np.arange(16000 * 3) % 1000 / 1000.0 - 0.5).astype(np.float32)
    record = (
        "import sys, time, numpy as np, sounddevice as sd\n"
        f"t = time.perf_counter(); x = sd.rec({2 * microphone.rate}, samplerate={microphone.rate}, "
        f"channels=1, dtype='float32', device={microphone.index}); sd.wait()\n"
        "sys.stdout.buffer.write(np.float32(time.perf_counter() - t).tobytes() + x.tobytes())\n"
    )
    microphone.play(ramp)
    result = microphone.python(record, text=False)
    assert result.returncode == 0, result.stderr
    took = np.frombuffer(result.stdout[:4], np.float32)[0]
    got = np.frombuffer(result.stdout[4:], np.float32)
    assert len(got) == 2 * microphone.rate
    assert 1.8 < took < 6.0, took  # paced: 2 s of audio takes 2 s (a loaded machine is late)
    # A few blocks of room noise may precede the ramp (written before the recorder started reading);
    # from the ramp's first sample on, every sample is the one written, none lost or repeated.
    sent = microphone._to_rate(ramp)
    start = int(np.argmin([np.abs(got[k : k + 200] - sent[:200]).max() for k in range(len(got) // 4)]))
    assert start < 0.2 * microphone.rate, start
    assert np.allclose(got[start:], sent[: len(got) - start], atol=1e-6)


def mouth_and_speech(messages, lag_s: float = 0.0):
    """Per VMC frame: media time, the mouth's opening (the largest vowel) and the frames."""
    times, frames = vmc_frames(messages)
    mouth = np.array([max(frame.get(v, 0.0) for v in VOWELS) for frame in frames])
    return times, mouth, frames


def speech_lag(times: np.ndarray, mouth: np.ndarray) -> float:
    """How much earlier than PAD_S (media time) the speech shows in the mouth: the node's clock starts
    when its loop does (or a video's first frame), the device's samples flow from when the stream
    opened, a little before (or after)."""
    lags = np.arange(-1.5, 1.5, 1 / 30)
    speech = [((times >= PAD_S - lag) & (times < PAD_S + SPEECH_S - lag)).astype(float) for lag in lags]
    scores = [np.corrcoef(mouth, s)[0, 1] if s.any() and not s.all() else -1 for s in speech]
    return float(lags[int(np.argmax(scores))])


def assert_mouth_follows_speech(
    times: np.ndarray, mouth: np.ndarray, shut: float = 0.05, open_share: float = 0.0
) -> None:
    """Shut (below `shut`; on at most `open_share` of the frames not) in the room noise before and
    after the speech, open while it is heard."""
    assert np.all(np.isfinite(times)) and np.all(np.diff(times) > 0)
    lag = speech_lag(times, mouth)
    assert abs(lag) < 1.0, lag  # the speech is in the mouth within a second of its place in the clock
    start, end = PAD_S - lag, PAD_S + SPEECH_S - lag
    edge = 0.35  # as tests/test_voice_end_to_end.py: the mouth's release takes a few hops
    quiet = (times < start - edge) | ((times > end + edge) & (times < end + PAD_S - edge))
    spoken = (times > start) & (times < end)
    assert quiet.sum() > 20 and spoken.sum() > 60, (quiet.sum(), spoken.sum())
    assert np.mean(mouth[quiet] >= shut) <= open_share, mouth[quiet]
    assert np.mean(mouth[spoken] > 2 * shut) > 0.4, np.mean(mouth[spoken] > 2 * shut)
    assert np.corrcoef(mouth, spoken.astype(float))[0, 1] > 0.5


@needs_oscdump
def test_mic_source_on_the_device_moves_the_mouth_with_the_speech(microphone, tmp_path):
    """`run_node.py --source mic:N --out vmc://...` on the device: the mouth opens with the speech and
    stays shut in the room noise before and after it (VMC decoded by liblo's oscdump)."""
    dump = OscDump(tmp_path)
    total_s = 2 * PAD_S + SPEECH_S
    try:
        microphone.play(_room_padded_speech())
        node = start_node(
            microphone,
            "--source",
            f"mic:{microphone.index}",
            "--out",
            f"vmc://127.0.0.1:{dump.port}",
            "--max-frames",
            round(total_s * 30),
        )
        _, err = node.communicate(timeout=120)
        assert node.returncode == 0, err
        messages = dump.messages(expect=10**9, timeout=3.0)
    finally:
        dump.close()
    times, mouth, frames = mouth_and_speech(messages)
    assert len(frames) > 0.9 * total_s * 30, len(frames)
    assert_mouth_follows_speech(times, mouth)
    dominant = {max(VOWELS, key=frame.get) for frame, m in zip(frames, mouth, strict=True) if m > 0.1}
    assert len(dominant) >= 3, dominant  # vowel shapes, not a volume meter


def test_a_device_number_or_name_that_is_not_there_is_a_one_line_error(microphone):
    """With a real input device present, mic:N for a number past the last device and mic:NAME for a
    name no device has: one line naming the spec, exit status 2 (docs/voice.md); the device's own
    name (mic:NAME, part of it) opens it, and a part two devices' names hold is one line naming them."""
    for spec in ("mic:4000", "mic:no such microphone", "mic:²"):  # ² is a digit, not a number
        node = start_node(microphone, "--source", spec, "--max-frames", 5)
        _, err = node.communicate(timeout=120)
        assert node.returncode == 2, err
        assert len(err.strip().splitlines()) == 1 and spec in err and "no input device" in err, err
        assert len(err) < 120, err  # the name once, not echoed again
    node = start_node(microphone, "--source", "mic:liverig", "--max-frames", 5)
    _, err = node.communicate(timeout=120)
    assert node.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "mic:liverig: more than one input device matches that name" in err and "liverig_other" in err, err
    node = start_node(microphone, "--source", "mic:liverig_sp", "--max-frames", 5)
    _, err = node.communicate(timeout=120)
    assert node.returncode == 0, err


@needs_oscdump
def test_a_device_that_stops_delivering_is_reported_and_reopened(microphone, tmp_path):
    """The device stops (nothing more is written: PortAudio's reads wait, no callback comes, the stream
    still says it is active) and starts again: the node reports the microphone lost, reopens it, says
    it is back, and carries on: frames keep coming, and the speech after the return moves the mouth.
    (alsa-lib's file PCM cannot make a running stream fail with an error: it ignores a failed read of
    its infile and the null PCM never errs; a stop is what it can do.)"""
    dump = OscDump(tmp_path)
    speech = _room_padded_speech()
    try:
        node = start_node(
            microphone,
            "--source",
            f"mic:{microphone.index}",
            "--out",
            f"vmc://127.0.0.1:{dump.port}",
            "--max-frames",
            14 * 30,
        )
        started = node.stderr.readline()  # the node's "liverig: mic:N -> ..." line: the loop starts
        assert started.startswith(f"liverig: mic:{microphone.index} -> "), started
        time.sleep(1.0)
        microphone.stall()
        time.sleep(5.0)  # STALL_S (2 s) + the reconnect interval (1 s) + a reopen that hears nothing
        microphone.resume()
        microphone.play(speech)
        _, err = node.communicate(timeout=120)
        assert node.returncode == 0, err
        messages = dump.messages(expect=10**9, timeout=3.0)
    finally:
        dump.close()
    lines = err.splitlines()
    name = f"mic:{microphone.index}"
    lost, back = f"{name}: microphone lost; retrying every 1.0 s", f"{name}: microphone back"
    assert lost in lines and back in lines and lines.index(lost) < lines.index(back), err
    times, mouth, frames = mouth_and_speech(messages)
    assert len(frames) > 0.9 * 14 * 30, len(frames)  # the loop never stopped
    stalled = (times > 1.5) & (times < 6.0)
    assert mouth[stalled].max() < 0.05  # nothing heard, nothing said
    assert mouth[times > 6.0].max() > 0.3  # the speech after the return is heard


def _long_video(path: Path, seconds: float) -> Path:
    """The bundled rendered clip (a rendered person, 2.5 s) played forwards and backwards until
    `seconds`: a video as long as the speech and its silences."""
    import cv2

    capture = cv2.VideoCapture(str(ROOT / "tests/fixtures/rendered_clip.mp4"))
    images = []
    while (ok_image := capture.read())[0]:
        images.append(ok_image[1])
    capture.release()
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    cycle = images + images[::-1]
    for index in range(round(seconds * 30)):
        writer.write(cycle[index % len(cycle)])
    writer.release()
    return path


@needs_oscdump
def test_audio_beside_a_video_on_the_device_moves_the_mouth_with_the_speech(microphone, tmp_path):
    """`--source video:CLIP --audio mic:N`: one loop on the video's clock takes the device's newest
    samples each frame; the run completes (the video's length) and the mouth follows the speech (the
    clip's face keeps its jaw shut: runtime/fusion.py passes the face's mouth while the voice is silent)."""
    total_s = 2 * PAD_S + SPEECH_S + 1.0
    video = _long_video(tmp_path / "long.mp4", total_s)
    dump = OscDump(tmp_path)
    try:
        microphone.play(_room_padded_speech())
        node = start_node(
            microphone,
            "--source",
            f"video:{video}",
            "--audio",
            f"mic:{microphone.index}",
            "--out",
            f"vmc://127.0.0.1:{dump.port}",
        )
        _, err = node.communicate(timeout=180)
        assert node.returncode == 0, err
        messages = dump.messages(expect=10**9, timeout=3.0)
    finally:
        dump.close()
    times, frames = vmc_frames(messages)
    assert len(frames) > 0.8 * total_s * 30, len(frames)  # a busy machine drops a few video frames
    assert times[-1] > total_s - 0.2, times[-1]  # to the video's end
    # The jaw: the audio leads open/close while the voice is heard; otherwise it is the clip's face's
    # (a rendered face, mouth closed: its jawOpen is mostly under 0.06, but the face model now and
    # then reads it open for a few frames). Its VRM vowels are the face's lip shape blended with the
    # voice's (U ~1 for closed lips): not judged here.
    jaw = np.array([frame.get("jawOpen", 0.0) for frame in frames])
    assert_mouth_follows_speech(times, jaw, shut=0.1, open_share=0.1)


def main(argv: list[str]) -> int:
    """`python -m tests.test_mic_device [run_node.py options]`: the node on this file's ALSA device,
    fed the speech clip (with its silences) over and over, e.g. `--out vmc://127.0.0.1:39539 --stats
    --max-frames 900` for the audio path's latency (docs/voice.md); `{mic}` in an option is the
    device's spec (default: `--source {mic}` first)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        try:
            mic = FileMicrophone(Path(folder))
        except pytest.skip.Exception as skipped:
            print(f"test_mic_device: {skipped}", file=sys.stderr)
            return 2
        for _ in range(100):
            mic.play(_room_padded_speech())
        spec = f"mic:{mic.index}"
        args = [arg.replace("{mic}", spec) for arg in argv]
        if not any("{mic}" in arg for arg in argv):
            args = ["--source", spec, *args]
        print(f"test_mic_device: {DEVICE} is {spec} at {mic.rate} Hz", file=sys.stderr)
        node = subprocess.Popen(
            [sys.executable, str(ROOT / "run_node.py"), *args], cwd=ROOT, env=mic.env, pass_fds=mic.pass_fds
        )
        try:
            node.wait()
        finally:
            mic.close()
        return node.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def test_the_low_latency_setting_buffers_less_on_the_device(microphone):
    """`source.mic_latency`: the node's Microphone on the real device with "high" (the default) and
    "low": both open and deliver, and PortAudio's input latency is lower with "low"."""
    probe = textwrap.dedent(
        f"""
        import time
        from liverig.core.config import SourceConfig
        from liverig.runtime.audio import Microphone
        for setting in ("high", "low"):
            mic = Microphone("{microphone.index}", SourceConfig(mic_latency=setting), log=lambda m: None)
            mic.start()
            time.sleep(0.5)
            print(setting, mic._stream.latency, len(mic.take()))
            mic.close()
        """
    )
    microphone.play(np.zeros(16000 * 3, dtype=np.float32))
    result = microphone.python(probe)
    assert result.returncode == 0, result.stderr
    rows = {
        name: (float(latency), int(taken))
        for name, latency, taken in (line.split() for line in result.stdout.splitlines())
    }
    assert rows["low"][0] < rows["high"][0], rows
    assert rows["high"][1] > 0 and rows["low"][1] > 0, rows  # both delivered samples
