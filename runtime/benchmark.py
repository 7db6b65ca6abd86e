"""One benchmark command: `run_node.py bench` (or `python -m liverig.runtime.benchmark`).

Runs, in one process and one sitting, what a user wants to know before going live, and pairs every
speed with a baseline measured in the same run (this machine's load changes from minute to minute,
so only same-run ratios compare):

    node        the bundled clip through the whole node, unpaced (VMC + record outputs): per stage
                median / p99, the node's overhead after perception, capture -> last output, and
                speed against real time; with the lite model and with `perception.model`.
                "Overhead" is the node's own work, not the detectors' (body, face, hands): motion, the
                parts' work around their detectors, retarget, bridges. Baselines: the same replayed
                landmarks through `motion.method: raw`; the same video with the face's detector run
                after the body's instead of beside it (`perception.parallel: false`).
    motion      one ST-CNN step on ONNX Runtime (what the node pays) against recomputing the whole
                81-frame window (needs the dev extra's torch to export that graph; skipped otherwise).
    bridges     encode + send per frame for a 55-bone humanoid with 52 blendshapes, per bridge.
                Baselines: VMC without bundles, the WebSocket frame as JSON.
    websocket   fan-out to N clients (another process) at 60 Hz: delivered frames and delay p50/p99.
                Baseline: one client.
    page        the live page (`--out page://`): the node's loop per frame with one viewer connected
                (a websockets client asking for the camera preview) and the page's own calls, and how
                many frames the viewer's picture trails the node. Baseline: the same replay, no page.
    voice       a speech file in real time through the lip sync into VMC (`--source audio:`): the
                latency added to a 10 ms hop from its end to the output, and the lip sync's cost.
                Baseline: the hop's wait for the next frame alone.
    parts       body + face + hands in real time on the clip scaled to 640x480: the frame rate the
                budget scheduler holds and the face's and hands' rates, their detectors one after the
                other and beside the body's, idle and with one core kept busy by another process.
                Baseline: the body alone under the same load.
    memory      the process's peak resident memory.

One table on the terminal; everything (raw samples' statistics) as JSON (`--json PATH`, default
`out/bench.json`). The README's and docs/performance.md's tables are this command's output.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

IDLE_MS = 15.0  # about what the node's thread waits for a detector in a video (docs/performance.md)


def _row(section: str, name: str, samples_ms, baseline: str | None = None, **extra) -> dict:
    values = np.asarray(samples_ms, dtype=np.float64)
    values = values[np.isfinite(values)]
    row = {
        "section": section,
        "name": name,
        "n": int(values.size),
        "median_ms": float(np.median(values)) if values.size else None,
        "p99_ms": float(np.percentile(values, 99)) if values.size else None,
        "baseline": baseline,
    }
    row.update(extra)
    return row


def _node_run(
    source: str,
    model: str,
    method: str,
    outputs: list[str],
    record: str | None,
    parallel: bool = True,
    idle_ms: float = 0.0,
):
    """One unpaced pass of `source` through the node: per-stage samples (ms), frames and wall time.
    `idle_ms`: the loop sleeps this long before each frame (outside the frame's stages)."""
    from liverig.core.config import load_config
    from liverig.runtime.bench import overhead_stages
    from liverig.runtime.node import open_node, run_loop

    config = load_config()
    config.source.realtime = False
    config.perception.model = model
    config.motion.method = method
    config.perception.parallel = parallel
    config.stats.window_frames = 100_000
    node = open_node(config, source, outputs, record, log=lambda message: None, overwrite=True)
    if idle_ms > 0:
        node.between_frames.append(lambda node: time.sleep(idle_ms / 1000.0))
    fps = float(getattr(node.source, "fps", 0.0) or 30.0)
    start = time.perf_counter()
    stats = run_loop(node)
    wall = time.perf_counter() - start
    samples = stats.samples()
    samples["overhead after perception"] = list(
        np.sum([samples[s] for s in overhead_stages(samples)], axis=0)
    )
    return samples, stats.frames, wall, fps


def node_rows(model: str, tmp: Path) -> list[dict]:
    from liverig.runtime.assets import sample_path

    clip = sample_path("carphone.mp4")
    rows: list[dict] = []
    landmarks = str(tmp / "landmarks.jsonl")
    outputs = ["vmc://127.0.0.1:39539", f"record:{tmp / 'out.jsonl'}"]
    models = ["lite", model] if model != "lite" else ["lite"]
    for variant in models:
        record = landmarks if variant == model else None
        samples, frames, wall, fps = _node_run(f"video:{clip}", variant, "stcnn", outputs, record)
        section = f"node, video, {variant}"
        stages = ("perception", "face_detector", "motion", "face", "retarget", "bridges")
        for stage in (*stages, "overhead after perception", "total"):
            if stage in samples:
                rows.append(
                    _row(section, "capture -> last output" if stage == "total" else stage, samples[stage])
                )
        # Baseline: the face's detector after the body's on the node's thread (perception.parallel off).
        _, serial_frames, serial_wall, _ = _node_run(f"video:{clip}", variant, "stcnn", outputs, None, False)
        serial = (serial_frames / fps) / serial_wall
        realtime = (frames / fps) / wall
        baseline = "speed, face detector after the body's (baseline)"
        rows.append(
            {
                "section": section,
                "name": baseline,
                "value": serial,
                "unit": "x",
                "baseline": "1.0x = real time",
            }
        )
        rows.append(
            {
                "section": section,
                "name": "speed against real time",
                "value": realtime,
                "unit": "x",
                "frames": frames,
                "baseline": baseline,
                "ratio": realtime / serial,
            }
        )
    replay = f"replay:{landmarks}"
    raw, *_ = _node_run(replay, model, "raw", outputs, None)
    stcnn, *_ = _node_run(replay, model, "stcnn", outputs, None)
    base = _row("node, replay", "overhead after perception, raw (baseline)", raw["overhead after perception"])
    ours = _row(
        "node, replay",
        "overhead after perception, stcnn",
        stcnn["overhead after perception"],
        baseline=base["name"],
    )
    ours["ratio"] = ours["median_ms"] / base["median_ms"]
    # The same work after an idle wait, as it comes after a detector in a video: the node's thread
    # sleeps while MediaPipe infers on its own threads. On the virtual machine this is measured on,
    # code run after an idle wait runs about twice as slow (docs/performance.md).
    idle, *_ = _node_run(replay, model, "stcnn", outputs, None, idle_ms=IDLE_MS)
    cold = _row(
        "node, replay",
        f"overhead after perception, stcnn, after {IDLE_MS:g} ms idle",
        idle["overhead after perception"],
        baseline=ours["name"],
    )
    cold["ratio"] = cold["median_ms"] / ours["median_ms"]
    return rows + [base, ours, cold]


def motion_rows(steps: int) -> list[dict]:
    try:
        from liverig.models.bench import run
    except ImportError as error:  # torch is a dev extra: the full-window graph needs it to be exported
        return [{"section": "motion", "name": "skipped", "note": f"needs the dev extra ({error})"}]
    from liverig.models.backends import PROJECT_ROOT

    times = run(str(PROJECT_ROOT / "models" / "weights" / "stcnn.pt"), steps=steps, warmup=100, quiet=True)
    window = next(name for name in times if name.startswith("onnxruntime full window"))
    base = _row("motion", window + " (baseline)", times[window])
    rows = [base]
    for name in ("onnxruntime step", "onnxruntime net", "torch step"):
        if name in times:
            row = _row("motion", name, times[name], baseline=base["name"])
            row["ratio"] = row["median_ms"] / base["median_ms"]
            rows.append(row)
    return rows


def bridge_rows(frames: int, clients: int, seconds: float) -> list[dict]:
    from liverig.bridges.bench import fan_out, per_bridge

    results = per_bridge(frames, quiet=True)
    rows: list[dict] = []
    baselines = {"vmc (bundles)": "vmc (no bundles)", "ws frame (msgpack)": "ws frame (json)"}
    for name, kinds in results.items():
        kind = "encode+send" if "encode+send" in kinds else "encode"
        row = _row("bridges", f"{name} {kind}", np.asarray(kinds[kind]) * 1000.0)
        if name in baselines:
            other = results[baselines[name]]
            other_kind = "encode+send" if "encode+send" in other else "encode"
            row["baseline"] = f"{baselines[name]} {other_kind}"
            row["ratio"] = row["median_ms"] / float(np.median(other[other_kind]) * 1000.0)
        rows.append(row)
    one = fan_out(seconds, 1, 60.0, quiet=True)
    many = fan_out(seconds, clients, 60.0, quiet=True)
    base = _row(
        "websocket",
        "delivery delay, 1 client (baseline)",
        one["delays_ms"],
        delivered=f"{min(one['delivered'])}/{one['frames']}",
    )
    row = _row(
        "websocket",
        f"delivery delay, {clients} clients at 60 Hz",
        many["delays_ms"],
        baseline=base["name"],
        delivered=f"{min(many['delivered'])}/{many['frames']}",
        dropped=many["dropped"],
    )
    row["ratio"] = row["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None
    return rows + [base, row]


def page_rows(frames: int) -> list[dict]:
    """The live page's cost to the loop and its lag (runtime/page_bench.py, one round, real time)."""
    from liverig.runtime.page_bench import measure_page_overhead

    result = measure_page_overhead(frames=frames, rounds=1)
    without, with_page = result["loop_ms_without_page"], result["loop_ms_with_page"]
    calls = result["page_calls_ms"]
    base = {
        "section": "page",
        "name": "loop per frame, no page (replay, real time)",
        "n": result["frames"],
        "median_ms": without["p50"],
        "p99_ms": without["p99"],
        "baseline": None,
    }
    rows = [base]
    row = {
        "section": "page",
        "name": "loop per frame, page + 1 viewer, preview on",
        "n": result["frames"],
        "median_ms": with_page["p50"],
        "p99_ms": with_page["p99"],
        "baseline": base["name"],
        "note": f"p99 {result['added_p99_ms']:+.3f} ms",
    }
    row["ratio"] = with_page["p99"] / without["p99"] if without["p99"] else None
    rows.append(row)
    rows.append(
        {
            "section": "page",
            "name": "the page's own calls per frame",
            "n": result["frames"],
            "median_ms": calls["p50"],
            "p99_ms": calls["p99"],
            "baseline": None,
        }
    )
    lag = result["page_lag_frames"]
    if lag:
        rows.append(
            {
                "section": "page",
                "name": "viewer's picture behind the node (frames, median)",
                "value": float(lag["p50"]),
                "unit": "frames",
                "baseline": None,
                "note": f"p99 {lag['p99']:.1f}, max {lag['max']}",
            }
        )
    return rows


def parts_rows(frames: int) -> list[dict]:
    """The budget scheduler holding the frame rate (issue 16; runtime/bench_parts.py has more rows):
    the bundled clip scaled to 640x480 in real time with body + face + hands, their detectors one
    after the other on the node's thread and beside the body's (the default), idle and with another
    process keeping one core busy. Baseline: the body alone under the same load."""
    from liverig.runtime.bench_parts import busy_core, node_run, scaled_video

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        video = scaled_video(max(frames, 120), (640, 480), Path(tmp) / "clip.mp4")
        for busy in (False, True):
            load = "1 core busy" if busy else "idle"
            spinner = busy_core() if busy else None
            try:
                body = node_run(video, False, False, frames)
                base = f"held fps, body only, {load} (baseline)"
                rows.append(_fps_row(base, body, None))
                for parallel, how in ((False, "one after the other"), (True, "beside the body")):
                    run = node_run(video, True, True, frames, hands=True, parallel=parallel)
                    rows.append(_fps_row(f"held fps, body+face+hands, {how}, {load}", run, body, base))
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    return rows


def _fps_row(name: str, run: dict, body: dict | None, baseline: str | None = None) -> dict:
    note = f"{run['dropped']} dropped"
    if run["face_hz"] or run["hands_hz"]:
        note = f"face {run['face_hz']:.1f} Hz, hands {run['hands_hz']:.1f} Hz, {note}"
    return {
        "section": "parts",
        "name": name,
        "value": run["fps"],
        "unit": "fps",
        "baseline": baseline,
        "ratio": run["fps"] / body["fps"] if body else None,
        "note": note,
        "frame_p50_ms": run["p50"],
        "frame_p99_ms": run["p99"],
    }


SPEECH = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "speech_librivox_0880.wav"


def voice_rows() -> list[dict]:
    """The audio path (issue 17): a speech file played in real time, as a microphone delivers it,
    through the node's lip sync (`--source audio:...`) into VMC. Each frame's capture time is when
    its newest audio arrived, so "hop's end -> last output" is the latency the node adds to a hop
    (the wait for the next 30 fps frame included); the wait alone is the baseline (what a frame
    clock costs, before any work). A frame carries 3.3 hops: the oldest waited up to 23 ms more."""
    from liverig.core.config import load_config
    from liverig.runtime.audio import BLOCK_S
    from liverig.runtime.node import open_node, run_loop

    if not SPEECH.exists():  # an installed package has no test fixtures
        return [{"section": "voice", "name": "skipped: no speech clip (run from a checkout)", "value": 0.0}]
    config = load_config()
    config.source.realtime = True
    config.stats.window_frames = 100_000
    node = open_node(config, f"audio:{SPEECH}", ["vmc://127.0.0.1:39539"], None, log=lambda m: None)
    stats = run_loop(node)
    samples = stats.samples()
    hops_per_frame = (1.0 / config.source.fps) / BLOCK_S  # an audio-only source's frame rate
    base = _row("voice", "newest hop's end -> frame tick (the wait, baseline)", samples["wait"])
    total = _row("voice", "newest hop's end -> last output", samples["total"], baseline=base["name"])
    total["ratio"] = total["median_ms"] / base["median_ms"] if base["median_ms"] else None
    per_hop = np.asarray(samples["voice"]) / hops_per_frame
    return [
        base,
        total,
        _row("voice", "lip sync per frame (3.3 hops)", samples["voice"]),
        _row("voice", "lip sync per 10 ms hop", per_hop),
    ]


def print_table(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for column in ("section", "measure", "median ms", "p99 ms", "vs baseline"):
        table.add_column(column, justify="left" if column in ("section", "measure") else "right")
    for row in rows:
        median, p99 = row.get("median_ms"), row.get("p99_ms")
        if "value" in row:
            median_text, p99_text = f"{row['value']:.2f} {row.get('unit', '')}", ""
        else:
            median_text = "" if median is None else f"{median:.3f}"
            p99_text = "" if p99 is None else f"{p99:.3f}"
        ratio = row.get("ratio")
        note = row.get("note") or row.get("delivered") or ""
        vs = f"{ratio:.2f}x" if ratio is not None else ""
        table.add_row(
            row["section"], row["name"], median_text, p99_text, " ".join(x for x in (vs, note) if x)
        )
    Console(width=150).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_node.py bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="full",
        choices=["lite", "full", "heavy"],
        help="perception model for the node rows (lite is always run too)",
    )
    parser.add_argument("--steps", type=int, default=1000, help="motion steps timed")
    parser.add_argument("--frames", type=int, default=1000, help="frames per bridge")
    parser.add_argument("--clients", type=int, default=32, help="WebSocket fan-out clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="WebSocket fan-out duration")
    parser.add_argument("--page-frames", type=int, default=300, help="frames per page run (real time)")
    parser.add_argument("--parts-frames", type=int, default=240, help="frames per parts run (real time)")
    parser.add_argument(
        "--only",
        default="node,motion,bridges,page,voice,parts",
        help="comma-separated sections to run (node, motion, bridges, page, voice, parts)",
    )
    parser.add_argument("--json", default="out/bench.json", help="where the results go (JSON)")
    args = parser.parse_args(argv)
    sections = set(args.only.split(","))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "node" in sections:
            rows += node_rows(args.model, Path(tmp))
        if "motion" in sections:
            rows += motion_rows(args.steps)
        if "bridges" in sections:
            rows += bridge_rows(args.frames, args.clients, args.seconds)
        if "page" in sections:
            rows += page_rows(args.page_frames)
        if "voice" in sections:
            rows += voice_rows()
        if "parts" in sections:
            rows += parts_rows(args.parts_frames)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rows.append(
        {
            "section": "memory",
            "name": "peak resident memory of this run",
            "value": peak_mb,
            "unit": "MB",
            "baseline": None,
        }
    )
    machine = f"{platform.machine()}, {platform.python_version()}, {_cpus()} CPUs"
    print_table(rows, f"liverig bench ({machine})")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "argv": sys.argv[1:], "rows": rows}, indent=1))
    print(f"bench: wrote {out}", file=sys.stderr)
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
