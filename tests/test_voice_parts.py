"""The voice path's pieces: audio specs and sources (a file, a scripted microphone that disappears and
comes back), the lip sync on real speech and room noise, mouth fusion with a face, the audio-only
avatar (deterministic, smooth, never looping) and camera + --audio through the node."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from liverig.core.config import AliveConfig, SourceConfig, VoiceConfig
from liverig.core.types import Frame, Observation, Pose, Timing
from liverig.runtime.alive import AlivePart
from liverig.runtime.audio import AudioFile, AudioOnlySource, AudioRing, Microphone, parse_audio_spec
from liverig.runtime.fusion import VOICE_KEYS, fuse_mouth
from liverig.runtime.lipsync import LipSync, VisemeModel
from liverig.runtime.voice import VoicePart

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLIP = FIXTURES / "speech_librivox_0880.wav"


def test_audio_specs():
    assert parse_audio_spec("mic:default") == ("mic", "default")
    assert parse_audio_spec("mic:2") == ("mic", "2")
    assert parse_audio_spec("audio:mic") == ("mic", "default")
    assert parse_audio_spec(f"audio:{CLIP}") == ("audio", str(CLIP))
    # a device name: only the first colon splits the spec (ALSA names hold colons and spaces)
    assert parse_audio_spec("mic:USB Audio: - (hw:1,0)") == ("mic", "USB Audio: - (hw:1,0)")
    for bad in (
        "mic:",
        "mic:12345",
        "mic:a\nb",
        "mic:" + "x" * 101,
        "audio:",
        "audio:/no/such.wav",
        f"audio:{FIXTURES}",
        "speaker:1",
    ):
        with pytest.raises(ValueError):
            parse_audio_spec(bad)


def test_ring_returns_what_arrived_and_drops_the_oldest():
    ring = AudioRing(capacity_s=0.05)  # 800 samples
    for k in range(10):
        ring.write(np.full(160, k, np.float32))
    out = ring.take()
    assert len(out) <= 800 and out[-1] == 9 and ring.dropped_samples == 1600 - len(out)
    assert len(ring.take()) == 0


def test_unpaced_file_gives_every_sample_once_at_16k(tmp_path):
    audio, rate = soundfile.read(CLIP, dtype="float32")
    stereo_44k = tmp_path / "clip.flac"  # another rate and two channels: converted to 16 kHz mono
    from scipy.signal import resample_poly

    up = resample_poly(audio, 441, 160)
    soundfile.write(stereo_44k, np.stack([up, up], axis=1), 44100)
    source = AudioOnlySource(AudioFile(stereo_44k, realtime=False), SourceConfig(fps=30)).start()
    frames = list(source.frames())
    source.close()
    total = sum(len(f.audio) for f in frames)
    assert abs(total - len(audio)) < 200
    assert abs(len(frames) - len(audio) / 16000 * 30) <= 2
    assert all(f.image is None for f in frames)
    joined = np.concatenate([f.audio for f in frames])[: len(audio)]
    assert np.corrcoef(joined[1000:40000], audio[1000:40000])[0, 1] > 0.99


def test_paced_file_runs_in_real_time():
    source = AudioOnlySource(AudioFile(CLIP, realtime=True), SourceConfig(fps=30)).start()
    began = time.perf_counter()
    frames = list(source.frames())
    took = time.perf_counter() - began
    source.close()
    assert 2.8 < took < 10.0, took  # the clip is 2.99 s: paced, not read at once (a loaded machine is late)
    assert sum(len(f.audio) for f in frames) > 0.95 * 2.99 * 16000


class ScriptedStream:
    def __init__(self, callback, blocks: int) -> None:
        self.active = True
        self.closed = False

        def run():
            for _ in range(blocks):
                callback(np.full((480, 1), 0.1, np.float32), 480, None, None)
                time.sleep(0.001)
            self.active = False  # unplugged

        threading.Thread(target=run, daemon=True).start()

    def abort(self):
        self.active = False

    def close(self):
        self.closed = True


def test_microphone_lost_is_reported_and_retried():
    opens, messages = [], []
    back = threading.Event()

    def open_stream(device, callback):
        opens.append(device)
        if len(opens) == 1:
            return ScriptedStream(callback, 5), 48000  # works, then disappears
        if len(opens) < 4:
            raise OSError("no such device")  # still gone
        back.set()
        return ScriptedStream(callback, 10**6), 48000  # plugged back in

    mic = Microphone(
        "3", SourceConfig(reconnect_interval_s=0.02), open_stream=open_stream, log=messages.append
    )
    mic.start()
    assert back.wait(5)
    deadline = time.monotonic() + 5
    while mic.reconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    mic.close()
    assert opens[0] == 3 and len(opens) >= 4
    assert messages[0] == "mic:3: microphone lost; retrying every 0.02 s"
    assert "mic:3: microphone back" in messages and mic.reconnects == 1
    samples = mic.take()
    # 48 kHz -> 16 kHz without ripple at the 10 ms block edges (only where a stream starts)
    assert len(samples) > 1000 and np.allclose(samples[-1000:], 0.1, atol=1e-3)


def _speech() -> np.ndarray:
    audio, _ = soundfile.read(CLIP, dtype="float32")
    return audio


def test_lipsync_opens_on_speech_and_stays_shut_in_room_noise():
    audio = _speech()
    room = np.tile(audio[:3200], 10)  # the recording's own room noise, before the first word (2 s)
    lipsync = LipSync(VisemeModel.load())
    quiet = lipsync.feed(room)
    assert max(max(r.expressions.values()) for r in quiet) < 0.05  # (the tiling's seams click)
    spoken = lipsync.feed(audio)
    opened = [r for r in spoken if r.speaking]
    assert len(opened) > 0.4 * len(spoken)
    assert {r.viseme for r in opened} >= {"A", "E"}
    for r in spoken:
        assert all(0.0 <= v <= 1.0 and np.isfinite(v) for v in r.expressions.values())


def test_lipsync_survives_bad_samples():
    lipsync = LipSync(VisemeModel.load())
    junk = np.array([np.nan, np.inf, -np.inf, 5.0, -5.0] * 400, np.float64)
    results = lipsync.feed(junk)
    assert results and all(np.isfinite(list(r.expressions.values())).all() for r in results)


def test_fusion():
    voice = {
        "A": 0.6,
        "I": 0.0,
        "U": 0.0,
        "E": 0.2,
        "O": 0.0,
        "jawOpen": 0.7,
        "mouthFunnel": 0.0,
        "mouthPucker": 0.0,
        "mouthClose": 0.0,
    }
    face = {
        "A": 0.0,
        "O": 0.4,
        "jawOpen": 0.2,
        "mouthFunnel": 0.6,
        "mouthSmileLeft": 0.8,
        "eyeBlinkLeft": 1.0,
    }
    # No voice: the face as it is; no face mouth: the voice's mouth, the face's other keys kept.
    assert fuse_mouth(face, None, True) == face
    alone = fuse_mouth({"eyeBlinkLeft": 1.0}, voice, True)
    assert alone["A"] == 0.6 and alone["eyeBlinkLeft"] == 1.0
    # Silent: the face's mouth passes (a smile, a silent open mouth).
    assert fuse_mouth(face, voice, speaking=False) == face
    both = fuse_mouth(face, voice, True, timing=0.8, shape=0.5)
    assert both["jawOpen"] == pytest.approx(0.8 * 0.7 + 0.2 * 0.2)  # audio leads open/close
    assert both["mouthFunnel"] == pytest.approx(0.5 * 0.6)  # shape blended
    assert both["mouthSmileLeft"] == 0.8 and both["eyeBlinkLeft"] == 1.0  # the face's own
    total = 0.8 * 0.8 + 0.2 * 0.4
    assert sum(both[k] for k in "AIUEO") == pytest.approx(total)
    assert both["O"] == pytest.approx(total * 0.5)  # half the face's O, half the voice's A/E mix
    assert face == {
        "A": 0.0,
        "O": 0.4,
        "jawOpen": 0.2,
        "mouthFunnel": 0.6,
        "mouthSmileLeft": 0.8,
        "eyeBlinkLeft": 1.0,
    }  # pure: the inputs are unchanged
    only_audio = fuse_mouth(face, voice, True, timing=1.0, shape=0.0)
    assert all(only_audio[k] == pytest.approx(voice[k]) for k in VOICE_KEYS)


def _frames(audio: np.ndarray, fps: float = 30.0):
    step = round(16000 / fps)
    for i in range(0, len(audio) // step):
        timing = Timing(capture=time.perf_counter())
        frame = Frame(i, i / fps, timing, audio=audio[i * step : (i + 1) * step])
        observation = Observation.absent(i, i / fps, timing)
        pose = Pose(i, i / fps, timing, False, np.zeros((22, 3)), np.zeros(22))
        yield frame, observation, pose


def _run_avatar(audio: np.ndarray, seed: int) -> list[Pose]:
    voice, alive = VoicePart(VoiceConfig()), AlivePart(AliveConfig(seed=seed))
    poses = []
    for frame, observation, pose in _frames(audio):
        voice(frame, observation, pose)
        alive(frame, observation, pose)
        poses.append(pose)
    return poses


def test_audio_only_avatar_is_deterministic_smooth_and_alive():
    audio = np.concatenate([np.tile(_speech()[:3200], 15), _speech(), np.tile(_speech()[:3200], 25)])
    poses = _run_avatar(audio, seed=3)
    again = _run_avatar(audio, seed=3)
    other = _run_avatar(audio, seed=4)
    heads = np.array([p.bone_rotations["Head"] for p in poses])
    assert np.array_equal(heads, np.array([p.bone_rotations["Head"] for p in again]))
    assert not np.allclose(heads, np.array([p.bone_rotations["Head"] for p in other]))
    assert all(p.present for p in poses)  # tracking
    for bone in ("Head", "Neck", "Chest", "Spine", "LeftEye", "RightEye"):
        q = np.array([p.bone_rotations[bone] for p in poses])
        assert np.all(np.isfinite(q)) and np.allclose(np.linalg.norm(q, axis=1), 1)
        assert np.ptp(q[:, :3], axis=0).max() > 1e-3  # it moves
    # Smooth: the head never jumps more than 1.5 degrees between frames (eyes saccade, on purpose).
    angles = 2 * np.degrees(np.arccos(np.clip(np.abs(np.sum(heads[1:] * heads[:-1], axis=1)), 0, 1)))
    assert angles.max() < 1.5, angles.max()
    # Blinks at natural intervals during 10 s: a few, each closing fully.
    blink = np.array([p.expressions["Blink"] for p in poses])
    starts = np.flatnonzero((blink[1:] > 0.5) & (blink[:-1] <= 0.5))
    assert 1 <= len(starts) <= 8, len(starts)
    # More head motion while speaking (0.5 s into the speech .. its end) than in the long silence after.
    fps = 30
    speech_part = heads[int(2.5 * fps) : int(4.9 * fps)]
    silent_part = heads[int(6 * fps) : int(8.4 * fps)]
    assert np.ptp(speech_part, axis=0).max() > np.ptp(silent_part, axis=0).max()
    # Never a visible loop: no later 2 s stretch of the silent head repeats an earlier one.
    tail = heads[int(5.5 * fps) :]
    window = 60
    first = tail[:window]
    for shift in range(15, len(tail) - window):
        assert np.abs(tail[shift : shift + window] - first).max() > 1e-4


def test_camera_with_audio_beside_it_runs_lip_sync_on_the_video_clock(tmp_path):
    """--source video + --audio audio:PATH: one loop, the voice part takes the newest audio."""
    from liverig.core.config import NodeConfig
    from liverig.runtime.assets import sample_path
    from liverig.runtime.node import open_node, run_loop

    config = NodeConfig()
    # Every part on every frame: under a busy machine the budget scheduler would hold the spy below
    # on some frames, and what is tested here is the audio's clock, not the scheduler's choices.
    config.perception.schedule = False
    node = open_node(
        config,
        f"video:{sample_path('carphone.mp4')}",
        [f"record:{tmp_path / 'o.jsonl'}"],
        log=lambda m: None,
        audio_spec=f"audio:{CLIP}",
    )
    # The face first (the voice fuses with its mouth), no idle avatar with a camera.
    assert [type(part).__name__ for part in node.parts] == ["FacePart", "VoicePart"]
    seen = []

    class Spy:  # a part after the voice part: what the voice wrote on each frame
        name = "spy"

        def __call__(self, frame, observation, pose):
            seen.append((observation.extras["voice"], dict(pose.expressions)))

        def reset(self):
            pass

        def close(self):
            pass

    node.parts.append(Spy())
    run_loop(node, max_frames=60)
    assert len(seen) == 60
    assert sum(state.hops for state, _ in seen) > 100  # the audio arrived alongside the frames
    assert any(state.speaking for state, _ in seen)
    assert max(max(e[k] for k in "AIUEO") for _, e in seen) > 0.2


class _FakeAudio:
    """An --audio input whose samples and loss the test controls."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio, self.position, self.lost = audio, 0, False

    def start(self):
        pass

    def take(self) -> np.ndarray:
        if self.lost:
            return np.zeros(0, np.float32)
        out = self.audio[self.position : self.position + 533]
        self.position += 533
        return out

    def close(self):
        pass


def test_voice_part_fuses_with_the_face_and_survives_a_lost_microphone():
    audio = _FakeAudio(np.concatenate([_speech(), _speech()]))
    part = VoicePart(VoiceConfig(), audio)
    face = {"jawOpen": 0.1, "mouthFunnel": 0.5, "mouthSmileLeft": 0.7, "O": 0.3}
    fused, dropped = [], []
    for i, (_, observation, pose) in enumerate(_frames(np.zeros(16000 * 4, np.float32))):
        frame = Frame(i, i / 30, pose.timing)  # no audio of its own: the part takes from --audio
        audio.lost = i >= 90  # the microphone disappears after 3 s
        pose.expressions = dict(face)  # what the face part wrote this frame
        part(frame, observation, pose)
        state = observation.extras["voice"]
        (fused if i < 90 else dropped).append((state, dict(pose.expressions)))
    speaking = [e for s, e in fused if s.speaking]
    assert len(speaking) > 20
    assert all(e["mouthSmileLeft"] == 0.7 for _, e in fused + dropped)  # the face's own keys
    assert max(e["jawOpen"] for e in speaking) > 0.3  # the audio leads open/close
    silent = [e for s, e in fused if not s.speaking]
    assert silent and all(e == face for e in silent)  # silent: the face's mouth as it is
    # Lost: after DROPOUT_FRAMES frames without audio, the face's mouth alone, and no speaking.
    assert all(e == face and not s.present and not s.speaking for s, e in dropped[5:])


def test_the_idle_avatars_springs_settle_at_any_frame_rate():
    """Every spring of the audio-only avatar, the eyes' 60 ms one included, at 30, 60 and 10 fps:
    it reaches its target without overshoot and never blows up (Euler steps did, at 30 fps)."""
    from liverig.runtime.alive import Spring

    for settle in (0.06, 0.25, 0.8):
        for fps in (10.0, 30.0, 60.0):
            spring = Spring(settle)
            values = [spring(5.0, 1 / fps) for _ in range(int(fps * 3))]
            assert np.all(np.isfinite(values)) and max(values) <= 5.0 + 1e-9, (settle, fps)
            assert abs(values[-1] - 5.0) < 1e-3 and np.all(np.diff(values) >= -1e-12), (settle, fps)


def test_the_idle_avatars_eyes_stay_in_range_for_half_a_minute():
    """30 s audio-only (speech, then silence): the eye bones stay finite and within a plausible
    gaze (saccade targets are a few degrees; an unstable spring spun them and went NaN)."""
    audio = np.concatenate([_speech(), np.zeros(16000 * 27, dtype=np.float32)])
    poses = _run_avatar(audio, seed=5)
    eyes = np.array([p.bone_rotations["LeftEye"] for p in poses])
    assert len(poses) > 850 and np.all(np.isfinite(eyes))
    angles = 2 * np.degrees(np.arccos(np.clip(np.abs(eyes[:, 3]), 0, 1)))
    assert angles.max() < 40.0, angles.max()
    assert np.ptp(angles) > 1.0  # and they do move
