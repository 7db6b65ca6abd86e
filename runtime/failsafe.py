"""One output failing mid-run (disk full, its folder deleted, a receiver's socket error) stops that
output alone: one line says which and what was kept, the live stream and the other outputs carry
on, and the node's exit status says something failed (run_node.py: 1).

File outputs say themselves what they kept (`OutputStopped` from runtime/recording.py and
bridges/bvh.py); any other exception an output raises is reported with its first line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class OutputStopped(RuntimeError):
    """A file output that cannot go on; the message is one line: why, and what is kept."""


class Failsafe:
    """Sends to each output until it raises; then that output is closed and left out."""

    def __init__(self, log: Callable[[str], None] = lambda message: print(message, file=sys.stderr)) -> None:
        self.failed: dict[int, str] = {}  # id(output) -> the line that reported it
        self._log = log

    def call(self, target: Any, method: str, *args: Any) -> None:
        """`target.method(*args)` unless `target` failed before; a failure is reported once."""
        key = id(target)
        if key in self.failed:
            return
        try:
            getattr(target, method)(*args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # noqa: BLE001 - whatever it was, it is this output's alone
            name = getattr(target, "name", type(target).__name__)
            if isinstance(error, OSError) and error.strerror:  # not "[Errno 28] ..."
                reason = error.strerror
            else:
                reason = (str(error).splitlines() or [type(error).__name__])[0]
            if not reason.startswith(str(name)):
                reason = f"{name}: {reason}"
            line = f"liverig: output stopped: {reason}; the other outputs carry on"
            self.failed[key] = line
            self._log(line)
            try:
                target.close()
            except Exception:  # noqa: BLE001 - already failed; its close is best effort
                pass

    @property
    def any_failed(self) -> bool:
        return bool(self.failed)
