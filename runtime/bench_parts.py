"""Benchmark the per-frame parts and the budget scheduler on the bundled clip.

    python -m liverig.runtime.bench_parts [--frames 300] [--size 640x480] [--no-busy | --busy-only]
                                  [--repeat N] [--face-only]

1. Face part cost alone (median, p99 ms per frame): the clip's frames through the real body
   perception, then the face part on the crop around the head (and on the whole frame), frame by frame.
2. The node in real time (the clip played back and forth, scaled to a webcam-like 640x480, paced at
   its 29.97 fps; frames the node cannot take in time are dropped, as a camera's are), through
   run_loop with a VMC output, in seven settings: body only; body + face on every frame (no
   scheduler); body + face with the scheduler, the face's detector one after the body's
   (`perception.parallel: false`, the baseline) and beside it (the default, runtime/parts.py);
   body + face + hands (perception.hands on) on every frame and with the scheduler, serial and
   parallel; each with and without a busy process spinning on one core.
   Reported: held frame rate (frames out per second), dropped frames, the face's update rate and
   the hands' (with the scheduler: and the costs it learned), and the frame time's median and p99
   (capture to bridges, the frame's wait for the loop included).

Scaling the 176x144 clip up to 640x480 gives the detectors webcam-sized input (the pixels are the
clip's, so the detail is not a real webcam's; the costs depend on the input size, not on its detail).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from liverig.core.config import NodeConfig, load_config
from liverig.runtime.assets import sample_path
from liverig.runtime.bench import back_and_forth
from liverig.runtime.node import open_node, run_loop


def scaled_video(frames: int, size: tuple[int, int], out: Path) -> Path:
    """The bundled clip back and forth for `frames` frames, resized to `size` (width, height)."""
    capture, images = cv2.VideoCapture(str(sample_path("carphone.mp4"))), []
    while (image := capture.read()[1]) is not None:
        images.append(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    capture.release()
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for image in back_and_forth(images, frames):
        writer.write(image)
    writer.release()
    return out


def face_cost(video: Path, frames: int) -> dict[str, list[float]]:
    """Per-frame ms of the face part alone: on the crop from the body's landmarks, and on the whole
    frame (no body landmarks given); and of what the part adds outside the model (crop, colour
    conversion, filters, presets, head fusion)."""
    from liverig.core import skeleton
    from liverig.core.config import FaceConfig
    from liverig.core.types import Frame, Observation, Pose, Timing
    from liverig.runtime.face import FacePart
    from liverig.runtime.perception import PoseEstimator

    capture = cv2.VideoCapture(str(video))
    images = []
    while len(images) < frames and (image := capture.read()[1]) is not None:
        images.append(image)
    capture.release()
    with PoseEstimator() as body:
        observations = [body(Frame(i, i / 30.0, Timing(0.0), im)) for i, im in enumerate(images)]
    out: dict[str, list[float]] = {}
    for label, use_crop in (("face (crop)", True), ("face (whole frame)", False)):
        part = FacePart(FaceConfig())
        times, outside, found = [], [], 0
        try:
            for i, (image, seen) in enumerate(zip(images, observations, strict=True)):
                timing = Timing(0.0)
                observation = seen if use_crop else Observation.absent(i, i / 30.0, timing, seen.image_size)
                observation.extras = {}
                pose = Pose(i, i / 30.0, timing, True, skeleton.rest_pose(), np.ones(skeleton.NUM_JOINTS))
                t0 = time.perf_counter()
                part(Frame(i, i / 30.0, timing, image), observation, pose)
                times.append((time.perf_counter() - t0) * 1000.0)
                outside.append(times[-1] - part.model_ms)
                found += observation.extras["face"].found
        finally:
            part.close()
        out[f"{label}, found {found}/{len(images)}"] = times[10:]  # the first frames warm up
        out[f"{label}: the part outside the model"] = outside[10:]
    return out


def node_run(
    video: Path, face: bool, schedule: bool, frames: int, hands: bool = False, parallel: bool = True
) -> dict[str, float]:
    config: NodeConfig = load_config()
    config.perception.parallel = parallel
    config.perception.face.enabled = face
    config.perception.hands.enabled = hands
    config.perception.schedule = schedule
    config.source.realtime = True
    node = open_node(config, f"video:{video}", ["vmc://127.0.0.1:39598"], log=lambda message: None)
    runs = {part.name: [0] for part in node.parts}
    for i, part in enumerate(node.parts):  # count each part's inferences (not its held frames)
        node.parts[i] = _Counted(part, runs[part.name])  # the scheduler shares this list
    started = time.perf_counter()
    stats = run_loop(node, max_frames=frames)
    elapsed = time.perf_counter() - started
    totals = stats.samples().get("total", [0.0])
    summary = node.scheduler.summary() if node.scheduler else {}
    return {
        "fps": stats.frames / elapsed,
        "frames": stats.frames,
        "dropped": stats.dropped,
        "face_hz": runs.get("face", [0])[0] / elapsed,
        "hands_hz": runs.get("hands", [0])[0] / elapsed,
        "p50": float(np.percentile(totals, 50)),
        "p99": float(np.percentile(totals, 99)),
        "face_cost_ms": summary.get("face", {}).get("cost_ms_0", 0.0),
        "hands_cost_ms": summary.get("hands", {}).get("cost_ms_0", 0.0),
    }


class _Counted:
    """A part wrapper that counts inferences; everything else is the part's own."""

    def __init__(self, part, runs: list[int]) -> None:
        self._part, self._runs = part, runs

    def __getattr__(self, name):
        return getattr(self._part, name)

    def __call__(self, frame, observation, pose) -> None:
        self._runs[0] += 1
        self._part(frame, observation, pose)


def busy_core() -> subprocess.Popen:
    """Another process keeping one core busy (pinned to CPU 0 where the OS allows it)."""
    code = "while True: pass"
    process = subprocess.Popen([sys.executable, "-c", code])
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(process.pid, {0})
        except OSError:
            pass
    return process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.runtime.bench_parts", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--frames", type=int, default=300, help="frames per node run (default 300: 10 s)")
    parser.add_argument("--size", default="640x480", help="video size WxH (default 640x480)")
    parser.add_argument("--no-busy", action="store_true", help="skip the runs with a busy core")
    parser.add_argument("--busy-only", action="store_true", help="only the runs with a busy core")
    parser.add_argument("--repeat", type=int, default=1, help="run each setting this many times (spread)")
    parser.add_argument("--face-only", action="store_true", help="only the face part's own cost")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    console = Console()
    console.print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.size}")
    with tempfile.TemporaryDirectory() as tmp:
        video = scaled_video(max(args.frames, 120), (width, height), Path(tmp) / "clip.mp4")
        table = Table(title="face part alone, ms per frame")
        for column in ("input", "median", "p99"):
            table.add_column(column, justify="right" if column != "input" else "left")
        for label, times in face_cost(video, 120).items():
            table.add_row(label, f"{np.median(times):.2f}", f"{np.percentile(times, 99):.2f}")
        console.print(table)
        if args.face_only:
            return 0
        table = Table(title=f"node in real time, {args.frames} frames at 29.97 fps, {args.size}")
        for column in ("setting", "load", "held fps", "dropped", "face Hz", "hands Hz", "p50 ms", "p99 ms"):
            table.add_column(column, justify="left" if column in ("setting", "load") else "right")
        settings = [  # label, face, scheduler, hands, parallel
            ("body", False, False, False, True),
            ("body+face, all frames", True, False, False, True),
            ("body+face, scheduler, one after the other", True, True, False, False),
            ("body+face, scheduler", True, True, False, True),
            ("body+face+hands, all frames", True, False, True, True),
            ("body+face+hands, scheduler, one after the other", True, True, True, False),
            ("body+face+hands, scheduler", True, True, True, True),
        ]
        loads = (False,) if args.no_busy else (True,) if args.busy_only else (False, True)
        for busy in loads:
            spinner = busy_core() if busy else None
            try:
                runs = [setting for setting in settings for _ in range(args.repeat)]
                for label, face, schedule, hands, parallel in runs:
                    r = node_run(video, face, schedule, args.frames, hands, parallel)
                    face_hz = f"{r['face_hz']:.1f}" if face else "-"
                    hands_hz = f"{r['hands_hz']:.1f}" if hands else "-"
                    if schedule:
                        face_hz += f" ({r['face_cost_ms']:.0f} ms)"
                        hands_hz += f" ({r['hands_cost_ms']:.0f} ms)" if hands else ""
                    load = "1 core busy" if busy else "idle"
                    table.add_row(
                        label,
                        load,
                        f"{r['fps']:.1f}",
                        str(r["dropped"]),
                        face_hz,
                        hands_hz,
                        f"{r['p50']:.1f}",
                        f"{r['p99']:.1f}",
                    )
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
