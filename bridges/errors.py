"""The two ways an output can fail, kept apart so the command line can tell them apart.

`SpecError` is a user typo in `--out SPEC` (exit code 2, nothing started); `BridgeError` is a failure to
start or run an output that was spelled correctly (port in use, unresolvable host, unwritable path).
Both carry a one-line message that names the output.
"""

from __future__ import annotations


class SpecError(ValueError):
    """An `--out` spec that cannot be parsed: unknown scheme, bad port, stray parts."""


class BridgeError(RuntimeError):
    """An output that cannot start or keep running; the message is one line and names the output."""
