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

from bridges.base import Output
from runtime.config import NodeConfig
from runtime.motion import MotionStage, make_motion
from runtime.recording import LandmarkRecorder, OutputRecorder
from runtime.sources import SourceError, WebcamSource, open_source, parse_source_spec
from runtime.stats import Stats

DEFAULT_OUTPUT = "vmc://127.0.0.1:39539"


class StartupError(Exception):
    """Something the user asked for cannot be opened; the message is one line."""


@dataclass
class Node:
    config: NodeConfig
    source: object
    perception: object | None  # None for replay sources: their frames carry observations
    motion: MotionStage
    retarget: object
    outputs: list[Output]
    landmark_recorder: LandmarkRecorder | None = None
    stats: Stats = field(default_factory=Stats)

    def close(self) -> None:
        for closable in [self.source, self.perception, self.landmark_recorder, *self.outputs]:
            if closable is not None:
                try:
                    closable.close()
                except Exception as error:  # closing must not hide the others' closing
                    print(f"liverig: closing {getattr(closable, 'name', closable)}: {error}", file=sys.stderr)


def _open_default_source(config: NodeConfig, log):
    """webcam:0 if there is one, else the bundled real clip, so the first run always shows something."""
    try:
        return WebcamSource(0, config.source)
    except SourceError:
        from runtime.assets import sample_path

        clip = sample_path("carphone.mp4")
        log(f"liverig: no webcam found (webcam:0); playing the bundled clip {clip.name} instead")
        return open_source(f"video:{clip}", config.source)


def _open_output(spec: str, config: NodeConfig) -> Output:
    if spec.startswith("record:"):
        path = spec.removeprefix("record:")
        if not path:
            raise StartupError(f"bad output spec '{spec}': expected record:PATH")
        return OutputRecorder(path)
    from bridges.outputs import open_output

    return open_output(spec, config.bridges, fps=config.source.fps)


def _refuse_overwriting_the_source(source_spec: str, output_specs: list[str], record_landmarks: str | None):
    """Writing the file being played (a recording is read as it plays) would destroy it."""
    kind, argument = parse_source_spec(source_spec)
    if kind not in ("video", "replay"):
        return
    played = Path(argument).resolve()
    written = [record_landmarks] + [spec.split(":", 1)[1] for spec in output_specs
                                    if spec.startswith(("record:", "bvh:"))]  # fmt: skip
    for path in written:
        if path and Path(path).resolve() == played:
            raise StartupError(f"{path} is the file being played ({source_spec}); writing it would "
                               "destroy it")


def open_node(
    config: NodeConfig,
    source_spec: str | None,
    output_specs: list[str],
    record_landmarks: str | None = None,
    log=lambda message: print(message, file=sys.stderr),
) -> Node:
    """Validate every spec, then open each stage; raises StartupError with a one-line reason."""
    from bridges.outputs import BridgeError, SpecError
    from models.backends import BackendUnavailable
    from runtime.fetch import FetchError
    from runtime.retarget import Retargeter, RigError, load_rig

    opened: list = []
    try:
        if source_spec is not None:
            _refuse_overwriting_the_source(source_spec, output_specs, record_landmarks)
            kind, _ = parse_source_spec(source_spec)
            source = open_source(source_spec, config.source)
        else:
            kind = "video"
            source = _open_default_source(config, log)
        opened.append(source)
        retarget = Retargeter(load_rig(config.retarget.rig), config.retarget)
        outputs = []
        for spec in output_specs or [DEFAULT_OUTPUT]:
            outputs.append(_open_output(spec, config))
            opened.append(outputs[-1])
        recorder = LandmarkRecorder(record_landmarks) if record_landmarks else None
        opened.append(recorder)
        perception = None
        if kind != "replay":
            from runtime.perception import PoseEstimator

            perception = PoseEstimator(config.perception)
            opened.append(perception)
        motion = make_motion(config.motion, config.perception)
    except (SourceError, SpecError, BridgeError, RigError, FetchError, BackendUnavailable, ValueError,
            OSError) as error:
        for item in opened:
            if item is not None:
                item.close()
        raise StartupError(str(error).splitlines()[0]) from None
    return Node(config, source, perception, motion, retarget, outputs, recorder,
                Stats(config.stats.window_frames))


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
                node.landmark_recorder.write(observation)
            # Motion: landmarks -> smoothed canonical skeleton.
            pose = node.motion.step(observation)
            # Retarget: canonical skeleton -> the user's rig.
            rig = node.retarget.retarget(pose)
            # Bridges: hand the frame to every output; none of them blocks.
            for output in node.outputs:
                output.send(pose, rig)
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
