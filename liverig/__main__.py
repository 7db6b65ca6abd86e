"""`python -m liverig ...`: the node's command line (liverig/cli.py)."""

from liverig.cli import run

run()
