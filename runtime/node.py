"""The node: open every stage from the command line's specs, then run the loop.

    Source --Frame--> Perception --Observation--> Motion --Pose--> Retarget --RigFrame--> Outputs

`run_loop` is the whole pipeline, one frame at a time, top to bottom. Everything that can fail
because of what the user typed (a spec, a path, a port, a rig, a config key) fails in `open_node`,
before the first frame, as a `StartupError` with one line naming the culprit.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from bridges.base import Output
from runtime.config import NodeConfig
from runtime.failsafe import Failsafe
from runtime.finite import OutputGuard
from runtime.motion import MotionStage, make_motion
from runtime.parts import Part, run_parts
from runtime.recording import LandmarkRecorder, OutputRecorder
from runtime.safe_io import output_refusal
from runtime.sources import SourceError, WebcamSource, open_source, parse_source_spec
from runtime.stats import Stats

DEFAULT_OUTPUT = "vmc://127.0.0.1:39539"
UNITY_HUMANOID_RIG = "vrm0"  # what VMC outputs send when retarget.rig is no Unity humanoid


class StartupError(Exception):
    """Something the user asked for cannot be opened; the message is one line. `key` names the config
    key it came from, if any (run_node.py then names the config file too)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass
class Node:
    config: NodeConfig
    source: object
    perception: object | None  # None for replay sources: their frames carry observations
    motion: MotionStage
    retargets: list  # [0]: retarget.rig; then any other rig an output needs (VMC: a Unity humanoid)
    outputs: list[Output]
    output_rigs: list[int]  # which of `retargets` each output takes
    landmark_recorder: LandmarkRecorder | None = None
    stats: Stats = field(default_factory=Stats)
    parts: list[Part] = field(default_factory=list)  # face, hands, voice...: runtime/parts.py
    guard: OutputGuard = field(default_factory=OutputGuard)  # no NaN/inf reaches an output
    failsafe: Failsafe = field(default_factory=Failsafe)  # an output that fails stops alone

    @property
    def retarget(self):
        """The retargeter for `retarget.rig`."""
        return self.retargets[0]

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
        from runtime.assets import sample_path

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
    from bridges.outputs import parse_spec

    played = None
    if source_spec is not None:
        kind, argument = parse_source_spec(source_spec)
        played = Path(argument).resolve() if kind in ("video", "replay") else None
    files: list[tuple[Path, str, str]] = []  # (file, the path as given, what writes it)
    if record_landmarks is not None:
        if not record_landmarks:
            raise StartupError("--record-landmarks needs a file path")
        writer = f"--record-landmarks {record_landmarks}"
        files.append((Path(record_landmarks).resolve(), record_landmarks, writer))
    for spec in output_specs:
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
                raise StartupError(f"{path} is written by two outputs ({writer} and {spec}); give each "
                                   "its own file")
        files.append((Path(path).resolve(), path, spec))
    for resolved, path, writer in files:
        if resolved == played:
            raise StartupError(f"{path} is the file being played ({source_spec}); writing it would "
                               "destroy it")
        _check_writable(resolved, writer, overwrite)


def _check_writable(path: Path, what: str, overwrite: bool = False) -> None:
    """A file output's folder must exist and take files; what is there already must be a regular file
    the user agreed to replace."""
    if path.is_dir():
        raise StartupError(f"{what}: {path} is a directory")
    refusal = output_refusal(path, overwrite)
    if refusal is not None:
        raise StartupError(f"{what}: {refusal}")
    if not path.parent.is_dir():
        raise StartupError(f"{what}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise StartupError(f"{what}: cannot write in {path.parent}")


def _open_output(spec: str, config: NodeConfig, fps: float, profile) -> Output:
    if spec.startswith("record:"):
        return OutputRecorder(spec.removeprefix("record:"))
    from bridges.outputs import open_output

    axes = {"handedness": profile.handedness, "up": profile.up.lower(), "forward": profile.forward.lower()}
    return open_output(spec, config.bridges, fps=fps, units=profile.units, axes=axes,
                       rest_rotations=profile.rest_rotations())  # fmt: skip


def _open_retarget(config: NodeConfig, log):
    """The retargeter for `retarget.rig`; for a user's model file the automatic mapping's report is
    shown. What cannot be opened names the config key."""
    from runtime.retarget import MODEL_SUFFIXES, Retargeter, load_rig

    rig = config.retarget.rig
    try:
        if Path(rig).suffix.lower() not in MODEL_SUFFIXES:
            profile = load_rig(rig)
        else:
            from runtime.gltf_rig import read_gltf_rig

            profile, report = read_gltf_rig(rig)
            for line in report.lines():
                log(f"liverig: rig {line}")
        return Retargeter(profile, config.retarget)
    except (ValueError, OSError, RuntimeError) as error:
        raise StartupError(str(error).splitlines()[0], "retarget.rig") from None


def _rig_for(spec: str, retargets: list, config: NodeConfig, log) -> int:
    """Which of `retargets` the output `spec` takes. VMC carries a Unity humanoid only, so when
    retarget.rig is another kind of rig a vrm0 retargeter is added for it (once)."""
    from bridges.outputs import rig_requirement
    from runtime.retarget import Retargeter, is_unity_humanoid, load_rig

    profile = retargets[0].profile
    if rig_requirement(spec) != "unity_humanoid" or is_unity_humanoid(profile):
        return 0
    if len(retargets) == 1:
        retargets.append(Retargeter(load_rig(UNITY_HUMANOID_RIG), config.retarget))
        log(f"liverig: {spec} sends the {UNITY_HUMANOID_RIG} rig (HumanBodyBones, Unity axes: what VMC "
            f"receivers expect); retarget.rig '{profile.name}' drives the other outputs")
    return 1


def _open_motion(config: NodeConfig) -> MotionStage:
    """The motion stage; what cannot be opened names the config key it came from."""
    from models.backends import BackendUnavailable
    from runtime.body import BodyProfileError

    try:
        return make_motion(config.motion, config.perception)
    except BodyProfileError as error:
        raise StartupError(str(error), "motion.body.profile") from None
    except BackendUnavailable as error:
        raise StartupError(str(error).splitlines()[0], "motion.backend") from None
    except Exception as error:  # weights missing, unreadable or no model (onnxruntime's own errors)
        raise StartupError(str(error).splitlines()[0] or type(error).__name__, "motion.weights") from None


def open_node(
    config: NodeConfig,
    source_spec: str | None,
    output_specs: list[str],
    record_landmarks: str | None = None,
    log=lambda message: print(message, file=sys.stderr),
    overwrite: bool = False,
) -> Node:
    """Validate every spec, then open each stage; raises StartupError with a one-line reason.
    Existing recordings are replaced only with `overwrite`."""
    from bridges.outputs import BridgeError, SpecError
    from runtime.fetch import FetchError

    output_specs = output_specs or [DEFAULT_OUTPUT]
    opened: list = []
    try:
        _check_output_specs(output_specs, record_landmarks, source_spec, overwrite)
        retargets = [_open_retarget(config, log)]
        if source_spec is not None:
            kind, _ = parse_source_spec(source_spec)
            source = open_source(source_spec, config.source)
        else:
            kind = "video"
            source = _open_default_source(config, log)
        opened.append(source)
        perception = None
        if kind != "replay":
            from runtime.perception import PoseEstimator

            perception = PoseEstimator(config.perception)
            opened.append(perception)
        motion = _open_motion(config)
        # Outputs last, files after the network ones: a start that fails leaves an existing
        # recording of the same name as it was.
        fps = getattr(source, "fps", None) or config.source.fps  # a video's own rate (BVH frame time)
        output_rigs = [_rig_for(spec, retargets, config, log) for spec in output_specs]
        outputs: list[Output] = [None] * len(output_specs)
        writes_a_file = [spec.startswith(("record:", "bvh:")) for spec in output_specs]
        for i in sorted(range(len(output_specs)), key=writes_a_file.__getitem__):
            outputs[i] = _open_output(output_specs[i], config, fps, retargets[output_rigs[i]].profile)
            opened.append(outputs[i])
        recorder = LandmarkRecorder(record_landmarks) if record_landmarks else None
    except BaseException as error:  # Ctrl-C included: close what was opened, then say why
        for item in reversed(opened):
            item.close()
        if isinstance(error, (SourceError, SpecError, BridgeError, FetchError, ValueError, OSError)):
            raise StartupError(str(error).splitlines()[0]) from None
        raise
    return Node(config, source, perception, motion, retargets, outputs, output_rigs, recorder,
                Stats(config.stats.window_frames), failsafe=Failsafe(log))


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
            frame.timing.mark("wait")  # how old the frame is when the loop takes it
            # Perception: image -> 33 landmarks (a replayed frame already carries them).
            if frame.replayed is not None:
                observation = frame.replayed
                frame.timing.mark("perception")
            else:
                observation = node.perception.estimate(frame)
            if node.landmark_recorder is not None:
                node.failsafe.call(node.landmark_recorder, "write", observation)
            # Motion: landmarks -> smoothed canonical skeleton.
            pose = node.motion.step(observation)
            # Parts: face, hands, voice... add expressions and bones to the same frame.
            run_parts(node.parts, frame, observation, pose)
            # Retarget: canonical skeleton -> the user's rig (and a Unity humanoid for VMC if that differs).
            rigs = [retarget.retarget(pose) for retarget in node.retargets]
            pose, rigs = node.guard(pose, rigs)  # the last line: finite numbers only (runtime/finite.py)
            # Bridges: hand the frame to every output; none of them blocks; one that fails stops alone.
            for output, which in zip(node.outputs, node.output_rigs, strict=True):
                node.failsafe.call(output, "send", pose, rigs[which])
            frame.timing.mark("bridges")
            node.stats.add(frame.timing, node.source.dropped)
            if show_stats and time.perf_counter() >= next_print:
                console.print(node.stats.line(), highlight=False)
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
