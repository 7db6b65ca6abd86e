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


def start_node(*args, sigint: bool = False) -> subprocess.Popen:
    """run_node.py in the background (stdout and stderr piped, text) for a test that talks to it while
    it runs; `sigint`: the test will Ctrl-C it (see restore_sigint)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_node.py"), *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=restore_sigint if sigint else None,
    )
