"""`python -m liverig ...`: the node's command line (runtime/cli.py)."""

from liverig.runtime.cli import run

run()
