"""What the live page costs the node, and how far the browser's picture trails the node's output.

    python -m liverig.runtime.page_bench [--frames N] [--rounds R] [--browser] [--json PATH]

Overhead (`measure_page_overhead`): the same landmark replay, paced in real time, run by the node with
and without `--out page://127.0.0.1:0` (rounds alternate, each in a fresh node); with the page, one
viewer is connected that asks for the camera preview and reports what it drew (a websockets client,
or with --browser a real headless Chromium showing the page). Reported per frame, in the loop thread:
the loop's own time (every stage but the source's wait: perception + motion + retarget + bridges)
median and p99 with and without the page, and the time spent inside the page's own calls (`send`,
the tap part, the between-frames step) measured around them.

Page lag (`measure_page_lag`, needs Chromium and playwright): the page reports each frame index it
has drawn; the node compares it with the index it last sent. Frames, median / p99 / max.

The target (issue 19): <= 1 ms p99 added to the loop with one viewer and the preview on; the page's
picture <= 2 frames behind the node.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from liverig.core.fetch import PROJECT_ROOT

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
REPLAY_FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "roll_mixup.landmarks.jsonl"


def chromium_path() -> str | None:
    """Debian's chromium (playwright's own browser download is not used)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def launch_browser(playwright):
    """A headless Chromium from the system, driven by playwright."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    return playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)


def write_replay(path: Path, frames: int, fixture: Path = REPLAY_FIXTURE) -> Path:
    """`frames` frames of the fixture played forwards and backwards (no jumps), renumbered."""
    lines = fixture.read_text().splitlines()
    header, recorded = lines[0], [json.loads(line) for line in lines[1:]]
    step = recorded[1]["time_s"] - recorded[0]["time_s"]
    order = list(range(len(recorded))) + list(range(len(recorded) - 2, 0, -1))
    with open(path, "w") as out:
        out.write(header + "\n")
        for index in range(frames):
            frame = dict(recorded[order[index % len(order)]], index=index, time_s=round(index * step, 6))
            out.write(json.dumps(frame, separators=(",", ":")) + "\n")
    return path


class _Timed:
    """Wraps a callable and adds its run time (ms) to a per-frame account."""

    def __init__(self, function, account: list[float]) -> None:
        self.function, self.account = function, account
        self.name = getattr(function, "name", "timed")

    def __call__(self, *args):
        return self._timed(self.function, args)

    def send(self, *args):
        return self._timed(self.function.send, args)

    def _timed(self, function, args):
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.account[-1] += (time.perf_counter() - start) * 1000.0

    def __getattr__(self, name):
        return getattr(self.function, name)


def _viewer(url: str) -> None:
    """A page viewer without a browser (its own process, as a browser is): asks for the preview and
    reports each frame as drawn, until the node closes the stream."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(url.replace("http://", "ws://") + "stream?format=json") as socket:
        socket.send(json.dumps({"type": "preview", "on": True}))
        print("connected", flush=True)
        try:
            for message in socket:
                if isinstance(message, str) and '"type":"frame"' in message[:40]:
                    socket.send(json.dumps({"type": "rendered", "index": json.loads(message)["index"]}))
        except ConnectionClosed:
            pass


def _start_viewer(url: str, browser: bool) -> subprocess.Popen:
    command = [sys.executable, "-m", "liverig.runtime.page_bench", "--viewer", url] + (
        ["--browser"] if browser else []
    )
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "connected":
        process.kill()
        raise RuntimeError("the viewer did not connect")
    return process


def _run_once(replay: Path, frames: int, with_page: bool, browser: bool) -> dict:
    from liverig.core.config import NodeConfig
    from liverig.runtime.node import open_node, run_loop

    config = NodeConfig()
    config.stats.window_frames = frames
    config.page.preview = True
    outputs = ["ws://127.0.0.1:0"] + (["page://127.0.0.1:0"] if with_page else [])
    node = open_node(config, f"replay:{replay}", outputs, log=lambda message: None)
    page_ms: list[float] = []
    viewer = None
    if with_page:
        page = node.outputs[1]
        node.outputs[1] = _Timed(page, page_ms)
        node.parts[:] = [_Timed(part, page_ms) if part.name == "page" else part for part in node.parts]
        node.between_frames[:] = [_Timed(step, page_ms) for step in node.between_frames]
        viewer = _start_viewer(page.name.removeprefix("page "), browser)
    original_add = node.stats.add

    def add(timing, dropped):
        original_add(timing, dropped)
        page_ms.append(0.0)  # the next frame's account

    page_ms.append(0.0)
    node.stats.add = add
    lag = None
    try:
        stats = run_loop(node, max_frames=frames)
    finally:
        if with_page:
            lag = page.stats_message()["page_lag_frames"]
        if viewer is not None:
            try:
                viewer.wait(timeout=30)  # it ends when the node closes the stream
            except subprocess.TimeoutExpired:
                viewer.kill()
    samples = stats.samples()
    loop_ms = np.sum([samples[s] for s in samples if s not in ("wait", "total")], axis=0)
    return {"loop_ms": loop_ms.tolist(), "page_ms": page_ms[:frames], "lag": lag}


def _browser_viewer(url: str) -> None:
    """Headless Chromium showing the page with the preview on, until the node closes the stream."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("window.liverig && window.liverig.connected")
        page.locator("#preview").check()
        print("connected", flush=True)
        page.wait_for_function("!window.liverig.connected", timeout=0)
        browser.close()


def measure_page_overhead(frames: int = 300, rounds: int = 2, browser: bool = False) -> dict:
    """Loop time per frame with and without the page (one viewer, preview on); see the module doc."""
    with tempfile.TemporaryDirectory() as tmp:
        replay = write_replay(Path(tmp) / "replay.jsonl", frames + 30)
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for _ in range(rounds):
            for with_page in (False, True):
                runs[with_page].append(_run_once(replay, frames, with_page, browser))
    base = np.concatenate([r["loop_ms"] for r in runs[False]])
    page = np.concatenate([r["loop_ms"] for r in runs[True]])
    calls = np.concatenate([r["page_ms"] for r in runs[True]])
    lags = [r["lag"] for r in runs[True] if r["lag"]]
    result = {
        "frames": int(len(page)),
        "viewer": "chromium" if browser else "websockets client",
        "loop_ms_without_page": {"p50": float(np.median(base)), "p99": float(np.percentile(base, 99))},
        "loop_ms_with_page": {"p50": float(np.median(page)), "p99": float(np.percentile(page, 99))},
        "page_calls_ms": {
            "p50": float(np.median(calls)),
            "p99": float(np.percentile(calls, 99)),
            "max": float(np.max(calls)),
        },
        "page_lag_frames": lags[-1] if lags else None,
    }
    result["added_p99_ms"] = result["loop_ms_with_page"]["p99"] - result["loop_ms_without_page"]["p99"]
    return result


def measure_page_lag(seconds: float = 10.0) -> dict:
    """Page-to-screen lag in frames, with a real headless Chromium showing the page."""
    result = measure_page_overhead(frames=int(seconds * 30), rounds=1, browser=True)
    return {"page_lag_frames": result["page_lag_frames"], "viewer": result["viewer"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.runtime.page_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--frames", type=int, default=300, help="frames per run (30 fps, real time)")
    parser.add_argument("--rounds", type=int, default=2, help="runs with and without the page, alternating")
    parser.add_argument("--browser", action="store_true", help="the viewer is headless Chromium")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--viewer", metavar="URL", help=argparse.SUPPRESS)  # the bench's own viewer
    args = parser.parse_args(argv)
    if args.viewer:
        (_browser_viewer if args.browser else _viewer)(args.viewer)
        return 0
    result = measure_page_overhead(args.frames, args.rounds, args.browser)
    without, with_page, calls = (
        result["loop_ms_without_page"],
        result["loop_ms_with_page"],
        result["page_calls_ms"],
    )
    print(f"page overhead, {result['frames']} frames, one viewer ({result['viewer']}), preview on")
    print(f"  loop without page   p50 {without['p50']:.3f} ms  p99 {without['p99']:.3f} ms")
    print(
        f"  loop with page      p50 {with_page['p50']:.3f} ms  p99 {with_page['p99']:.3f} ms  "
        f"(p99 {result['added_p99_ms']:+.3f} ms)"
    )
    print(
        f"  page's own calls    p50 {calls['p50']:.3f} ms  p99 {calls['p99']:.3f} ms  "
        f"max {calls['max']:.3f} ms"
    )
    lag = result["page_lag_frames"]
    if lag:
        print(
            f"  page lag (frames)   p50 {lag['p50']:.1f}  p99 {lag['p99']:.1f}  max {lag['max']}  "
            f"(n {lag['n']})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
