"""`run_node.py bench`: one command, one table, JSON with a same-run baseline beside every speed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_writes_every_speed_with_its_baseline(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "run_node.py",
            "bench",
            "--only",
            "node,bridges,page,voice,parts",
            "--parts-frames",
            "30",
            "--model",
            "lite",
            "--frames",
            "40",
            "--clients",
            "3",
            "--seconds",
            "0.5",
            "--page-frames",
            "60",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "liverig bench" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    by_name = {(row["section"], row["name"]): row for row in rows}
    names = {row["name"] for row in rows}
    for row in rows:
        for key in ("median_ms", "p99_ms", "value", "ratio"):
            if row.get(key) is not None:
                assert math.isfinite(row[key]) and row[key] >= 0, row
        if row.get("baseline") and "(baseline)" not in row["name"] and "real time" not in row["baseline"]:
            assert any(row["baseline"] == other["name"] for other in rows), row  # paired in the same run
    assert {"perception", "overhead after perception", "capture -> last output"} <= names
    speed = by_name[("node, video, lite", "speed against real time")]
    assert speed["frames"] > 0 and speed["value"] > 0 and speed["ratio"] > 0  # against the serial face
    assert speed["baseline"] == "speed, face detector after the body's (baseline)"
    assert "face_detector" in names and "face" in names  # the face's detector apart from its own work
    ours = by_name[("node, replay", "overhead after perception, stcnn")]
    assert ours["ratio"] > 0 and ours["baseline"] == "overhead after perception, raw (baseline)"
    fan = by_name[("websocket", "delivery delay, 3 clients at 60 Hz")]
    assert fan["delivered"].endswith("/30") and fan["n"] > 0
    assert by_name[("memory", "peak resident memory of this run")]["value"] > 50
    voice = by_name[("voice", "newest hop's end -> last output")]
    wait = by_name[("voice", "newest hop's end -> frame tick (the wait, baseline)")]
    assert voice["n"] > 50 and voice["median_ms"] >= wait["median_ms"] > 0  # the work comes after the wait
    assert by_name[("voice", "lip sync per 10 ms hop")]["median_ms"] > 0
    for load in ("idle", "1 core busy"):
        body = by_name[("parts", f"held fps, body only, {load} (baseline)")]
        both = by_name[("parts", f"held fps, body+face+hands, beside the body, {load}")]
        assert body["value"] > 0 and both["value"] > 0 and both["baseline"] == body["name"]
        assert "face" in both["note"] and "hands" in both["note"]
    page = by_name[("page", "loop per frame, page + 1 viewer, preview on")]
    assert page["n"] >= 60 and page["ratio"] > 0
    assert page["baseline"] == "loop per frame, no page (replay, real time)"
    assert by_name[("page", "the page's own calls per frame")]["median_ms"] > 0
