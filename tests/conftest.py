"""Fixtures shared across test files. Real assets only: they are fetched and built on first use into
the project cache (LIVERIG_CACHE), so the first session needs the package registries."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.assets import pose_model_path


@pytest.fixture(scope="session")
def pose_model_full() -> Path:
    """The `full` PoseLandmarker .task, built once (downloads @mediapipe/pose the first time)."""
    return pose_model_path("full")
