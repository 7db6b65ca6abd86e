"""Latency accounting: FPS, dropped frames and per-stage p50/p99 over a rolling window."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from rich.console import Console
from rich.table import Table

from liverig.core.types import Timing


class Stats:
    def __init__(self, window_frames: int = 300) -> None:
        self.frames = 0
        self.dropped = 0
        self._stages: dict[str, deque[float]] = {}
        self._ends: deque[float] = deque(maxlen=window_frames)
        self._window = window_frames
        self.started = time.perf_counter()

    def add(self, timing: Timing, dropped: int) -> None:
        self.frames += 1
        self.dropped = dropped
        for stage, ms in timing.stage_ms().items():
            self._stages.setdefault(stage, deque(maxlen=self._window)).append(ms)
        self._stages.setdefault("total", deque(maxlen=self._window)).append(timing.total_ms())
        self._ends.append(time.perf_counter())

    def samples(self) -> dict[str, list[float]]:
        """Every stage's milliseconds over the window, frame-aligned (one value per frame per stage)."""
        return {stage: list(values) for stage, values in self._stages.items()}

    def fps(self) -> float:
        if len(self._ends) < 2:
            return 0.0
        return (len(self._ends) - 1) / max(self._ends[-1] - self._ends[0], 1e-9)

    def percentiles(self) -> dict[str, tuple[float, float]]:
        """Per stage (p50, p99) in milliseconds over the window."""
        return {
            stage: (float(np.percentile(v, 50)), float(np.percentile(v, 99)))
            for stage, v in self._stages.items()
            if v
        }

    def line(self) -> str:
        parts = [f"{self.fps():5.1f} fps", f"dropped {self.dropped}"]
        parts += [f"{s} {p50:.1f}/{p99:.1f}" for s, (p50, p99) in self.percentiles().items()]
        return "  ".join(parts) + "  (ms p50/p99)"

    def table(self, title: str = "liverig timings") -> Table:
        table = Table(title=f"{title}: {self.frames} frames, {self.fps():.1f} fps, {self.dropped} dropped")
        table.add_column("stage")
        table.add_column("p50 ms", justify="right")
        table.add_column("p99 ms", justify="right")
        for stage, (p50, p99) in self.percentiles().items():
            table.add_row(stage, f"{p50:.2f}", f"{p99:.2f}")
        return table

    def print_table(self, console: Console | None = None) -> None:
        (console or Console(stderr=True)).print(self.table())
