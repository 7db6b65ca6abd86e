"""Run the node's command line as a user would: a subprocess of run_node.py."""

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def restore_sigint() -> None:
    """`preexec_fn` for a child the test will Ctrl-C. A shell that starts the tests in the background
    (`pytest &`) has them ignore SIGINT, children inherit that, and Python then installs no
    KeyboardInterrupt handler: the Ctrl-C would be lost. Back to the default, Python installs it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_node(*args, timeout=300):
    return subprocess.run(
        [sys.executable, str(ROOT / "run_node.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
