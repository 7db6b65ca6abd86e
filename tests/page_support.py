"""Helpers for the page tests: a long landmark replay made from a short fixture, and a node that
serves the page from a subprocess of run_node.py."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from liverig.runtime.page_bench import write_replay
from tests.node_support import ROOT, restore_sigint

FIXTURE = ROOT / "tests" / "fixtures" / "roll_mixup.landmarks.jsonl"


def long_replay(folder: Path, seconds: float) -> Path:
    """The fixture's frames played forwards, backwards, forwards... (no jumps) for `seconds` at 30 fps:
    a replay long enough for a browser to watch."""
    return write_replay(folder / "long.landmarks.jsonl", int(seconds * 30), FIXTURE)


def start_node(*args: str, cwd: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """run_node.py with `args` (one of them a page://...:0 output); returns the process and the page's
    URL once the node says where it serves it."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_node.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=restore_sigint,
    )
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"page (http://\S+/)", line)
        if found:
            return process, found.group(1)
    process.kill()
    raise AssertionError("the node did not start its page:\n" + "".join(lines))


def long_clip(folder: Path, seconds: float) -> Path:
    """The bundled real clip (a face talking on a phone, 4 s) played forwards, backwards, forwards...
    for `seconds`: a video long enough for the face part to be scheduled while a browser watches."""
    import cv2

    from liverig.runtime.assets import sample_path

    capture = cv2.VideoCapture(str(sample_path("carphone.mp4")))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    path = folder / "long_clip.mp4"
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    order = frames + frames[-2:0:-1]
    for i in range(int(seconds * 30)):
        writer.write(order[i % len(order)])
    writer.release()
    return path
