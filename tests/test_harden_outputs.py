"""Outputs never destroy what they should not (issue 20, part 2): regular files only, no silent
overwrite, and an output that fails mid-run (disk full, its folder deleted) stops alone with one line
saying what it kept while the live stream and the other outputs carry on; the exit status is 1."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from liverig.bridges.bvh import BvhWriter
from liverig.bridges.errors import BridgeError
from liverig.core.types import Pose, Timing
from liverig.runtime.failsafe import Failsafe, OutputStopped
from liverig.runtime.finite import OutputGuard
from liverig.runtime.recording import OutputRecorder, read_output_recording
from tests.bridges_support import make_rig
from tests.node_support import ROOT, run_node

FIXTURE = ROOT / "tests" / "fixtures" / "still_hold.landmarks.jsonl"


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line]


def _long_replay(tmp_path, repeats: int = 4):
    """The fixture's frames repeated (indices and times continued): a longer real recording."""
    header, *lines = FIXTURE.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    step = records[1]["time_s"] - records[0]["time_s"]
    out = []
    for i in range(repeats * len(records)):
        record = dict(records[i % len(records)])
        record["index"], record["time_s"] = i, round(i * step, 6)
        out.append(json.dumps(record))
    path = tmp_path / "long.landmarks.jsonl"
    path.write_text("\n".join([header, *out]) + "\n")
    return path, len(out)


# ---- regular files only, never an existing one without --overwrite -------------------------------


@pytest.mark.parametrize("kind", ["bvh", "record", "landmarks"])
def test_outputs_refuse_a_fifo_and_leave_it_a_fifo(tmp_path, kind):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = ["--record-landmarks", fifo] if kind == "landmarks" else ["--out", f"{kind}:{fifo}"]
    result = run_node("--source", f"replay:{FIXTURE}", "--max-frames", "3", *args, "--overwrite", timeout=60)
    assert result.returncode == 2, result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and "FIFO" in lines[0] and "regular files only" in lines[0], result.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_bvh_on_a_character_device_leaves_the_device_alone(tmp_path):
    """`bvh:/dev/null` replaced the device with a regular file (os.replace). A private null device
    stands in for /dev/null, so a regression cannot break this machine."""
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    result = run_node(
        "--source",
        f"replay:{FIXTURE}",
        "--max-frames",
        "3",
        "--out",
        f"bvh:{device}",
        "--overwrite",
        timeout=60,
    )
    assert result.returncode == 2 and "character device" in result.stderr, result.stderr
    assert stat.S_ISCHR(os.stat(device).st_mode)
    with pytest.raises(BridgeError, match="not a regular file"):  # the writer refuses on its own too
        BvhWriter(device)


def test_an_existing_recording_is_kept_unless_overwrite(tmp_path):
    for kind in ("record", "bvh"):
        old = tmp_path / f"take.{kind}"
        old.write_text("yesterday\n")
        result = run_node(
            "--source", f"replay:{FIXTURE}", "--max-frames", "3", "--out", f"{kind}:{old}", timeout=60
        )
        assert result.returncode == 2 and "--overwrite" in result.stderr, result.stderr
        assert old.read_text() == "yesterday\n"
        result = run_node(
            "--source",
            f"replay:{FIXTURE}",
            "--max-frames",
            "3",
            "--out",
            f"{kind}:{old}",
            "--overwrite",
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert old.read_text() != "yesterday\n"


# ---- failing mid-run ---------------------------------------------------------------------------------


def _limit_file_size(limit: int):
    """preexec_fn: files may not grow beyond `limit` bytes (the kernel answers EFBIG, as a full disk
    answers ENOSPC: a real failing write, no hook in our code)."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_file_stops_that_output_alone_and_the_others_carry_on(tmp_path, oscdump):
    """The output recording hits the limit after a few frames; the BVH (smaller per frame) later; VMC
    gets every frame; the node ends with exit 1 and one line per stopped output saying what it kept."""
    replay, frames = _long_replay(tmp_path, repeats=2)
    out, bvh = tmp_path / "out.jsonl", tmp_path / "take.bvh"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_node.py"),
            "--source",
            f"replay:{replay}",
            "--motion",
            "one_euro",
            "--out",
            f"record:{out}",
            "--out",
            f"bvh:{bvh}",
            "--out",
            f"vmc://127.0.0.1:{oscdump.port}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        preexec_fn=_limit_file_size(48 * 1024),
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    stopped = [
        line for line in result.stderr.splitlines() if line.startswith("run_node.py: error: output stopped")
    ]
    assert len(stopped) == 2, result.stderr
    kept_record = int(next(line for line in stopped if "out.jsonl" in line).split("keeps the ")[1].split()[0])
    kept_bvh = int(next(line for line in stopped if "take.bvh" in line).split("keeps the ")[1].split()[0])
    assert 0 < kept_record < frames and 0 < kept_bvh < frames
    assert len(read_output_recording(out)[1]) == kept_record  # readable, every kept frame whole
    bvh_text = bvh.read_text()
    assert int(bvh_text.split("Frames:")[1].split()[0]) == kept_bvh
    messages = oscdump.messages(expect=frames)
    assert sum(m[0] == "/VMC/Ext/OK" for m in messages) == frames  # the live stream saw everything


def test_the_output_folder_removed_mid_run_is_reported_and_the_stream_carries_on(tmp_path, oscdump):
    replay, frames = _long_replay(tmp_path, repeats=4)  # 8 s at its own pace
    folder = tmp_path / "takes"
    folder.mkdir()
    out = folder / "out.jsonl"
    node = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_node.py"),
            "--source",
            f"replay:{replay}",
            "--motion",
            "one_euro",
            "--out",
            f"record:{out}",
            "--out",
            f"vmc://127.0.0.1:{oscdump.port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 2000) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(folder)
        _, stderr = node.communicate(timeout=120)
    finally:
        if node.poll() is None:
            node.kill()
    assert node.returncode == 1, stderr
    stopped = [line for line in stderr.splitlines() if "output stopped" in line and "error" in line]
    assert len(stopped) == 1 and "deleted" in stopped[0] and "nothing kept" in stopped[0], stderr
    messages = oscdump.messages(expect=frames)
    assert sum(m[0] == "/VMC/Ext/OK" for m in messages) == frames


def test_writers_stop_with_one_line_when_their_file_is_deleted(tmp_path):
    recorder = OutputRecorder(tmp_path / "out.jsonl")
    pose = Pose(0, 0.0, Timing(0.0), True, np.zeros((25, 3)), np.ones(25))
    recorder.send(pose)
    (tmp_path / "out.jsonl").unlink()
    with pytest.raises(OutputStopped, match="deleted"):
        recorder.send(pose)
    recorder.send(pose)  # stopped: no more writes, no error
    bvh = BvhWriter(tmp_path / "take.bvh")
    bvh.send(None, make_rig(0))
    bvh.send(None, make_rig(1))
    (tmp_path / "take.bvh").unlink()
    with pytest.raises(BridgeError, match="deleted") as info:
        bvh.send(None, make_rig(2))
    assert "\n" not in str(info.value)
    bvh.close()


def test_the_failsafe_stops_one_output_and_keeps_calling_the_others():
    class Broken:
        name = "broken"
        closed = False

        def send(self, *_):
            raise OSError(28, "No space left on device")

        def close(self):
            self.closed = True

    class Fine:
        name = "fine"
        sent = 0

        def send(self, *_):
            self.sent += 1

    lines: list[str] = []
    failsafe, broken, fine = Failsafe(lines.append), Broken(), Fine()
    for _ in range(3):
        for output in (broken, fine):
            failsafe.call(output, "send", None, None)
    assert fine.sent == 3 and broken.closed and failsafe.any_failed
    assert lines == ["liverig: output stopped: broken: No space left on device; the other outputs carry on"]


# ---- the last line before the outputs --------------------------------------------------------------


def test_the_output_guard_replaces_non_finite_and_absurd_values():
    guard = OutputGuard()
    rig = make_rig(0)
    pose = Pose(0, 0.0, Timing(0.0), True, np.zeros((25, 3)), np.ones(25), expressions={"jawOpen": 0.5})
    same_pose, (same_rig,) = guard(pose, [rig])
    assert same_pose is pose and same_rig is rig  # a clean frame is passed as it is
    bad = make_rig(1)
    bad.local_rotations[3] = [np.nan, 0, 0, 1]
    bad.local_positions[4, 1] = 1e39
    bad.root_position[:] = np.inf
    bad.blendshapes["jawOpen"] = float("nan")
    bad.time_s = float("nan")
    bad_pose = Pose(1, float("inf"), Timing(0.0), True, np.full((25, 3), np.nan), np.ones(25))
    fixed_pose, (fixed,) = guard(bad_pose, [bad])
    assert np.isfinite(fixed.local_rotations).all() and np.isfinite(fixed.local_positions).all()
    np.testing.assert_allclose(fixed.local_rotations[3], rig.local_rotations[3])  # the last good row
    np.testing.assert_allclose(fixed.root_position, rig.root_position)
    assert "jawOpen" not in fixed.blendshapes and fixed.time_s == rig.time_s
    assert np.isfinite(fixed_pose.joints).all() and fixed_pose.time_s == 0.0
    assert guard.replaced > 0 and np.isnan(bad.local_rotations[3, 0])  # the caller's frame untouched
    first = OutputGuard().rig(0, bad)  # nothing good seen yet: rest (identity rotation, zero offset)
    np.testing.assert_allclose(first.local_rotations[3], [0, 0, 0, 1])
