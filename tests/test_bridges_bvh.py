"""BVH writer: loaded by an independent reader (bvhio, MIT), its forward kinematics against the RigFrames',
and files left by writers killed with SIGINT / SIGKILL mid-stream."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from liverig.bridges.bvh import BvhWriter
from liverig.bridges.errors import BridgeError
from tests.bridges_support import BONE_NAMES, make_rig, world_positions
from tests.node_support import restore_sigint

bvhio = pytest.importorskip("bvhio", reason="bvhio (dev extra) reads BVH files independently of our writer")

ROOT = Path(__file__).resolve().parent.parent


def reader_world_positions(path: Path, frames: list[int]) -> list[dict[str, np.ndarray]]:
    """World position of every joint at each frame, by bvhio's own parser and hierarchy maths."""
    root = bvhio.readAsHierarchy(str(path))
    out = []
    for frame in frames:
        root.loadPose(frame)
        out.append({joint.Name: np.array(joint.PositionWorld) for joint, _, _ in root.layout()})
    return out


def max_error(joints: dict[str, np.ndarray], rig, scale: float = 1.0) -> float:
    expected = world_positions(rig) * scale
    return max(float(np.linalg.norm(joints[name] - expected[i])) for i, name in enumerate(rig.bone_names))


def strict_check(path: Path) -> tuple[int, int]:
    """(Frames: in the header, complete motion lines); every line must be whole and the right width."""
    text = path.read_text()
    header, motion = text.split("\nMOTION\n")
    channels = sum(
        int(line.split()[1]) for line in header.splitlines() if line.strip().startswith("CHANNELS")
    )
    lines = motion.split("\n")
    assert lines[0].startswith("Frames: ") and lines[1].startswith("Frame Time: ")
    count = int(lines[0].split()[1])
    assert text.endswith("\n"), "the last motion line is cut short"
    body = lines[2:-1]
    for line in body:
        assert len(line.split()) == channels
        [float(v) for v in line.split()]
    return count, len(body)


# ---- content -----------------------------------------------------------------------------------------


def test_independent_reader_fk_matches_rig_within_a_millimetre(tmp_path):
    path = tmp_path / "take.bvh"
    rigs = [make_rig(i) for i in range(30)]
    writer = BvhWriter(path, fps=60.0)
    for rig in rigs:
        writer.send(None, rig)
    writer.close()

    container = bvhio.readAsBvh(str(path))
    assert container.FrameCount == 30 and container.FrameTime == pytest.approx(1 / 60, abs=1e-8)
    joints = [joint for joint, _, _ in container.Root.layout()]
    assert [j.Name for j in joints] == [BONE_NAMES[0]] + [n for n in _dfs_names()][1:]
    assert joints[0].Channels == [
        "Xposition",
        "Yposition",
        "Zposition",
        "Zrotation",
        "Xrotation",
        "Yrotation",
    ]
    assert all(j.Channels == ["Zrotation", "Xrotation", "Yrotation"] for j in joints[1:])

    frames = list(range(30))
    for frame, joints_at in zip(frames, reader_world_positions(path, frames), strict=True):
        assert max_error(joints_at, rigs[frame]) < 1e-3  # 1 mm; in practice ~1 µm


def test_a_left_handed_rig_is_written_right_handed_not_mirrored(tmp_path):
    """BVH readers are right-handed: negating the rig's left-right axis in positions and rotations
    gives the same figure (the reader's joints are the rig's with x negated), not its mirror image."""
    path = tmp_path / "take.bvh"
    rigs = [make_rig(i) for i in range(10)]
    writer = BvhWriter(path, fps=30.0, mirror_axis=0)
    for rig in rigs:
        writer.send(None, rig)
    writer.close()
    for frame, joints_at in enumerate(reader_world_positions(path, list(range(10)))):
        expected = world_positions(rigs[frame]) * np.array([-1.0, 1.0, 1.0])
        names = rigs[frame].bone_names
        error = max(float(np.linalg.norm(joints_at[n] - expected[i])) for i, n in enumerate(names))
        assert error < 1e-3


def _dfs_names() -> list[str]:
    rig = make_rig(0)
    children: dict[int, list[int]] = {i: [] for i in range(len(rig.bone_names))}
    for i, p in enumerate(rig.parents):
        if p >= 0:
            children[p].append(i)
    out: list[str] = []

    def visit(i: int) -> None:
        out.append(rig.bone_names[i])
        for c in children[i]:
            visit(c)

    visit(0)
    return out


def test_scale_and_gimbal_lock(tmp_path):
    """Centimetres, and a pitch of exactly 90 degrees (ZXY's singular X angle) still round-trips."""
    from scipy.spatial.transform import Rotation

    path = tmp_path / "cm.bvh"
    rig = make_rig(0)
    rig.local_rotations[3] = Rotation.from_euler("ZXY", [30, 90, 10], degrees=True).as_quat()
    rig.local_rotations[10] = Rotation.from_euler("ZXY", [0, -90, 45], degrees=True).as_quat()
    writer = BvhWriter(path, fps=30.0, scale=100.0)
    writer.send(None, rig)
    writer.close()
    assert max_error(reader_world_positions(path, [0])[0], rig, scale=100.0) < 0.1  # 1 mm in cm


def test_several_root_bones_get_a_synthetic_root(tmp_path):
    rig = make_rig(4)
    # detach the left leg chain: it becomes a second root bone with its own (root-space) offset
    leg = rig.bone_names.index("LeftUpperLeg")
    rig.parents[leg] = -1
    rig.local_positions[leg] = [-0.09, 0.9, 0.0]
    path = tmp_path / "roots.bvh"
    writer = BvhWriter(path)
    writer.send(None, rig)
    writer.close()
    joints = reader_world_positions(path, [0])[0]
    assert "Root" in joints
    assert max_error(joints, rig) < 1e-3


def test_no_frames_leaves_no_file_and_close_is_idempotent(tmp_path):
    path = tmp_path / "empty.bvh"
    writer = BvhWriter(path)
    writer.close()
    writer.close()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_paths_are_bridge_errors(tmp_path):
    with pytest.raises(BridgeError, match="does not exist"):
        BvhWriter(tmp_path / "missing" / "take.bvh")
    with pytest.raises(BridgeError, match="directory"):
        BvhWriter(tmp_path)


def test_rig_change_mid_recording_is_an_error(tmp_path):
    writer = BvhWriter(tmp_path / "take.bvh")
    writer.send(None, make_rig(0))
    other = make_rig(1)
    other.bone_names = other.bone_names[:-1]
    other.parents = other.parents[:-1]
    with pytest.raises(BridgeError, match="rig changed"):
        writer.send(None, other)
    writer.close()
    assert strict_check(tmp_path / "take.bvh") == (1, 1)


def test_header_count_is_rewritten_every_frame(tmp_path):
    path = tmp_path / "take.bvh"
    writer = BvhWriter(path)
    for i in range(5):
        writer.send(None, make_rig(i))
        assert strict_check(path) == (i + 1, i + 1)  # a reader at any moment sees a whole file
    writer.close()


def test_no_motion_line_straddles_a_page(tmp_path):
    """What makes SIGKILL unable to leave half a line: each line write lies within one page."""
    from liverig.bridges.bvh import COUNT_WIDTH, PAGE

    path = tmp_path / "take.bvh"
    writer = BvhWriter(path)
    for i in range(300):
        writer.send(None, make_rig(i % 50))
    writer.close()
    data = path.read_bytes()
    count_at = data.index(b"Frames:") + len(b"Frames:")
    count_at += len(data[count_at:]) - len(data[count_at:].lstrip(b" "))
    assert count_at // PAGE == (count_at + COUNT_WIDTH - 1) // PAGE
    start = data.index(b"\n", data.index(b"Frame Time:")) + 1
    lines = 0
    while start < len(data):
        end = data.index(b"\n", start) + 1
        if lines:  # the first line was written with the header, into a file nobody could see yet
            assert start // PAGE == (end - 1) // PAGE, f"line {lines} straddles a page"
        start, lines = end, lines + 1
    assert lines == 300


# ---- killed writers ----------------------------------------------------------------------------------

WRITER = """
import signal
import sys
from liverig.bridges.bvh import BvhWriter
# As run_node.py does: the default action of SIGTERM kills the process from whichever thread the
# kernel picks (numpy's BLAS threads included), which no per-thread signal mask can hold back.
signal.signal(signal.SIGTERM, signal.default_int_handler)
from tests.bridges_support import make_rig
rigs = [make_rig(i) for i in range(50)]
writer = BvhWriter(sys.argv[1], fps=60.0)
i = 0
while True:  # no try/finally: nothing tidies up after a signal
    writer.send(None, rigs[i % 50])
    i += 1
    if i == 20:
        print("ready", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL, signal.SIGTERM], ids=lambda s: s.name)
def test_killed_writer_leaves_a_loadable_file(tmp_path, sig):
    rng = random.Random(sig)
    rigs = [make_rig(i) for i in range(50)]
    for attempt in range(3):
        path = tmp_path / f"killed-{attempt}.bvh"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=restore_sigint,
        )
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()  # a writer that ignored the signal must not outlive the test
            raise

        count, lines = strict_check(path)
        assert count >= 20
        if sig == signal.SIGKILL:
            assert count <= lines <= count + 1  # the one window a SIGKILL can hit: line written, count not
        else:
            assert lines == count  # SIGINT/SIGTERM are held back between the two writes
        container = bvhio.readAsBvh(str(path))
        assert container.FrameCount == count
        last = count - 1
        positions = reader_world_positions(path, [0, last]) if attempt == 0 else None
        if positions:
            assert max_error(positions[0], rigs[0]) < 1e-3
            assert max_error(positions[1], rigs[last % 50]) < 1e-3
        assert not list(tmp_path.glob(".*.part")), "temporary file left behind"
