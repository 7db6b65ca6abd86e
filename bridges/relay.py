"""A relay thread between the node's loop and an output's asyncio server thread.

Why: waking an asyncio loop from another thread (`loop.call_soon_threadsafe`) writes a byte to the
loop's self-pipe. That write lets go of the interpreter lock, and the woken server thread usually
takes it and runs first: the caller waits for the server's work (0.2 ms a frame, a few ms at p99 with
32 clients, measured). Encoding a frame (msgpack or JSON for 55 bones) is another 0.1-0.5 ms. Neither
belongs on the node's loop thread. `Relay.put` only appends to a `queue.SimpleQueue` (C code that
keeps the interpreter lock); the relay thread wakes, takes everything handed over since it last ran
and calls `deliver(batch)` once, which encodes and wakes the server at most once per batch, so at
most once per frame and less when it is behind.

Used by the WebSocket output (bridges/ws.py) and the live page (runtime/page.py).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_STOP = object()
log = logging.getLogger(__name__)


class Relay(Generic[T]):
    """Hands items from the producer's thread to `deliver(batch)` in a daemon thread.

    `put` never blocks and never runs `deliver`. `deliver` gets the items in the order they were put,
    every item since its last call (a batch of one when it keeps up); dropping stale ones is its
    choice, since only it knows which items must not be lost (a rig's hello, say).
    """

    def __init__(self, deliver: Callable[[list[T]], None], name: str) -> None:
        self._deliver = deliver
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self.batches = 0  # calls to deliver, for tests and benchmarks
        self.error: str | None = None  # the last exception deliver raised, as one line

    def start(self) -> None:
        """Start the thread (separate from the constructor: an output starts it once its server runs)."""
        self._thread.start()

    def put(self, item: T) -> None:
        """Hand `item` over; returns at once (no lock wait, no I/O, no thread switch forced)."""
        if not self._closed:
            self._queue.put(item)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what was handed over before, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            items = [item for item in batch if item is not _STOP]
            if items:
                self.batches += 1
                try:
                    self._deliver(items)
                except Exception as error:  # noqa: BLE001 - one bad batch must not end the stream
                    line = (f"{type(error).__name__}: {error}".splitlines() or [""])[0][:200]
                    if line != self.error:  # once per distinct error, not once per frame
                        log.warning("%s: %s", self._thread.name, line)
                    self.error = line
            if stop:
                return
