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
