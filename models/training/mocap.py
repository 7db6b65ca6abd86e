"""Real recorded human motion, converted to the canonical 22-joint skeleton.

`python -m liverig.models.training.mocap` fetches every source below (pinned version + SHA-256,
cached), converts
each clip and writes one `.npz` per clip plus `manifest.json` to `cache_dir("mocap")`:

    joints (T, 22, 3) float32  world space, metres, +Y up, 30 fps, root trajectory kept; the first
                               frame faces +Z with its hips above the origin; floor at y = 0
    fps, name, source, activity, split, loop (the source marks the clip as a seamless cycle)

Sources (all from the package registries; licences permit use):
  - CMU mocap subject 01 (`01_01.bvh`, `01_03.bvh`, 120 fps, units of 1/0.45 inch) and
    `Boxing_Toes.bvh` (100 fps, cm), from Debian `assimp-testmodels` 5.2.5~ds0-1.
  - DeepMimic clips (`humanoid3d_*.txt`, `walker/*.txt`, 16-60 fps) from the `pybullet==3.2.7`
    wheel, on the skeleton of `humanoid.urdf` (x0.25 = metres, as pybullet's `globalScaling`).
  - `test_mocapbank.bvh` (a crouch) and `test_freebvh.bvh` (a Mixamo rig with fingers) from the
    bvhtoolbox==0.1.3 sdist.

`--corpus` adds the CMU motion pinned file by file from public GitHub repositories
(`models/training/mocap_corpus.py`, docs/mocap.md; `--from-dir` reads local repository snapshots),
de-duplicated and split by performer, and prints hours per split and activity category.

The canonical joints mean what MediaPipe's landmarks mean (`skeleton.JOINT_FROM_LANDMARKS`), so the
truth is what a perfect detector would report: Hips = mid-point of the hip joints; Neck = mid-point
of the shoulder joints; Spine / Chest at 25 % / 55 % from Hips to Neck; Head = ear level (5 cm above
a BVH rig's skull-base head joint, the head sphere's centre for DeepMimic); HeadEnd = the nose,
10 cm in front of Head; HandEnd = the knuckles, 8 cm beyond the wrist along the hand (the mean of
the index and pinky knuckles where the rig has fingers); Toes = the tip of the toes.

Resampling interpolates joint rotations (slerp) before forward kinematics, so bone lengths stay
exactly constant, even when a 16 fps backflip is upsampled. The floor is the 2nd percentile of the
lowest body surface (joint centre minus CONTACT_RADIUS), which also places crawls and get-ups.

The split is fixed by clip (a clip never straddles two sets; see CLIPS):
  train  DeepMimic walk, run, jump, backflip, spin, punch, dance_a, cartwheel, crawl,
         getup_facedown, walker 0walk_forward / turn_left0 / turn_right0; CMU 01_03 (climb);
         Boxing_Toes; mocapbank crouch                                     ~3,290 frames
  val    DeepMimic kick, dance_b, getup_faceup, walker turn_right1; Mixamo freebvh   ~340 frames
  test   CMU 01_01 (forward jumps and turns, 23 s), DeepMimic spinkick, roll,
         walker turn_left1: jump, kick, roll, turning walk                   ~830 frames
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from liverig.core import fetch
from liverig.core.skeleton import CHEST_AT, JOINT_INDEX, NUM_JOINTS, SPINE_AT

FPS = 30.0
FORMAT_VERSION = 3  # bump to force re-conversion of cached clips

# Pinned archives: (name, version, sha256).
ASSIMP = (
    "assimp-testmodels",
    "5.2.5~ds0-1",
    "526f326186000cd6f631ea806128548a7d3d391abd8149fddc5c4c8513e80b8a",
)
PYBULLET = ("pybullet", "3.2.7", "5d858abf7c12a21ef3ed351cf81dac1b5e486ec25c9ab59bfc84beb89034edff")
BVHTOOLBOX = ("bvhtoolbox", "0.1.3", "2d9dcae87cd6bfa28c89463450de84497e612682ca0697ea088fc7f2ef0f937f")


# ---------------------------------------------------------------------------------------------
# BVH


@dataclass
class Bvh:
    """A parsed BVH file. End Sites are joints named `<parent>_End` with no channels."""

    names: list[str]
    parents: np.ndarray  # (J,) int, -1 for the root
    offsets: np.ndarray  # (J, 3) rest translation from the parent, file units
    channels: list[list[str]]  # per joint, e.g. ["Xposition", ..., "Zrotation"]
    frame_time: float
    motion: np.ndarray  # (T, total channels)

    @property
    def num_frames(self) -> int:
        return len(self.motion)

    def index(self, name: str) -> int:
        return self.names.index(name)


def parse_bvh(text: str) -> Bvh:
    """Parse a BVH file's text (any channel order per joint, End Sites, tabs or spaces)."""
    head, _, motion_text = text.partition("MOTION")
    tokens = head.replace("{", " { ").replace("}", " } ").split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    pending = -1  # joint declared, its "{" not yet seen
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT") or (tok == "End" and tokens[i + 1] == "Site"):
            parent = stack[-1] if stack else -1
            name = f"{names[parent]}_End" if tok == "End" else tokens[i + 1]
            names.append(name)
            parents.append(parent)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = len(names) - 1
            i += 2
        elif tok == "{":
            stack.append(pending)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            offsets[stack[-1]] = [float(v) for v in tokens[i + 1 : i + 4]]
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            channels[stack[-1]] = tokens[i + 2 : i + 2 + n]
            i += 2 + n
        else:  # HIERARCHY and anything unknown
            i += 1
    frames = int(re.search(r"Frames:\s*(\d+)", motion_text).group(1))
    frame_time = float(re.search(r"Frame Time:\s*([-+.\deE]+)", motion_text).group(1))
    body = motion_text.split("Frame Time:", 1)[1].split(None, 1)[1]
    values = np.array(body.split(), dtype=np.float64)
    width = sum(len(c) for c in channels)
    if values.size < frames * width:
        raise ValueError(f"BVH motion has {values.size} values, expected {frames} x {width}")
    motion = values[: frames * width].reshape(frames, width)
    return Bvh(names, np.array(parents), np.array(offsets), channels, frame_time, motion)


def bvh_local(bvh: Bvh) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame local rotations (T, J, 4) quaternions (x, y, z, w) and translations (T, J, 3).

    Rotation channels compose in the order listed (intrinsic), e.g. "Zrotation Xrotation Yrotation"
    is Rz @ Rx @ Ry. Position channels, where present, give the local translation (they replace
    the OFFSET, which is the usual convention for the root).
    """
    frames, num = bvh.num_frames, len(bvh.names)
    quats = np.zeros((frames, num, 4))
    quats[..., 3] = 1.0
    trans = np.broadcast_to(bvh.offsets, (frames, num, 3)).copy()
    column = 0
    for j, chans in enumerate(bvh.channels):
        order, angles = "", []
        for c in chans:
            axis = "XYZ".index(c[0].upper())
            if c.lower().endswith("position"):
                trans[:, j, axis] = bvh.motion[:, column]
            else:
                order += c[0].upper()
                angles.append(bvh.motion[:, column])
            column += 1
        if order:
            quats[:, j] = Rotation.from_euler(order, np.stack(angles, axis=1), degrees=True).as_quat()
    return quats, trans


# ---------------------------------------------------------------------------------------------
# Forward kinematics and resampling, shared by every source


def forward_kinematics(parents: np.ndarray, quats: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, list]:
    """World positions (T, J, 3) and world rotations (list of J Rotation stacks) of a joint tree.

    `parents` must be topologically ordered (a parent before its children).
    """
    frames, num = quats.shape[:2]
    positions = np.zeros((frames, num, 3))
    rotations: list[Rotation] = []
    for j in range(num):
        local = Rotation.from_quat(quats[:, j])
        p = parents[j]
        if p < 0:
            positions[:, j] = trans[:, j]
            rotations.append(local)
        else:
            positions[:, j] = positions[:, p] + rotations[p].apply(trans[:, j])
            rotations.append(rotations[p] * local)
    return positions, rotations


def resample(times: np.ndarray, quats: np.ndarray, trans: np.ndarray, fps: float = FPS):
    """Resample local rotations (slerp) and translations (linear) onto a uniform `fps` grid."""
    new_times = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
    out_q = np.empty((len(new_times),) + quats.shape[1:])
    for j in range(quats.shape[1]):
        out_q[:, j] = Slerp(times, Rotation.from_quat(quats[:, j]))(new_times).as_quat()
    out_t = np.empty((len(new_times),) + trans.shape[1:])
    for j in range(trans.shape[1]):
        for axis in range(3):
            out_t[:, j, axis] = np.interp(new_times, times, trans[:, j, axis])
    return out_q, out_t


# ---------------------------------------------------------------------------------------------
# Source skeleton -> canonical joints


@dataclass(frozen=True)
class Rig:
    """How one source skeleton maps onto the canonical joints.

    `joints` maps the canonical limb joints (LeftUpperArm ... RightToes, with Left/Right spelled as
    `{S}`) to source joint names. Sites are points fixed in a joint's frame, in metres, expressed
    in the source's rest axes (`up`, `forward`).
    """

    unit: float  # metres per file unit
    joints: dict[str, str]
    head: str  # the source joint that carries the head
    head_up: float  # metres from that joint up to ear level
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    forward: tuple[float, float, float] = (0.0, 0.0, 1.0)
    toe_site: tuple[float, float, float] | None = None  # toe tip in the Foot joint's frame, metres
    knuckles: tuple[str, str] | None = None  # finger joints whose mean is the HandEnd, `{S}`/`{s}` for side


def _sided(table: dict[str, str]) -> dict[str, str]:
    return {k.replace("{S}", s): v.replace("{S}", s) for s in ("Left", "Right") for k, v in table.items()}


HEAD_UP = 0.05  # m from a BVH rig's skull-base head joint up to ear level
CMU_RIG = Rig(
    unit=0.0254 / 0.45,
    joints=_sided(
        {
            "{S}UpperArm": "{S}Arm",
            "{S}LowerArm": "{S}ForeArm",
            "{S}Hand": "{S}Hand",
            "{S}UpperLeg": "{S}UpLeg",
            "{S}LowerLeg": "{S}Leg",
            "{S}Foot": "{S}Foot",
            "{S}Toes": "{S}ToeBase_End",
        }
    ),
    head="Head",
    head_up=HEAD_UP,
)
BOXING_RIG = Rig(
    unit=0.01,
    joints=_sided(
        {
            "{S}UpperArm": "{S}Shoulder",
            "{S}LowerArm": "{S}Elbow",
            "{S}Hand": "{S}Wrist",
            "{S}UpperLeg": "{S}Hip",
            "{S}LowerLeg": "{S}Knee",
            "{S}Foot": "{S}Ankle",
            "{S}Toes": "{S}Toes_End",
        }
    ),
    head="Head",
    head_up=HEAD_UP,
)
MOCAPBANK_RIG = replace(BOXING_RIG, joints={**BOXING_RIG.joints, **_sided({"{S}Toes": "{S}Ankle_End"})})
MIXAMO_RIG = Rig(
    unit=0.01,
    joints={
        k: f"mixamorig:{v}"
        for k, v in _sided(
            {
                "{S}UpperArm": "{S}Arm",
                "{S}LowerArm": "{S}ForeArm",
                "{S}Hand": "{S}Hand",
                "{S}UpperLeg": "{S}UpLeg",
                "{S}LowerLeg": "{S}Leg",
                "{S}Foot": "{S}Foot",
                "{S}Toes": "{S}ToeBase_End",
            }
        ).items()
    },
    head="mixamorig:Head",
    head_up=HEAD_UP,
    knuckles=("mixamorig:{S}HandIndex1", "mixamorig:{S}HandPinky1"),
)
# cgspeed's Daz-friendly CMU release: one standard skeleton in centimetres, side prefix l/r.
CMU_DAZ_RIG = Rig(
    unit=0.01,
    joints={
        f"{S}{part}": f"{S[0].lower()}{joint}"
        for S in ("Left", "Right")
        for part, joint in (
            ("UpperArm", "Shldr"),
            ("LowerArm", "ForeArm"),
            ("Hand", "Hand"),
            ("UpperLeg", "Thigh"),
            ("LowerLeg", "Shin"),
            ("Foot", "Foot"),
            ("Toes", "Foot_End"),
        )
    },
    head="head",
    head_up=HEAD_UP,
    knuckles=("{s}Index1", "{s}Pinky1"),
)
# cgspeed's 3dsMax-friendly CMU release: CMU's own units and bone lengths, Biped-style names.
CMU_MAX_RIG = Rig(
    unit=0.0254 / 0.45,
    joints=_sided(
        {
            "{S}UpperArm": "{S}Shoulder",
            "{S}LowerArm": "{S}Elbow",
            "{S}Hand": "{S}Wrist",
            "{S}UpperLeg": "{S}Hip",
            "{S}LowerLeg": "{S}Knee",
            "{S}Foot": "{S}Ankle",
            "{S}Toes": "{S}Toe_End",
        }
    ),
    head="Head",
    head_up=HEAD_UP,
)
# CMU's own ASF/AMC (mocap_corpus.asf_amc_motion): a joint is the far end of a bone (`<bone>_end`);
# the `head` node turns with the head and sits at the top of the neck, like a BVH rig's Head joint.
CMU_AMC_RIG = Rig(
    unit=0.0254 / 0.45,
    joints={
        f"{S}{part}": f"{S[0].lower()}{bone}_end"
        for S in ("Left", "Right")
        for part, bone in (
            ("UpperArm", "clavicle"),
            ("LowerArm", "humerus"),
            ("Hand", "radius"),
            ("UpperLeg", "hipjoint"),
            ("LowerLeg", "femur"),
            ("Foot", "tibia"),
            ("Toes", "toes"),
        )
    },
    head="head",
    head_up=HEAD_UP,
    knuckles=("{s}wrist_end", "{s}wrist_end"),  # CMU's "wrist" bone spans the palm to the knuckles
)
# DeepMimic's humanoid faces +X with its right side on +Z. The foot box of humanoid.urdf ends 0.534
# units (x0.25 m) in front of the ankle with its sole 0.2 below it; the toe tip sits just above.
DEEPMIMIC_RIG = Rig(
    unit=0.25,
    joints={
        f"{S}{part}": f"{S.lower()}_{joint}"
        for S in ("Left", "Right")
        for part, joint in (
            ("UpperArm", "shoulder"),
            ("LowerArm", "elbow"),
            ("Hand", "wrist"),
            ("UpperLeg", "hip"),
            ("LowerLeg", "knee"),
            ("Foot", "ankle"),
        )
    },
    head="neck",
    head_up=0.175,  # the centre of the URDF's head sphere
    forward=(1.0, 0.0, 0.0),
    toe_site=(0.534 * 0.25, -0.17 * 0.25, 0.0),
)

NOSE_FORWARD = 0.10  # m from ear level to the nose
KNUCKLES = 0.08  # m from the wrist to the knuckles


def to_canonical(
    rig: Rig, names: list[str], parents: np.ndarray, positions: np.ndarray, rotations: list, trans: np.ndarray
) -> np.ndarray:
    """Map FK output of a source skeleton (file units) onto the canonical joints, in metres."""
    pos = positions * rig.unit
    out = np.zeros((len(pos), NUM_JOINTS, 3))
    for canon, src in rig.joints.items():
        out[:, JOINT_INDEX[canon]] = pos[:, names.index(src)]
    up, forward = np.array(rig.up), np.array(rig.forward)
    for side in ("Left", "Right"):
        hand = names.index(rig.joints[f"{side}Hand"])
        if rig.knuckles:
            a, b = (names.index(k.replace("{S}", side).replace("{s}", side[0].lower())) for k in rig.knuckles)
            end = 0.5 * (pos[:, a] + pos[:, b])
        else:  # along the hand's own frame, in the rest direction of the forearm
            rest = trans[0, hand] if np.linalg.norm(trans[0, hand]) > 1e-6 else trans[0, parents[hand]]
            end = pos[:, hand] + rotations[hand].apply(KNUCKLES * rest / np.linalg.norm(rest))
        out[:, JOINT_INDEX[f"{side}HandEnd"]] = end
        if rig.toe_site is not None:
            foot = names.index(rig.joints[f"{side}Foot"])
            out[:, JOINT_INDEX[f"{side}Toes"]] = pos[:, foot] + rotations[foot].apply(rig.toe_site)
    head = names.index(rig.head)
    ear = rig.head_up * up
    out[:, JOINT_INDEX["Head"]] = pos[:, head] + rotations[head].apply(ear)
    out[:, JOINT_INDEX["HeadEnd"]] = pos[:, head] + rotations[head].apply(ear + NOSE_FORWARD * forward)
    return derive_torso(out)


def derive_torso(joints: np.ndarray) -> np.ndarray:
    """Hips, Neck, Spine, Chest (T, 22, 3) from the hip and shoulder joints, as skeleton.py does."""
    J = JOINT_INDEX
    out = joints.copy()
    hips = 0.5 * (out[:, J["LeftUpperLeg"]] + out[:, J["RightUpperLeg"]])
    neck = 0.5 * (out[:, J["LeftUpperArm"]] + out[:, J["RightUpperArm"]])
    out[:, J["Hips"]] = hips
    out[:, J["Neck"]] = neck
    out[:, J["Spine"]] = hips + SPINE_AT * (neck - hips)
    out[:, J["Chest"]] = hips + CHEST_AT * (neck - hips)
    return out


def facing(joints: np.ndarray) -> np.ndarray:
    """Horizontal facing direction (T, 3) from the hip and shoulder lines: (left - right) x up."""
    J = JOINT_INDEX
    across = (
        joints[:, J["LeftUpperLeg"]]
        - joints[:, J["RightUpperLeg"]]
        + joints[:, J["LeftUpperArm"]]
        - joints[:, J["RightUpperArm"]]
    )
    fwd = np.cross(across, [0.0, 1.0, 0.0])
    return fwd / np.maximum(np.linalg.norm(fwd, axis=-1, keepdims=True), 1e-9)


# How far each joint centre sits above the ground when that body part rests on it (m).
CONTACT_RADIUS = np.array(
    [
        0.09,
        0.10,
        0.10,
        0.06,
        0.09,
        0.03,  # Hips, Spine, Chest, Neck, Head, HeadEnd (nose)
        0.05,
        0.04,
        0.03,
        0.02,
        0.05,
        0.04,
        0.03,
        0.02,  # arms: shoulder, elbow, wrist, knuckles
        0.08,
        0.05,
        0.05,
        0.02,
        0.08,
        0.05,
        0.05,
        0.02,  # legs: hip, knee, ankle, toe tip
    ]
)


def floor_height(joints: np.ndarray) -> float:
    """The ground under a clip: the 2nd percentile over frames of the lowest body surface."""
    return float(np.percentile((joints[..., 1] - CONTACT_RADIUS).min(axis=1), 2))


def normalise_placement(joints: np.ndarray) -> np.ndarray:
    """Yaw so the first frame faces +Z, its hips above the origin, and the floor at y = 0."""
    f = facing(joints[:1])[0]
    yaw = np.arctan2(f[0], f[2])  # rotate the facing onto +Z
    out = Rotation.from_euler("y", -yaw).apply(joints.reshape(-1, 3)).reshape(joints.shape)
    out[..., [0, 2]] -= out[0, JOINT_INDEX["Hips"], [0, 2]]
    out[..., 1] -= floor_height(out)
    return out


# ---------------------------------------------------------------------------------------------
# DeepMimic


def parse_urdf(text: str) -> dict[str, tuple[str, np.ndarray, str]]:
    """URDF joints as {child link: (parent link, origin xyz, type)} (the humanoid's rpy are all zero)."""
    out = {}
    for m in re.finditer(r'<joint name="(\w+)" type="(\w+)"\s*>(.*?)</joint>', text, re.S):
        body = m.group(3)
        parent = re.search(r'<parent link\s*=\s*"(\w+)"', body).group(1)
        child = re.search(r'<child link\s*=\s*"(\w+)"', body).group(1)
        xyz = re.search(r'<origin[^>]*xyz\s*=\s*"([^"]+)"', body).group(1)
        rpy = re.search(r'<origin[^>]*rpy\s*=\s*"([^"]+)"', body)
        if rpy and any(float(v) != 0.0 for v in rpy.group(1).split()):
            raise ValueError(f"joint {m.group(1)}: rotated joint frames are not supported")
        out[child] = (parent, np.array([float(v) for v in xyz.split()]), m.group(2))
    return out


# The humanoid's links, parents first; the wrists are fixed to the elbows.
DEEPMIMIC_JOINTS = (
    "root",
    "chest",
    "neck",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)
# Frame layout after (duration, root pos, root quat): joint name and its number of values.
DEEPMIMIC_LAYOUT = (
    ("chest", 4),
    ("neck", 4),
    ("right_hip", 4),
    ("right_knee", 1),
    ("right_ankle", 4),
    ("right_shoulder", 4),
    ("right_elbow", 1),
    ("left_hip", 4),
    ("left_knee", 1),
    ("left_ankle", 4),
    ("left_shoulder", 4),
    ("left_elbow", 1),
)


def deepmimic_motion(
    clip: dict, urdf: dict
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """DeepMimic JSON -> (names, parents, times, local quats (T,J,4), local translations (T,J,3)).

    Spherical joints are quaternions (w, x, y, z); knees and elbows one angle about local Z.
    """
    frames = np.asarray(clip["Frames"], dtype=np.float64)
    names = list(DEEPMIMIC_JOINTS)
    parents = np.array([-1 if n == "root" else names.index(urdf[n][0]) for n in names])
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    T, J = len(frames), len(names)
    quats = np.zeros((T, J, 4))
    quats[..., 3] = 1.0
    trans = np.zeros((T, J, 3))
    for j, n in enumerate(names):
        if n != "root":
            trans[:, j] = urdf[n][1]
    trans[:, 0] = frames[:, 1:4] / DEEPMIMIC_RIG.unit  # root position is in metres already
    quats[:, 0] = frames[:, [5, 6, 7, 4]]
    col = 8
    for n, width in DEEPMIMIC_LAYOUT:
        j = names.index(n)
        if width == 4:
            quats[:, j] = frames[:, [col + 1, col + 2, col + 3, col]]
        else:
            quats[:, j] = Rotation.from_rotvec(frames[:, col : col + 1] * [0.0, 0.0, 1.0]).as_quat()
        col += width
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    # Keep time strictly increasing (a few clips repeat a time stamp).
    keep = np.concatenate([[True], np.diff(times) > 1e-6])
    return names, parents, times[keep], quats[keep], trans[keep]


# ---------------------------------------------------------------------------------------------
# The clip list and the split


@dataclass(frozen=True)
class ClipSpec:
    name: str
    source: str  # "cmu", "boxing", "mocapbank", "mixamo", "deepmimic"
    member: str  # file inside its archive
    activity: str
    split: str
    loop: bool = False  # the source says the clip is a seamless cycle


_BVH_DIR = "usr/share/assimp/models/BVH/"
_DM_DIR = "pybullet_data/data/motions/"
_BT_DIR = "bvhtoolbox-0.1.3/tests/example_files/"


def _dm(name: str, activity: str, split: str, loop: bool = True, sub: str = "") -> ClipSpec:
    stem = name if sub else f"humanoid3d_{name}"
    return ClipSpec(f"deepmimic_{name}", "deepmimic", f"{_DM_DIR}{sub}{stem}.txt", activity, split, loop)


CLIPS: tuple[ClipSpec, ...] = (
    ClipSpec("cmu_01_01", "cmu", _BVH_DIR + "01_01.bvh", "jump", "test"),
    ClipSpec("cmu_01_03", "cmu", _BVH_DIR + "01_03.bvh", "climb", "train"),
    ClipSpec("boxing_toes", "boxing", _BVH_DIR + "Boxing_Toes.bvh", "boxing", "train"),
    ClipSpec("mocapbank_crouch", "mocapbank", _BT_DIR + "test_mocapbank.bvh", "crouch", "train"),
    ClipSpec("mixamo_freebvh", "mixamo", _BT_DIR + "test_freebvh.bvh", "misc", "val"),
    _dm("walk", "walk", "train"),
    _dm("run", "run", "train"),
    _dm("jump", "jump", "train"),
    _dm("backflip", "backflip", "train"),
    _dm("spin", "spin", "train"),
    _dm("punch", "punch", "train", loop=False),
    _dm("dance_a", "dance", "train"),
    _dm("cartwheel", "cartwheel", "train"),
    _dm("crawl", "crawl", "train"),
    _dm("getup_facedown", "getup", "train", loop=False),
    _dm("0walk_forward", "walk", "train", sub="walker/"),
    _dm("turn_left0", "turn", "train", sub="walker/"),
    _dm("turn_right0", "turn", "train", sub="walker/"),
    _dm("kick", "kick", "val", loop=False),
    _dm("dance_b", "dance", "val"),
    _dm("getup_faceup", "getup", "val", loop=False),
    _dm("turn_right1", "turn", "val", sub="walker/"),
    _dm("spinkick", "kick", "test"),
    _dm("roll", "roll", "test"),
    _dm("turn_left1", "turn", "test", sub="walker/"),
)
SPLITS = ("train", "val", "test")
RIGS = {
    "cmu": CMU_RIG,
    "boxing": BOXING_RIG,
    "mocapbank": MOCAPBANK_RIG,
    "mixamo": MIXAMO_RIG,
    "cmu_daz": CMU_DAZ_RIG,
    "cmu_max": CMU_MAX_RIG,
    "cmu_amc": CMU_AMC_RIG,
}


@dataclass
class Clip:
    """One converted clip: world-space canonical joints (T, 22, 3), metres, floor at y = 0."""

    name: str
    activity: str
    fps: float
    joints: np.ndarray
    source: str = ""
    loop: bool = False


# ---------------------------------------------------------------------------------------------
# Fetching and conversion


def _archive(source: str) -> Path:
    if source in ("cmu", "boxing"):
        return fetch.apt_download(*ASSIMP)
    if source == "deepmimic":
        # Pin the platform so every machine (and Python 3.11 or 3.12) gets this very file.
        name, version, sha = PYBULLET
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--dest",
            ".",
            "--only-binary",
            ":all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--platform",
            "manylinux2014_x86_64",
            f"{name}=={version}",
        ]
        return fetch._download(command, f"{name}-{version}*.whl", sha)
    return fetch.pip_download(*BVHTOOLBOX[:2], BVHTOOLBOX[2], source=True)


def _raw(spec_source: str, member: str) -> Path:
    """One source file, extracted once into the cache."""
    dest = fetch.cache_dir("mocap", "raw") / Path(member).name
    if not dest.exists():
        part = dest.with_suffix(".part")
        fetch.extract(_archive(spec_source), member, part)
        part.replace(dest)
    return dest


def convert(spec: ClipSpec) -> np.ndarray:
    """Fetch and convert one clip: canonical world joints (T, 22, 3) at 30 fps."""
    text = _raw(spec.source, spec.member).read_text()
    if spec.source == "deepmimic":
        urdf = parse_urdf(_raw("deepmimic", "pybullet_data/humanoid/humanoid.urdf").read_text())
        names, parents, times, quats, trans = deepmimic_motion(json.loads(text), urdf)
        rig = DEEPMIMIC_RIG
    else:
        return convert_bvh(text, RIGS[spec.source])
    quats, trans = resample(times, quats, trans)
    positions, rotations = forward_kinematics(parents, quats, trans)
    joints = to_canonical(rig, names, parents, positions, rotations, trans)
    return normalise_placement(joints).astype(np.float32)


def convert_bvh(text: str, rig: Rig, fps: float | None = None, skip: int = 0) -> np.ndarray:
    """One BVH file's text -> canonical world joints (T, 22, 3) at 30 fps. `fps` overrides the file's
    Frame Time where a release is known to state it wrong; `skip` drops leading frames that are not
    motion (cgspeed's MotionBuilder-friendly release opens every take with a T-pose frame)."""
    bvh = parse_bvh(text)
    quats, trans = bvh_local(bvh)
    quats, trans = quats[skip:], trans[skip:]
    times = np.arange(len(quats)) * (1.0 / fps if fps else bvh.frame_time)
    quats, trans = resample(times, quats, trans)
    positions, rotations = forward_kinematics(bvh.parents, quats, trans)
    joints = to_canonical(rig, bvh.names, bvh.parents, positions, rotations, trans)
    return normalise_placement(joints).astype(np.float32)


def _clip_path(name: str) -> Path:
    return fetch.cache_dir("mocap") / f"{name}.npz"


def _load(spec: ClipSpec) -> Clip:
    path = _clip_path(spec.name)
    if path.exists():
        with np.load(path) as data:
            if int(data["version"]) == FORMAT_VERSION:
                joints, fps = data["joints"], float(data["fps"])
                return Clip(spec.name, spec.activity, fps, joints, spec.source, spec.loop)
    joints = convert(spec)
    np.savez_compressed(
        path,
        joints=joints,
        fps=FPS,
        name=spec.name,
        source=spec.source,
        activity=spec.activity,
        split=spec.split,
        loop=spec.loop,
        version=FORMAT_VERSION,
    )
    return Clip(spec.name, spec.activity, FPS, joints, spec.source, spec.loop)


def load_clips(split: str) -> list[Clip]:
    """The clips of one split ("train", "val", "test" or "all"), fetching and converting on demand."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS + ('all',)}")
    return [_load(s) for s in CLIPS if split in ("all", s.split)]


def write_manifest(clips: list[Clip]) -> Path:
    """manifest.json: one entry per clip with its split, frames, duration and source."""
    specs = {s.name: s for s in CLIPS}
    entries = [
        {
            "name": c.name,
            "activity": c.activity,
            "split": specs[c.name].split,
            "source": c.source,
            "file": specs[c.name].member,
            "frames": len(c.joints),
            "fps": c.fps,
            "seconds": round(len(c.joints) / c.fps, 2),
            "loop": c.loop,
        }
        for c in clips
    ]
    archives = {
        "assimp-testmodels (Debian)": ASSIMP,
        "pybullet (PyPI wheel, cp311 manylinux2014_x86_64)": PYBULLET,
        "bvhtoolbox (PyPI sdist)": BVHTOOLBOX,
    }
    path = fetch.cache_dir("mocap") / "manifest.json"
    path.write_text(
        json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "fps": FPS,
                "archives": {k: {"version": v[1], "sha256": v[2]} for k, v in archives.items()},
                "clips": entries,
            },
            indent=1,
        )
    )
    return path


# The registry clips that are CMU takes, so the repository copies of them are recognised.
REGISTRY_TAKES = {"cmu_01_01": "01_01", "cmu_01_03": "01_03"}


def _load_repo_file(spec, from_dir: Path | None) -> Clip:
    """One pinned repository file (models.training.mocap_corpus.RepoFile), converted once and cached."""
    from liverig.models.training import mocap_corpus as corpus

    source = corpus.SOURCES[spec.source].key
    path = _clip_path(spec.name)
    if path.exists():
        with np.load(path) as data:
            if int(data["version"]) == FORMAT_VERSION and str(data["sha256"]) == spec.sha256:
                return Clip(spec.name, spec.activity, float(data["fps"]), data["joints"], source)
    try:
        joints = _convert_repo_file(spec, from_dir)
    except (ValueError, KeyError, IndexError, AttributeError) as error:  # a file not in its rig's form
        raise fetch.FetchError(f"{spec.path} ({spec.source}): cannot convert: {error}") from None
    np.savez_compressed(
        path,
        joints=joints,
        fps=FPS,
        name=spec.name,
        source=source,
        activity=spec.activity,
        split=spec.split,
        subject=spec.subject,
        sha256=spec.sha256,
        loop=False,
        version=FORMAT_VERSION,
    )
    return Clip(spec.name, spec.activity, FPS, joints, source)


def _convert_repo_file(spec, from_dir: Path | None) -> np.ndarray:
    from liverig.models.training import mocap_corpus as corpus

    text = corpus.raw_file(spec, from_dir).read_text(errors="replace")
    rig = RIGS[corpus.SOURCES[spec.source].rig]
    if spec.path.endswith(".amc"):
        asf_path = corpus.raw_file(corpus.skeleton_of(spec), from_dir)
        asf = corpus.parse_asf(asf_path.read_text(errors="replace"))
        motion = corpus.asf_amc_motion(asf, corpus.parse_amc(text), 1.0 / (spec.fps or 120.0))
        names, parents, times, quats, trans = motion
        quats, trans = resample(times, quats, trans)
        positions, rotations = forward_kinematics(parents, quats, trans)
        joints = to_canonical(rig, names, parents, positions, rotations, trans)
        joints = normalise_placement(joints).astype(np.float32)
    else:
        joints = convert_bvh(text, rig, spec.fps, skip=int(corpus.SOURCES[spec.source].tpose_frame))
    if not np.isfinite(joints).all():
        raise ValueError("non-finite joint positions")
    return joints


def load_corpus(split: str = "all", from_dir: Path | None = None) -> tuple[list[Clip], dict[str, str]]:
    """The extended corpus: CLIPS plus the pinned repository files (mocap_corpus.FILES), de-duplicated
    (the registry clips win), and {clip name: split}. `from_dir`: local repository snapshots."""
    from liverig.models.training import mocap_corpus as corpus

    if split not in (*SPLITS, "all"):
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS + ('all',)}")
    splits = {s.name: s.split for s in CLIPS} | {f.name: f.split for f in corpus.FILES}
    clips = load_clips("all") + [_load_repo_file(f, from_dir) for f in corpus.FILES]
    protected = frozenset(s.name for s in CLIPS)
    kept, _ = corpus.deduplicate(clips, protected, corpus.takes_of(REGISTRY_TAKES))
    return [c for c in kept if split in ("all", splits[c.name])], splits


def write_corpus_manifest(clips: list[Clip], splits: dict[str, str], dropped: list[tuple[str, str]]) -> Path:
    """corpus.json: every clip of the extended corpus with its split, performer, source and pin."""
    from liverig.models.training import mocap_corpus as corpus

    files = {f.name: f for f in corpus.FILES}
    entries = []
    for c in clips:
        f = files.get(c.name)
        src = corpus.SOURCES[f.source] if f else None
        entries.append(
            {
                "name": c.name,
                "split": splits[c.name],
                "activity": c.activity,
                "category": corpus.CATEGORIES.get(c.activity, "other"),
                "frames": len(c.joints),
                "fps": c.fps,
                "subject": f.subject if f else f"registry:{c.source}",
                "source": c.source,
                **(
                    {
                        "repo": src.repo,
                        "commit": src.commit,
                        "path": f.path,
                        "sha256": f.sha256,
                        "licence": src.licence,
                    }
                    if f
                    else {}
                ),
            }
        )
    path = fetch.cache_dir("mocap") / "corpus.json"
    path.write_text(
        json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "fps": FPS,
                "clips": entries,
                "dropped_duplicates": [{"dropped": a, "twin": b} for a, b in dropped],
            },
            indent=1,
        )
    )
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m liverig.models.training.mocap", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--corpus",
        action="store_true",
        help="also fetch and convert the pinned repository files (mocap_corpus.py)",
    )
    parser.add_argument(
        "--from-dir",
        type=Path,
        default=None,
        help="read the repository files from local snapshots (owner+name/ folders), not GitHub",
    )
    args = parser.parse_args(argv)
    clips = load_clips("all")
    path = write_manifest(clips)
    specs = {s.name: s for s in CLIPS}
    for c in clips:
        print(f"{c.name:24s} {specs[c.name].split:5s} {c.activity:9s} {len(c.joints):5d} frames")
    total = sum(len(c.joints) for c in clips)
    print(f"{len(clips)} clips, {total} frames ({total / FPS:.0f} s) -> {path.parent}")
    if not args.corpus:
        return
    from liverig.models.training import mocap_corpus as corpus

    if args.from_dir is not None and not args.from_dir.is_dir():
        raise SystemExit(f"--from-dir {args.from_dir}: no such folder")
    try:
        every = clips + [_load_repo_file(f, args.from_dir) for f in corpus.FILES]
    except fetch.FetchError as error:
        raise SystemExit(f"mocap corpus: {error}") from None
    splits = {s.name: s.split for s in CLIPS} | {f.name: f.split for f in corpus.FILES}
    protected = frozenset(s.name for s in CLIPS)
    kept, dropped = corpus.deduplicate(every, protected, corpus.takes_of(REGISTRY_TAKES))
    for name, twin in dropped:
        print(f"duplicate dropped: {name} (repeats {twin})")
    path = write_corpus_manifest(kept, splits, dropped)
    rows = [(splits[c.name], c.activity, len(c.joints)) for c in kept]
    print(corpus.hours_table(rows, FPS))
    print(
        f"{len(kept)} clips ({len(dropped)} duplicates dropped), "
        f"{sum(r[2] for r in rows) / FPS / 3600:.2f} h -> {path}"
    )


if __name__ == "__main__":
    main()
