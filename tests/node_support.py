"""Run the node's command line as a user would: a subprocess of run_node.py."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_node(*args, timeout=300):
    return subprocess.run(
        [sys.executable, str(ROOT / "run_node.py"), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
