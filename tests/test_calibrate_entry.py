"""`run_node.py calibrate KIND PATH`: one entry for every calibration (issue 15 item 4)."""

from __future__ import annotations

import numpy as np

from liverig.runtime.body import load_profile
from tests.node_support import ROOT, run_node

CLIP = ROOT / "tests" / "fixtures" / "rendered_clip.mp4"  # a whole body in view


def test_calibrate_body_writes_a_profile_the_node_reads(tmp_path):
    profile = tmp_path / "me.yaml"
    config = tmp_path / "c.yaml"
    config.write_text("source: {realtime: false}\n")
    result = run_node(
        "calibrate",
        "body",
        profile,
        "--source",
        f"video:{CLIP}",
        "--config",
        config,
        "--out",
        f"record:{tmp_path / 'o.jsonl'}",
    )
    assert result.returncode == 0, result.stderr
    assert "wrote body profile" in result.stderr
    lengths = load_profile(profile)
    assert np.isfinite(lengths).sum() >= len(lengths) // 2
    assert np.all(lengths[np.isfinite(lengths)] > 0.02)
    # The same file again: refused (an old profile is replaced only with --overwrite), nothing run.
    again = run_node("calibrate", "body", profile, "--source", f"video:{CLIP}")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_calibrate_mistakes_get_one_line_and_help_lists_every_kind(tmp_path):
    for argv, words in (
        ((), "expected body, face, voice or camera"),
        (("nose",), "expected body, face, voice or camera"),
        (("face",), "needs the file to write"),
        (("voice",), "needs the file to write"),
        (("body", "--source", "webcam:0"), "needs the file to write"),
    ):
        result = run_node("calibrate", *argv, timeout=60)
        assert result.returncode == 2, (argv, result.stderr)
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    shown = run_node("calibrate", "--help", timeout=60)
    assert shown.returncode == 0
    assert all(kind in shown.stdout for kind in ("body PATH", "face PATH", "voice PATH", "camera GLOB"))
    camera = run_node("calibrate", "camera", str(tmp_path / "none*.jpg"), timeout=120)
    assert camera.returncode == 2 and "no readable images" in camera.stderr
