"""Fixtures shared across test files. Real assets only: they are fetched and built on first use into
the project cache (LIVERIG_CACHE), so the first session needs the package registries."""

from __future__ import annotations

from pathlib import Path

import pytest

from liverig.runtime.assets import pose_model_path, sample_path
from tests.bridges_support import OSCDUMP, OscDump
from tests.node_support import run_node


@pytest.fixture(scope="session")
def pose_model_full() -> Path:
    """The `full` PoseLandmarker .task, built once (downloads @mediapipe/pose the first time)."""
    return pose_model_path("full")


@pytest.fixture(scope="session")
def fast_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "fast.yaml"
    path.write_text("source: {realtime: false}\n")
    return path


@pytest.fixture(scope="session")
def clip_run(tmp_path_factory, fast_config):
    """The bundled clip through the whole node once: landmark and output recordings."""
    out = tmp_path_factory.mktemp("clip")
    result = run_node(
        "--source",
        f"video:{sample_path('carphone.mp4')}",
        "--config",
        fast_config,
        "--record-landmarks",
        out / "landmarks.jsonl",
        "--out",
        f"record:{out / 'output.jsonl'}",
        "--motion",
        "one_euro",
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def oscdump(tmp_path):
    """liblo's oscdump listening on a free UDP port (skips where liblo-tools is not installed)."""
    if OSCDUMP is None:
        pytest.skip("oscdump not installed (Debian package liblo-tools: apt-get install liblo-tools)")
    dump = OscDump(tmp_path)
    yield dump
    dump.close()
