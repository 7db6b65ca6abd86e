#!/usr/bin/env python3
"""liverig from a clone: `python run_node.py --help`. The same as `python -m liverig` or `liverig`
once installed; the command line itself is liverig/runtime/cli.py (runtime/cli.py here)."""

from liverig.runtime.cli import run

if __name__ == "__main__":
    run()
