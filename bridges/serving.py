"""A websockets server on its own asyncio loop in a daemon thread: start, port, stop.

Why: the WebSocket output (bridges/ws.py) and the live page (runtime/page.py) both serve from a
thread of their own, so the node's loop never waits on a client; starting that thread (a bind error
reported to the caller as one line), and stopping it (close every connection, stop the loop, cancel
what is left, join) were written twice. What each server does per connection stays with it; the
frames reach the loop through bridges/relay.py.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import Server

from liverig.bridges.errors import BridgeError


class ServerThread:
    """Runs `start()` (a coroutine making a websockets `Server`) on a new loop in a daemon thread and
    waits until it listens; then `background(loop)` starts the server's own periodic tasks, if any.
    Raises BridgeError (one line, `name` first) if it cannot listen within `start_timeout_s`.
    `loop`, `thread`, `server` and `port` are public for the owner (and its tests)."""

    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[Server]],
        port: int,
        start_timeout_s: float,
        background: Callable[[asyncio.AbstractEventLoop], None] | None = None,
    ) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.server: Server | None = None
        self._start = start
        self._background = background
        self._start_error: BaseException | None = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), name=f"bridge {name}", daemon=True)
        self.thread.start()
        if not started.wait(start_timeout_s):
            raise BridgeError(f"{name}: server did not start within {start_timeout_s:.0f} s")
        if self._start_error is not None:
            self.thread.join(timeout=5)
            error = self._start_error
            if isinstance(error, OSError):
                reason = error.strerror or str(error)
                if error.errno == errno.EADDRINUSE:
                    reason = f"port {port} is already in use"
                raise BridgeError(f"{name}: cannot listen: {reason}") from None
            raise BridgeError(f"{name}: cannot start: {error}") from None
        assert self.server is not None
        self.port: int = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close every connection (1001 going away), stop listening, stop the loop, join the thread."""
        if self.server is not None and self.loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
            try:
                future.result(timeout=10)
            except Exception:  # noqa: BLE001 - best effort: the loop is stopped below regardless
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(self._start())
        except BaseException as error:  # noqa: BLE001 - reported to the constructor
            self._start_error = error
            started.set()
            self.loop.close()
            return
        started.set()
        if self._background is not None:
            self._background(self.loop)
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    async def _shutdown(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
