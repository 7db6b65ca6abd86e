"""The benchmark commands run end to end on a small budget and print every row they promise.

They measure; these tests do not judge the numbers (timings belong to the benchmarks' own output),
only that each command works as documented and reports finite, positive figures.
"""

import re
import subprocess
import sys

from tests.node_support import ROOT


def _run(*args: str) -> str:
    command = [sys.executable, "-m", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+\.\d+", line)]


def test_runtime_bench_times_every_stage_of_the_node():
    out = _run(
        "liverig.runtime.bench", "--passes", "1", "--methods", "raw", "--soak", "300", "--soak-video", "150"
    )
    for run, stages in (
        ("video, raw", ("wait", "perception", "motion", "retarget", "bridges", "overhead")),
        ("replay, raw", ("motion", "retarget", "bridges", "overhead")),
    ):
        for stage in stages:
            row = next(line for line in out.splitlines() if run in line and f" {stage} " in line)
            median, p99 = _numbers(row)[-2:]
            assert 0 < median <= p99, row
    for part in ("root filter", "side guard", "re-entry glide", "deadband", "unseen legs"):
        row = next(line for line in out.splitlines() if f" {part} " in line)
        median, p99 = _numbers(row)[-2:]
        assert 0 < median <= p99, row
    for soak, frames in (("soak, replay: 300 frames", 300), ("soak, video: 150 frames", 150)):
        line = next(line for line in out.splitlines() if line.startswith(soak))
        checkpoints = re.findall(r"(\d+\.\d) at (\d+)", line)
        assert [int(n) for _, n in checkpoints] == list(range(0, frames + 1, frames // 5)), line
        assert all(float(mb) > 0 for mb, _ in checkpoints) and "growth after the first checkpoint" in line


def test_models_bench_compares_step_and_full_window_side_by_side():
    """A run shorter than the receptive field still has a whole window to recompute."""
    out = _run("liverig.models.bench", "--steps", "30", "--warmup", "5")
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    for name in ("torch step", "onnxruntime step", "onnxruntime net", "features only"):
        assert name in rows and all(v > 0 for v in _numbers(rows[name])), name
    windows = [line for line in out.splitlines() if "full window (81 frames)" in line]
    assert len(windows) == 2 and all(line.rstrip().endswith("x") for line in windows)  # the full/step ratio


def test_bridges_bench_reports_each_bridge_and_the_fan_out():
    out = _run("liverig.bridges.bench", "--seconds", "1", "--clients", "3", "--frames", "30")
    for bridge in ("vmc (bundles)", "vmc (no bundles)", "osc (bundles)", "ws frame (msgpack)", "bvh"):
        assert bridge in out, bridge
    delivered = re.search(r"frames delivered per client: min (\d+)\s+max (\d+)\s+\(of (\d+)\)", out)
    assert delivered is not None and int(delivered.group(3)) == 60
    assert int(delivered.group(1)) > 0  # every client got frames (how many: the benchmark's figure)
    largest = re.search(r"largest (\d+) B", out)
    assert largest is not None and int(largest.group(1)) <= 1472  # every VMC datagram fits the MTU
