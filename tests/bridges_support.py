"""Shared by the bridge tests: RigFrames built here (a 55-bone Unity humanoid with fingers, ARKit
blendshapes), so the tests depend on nothing but `core.types`, and independent OSC receivers
(liblo's oscdump, a plain UDP socket)."""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from scipy.spatial.transform import Rotation

from liverig.bridges.oscpack import osc_message
from liverig.core.types import RigFrame, Timing

# (name, parent, rest offset from the parent in metres; Unity: left-handed, +Y up, +Z forward).
_BODY = [
    ("Hips", None, (0.0, 0.95, 0.0)),
    ("Spine", "Hips", (0.0, 0.08, 0.0)),
    ("Chest", "Spine", (0.0, 0.10, 0.0)),
    ("UpperChest", "Chest", (0.0, 0.12, 0.0)),
    ("Neck", "UpperChest", (0.0, 0.12, 0.0)),
    ("Head", "Neck", (0.0, 0.08, 0.0)),
    ("LeftEye", "Head", (-0.03, 0.06, 0.08)),
    ("RightEye", "Head", (0.03, 0.06, 0.08)),
    ("Jaw", "Head", (0.0, -0.01, 0.02)),
    ("LeftUpperLeg", "Hips", (-0.09, -0.05, 0.0)),
    ("LeftLowerLeg", "LeftUpperLeg", (0.0, -0.42, 0.0)),
    ("LeftFoot", "LeftLowerLeg", (0.0, -0.40, 0.0)),
    ("LeftToes", "LeftFoot", (0.0, -0.05, 0.12)),
    ("RightUpperLeg", "Hips", (0.09, -0.05, 0.0)),
    ("RightLowerLeg", "RightUpperLeg", (0.0, -0.42, 0.0)),
    ("RightFoot", "RightLowerLeg", (0.0, -0.40, 0.0)),
    ("RightToes", "RightFoot", (0.0, -0.05, 0.12)),
]


def _arm(side: str, sign: float) -> list:
    x = sign
    bones = [
        (f"{side}Shoulder", "UpperChest", (0.02 * x, 0.10, 0.0)),
        (f"{side}UpperArm", f"{side}Shoulder", (0.10 * x, 0.0, 0.0)),
        (f"{side}LowerArm", f"{side}UpperArm", (0.26 * x, 0.0, 0.0)),
        (f"{side}Hand", f"{side}LowerArm", (0.25 * x, 0.0, 0.0)),
    ]
    fingers = {"Thumb": (0.02, -0.01, 0.03), "Index": (0.08, 0.0, 0.025), "Middle": (0.085, 0.0, 0.005)}
    fingers |= {"Ring": (0.08, 0.0, -0.015), "Little": (0.07, 0.0, -0.032)}
    for finger, (fx, fy, fz) in fingers.items():
        parent = f"{side}Hand"
        for k, segment in enumerate(("Proximal", "Intermediate", "Distal")):
            offset = (fx * x, fy, fz) if k == 0 else (0.03 * x, 0.0, 0.0)
            bones.append((f"{side}{finger}{segment}", parent, offset))
            parent = f"{side}{finger}{segment}"
    return bones


HUMANOID = _BODY + _arm("Left", -1.0) + _arm("Right", 1.0)
BONE_NAMES = [name for name, _, _ in HUMANOID]
PARENTS = [-1 if parent is None else BONE_NAMES.index(parent) for _, parent, _ in HUMANOID]
REST_OFFSETS = np.array([offset for _, _, offset in HUMANOID], dtype=np.float64)
assert len(BONE_NAMES) == 55

ARKIT = (
    "eyeBlinkLeft eyeLookDownLeft eyeLookInLeft eyeLookOutLeft eyeLookUpLeft eyeSquintLeft eyeWideLeft "
    "eyeBlinkRight eyeLookDownRight eyeLookInRight eyeLookOutRight eyeLookUpRight eyeSquintRight "
    "eyeWideRight jawForward jawLeft jawRight jawOpen mouthClose mouthFunnel mouthPucker mouthLeft "
    "mouthRight mouthSmileLeft mouthSmileRight mouthFrownLeft mouthFrownRight mouthDimpleLeft "
    "mouthDimpleRight mouthStretchLeft mouthStretchRight mouthRollLower mouthRollUpper mouthShrugLower "
    "mouthShrugUpper mouthPressLeft mouthPressRight mouthLowerDownLeft mouthLowerDownRight "
    "mouthUpperUpLeft mouthUpperUpRight browDownLeft browDownRight browInnerUp browOuterUpLeft "
    "browOuterUpRight cheekPuff cheekSquintLeft cheekSquintRight noseSneerLeft noseSneerRight tongueOut"
).split()
assert len(ARKIT) == 52


def make_rig(
    index: int = 0,
    *,
    seed: int | None = None,
    blendshapes: int = 52,
    tracking: bool = True,
    contact: bool = True,
    fps: float = 30.0,
    capture: float = 100.0,
) -> RigFrame:
    """A frame with random unit quaternions on every bone and the root, rest offsets, ARKit weights."""
    rng = np.random.default_rng(index if seed is None else seed)
    timing = Timing(capture=capture + index / fps)
    timing.stages = {"perception": timing.capture + 0.020, "motion": timing.capture + 0.023}
    timing.stages["retarget"] = timing.capture + 0.024
    return RigFrame(
        index=index,
        time_s=index / fps,
        timing=timing,
        rig="vrm0",
        bone_names=list(BONE_NAMES),
        parents=list(PARENTS),
        local_rotations=Rotation.random(len(BONE_NAMES), random_state=rng).as_quat(),
        local_positions=REST_OFFSETS.copy(),
        root_position=rng.normal(scale=0.5, size=3),
        root_rotation=Rotation.random(random_state=rng).as_quat(),
        tracking=tracking,
        blendshapes={
            name: float(v) for name, v in zip(ARKIT[:blendshapes], rng.random(blendshapes), strict=True)
        },
        foot_contact=rng.random(2) if contact else None,  # drawn last: the other values stay as they were
    )


def world_positions(rig: RigFrame) -> np.ndarray:
    """Forward kinematics of a RigFrame: each bone's world position (root transform applied)."""
    count = len(rig.bone_names)
    rotations: list[Rotation | None] = [None] * count
    positions = np.zeros((count, 3))
    root = Rotation.from_quat(rig.root_rotation)
    pending = list(range(count))
    while pending:
        for i in list(pending):
            p = rig.parents[i]
            if p < 0:
                parent_rot, parent_pos = root, np.asarray(rig.root_position, dtype=np.float64)
            elif rotations[p] is not None:
                parent_rot, parent_pos = rotations[p], positions[p]
            else:
                continue
            positions[i] = parent_pos + parent_rot.apply(rig.local_positions[i])
            rotations[i] = parent_rot * Rotation.from_quat(rig.local_rotations[i])
            pending.remove(i)
    return positions


OSCDUMP = shutil.which("oscdump")
needs_oscdump = pytest.mark.skipif(
    OSCDUMP is None, reason="oscdump not installed (Debian package liblo-tools: apt-get install liblo-tools)"
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OscDump:
    """liblo's oscdump listening on a UDP port: an OSC parser that shares no code with ours."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_udp_port()
        self.log = tmp_path / f"oscdump-{self.port}.txt"
        self._file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [OSCDUMP, "-L", str(self.port)], stdout=self._file, stderr=subprocess.STDOUT
        )
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        deadline = time.monotonic() + 10
        while "/liverig/probe" not in self.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"oscdump did not start: {self.log.read_text()}"
            assert self.proc.poll() is None, f"oscdump exited: {self.log.read_text()}"
            probe.sendto(osc_message("/liverig/probe", ""), ("127.0.0.1", self.port))
            time.sleep(0.05)
        probe.close()

    def messages(self, expect: int, timeout: float = 10.0) -> list[tuple[str, str, list[str]]]:
        """(address, type tags, args as printed) for every message after the probes."""
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if len(parsed) >= expect or time.monotonic() > deadline:
                return parsed
            time.sleep(0.05)

    def _parse(self) -> list[tuple[str, str, list[str]]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            fields = line.split(" ", 3)
            if len(fields) < 3 or fields[1] == "/liverig/probe":
                continue
            address, types = fields[1], fields[2]
            args = shlex.split(fields[3]) if len(fields) > 3 else []
            out.append((address, types, args))
        return out

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)
        self._file.close()


class Capture:
    """A plain UDP socket: sees datagrams exactly as they arrive (sizes, bundle or not)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2.0)
        self.port = self.sock.getsockname()[1]

    def take(self, count: int) -> list[bytes]:
        return [self.sock.recv(65535) for _ in range(count)]

    def drain(self) -> list[bytes]:
        self.sock.settimeout(0.2)
        out = []
        try:
            while True:
                out.append(self.sock.recv(65535))
        except TimeoutError:
            return out


def unpack(datagram: bytes) -> list[OscMessage]:
    if OscBundle.dgram_is_bundle(datagram):
        return [m for m in OscBundle(datagram)]  # type: ignore[misc]
    return [OscMessage(datagram)]
