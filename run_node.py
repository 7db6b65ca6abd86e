#!/usr/bin/env python3
"""liverig from a clone: `python run_node.py --help`. The same as `python -m liverig` or `liverig`
once installed; the command line itself is liverig/cli.py."""

from liverig.cli import run

if __name__ == "__main__":
    run()
