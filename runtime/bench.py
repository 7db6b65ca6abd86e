"""Benchmark the node on the bundled clip: perception and per-stage overhead, median and p99 (ms).

    python -m liverig.runtime.bench [--passes 3] [--model full] [--methods stcnn,one_euro,raw]
                            [--soak N] [--soak-video N]

Pass 1 runs the real clip through the whole node (video -> PoseLandmarker -> ... -> VMC + record) as
fast as it can (no pacing, no dropped frames), recording the landmarks; then each motion method
replays those landmarks through the same node, so the motion stages are compared on identical input
in one run. "wait" is a frame's age when the loop takes it (the decoder runs one frame ahead);
"overhead" is everything the node adds per frame after perception (motion, retarget, bridges).
"stcnn, bones held" and "stcnn, feet locked" are the stcnn replay with `motion.body.lock_bones: true`
and `motion.feet.lock: true`, to show what each costs.
`--soak N` then replays the clip's landmarks, back and forth, for N frames through stcnn into every
kind of output (VMC, WebSocket, OSC, record, BVH) and prints the process's resident memory along the
way: a node streams for hours, so its memory must not grow with the frames it has seen.
`--soak-video N` does the same with the clip's video frames, so PoseLandmarker is in the loop too.
Last, the motion stage's small parts are timed alone, each called on the clip's own landmarks frame
by frame (`stage_timings`: a per-frame cost of a few hundredths of a millisecond drowns in the
node's run-to-run spread otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from liverig.core.config import NodeConfig, load_config
from liverig.runtime.assets import sample_path
from liverig.runtime.node import open_node, run_loop
from liverig.runtime.recording import LANDMARK_FORMAT, read_json_lines

NOT_OVERHEAD = ("wait", "perception", "total", "overhead")  # and every "*_detector" stage


def overhead_stages(samples: dict) -> list[str]:
    """The stages that are the node's own work after perception: motion, the parts' work around their
    detectors (face, hands...), retarget, bridges; not the detectors (body, face, hands)."""
    return [s for s in samples if s not in NOT_OVERHEAD and not s.endswith("_detector")]


def _lock_bones(config: NodeConfig) -> None:
    config.motion.body.lock_bones = True


def _lock_feet(config: NodeConfig) -> None:
    config.motion.feet.lock = True


def _run(
    source: str,
    method: str,
    model: str,
    outputs: list[str],
    record: str | None,
    passes: int,
    adjust: Callable[[NodeConfig], None] | None = None,
):
    per_stage: dict[str, list[float]] = {}
    for _ in range(passes):
        config = load_config()
        config.source.realtime = False
        config.perception.model = model
        config.motion.method = method
        if adjust is not None:
            adjust(config)
        config.stats.window_frames = 100_000
        node = open_node(config, source, outputs, record, log=lambda message: None, overwrite=True)
        stats = run_loop(node)
        for stage, samples in stats.samples().items():
            per_stage.setdefault(stage, []).extend(samples)
    overhead = np.sum([per_stage[s] for s in overhead_stages(per_stage)], axis=0)
    per_stage["overhead"] = list(overhead)
    return per_stage


def resident_mb() -> float:
    """This process's resident memory now, MB (Linux /proc; NaN elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def back_and_forth(items: list, n: int) -> list:
    """The first n items of items, reversed, items, reversed...: a loop with no jump at the seams."""
    return [
        items[i if lap % 2 == 0 else len(items) - 1 - i]
        for lap, i in (divmod(k, len(items)) for k in range(n))
    ]


def long_replay(landmarks: Path, frames: int, out: Path) -> str:
    """A landmark recording of `frames` frames made from `landmarks` played back and forth."""
    header, records = read_json_lines(landmarks, LANDMARK_FORMAT)
    with open(out, "w") as handle:
        handle.write(json.dumps(header) + "\n")
        for n, record in enumerate(back_and_forth(records, frames)):
            handle.write(json.dumps({**record, "index": n, "time_s": n / 30.0}) + "\n")
    return f"replay:{out}"


def long_video(clip: Path, frames: int, out: Path) -> str:
    """A video of `frames` frames made from `clip` played back and forth."""
    import cv2

    capture, images = cv2.VideoCapture(str(clip)), []
    while (image := capture.read()[1]) is not None:
        images.append(image)
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    capture.release()
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for image in back_and_forth(images, frames):
        writer.write(image)
    writer.release()
    return f"video:{out}"


def soak(source: str, frames: int, tmp: Path, checkpoints: int = 6) -> list[tuple[int, float]]:
    """`source` through the whole node (stcnn) into every kind of output, unpaced; returns (frames
    done, resident MB) at the start and at `checkpoints - 1` even steps."""
    config = load_config()
    config.source.realtime = False
    outputs = [
        "vmc://127.0.0.1:39539",
        "ws://127.0.0.1:0",
        "osc://127.0.0.1:9000",
        f"record:{tmp / 'soak_out.jsonl'}",
        f"bvh:{tmp / 'soak.bvh'}",
    ]
    node = open_node(config, source, outputs, None, log=lambda message: None, overwrite=True)
    every = max(frames // (checkpoints - 1), 1)
    memory = [(0, resident_mb())]

    def sample() -> bool:
        done = node.stats.frames
        if done % every == 0 or done == frames:
            memory.append((done, resident_mb()))
        return False

    run_loop(node, until=sample)
    return memory


def soak_line(what: str, memory: list[tuple[int, float]]) -> str:
    growth = memory[-1][1] - memory[1][1] if len(memory) > 2 else float("nan")
    return (
        f"soak, {what}: {memory[-1][0]} frames through stcnn into VMC, WebSocket, OSC, record and BVH; "
        "resident MB "
        + ", ".join(f"{mb:.1f} at {n}" for n, mb in memory)
        + f"; growth after the first checkpoint {growth:+.1f} MB"
    )


def stage_timings(landmarks: Path, repeats: int = 10) -> dict[str, list[float]]:
    """ms per call of each small part of the motion stage, on the recorded clip's present frames
    (the whole clip `repeats` times, each part restarted every pass), as the node runs them."""
    import time

    from liverig.core.config import MotionConfig, PerceptionConfig
    from liverig.core.types import MotionSample
    from liverig.runtime.motion import canonical_observation
    from liverig.runtime.motion_methods import make_motion
    from liverig.runtime.recording import read_landmark_recording

    # The node's own motion stage as configured by default (stcnn), its filters timed one by one in
    # the order it runs them, each on what the filters before it made of the frame.
    stage = make_motion(MotionConfig(), PerceptionConfig())
    names = {
        "SideGuard": "side guard",
        "LearnedSmoother": "network step",
        "Reentry": "re-entry glide",
        "Deadband": "deadband",
        "BodyCalibration": "bone hold",
        "RootFilter": "root filter",
        "FootLock": "foot lock",
        "UnseenLegs": "unseen legs",
    }
    fov = NodeConfig().perception.horizontal_fov_deg
    present = [o for o in read_landmark_recording(landmarks)[1] if o.present]
    frames = [(o.time_s, *canonical_observation(o, fov), o.image_size) for o in present]
    out: dict[str, list[float]] = {names.get(type(f).__name__, type(f).__name__): [] for f in stage.filters}
    for _ in range(repeats):
        stage.reset()
        for t, joints, confidence, image, root, (width, height) in frames:
            sample = MotionSample(t, joints, confidence, image, root, width / max(height, 1))
            for f in stage.filters:
                start = time.perf_counter()
                sample = f(sample)
                out[names.get(type(f).__name__, type(f).__name__)].append(
                    1000 * (time.perf_counter() - start)
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.runtime.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--passes", type=int, default=3, help="times through the clip (default 3)")
    parser.add_argument("--model", default="full", choices=["lite", "full", "heavy"])
    parser.add_argument("--methods", default="stcnn,one_euro,raw")
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="N",
        help="then replay N frames through every output and print resident memory",
    )
    parser.add_argument(
        "--soak-video",
        type=int,
        default=0,
        metavar="N",
        help="the same for N frames of video, through PoseLandmarker",
    )
    args = parser.parse_args(argv)
    clip = sample_path("carphone.mp4")
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        landmarks = str(Path(tmp) / "landmarks.jsonl")
        outputs = ["vmc://127.0.0.1:39539", f"record:{Path(tmp) / 'out.jsonl'}"]
        first = args.methods.split(",")[0]
        runs = {f"video, {first}": _run(f"video:{clip}", first, args.model, outputs, landmarks, args.passes)}
        for method in args.methods.split(","):
            replay = f"replay:{landmarks}"
            runs[f"replay, {method}"] = _run(replay, method, args.model, outputs, None, args.passes)
            if method == "stcnn":  # what holding the bones (runtime/body.py) or feet (runtime/feet.py) costs
                for name, adjust in (("bones held", _lock_bones), ("feet locked", _lock_feet)):
                    runs[f"replay, stcnn, {name}"] = _run(
                        replay, method, args.model, outputs, None, args.passes, adjust
                    )
        parts = stage_timings(Path(landmarks))
        soaks = []
        if args.soak > 0:
            source = long_replay(Path(landmarks), args.soak, Path(tmp) / "soak.jsonl")
            soaks.append(soak_line("replay", soak(source, args.soak, Path(tmp))))
        if args.soak_video > 0:
            source = long_video(clip, args.soak_video, Path(tmp) / "soak.mp4")
            soaks.append(soak_line("video", soak(source, args.soak_video, Path(tmp))))
    table = Table(
        title=f"liverig node on {clip.name} ({args.model} model, {args.passes} passes, "
        f"{platform.machine()}, {platform.python_version()})"
    )
    for column in ("run", "stage", "frames", "median ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("run", "stage") else "right")
    for run, stages in runs.items():
        for stage, samples in stages.items():
            if run.startswith("replay") and stage == "perception":
                continue  # replayed frames carry their landmarks: nothing to time
            values = np.asarray(samples)
            table.add_row(
                run, stage, str(len(values)), f"{np.median(values):.3f}", f"{np.percentile(values, 99):.3f}"
            )
    console.print(table)
    alone = Table(title="motion stage parts timed alone (the clip's landmarks, 10 passes)")
    for column in ("part", "calls", "median ms", "p99 ms"):
        alone.add_column(column, justify="left" if column == "part" else "right")
    for name, samples in parts.items():
        median, p99 = np.median(samples), np.percentile(samples, 99)
        alone.add_row(name, str(len(samples)), f"{median:.4f}", f"{p99:.4f}")
    console.print(alone)
    for line in soaks:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
