"""The node: open every stage from the command line's specs, then run the loop.

    Source --Frame--> Perception --Observation--> Motion --Pose--> Retarget --RigFrame--> Outputs

`run_loop` is the whole pipeline, one frame at a time, top to bottom. Everything that can fail
because of what the user typed (a spec, a path, a port, a rig, a config key) fails in `open_node`,
before the first frame, as a `StartupError` with one line naming the culprit.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from liverig.bridges.base import Output
from liverig.core.config import NodeConfig
from liverig.runtime.audio import AUDIO_KINDS, parse_audio_spec
from liverig.runtime.failsafe import Failsafe
from liverig.runtime.finite import OutputGuard
from liverig.runtime.motion import MotionStage
from liverig.runtime.openers import (
    StartupError,
    check_writable,
    open_motion,
    open_output_spec,
    open_retarget,
    rig_for,
)
from liverig.runtime.parts import Part, prefetch_parts, run_parts
from liverig.runtime.recording import LandmarkRecorder
from liverig.runtime.scheduler import Scheduler
from liverig.runtime.sources import (
    RecordedPerception,
    SourceError,
    WebcamSource,
    open_source,
    parse_source_spec,
)
from liverig.runtime.stats import Stats

DEFAULT_OUTPUT = "vmc://127.0.0.1:39539"


@dataclass
class Node:
    config: NodeConfig
    source: object
    perception: object  # PoseEstimator, or RecordedPerception for sources without pictures
    motion: MotionStage
    retargets: list  # [0]: retarget.rig; then any other rig an output needs (VMC: a Unity humanoid)
    outputs: list[Output]
    output_rigs: list[int]  # which of `retargets` each output takes
    landmark_recorder: LandmarkRecorder | None = None
    stats: Stats = field(default_factory=Stats)
    parts: list[Part] = field(default_factory=list)  # face, hands, voice...: runtime/parts.py
    # Called with the node before each frame, in the loop thread: live changes (the page's controls,
    # runtime/page.py) are applied here, between frames, never in the middle of one.
    between_frames: list[Callable[[Node], None]] = field(default_factory=list)
    scheduler: Scheduler | None = None  # decides which parts run each frame (None: all, every frame)
    guard: OutputGuard = field(default_factory=OutputGuard)  # no NaN/inf reaches an output
    failsafe: Failsafe = field(default_factory=Failsafe)  # an output that fails stops alone

    @property
    def sees_images(self) -> bool:
        """Whether the source gives pictures (a camera, a video), not a landmark replay or audio: the
        image parts (face, hands) need them."""
        return not isinstance(self.perception, RecordedPerception)

    @property
    def retarget(self):
        """The retargeter for `retarget.rig`."""
        return self.retargets[0]

    def reset(self) -> None:
        """Every stage forgets its state (a source restarted, a new person): perception, motion (and
        through it each motion filter), every retargeter and every part. Each is a `reset()` plus one
        call on one sample type (docs/development.md, "Stages, filters and parts")."""
        for stage in [self.perception, self.motion, *self.retargets, *self.parts]:
            stage.reset()

    def close(self) -> None:
        for closable in [self.source, self.perception, *self.parts, self.landmark_recorder, *self.outputs]:
            if closable is not None:
                try:
                    closable.close()
                except Exception as error:  # closing must not hide the others' closing
                    print(f"liverig: closing {getattr(closable, 'name', closable)}: {error}", file=sys.stderr)


def _open_default_source(config: NodeConfig, log):
    """webcam:0 if there is one, else the bundled real clip, so the first run always shows something."""
    try:
        return WebcamSource(0, config.source, probe_frame=True)
    except SourceError as error:
        from liverig.runtime.assets import sample_path

        clip = sample_path("carphone.mp4")
        log(f"liverig: {error}; playing the bundled clip {clip.name} instead")
        return open_source(f"video:{clip}", config.source)


def _check_output_specs(
    output_specs: list[str], record_landmarks: str | None, source_spec: str | None, overwrite: bool = False
) -> None:
    """Before anything is opened: the spelling of every --out, and every file written by one output
    only, into a folder that takes it, never the file being played (playback reads it as it goes:
    writing it would destroy it), only a regular file (never a device, FIFO or socket), and an
    existing one only with `overwrite` (--overwrite)."""
    from liverig.bridges.outputs import parse_spec

    played = None
    if source_spec is not None:
        kind, argument = parse_source_spec(source_spec)
        played = Path(argument).resolve() if kind in ("video", "replay", "audio") else None
    files: list[tuple[Path, str, str]] = []  # (file, the path as given, what writes it)
    if record_landmarks is not None:
        if not record_landmarks:
            raise StartupError("--record-landmarks needs a file path")
        writer = f"--record-landmarks {record_landmarks}"
        files.append((Path(record_landmarks).resolve(), record_landmarks, writer))
    for spec in output_specs:
        if spec.lower().startswith("page:"):
            from liverig.runtime.page import parse_page_spec

            parse_page_spec(spec)
            continue
        if spec.startswith("record:"):
            path = spec.removeprefix("record:")
            if not path:
                raise StartupError(f"bad output spec '{spec}': expected record:PATH")
        else:
            parsed = parse_spec(spec)
            if parsed.scheme != "bvh":
                continue
            path = parsed.path
        for written, _, writer in files:
            if written == Path(path).resolve():
                raise StartupError(
                    f"{path} is written by two outputs ({writer} and {spec}); give each its own file"
                )
        files.append((Path(path).resolve(), path, spec))
    for resolved, path, writer in files:
        if resolved == played:
            raise StartupError(
                f"{path} is the file being played ({source_spec}); writing it would destroy it"
            )
        check_writable(resolved, writer, overwrite)


def _open_parts(config: NodeConfig, kind: str, opened: list) -> list[Part]:
    """The image parts the config switches on (not for replays or audio sources: no images)."""
    parts: list[Part] = []
    images = kind not in ("replay", *AUDIO_KINDS)
    if config.perception.face.enabled and images:
        from liverig.runtime.face import FacePart
        from liverig.runtime.face_calibration import CalibrationError

        try:
            parts.append(FacePart(config.perception.face))
        except CalibrationError as error:
            raise StartupError(str(error), "perception.face.calibration") from None
        opened.append(parts[-1])
    if config.perception.hands.enabled and images:
        from liverig.runtime.hands import HandsPart

        parts.append(HandsPart(config.perception.hands))
        opened.append(parts[-1])
    return parts


def open_node(
    config: NodeConfig,
    source_spec: str | None,
    output_specs: list[str],
    record_landmarks: str | None = None,
    log=lambda message: print(message, file=sys.stderr),
    audio_spec: str | None = None,
    overwrite: bool = False,
) -> Node:
    """Validate every spec, then open each stage; raises StartupError with a one-line reason.
    `audio_spec` (--audio): a microphone or sound file beside the camera, for the voice part.
    Existing recordings are replaced only with `overwrite`."""
    from liverig.bridges.outputs import BridgeError, SpecError
    from liverig.core.fetch import FetchError

    output_specs = output_specs or [DEFAULT_OUTPUT]
    opened: list = []
    try:
        _check_output_specs(output_specs, record_landmarks, source_spec, overwrite)
        audio_only = source_spec is not None and parse_source_spec(source_spec)[0] in AUDIO_KINDS
        if audio_spec is not None:
            if audio_only:
                raise StartupError(
                    f"--audio {audio_spec}: the source {source_spec} is audio already; "
                    "--audio goes beside a camera, video or replay source"
                )
            parse_audio_spec(audio_spec)
        retargets = [open_retarget(config, log)]
        if source_spec is not None:
            kind, _ = parse_source_spec(source_spec)
            source = open_source(source_spec, config.source)
        else:
            kind = "video"
            source = _open_default_source(config, log)
        opened.append(source)
        perception = RecordedPerception()  # a replay's recorded landmarks; audio: nobody in view
        if kind not in ("replay", *AUDIO_KINDS):
            from liverig.runtime.perception import PoseEstimator

            perception = PoseEstimator(config.perception)
            opened.append(perception)
        motion = open_motion(config)
        # Dependency order: the voice fuses with the mouth the face wrote; the audio-only avatar
        # moves with what the voice heard.
        parts = _open_parts(config, kind, opened)
        parts += _open_voice_parts(config, audio_only, audio_spec, opened, log)
        # Outputs last, files after the network ones: a start that fails leaves an existing
        # recording of the same name as it was.
        fps = getattr(source, "fps", None) or config.source.fps  # a video's own rate (BVH frame time)
        output_rigs = [rig_for(spec, retargets, config, log) for spec in output_specs]
        outputs: list[Output] = [None] * len(output_specs)
        writes_a_file = [spec.startswith(("record:", "bvh:")) for spec in output_specs]
        for i in sorted(range(len(output_specs)), key=writes_a_file.__getitem__):
            outputs[i] = open_output_spec(output_specs[i], config, fps, retargets[output_rigs[i]].profile)
            opened.append(outputs[i])
        recorder = LandmarkRecorder(record_landmarks) if record_landmarks else None
    except BaseException as error:  # Ctrl-C included: close what was opened, then say why
        for item in reversed(opened):
            item.close()
        if isinstance(error, (SourceError, SpecError, BridgeError, FetchError, ValueError, OSError)):
            raise StartupError(str(error).splitlines()[0]) from None
        raise
    scheduler = None
    # Only against a clock: a video played as fast as possible (source.realtime false) has no frame
    # deadline to hold, so every part runs on every frame there.
    live = isinstance(source, WebcamSource) or config.source.realtime
    if parts and config.perception.schedule and live:
        scheduler = Scheduler(parts, target_fps=fps, budget_ms=config.perception.budget_ms)
    node = Node(
        config,
        source,
        perception,
        motion,
        retargets,
        outputs,
        output_rigs,
        recorder,
        Stats(config.stats.window_frames),
        parts,
        scheduler=scheduler,
        failsafe=Failsafe(log),
    )
    for output in outputs:
        if hasattr(output, "attach"):  # the page (runtime/page.py) steers the node it serves
            output.attach(node)
    return node


def _open_voice_parts(
    config: NodeConfig, audio_only: bool, audio_spec: str | None, opened: list, log
) -> list:
    """The voice part (lip sync) when there is audio, and with no camera the audio-only avatar after
    it (runtime/voice.py, runtime/alive.py). Weights or a profile that cannot be read name
    `voice.weights` or `voice.calibration`."""
    if not audio_only and audio_spec is None:
        return []
    from liverig.runtime.alive import AlivePart
    from liverig.runtime.voice import VoicePart, load_viseme_model

    try:
        model = load_viseme_model(config.voice.weights)
    except (OSError, ValueError, KeyError) as error:
        raise StartupError(str(error).splitlines()[0] or type(error).__name__, "voice.weights") from None
    profile = None
    if config.voice.calibration:  # the speaker's vowel profile (run_node.py calibrate voice)
        from liverig.runtime.voice_profile import VoiceProfileError, load_profile

        try:
            profile = load_profile(config.voice.calibration)
        except VoiceProfileError as error:
            raise StartupError(str(error), "voice.calibration") from None
    audio = None
    if audio_spec is not None:
        from liverig.runtime.audio import open_audio

        audio = open_audio(audio_spec, config.source, log)
    parts: list = [VoicePart(config.voice, audio, model, profile)]
    opened.append(parts[0])
    if audio_only and config.voice.alive.enabled:
        parts.append(AlivePart(config.voice.alive))
    return parts


def run_loop(
    node: Node,
    max_frames: int | None = None,
    show_stats: bool = False,
    until: Callable[[], bool] | None = None,
) -> Stats:
    """Run until the source ends, `max_frames` frames were produced, `until()` is true, or Ctrl-C.
    Returns the stats."""
    console = Console(stderr=True)
    next_print = time.perf_counter() + node.config.stats.print_every_s
    node.source.start()
    try:
        for frame in node.source.frames():
            for step in node.between_frames:
                step(node)
            frame.timing.mark("wait")  # how old the frame is when the loop takes it
            # The face's and hands' detectors start now, beside the body's (runtime/parts.py).
            if node.config.perception.parallel:
                if node.scheduler is not None:
                    node.scheduler.prepare(frame)
                else:
                    prefetch_parts(node.parts, frame)
            # Perception: image -> 33 landmarks (a replay's frames carry the recorded ones).
            observation = node.perception(frame)
            if node.landmark_recorder is not None:
                node.failsafe.call(node.landmark_recorder, "write", observation)
            # Motion: landmarks -> smoothed canonical skeleton.
            pose = node.motion(observation)
            # Parts: face, hands, voice... add expressions and bones to the same frame.
            if node.scheduler is not None:  # the parts that fit in this frame's budget; the rest hold
                node.scheduler.run(frame, observation, pose)
            else:
                run_parts(node.parts, frame, observation, pose)
            # Retarget: canonical skeleton -> the user's rig (and a Unity humanoid for VMC if that differs).
            rigs = [retarget(pose) for retarget in node.retargets]
            pose, rigs = node.guard(pose, rigs)  # the last line: finite numbers only (runtime/finite.py)
            # Bridges: hand the frame to every output; none of them blocks; one that fails stops alone.
            for output, which in zip(node.outputs, node.output_rigs, strict=True):
                node.failsafe.call(output, "send", pose, rigs[which])
            frame.timing.mark("bridges")
            node.stats.add(frame.timing, node.source.dropped)
            if node.scheduler is not None:
                node.scheduler.frame_done()
            if show_stats and time.perf_counter() >= next_print:
                console.print(node.stats.line(), highlight=False)
                if node.scheduler is not None:
                    console.print(node.scheduler.line(), highlight=False)
                next_print += node.config.stats.print_every_s
            if max_frames is not None and node.stats.frames >= max_frames:
                break
            if until is not None and until():
                break
    except KeyboardInterrupt:
        console.print("liverig: interrupted; recordings closed cleanly")
    finally:
        node.close()
    return node.stats


def describe_outputs(node: Node) -> str:
    return ", ".join(getattr(output, "name", type(output).__name__) for output in node.outputs)
