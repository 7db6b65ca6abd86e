"""Benchmark the node on the bundled clip: perception and per-stage overhead, median and p99 (ms).

    python -m runtime.bench [--passes 3] [--model full] [--methods stcnn,one_euro,raw]

Pass 1 runs the real clip through the whole node (video -> PoseLandmarker -> ... -> VMC + record) as
fast as it can (no pacing, no dropped frames), recording the landmarks; then each motion method
replays those landmarks through the same node, so the motion stages are compared on identical input
in one run. "wait" is a frame's age when the loop takes it (the decoder runs one frame ahead);
"overhead" is everything the node adds per frame after perception (motion, retarget, bridges).
"stcnn, bones held" and "stcnn, feet locked" are the stcnn replay with `motion.body.lock_bones: true`
and `motion.feet.lock: true`, to show what each costs.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from runtime.assets import sample_path
from runtime.config import NodeConfig, load_config
from runtime.node import open_node, run_loop

STAGES_AFTER_PERCEPTION = ("motion", "retarget", "bridges")


def _lock_bones(config: NodeConfig) -> None:
    config.motion.body.lock_bones = True


def _lock_feet(config: NodeConfig) -> None:
    config.motion.feet.lock = True


def _run(source: str, method: str, model: str, outputs: list[str], record: str | None, passes: int,
         adjust: Callable[[NodeConfig], None] | None = None):
    per_stage: dict[str, list[float]] = {}
    for _ in range(passes):
        config = load_config()
        config.source.realtime = False
        config.perception.model = model
        config.motion.method = method
        if adjust is not None:
            adjust(config)
        config.stats.window_frames = 100_000
        node = open_node(config, source, outputs, record, log=lambda message: None)
        stats = run_loop(node)
        for stage, samples in stats.samples().items():
            per_stage.setdefault(stage, []).extend(samples)
    overhead = np.sum([per_stage[s] for s in STAGES_AFTER_PERCEPTION if s in per_stage], axis=0)
    per_stage["overhead"] = list(overhead)
    return per_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3, help="times through the clip (default 3)")
    parser.add_argument("--model", default="full", choices=["lite", "full", "heavy"])
    parser.add_argument("--methods", default="stcnn,one_euro,raw")
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
                    runs[f"replay, stcnn, {name}"] = _run(replay, method, args.model, outputs, None,
                                                          args.passes, adjust)
    table = Table(title=f"liverig node on {clip.name} ({args.model} model, {args.passes} passes, "
                        f"{platform.machine()}, {platform.python_version()})")
    for column in ("run", "stage", "frames", "median ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("run", "stage") else "right")
    for run, stages in runs.items():
        for stage, samples in stages.items():
            if run.startswith("replay") and stage == "perception":
                continue  # replayed frames carry their landmarks: nothing to time
            values = np.asarray(samples)
            table.add_row(run, stage, str(len(values)), f"{np.median(values):.3f}",
                          f"{np.percentile(values, 99):.3f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
