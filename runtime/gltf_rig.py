"""A user's own rig, read from a .glb / .gltf / .vrm file and mapped onto the canonical skeleton.

Only the glTF JSON is needed (node tree, rest TRS, skins, the VRM humanoid extension), so the file is
parsed here directly: a .glb is a 12-byte header and a JSON chunk first. Humanoid bones come from the
VRM humanoid table when there is one (VRM 0.x `extensions.VRM.humanoid.humanBones`, VRM 1.0
`extensions.VRMC_vrm.humanoid.humanBones`), otherwise from bone names (`mixamorig:LeftArm`,
`J_Bip_L_UpperArm`, `Bip01 L Thigh`, `upperarm_l`, ...) plus the skeleton's structure for the spine.

The profile keeps the file's own space (glTF: right-handed, +Y up, metres) and each node's own rest
rotation, so a RigFrame's local rotations can be written straight into the file's nodes. Which way
the model faces is read from the skeleton (its left side and its up), since VRM 0.x models face -Z
and VRM 1.0 / plain glTF models face +Z.

`humanoid_profile` turns any node tree with humanoid names into a profile with the standard drives
below (`HUMANOID_DRIVES`); the shipped profiles in configs/rigs/ were written with the same table.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from liverig.core import skeleton
from liverig.core.safe_io import MODEL_MAX_BYTES, UnsafeInput, decode_utf8, describe, load_json, read_bytes
from liverig.runtime.retarget import AXIS_VECTORS, RigError, RigProfile, profile_from_dict

GLB_MAGIC = b"glTF"
GLB_JSON_CHUNK = 0x4E4F534A


@dataclass(frozen=True)
class Drive:
    """How the canonical skeleton drives one humanoid bone (see runtime/retarget.py's BoneSpec)."""

    joint: str | None
    aim: tuple | None = None  # canonical [from, to]; None: the bone stays at rest
    tips: tuple[str, ...] = ()  # humanoid bones the rest direction points at; the first present wins
    tip_rest: object = None  # rest direction when none of `tips` exists
    twist: tuple | None = None
    twist_rest: object = None  # anatomical word or mix, used when `twist_pair` is missing
    twist_pair: tuple[str, str] | None = None  # humanoid bones whose rest positions give twist_rest


_SPINE_TWIST = ({"RightUpperLeg": 0.5, "RightUpperArm": 0.5}, {"LeftUpperLeg": 0.5, "LeftUpperArm": 0.5})

# Keyed by Unity HumanBodyBones names. Limb roll comes from the bend plane: an elbow or knee bends
# towards the front or the back, which is where the rest pose's `twist_rest` points.
HUMANOID_DRIVES: dict[str, Drive] = {
    "Hips": Drive(
        "Hips",
        ("Hips", "Spine"),
        ("Spine", "Chest", "UpperChest", "Neck", "Head"),
        "up",
        ("RightUpperLeg", "LeftUpperLeg"),
        "left",
        ("RightUpperLeg", "LeftUpperLeg"),
    ),
    "Spine": Drive(
        "Spine", ("Spine", "Chest"), ("Chest", "UpperChest", "Neck", "Head"), "up", _SPINE_TWIST, "left"
    ),
    "Chest": Drive(
        "Chest",
        ("Chest", "Neck"),
        ("UpperChest", "Neck", "Head"),
        "up",
        ("RightUpperArm", "LeftUpperArm"),
        "left",
        ("RightUpperArm", "LeftUpperArm"),
    ),
    "UpperChest": Drive(
        None,
        ("Chest", "Neck"),
        ("Neck", "Head"),
        "up",
        ("RightUpperArm", "LeftUpperArm"),
        "left",
        ("RightUpperArm", "LeftUpperArm"),
    ),
    "Neck": Drive("Neck", ("Neck", "Head"), ("Head",), "up"),
    # Head -> HeadEnd runs from between the ears to the nose: straight ahead in the canonical rest pose.
    "Head": Drive("Head", ("Head", "HeadEnd"), (), "forward", ("Neck", "Head"), "up"),
}
for _s in ("Left", "Right"):
    HUMANOID_DRIVES.update(
        {
            f"{_s}Shoulder": Drive(None),  # no canonical clavicle: stays at rest on the chest
            f"{_s}UpperArm": Drive(
                f"{_s}UpperArm",
                (f"{_s}UpperArm", f"{_s}LowerArm"),
                tips=(f"{_s}LowerArm", f"{_s}Hand"),  # through an unnamed elbow if need be
                twist=(f"{_s}LowerArm", f"{_s}Hand"),
                twist_rest="forward",
            ),
            f"{_s}LowerArm": Drive(
                f"{_s}LowerArm",
                (f"{_s}LowerArm", f"{_s}Hand"),
                (f"{_s}Hand",),
                twist=(f"{_s}LowerArm", f"{_s}UpperArm"),
                twist_rest="forward",
            ),
            # The canonical hand has one direction (wrist to knuckles) and no roll: it keeps the forearm's.
            f"{_s}Hand": Drive(
                f"{_s}Hand", (f"{_s}Hand", f"{_s}HandEnd"), (f"{_s}MiddleProximal",), tip_rest="along_parent"
            ),
            f"{_s}UpperLeg": Drive(
                f"{_s}UpperLeg",
                (f"{_s}UpperLeg", f"{_s}LowerLeg"),
                tips=(f"{_s}LowerLeg", f"{_s}Foot"),
                twist=(f"{_s}LowerLeg", f"{_s}Foot"),
                twist_rest="backward",
            ),
            f"{_s}LowerLeg": Drive(
                f"{_s}LowerLeg",
                (f"{_s}LowerLeg", f"{_s}Foot"),
                (f"{_s}Foot",),
                twist=(f"{_s}LowerLeg", f"{_s}UpperLeg"),
                twist_rest="backward",
            ),
            f"{_s}Foot": Drive(
                f"{_s}Foot",
                (f"{_s}Foot", f"{_s}Toes"),
                (f"{_s}Toes",),
                tip_rest={"forward": 1.0, "down": 0.5},
                twist=(f"{_s}Foot", f"{_s}LowerLeg"),
                twist_rest="up",
            ),
            f"{_s}Toes": Drive(f"{_s}Toes"),  # the canonical toes give no direction: rest on the foot
        }
    )


@dataclass
class RigNode:
    """One node of a model's tree, at rest: translation, rotation (x,y,z,w), uniform scale."""

    name: str
    parent: int  # index into the node list, -1 for a scene root
    translation: np.ndarray
    rotation: np.ndarray
    scale: float = 1.0


@dataclass
class RigReport:
    """What the automatic mapping found, for the user to check."""

    source: str
    method: str  # "VRM 0.x humanoid", "VRM 1.0 humanoid" or "bone names"
    humanoid: dict[str, str] = field(default_factory=dict)  # HumanBodyBones name -> bone name
    unmapped_bones: list[str] = field(default_factory=list)  # skeleton bones that are no humanoid bone
    missing_joints: list[str] = field(default_factory=list)  # canonical joints no bone sits at
    up: str = "+Y"
    forward: str = "+Z"
    expressions: dict[str, str] = field(default_factory=dict)  # canonical name -> the model's name
    expressions_from: str = ""  # where they were read (VRM blendshape groups, morph target names)

    @property
    def finger_bones(self) -> int:
        """How many of the 30 finger bones (the hands part's) the model has."""
        return sum(1 for bone in self.humanoid if any(bone.endswith(s) for s in _FINGER_SEGMENTS))

    def lines(self) -> list[str]:
        fingers = self.finger_bones
        return [
            f"{self.source}: {len(self.humanoid)} humanoid bones from {self.method}; "
            f"model up {self.up}, facing {self.forward}",
            f"canonical joints with no bone: {', '.join(self.missing_joints) or 'none'}",
            f"bones left unmapped: {', '.join(self.unmapped_bones) or 'none'}",
            f"finger bones: {fingers} of 30"
            + ("" if fingers else " (the model has none: the hands part's fingers are not shown)"),
            self.expression_line(),
        ]

    def expression_line(self) -> str:
        """What the face can drive on this model, and what it cannot."""
        from liverig.runtime.expressions import ARKIT_NAMES, VRM_PRESETS

        if not self.expressions:
            return (
                "expressions: none found (no VRM blendshape groups or ARKit-named morph targets): "
                "the face drives nothing on this model; the bones work as usual"
            )
        presets = [n for n in VRM_PRESETS if n not in self.expressions]
        arkit = sum(name in self.expressions for name in ARKIT_NAMES)
        have = len(VRM_PRESETS) - len(presets)
        return (
            f"expressions from {self.expressions_from}: VRM presets {have}/{len(VRM_PRESETS)} "
            f"(missing: {', '.join(presets) or 'none'}), ARKit {arkit}/{len(ARKIT_NAMES)}"
        )


# ---------------------------------------------------------------------------------------------
# Reading the file


def read_gltf_json(path: str | Path) -> dict:
    """The glTF JSON of a .gltf (text) or .glb / .vrm (binary container) file."""
    path = Path(path)
    try:
        data = read_bytes(path, MODEL_MAX_BYTES)  # regular files only (core/safe_io.py)
    except FileNotFoundError:
        raise RigError(f"rig model not found: {path}") from None
    except (OSError, UnsafeInput) as error:
        raise RigError(f"cannot read rig model {path}: {describe(error)}") from None
    try:
        if data[:4] == GLB_MAGIC:
            if len(data) < 20:
                raise ValueError("truncated glb header")
            _, version, length = struct.unpack_from("<4sII", data, 0)
            if version != 2:
                raise ValueError(f"glb version {version}, expected 2")
            chunk_length, chunk_type = struct.unpack_from("<II", data, 12)
            if chunk_type != GLB_JSON_CHUNK or 20 + chunk_length > min(length, len(data)):
                raise ValueError("the first glb chunk is not a complete JSON chunk")
            data = data[20 : 20 + chunk_length]
        document = load_json(decode_utf8(data))
    except (ValueError, struct.error) as error:  # json and unicode errors are ValueErrors
        reason = str(error).splitlines()[0]
        raise RigError(f"cannot read rig model {path}: not a glTF 2.0 file ({reason})") from None
    if not isinstance(document, dict) or not isinstance(document.get("nodes"), list):
        raise RigError(f"cannot read rig model {path}: the glTF has no nodes")
    check_gltf_nodes(document, str(path))
    return document


_NODE_VECTORS = {"translation": 3, "rotation": 4, "scale": 3, "matrix": 16}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def check_gltf_nodes(document: dict, where: str) -> None:
    """The node tree's shape, before anything walks it: nodes are objects, children valid indices,
    transforms finite numbers of the right count, skins' joints lists, and no node its own ancestor
    (a parent cycle would make every walk up the tree loop forever)."""
    nodes = document["nodes"]
    count = len(nodes)
    parents = [-1] * count
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise RigError(f"rig model {where}: nodes[{i}] is not an object")
        if "name" in node and not isinstance(node["name"], str):
            raise RigError(f"rig model {where}: nodes[{i}].name is not a string")
        for key, size in _NODE_VECTORS.items():
            if key in node:
                value = node[key]
                if not isinstance(value, list) or len(value) != size or not all(map(_is_number, value)):
                    raise RigError(f"rig model {where}: nodes[{i}].{key}: expected {size} finite numbers")
                if max(abs(v) for v in value) > 1e9:
                    raise RigError(f"rig model {where}: nodes[{i}].{key}: values out of range")
        children = node.get("children", [])
        if not isinstance(children, list):
            raise RigError(f"rig model {where}: nodes[{i}].children is not a list")
        for child in children:
            if isinstance(child, bool) or not isinstance(child, int) or not 0 <= child < count:
                raise RigError(f"rig model {where}: node {i} lists a bad child {str(child)[:20]}")
            if parents[child] != -1:
                raise RigError(f"rig model {where}: node {i} lists a bad or second-parented child {child}")
            parents[child] = i
    for i in range(count):  # a walk up from any node must reach a root within `count` steps
        node, steps = i, 0
        while node >= 0:
            node, steps = parents[node], steps + 1
            if steps > count:
                raise RigError(f"rig model {where}: the node tree has a cycle (node {i} is its own ancestor)")
    skins = document.get("skins", [])
    if not isinstance(skins, list) or not all(
        isinstance(skin, dict) and isinstance(skin.get("joints", []), list) for skin in skins
    ):
        raise RigError(f"rig model {where}: 'skins' must be a list of objects with a list of joints")
    extensions = document.get("extensions", {})
    if not isinstance(extensions, dict) or not all(isinstance(v, dict) for v in extensions.values()):
        raise RigError(f"rig model {where}: 'extensions' must be an object of objects")


def _node_rest(node: dict, name: str, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if "matrix" in node:
        matrix = np.array(node["matrix"], dtype=np.float64).reshape(4, 4).T  # glTF is column-major
        translation = matrix[:3, 3]
        scale = np.linalg.norm(matrix[:3, :3], axis=0)
        if np.linalg.det(matrix[:3, :3]) <= 0:
            raise RigError(f"rig model {where}: node '{name}' has a mirroring or singular matrix")
        rotation = Rotation.from_matrix(matrix[:3, :3] / scale).as_quat()
    else:
        translation = np.array(node.get("translation", (0.0, 0.0, 0.0)), dtype=np.float64)
        rotation = np.array(node.get("rotation", (0.0, 0.0, 0.0, 1.0)), dtype=np.float64)
        scale = np.array(node.get("scale", (1.0, 1.0, 1.0)), dtype=np.float64)
    return translation, rotation, scale


def gltf_nodes(document: dict, where: str) -> list[RigNode]:
    """Every node with its parent and rest transform; names made unique ('node7' if unnamed)."""
    raw = document["nodes"]
    parents = [-1] * len(raw)
    for i, node in enumerate(raw):
        for child in node.get("children", []):
            if not (0 <= child < len(raw)) or parents[child] != -1:
                raise RigError(f"rig model {where}: node {i} lists a bad or second-parented child {child}")
            parents[child] = i
    nodes, used = [], set()
    for i, node in enumerate(raw):
        name = str(node.get("name") or f"node{i}")
        if name in used:
            name = f"{name}#{i}"
        used.add(name)
        translation, rotation, scale = _node_rest(node, name, where)
        if np.ptp(scale) > 1e-4 * np.max(np.abs(scale)) or np.min(scale) <= 0:
            raise RigError(
                f"rig model {where}: node '{name}' has a non-uniform or negative scale {scale.tolist()}"
                " (not supported)"
            )
        nodes.append(RigNode(name, parents[i], translation, rotation, float(scale[0])))
    return nodes


def vrm_humanoid(document: dict) -> tuple[str, dict[str, int]] | None:
    """(version, HumanBodyBones name -> node) from a VRM 0.x or 1.0 humanoid table, if present."""
    extensions = document.get("extensions") or {}
    vrm1 = (extensions.get("VRMC_vrm") or {}).get("humanoid", {}).get("humanBones")
    if isinstance(vrm1, dict):
        table = {bone: entry.get("node") for bone, entry in vrm1.items() if isinstance(entry, dict)}
        return "VRM 1.0 humanoid", {_pascal(k): v for k, v in table.items() if isinstance(v, int)}
    vrm0 = (extensions.get("VRM") or {}).get("humanoid", {}).get("humanBones")
    if isinstance(vrm0, list):
        table = {entry.get("bone"): entry.get("node") for entry in vrm0 if isinstance(entry, dict)}
        return "VRM 0.x humanoid", {
            _pascal(k): v for k, v in table.items() if isinstance(k, str) and isinstance(v, int) and v >= 0
        }
    return None


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


# ---------------------------------------------------------------------------------------------
# Names -> humanoid bones

_STEMS = {
    "hips": "Hips",
    "pelvis": "Hips",
    "hip": "Hips",
    "neck": "Neck",
    "head": "Head",
    "shoulder": "Shoulder",
    "clavicle": "Shoulder",
    "collar": "Shoulder",
    "clav": "Shoulder",
    "upperarm": "UpperArm",
    "arm": "UpperArm",
    "uparm": "UpperArm",
    "shldr": "UpperArm",
    "lowerarm": "LowerArm",
    "forearm": "LowerArm",
    "elbow": "LowerArm",
    "loarm": "LowerArm",
    "hand": "Hand",
    "wrist": "Hand",
    "upperleg": "UpperLeg",
    "upleg": "UpperLeg",
    "thigh": "UpperLeg",
    "lowerleg": "LowerLeg",
    "leg": "LowerLeg",
    "calf": "LowerLeg",
    "knee": "LowerLeg",
    "shin": "LowerLeg",
    "foot": "Foot",
    "ankle": "Foot",
    "toes": "Toes",
    "toe": "Toes",
    "toebase": "Toes",
    "ball": "Toes",
}
# Finger stems (`mixamorig:LeftHandIndex1`, `index_01_l`, `J_Bip_L_Index1`, `LeftIndexProximal`): the
# number, 1 to 3, or the segment word picks Proximal / Intermediate / Distal.
_FINGER_STEMS = {
    "thumb": "Thumb",
    "index": "Index",
    "middle": "Middle",
    "ring": "Ring",
    "pinky": "Little",
    "little": "Little",
    "pinkie": "Little",
}
_FINGER_SEGMENTS = ("Proximal", "Intermediate", "Distal")
_SIDED = {
    "Shoulder",
    "UpperArm",
    "LowerArm",
    "Hand",
    "UpperLeg",
    "LowerLeg",
    "Foot",
    "Toes",
}
_SIDED_STEMS = {"hip": "UpperLeg"}  # "LeftHip" is a thigh, where a centre "Hip" is the pelvis
_PREFIX_WORDS = {
    "j",
    "bip",
    "bip01",
    "bip001",
    "c",
    "def",
    "org",
    "mixamorig",
    "sk",
    "b",
    "jnt",
    "bone",
    "root",
}
_LETTER_SIDES = {"l": "Left", "r": "Right"}
_WORD_SIDES = {"left": "Left", "right": "Right"}


def split_bone_name(name: str, letter_sides: bool = True) -> tuple[str | None, str, int | None]:
    """(side, stem, number): 'mixamorig:LeftUpLeg' -> ('Left', 'upleg', None),
    'J_Bip_L_UpperArm' -> ('Left', 'upperarm', None), 'spine_03' -> (None, 'spine', 3).

    `letter_sides`: whether a lone 'l' / 'r' marks a side (off for rigs that spell sides out, where
    'B_Root_Pelvis_L' means something else)."""
    text = name.rsplit(":", 1)[-1]  # namespaces such as mixamorig:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)  # camelCase -> words
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text.lower()) if w]
    sides = {**_WORD_SIDES, **(_LETTER_SIDES if letter_sides else {})}
    side = None
    kept = []
    for word in words:
        if word in sides:
            side = sides[word]
        elif word not in _PREFIX_WORDS and (letter_sides or word not in _LETTER_SIDES):
            kept.append(word)
    joined = "".join(kept)
    digits = re.findall(r"\d+", joined)
    return side, re.sub(r"\d+", "", joined), int(digits[0]) if digits else None


def _letter_sides(names: list[str]) -> bool:
    """Does this rig mark sides with single letters (J_Bip_L_..., upperarm_r) more than with words?"""
    letters = sum(1 for n in names if split_bone_name(n)[0] and not split_bone_name(n, False)[0])
    words = sum(1 for n in names if split_bone_name(n, False)[0])
    return letters > words


def guess_humanoid(nodes: list[RigNode], candidates: list[int]) -> dict[str, int]:
    """HumanBodyBones name -> node from bone names. The spine is found from the structure: the chain
    from the Hips up to the bone both arms hang from, split into Spine, Chest and UpperChest."""
    depth = _depths(nodes)
    letters = _letter_sides([nodes[i].name for i in candidates])
    best: dict[str, tuple[int, int, int]] = {}
    for i in candidates:
        side, stem, number = split_bone_name(nodes[i].name, letters)
        finger = _finger_bone(stem, number)
        if finger is not None:
            if side is not None:
                key = side + finger
                rank = (0, depth[i], i)
                if key not in best or rank < best[key]:
                    best[key] = rank
            continue
        bone = _STEMS.get(stem)
        if side is not None and stem in _SIDED_STEMS:
            bone = _SIDED_STEMS[stem]
        if bone is None or (side is None) == (bone in _SIDED):
            continue
        key = (side or "") + bone
        rank = (number if number is not None else -1, depth[i], i)
        if key not in best or rank < best[key]:
            best[key] = rank
    humanoid = {key: rank[2] for key, rank in best.items()}
    humanoid.update(_spine(nodes, humanoid))
    return humanoid


def _finger_bone(stem: str, number: int | None) -> str | None:
    """'Index' + segment from a finger bone's stem and number ('handindex', 2 -> 'IndexIntermediate');
    None for anything else (a metacarpal, a finger tip's end bone numbered 4)."""
    stem = stem.removeprefix("hand")
    for word, finger in _FINGER_STEMS.items():
        if not stem.startswith(word):
            continue
        rest = stem[len(word) :]
        for segment in _FINGER_SEGMENTS:
            if rest == segment.lower() and number is None:
                return finger + segment
        if rest in ("", "finger") and number is not None and 1 <= number <= 3:
            return finger + _FINGER_SEGMENTS[number - 1]
        if rest == "" and number is None:  # a lone 'Middle' (the hand's tip): its first bone
            return finger + _FINGER_SEGMENTS[0]
    return None


def _spine(nodes: list[RigNode], humanoid: dict[str, int]) -> dict[str, int]:
    arms = [humanoid.get(f"{side}{bone}") for side in ("Left", "Right") for bone in ("Shoulder", "UpperArm")]
    left, right = arms[0] if arms[0] is not None else arms[1], arms[2] if arms[2] is not None else arms[3]
    if "Hips" not in humanoid or left is None or right is None:
        return {}
    left_chain, right_chain = _path(nodes, -1, left) or [], _path(nodes, -1, right) or []
    shared = [a for a, b in zip(left_chain, right_chain, strict=False) if a == b]
    chain = _path(nodes, humanoid["Hips"], shared[-1]) if shared else None
    if not chain:
        return {}
    positions, _ = _world_rest(nodes)
    spine = [n for n in chain[1:] if np.linalg.norm(positions[n] - positions[nodes[n].parent]) > 1e-6]
    found: dict[str, int] = {}
    if spine:
        found["Spine"] = spine[0]
    if len(spine) == 2:
        found["Chest"] = spine[1]
    if len(spine) >= 3:
        found["Chest"], found["UpperChest"] = spine[(len(spine) - 1) // 2], spine[-1]
    return found


def _depths(nodes: list[RigNode]) -> list[int]:
    out = []
    for node in nodes:
        d, p = 0, node.parent
        while p >= 0:
            d, p = d + 1, nodes[p].parent
        out.append(d)
    return out


def _path(nodes: list[RigNode], ancestor: int, descendant: int) -> list[int] | None:
    """Nodes from ancestor down to descendant (both included), or None if it is not below it.
    Ancestor -1: from the descendant's scene root."""
    chain = [descendant]
    while chain[-1] != ancestor:
        parent = nodes[chain[-1]].parent
        if parent < 0:
            return chain[::-1] if ancestor == -1 else None
        chain.append(parent)
    return chain[::-1]


# ---------------------------------------------------------------------------------------------
# Node tree + humanoid names -> profile


def _world_rest(nodes: list[RigNode]) -> tuple[np.ndarray, np.ndarray]:
    """World positions (scene units) and accumulated uniform scales of every node at rest."""
    positions = np.zeros((len(nodes), 3))
    rotations = np.zeros((len(nodes), 3, 3))
    scales = np.ones(len(nodes))
    for i in _topological(nodes):
        node = nodes[i]
        local = Rotation.from_quat(node.rotation).as_matrix()
        if node.parent < 0:
            positions[i], rotations[i], scales[i] = node.translation, local, node.scale
        else:
            p = node.parent
            positions[i] = positions[p] + rotations[p] @ (scales[p] * node.translation)
            rotations[i] = rotations[p] @ local
            scales[i] = scales[p] * node.scale
    return positions, scales


def _topological(nodes: list[RigNode]) -> list[int]:
    children: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        children.setdefault(node.parent, []).append(i)
    order, stack = [], list(reversed(children.get(-1, [])))
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(reversed(children.get(i, [])))
    return order


def _snap(vector: np.ndarray) -> str:
    axis = int(np.argmax(np.abs(vector)))
    return ("+" if vector[axis] > 0 else "-") + "XYZ"[axis]


def detect_axes(
    positions: np.ndarray, humanoid: dict[str, int], handedness: str = "right"
) -> tuple[str, str]:
    """(up, forward) of a model from its rest skeleton: up from Hips to Head/Neck, left from the
    right limbs to the left ones, forward from the two and the handedness."""
    top = humanoid.get("Head", humanoid.get("Neck"))
    if "Hips" not in humanoid or top is None:
        raise RigError("cannot tell which way the model stands: no Hips and Head/Neck bones found")
    up = AXIS_VECTORS[_snap(positions[top] - positions[humanoid["Hips"]])]
    for left, right in (
        ("LeftUpperArm", "RightUpperArm"),
        ("LeftUpperLeg", "RightUpperLeg"),
        ("LeftHand", "RightHand"),
        ("LeftFoot", "RightFoot"),
    ):
        if left in humanoid and right in humanoid:
            across = positions[humanoid[left]] - positions[humanoid[right]]
            across = across - (across @ np.array(up)) * np.array(up)
            if np.linalg.norm(across) > 1e-6:
                break
    else:
        raise RigError("cannot tell the model's left from its right: no left/right limb pairs found")
    left_axis = np.array(AXIS_VECTORS[_snap(across)])
    forward = np.cross(left_axis, up) * (1.0 if handedness == "right" else -1.0)
    return _snap(np.array(up, dtype=float)), _snap(forward)


def humanoid_profile(
    name: str,
    nodes: list[RigNode],
    humanoid: dict[str, int],
    *,
    up: str,
    forward: str,
    handedness: str,
    units: str,
    rest_pose: str = "other",
    description: str = "",
    source: str = "",
    include_all: bool = False,
) -> RigProfile:
    """A validated profile for the humanoid bones of a node tree, their ancestors and the nodes between
    them, each driven as HUMANOID_DRIVES says. Extra nodes inside a driven chain (UE's spine_02,
    neck_02, twist bones in line) turn part of the way between the chain's ends; others stay at rest.
    `include_all` keeps every node, leaves too (the shipped profiles list end bones)."""
    if "Hips" not in humanoid:
        raise RigError(f"rig {name}: no Hips bone found")
    included: set[int] = set(range(len(nodes))) if include_all else set()
    for node in humanoid.values():
        while node >= 0 and node not in included:
            included.add(node)
            node = nodes[node].parent
    roots = [i for i in included if nodes[i].parent < 0]
    if len(roots) != 1:
        raise RigError(f"rig {name}: the humanoid bones are not under one root node")
    positions, scales = _world_rest(nodes)
    bone_of = {node: bone for bone, node in humanoid.items()}
    order = [i for i in _topological(nodes) if i in included]
    specs: dict[int, dict] = {}
    for i in order:
        node = nodes[i]
        offset = node.translation * (scales[node.parent] if node.parent >= 0 else 1.0)
        spec = {
            "name": node.name,
            "parent": nodes[node.parent].name if node.parent >= 0 else None,
            "offset": offset.tolist(),
            "rotation": (node.rotation / np.linalg.norm(node.rotation)).tolist(),
        }
        bone = bone_of.get(i)
        if bone is not None:
            spec["humanoid"] = bone
        drive = HUMANOID_DRIVES.get(bone) if bone else None
        if drive is not None and drive.joint is not None:
            spec["joint"] = drive.joint
        spec["drive"] = "rest"
        if drive is not None and drive.aim is not None:
            spec.update(_aim_spec(nodes, positions, humanoid, i, drive))
        specs[i] = spec
    # Nodes inside an aimed bone's chain to its tip humanoid bone turn part of the way along it.
    for i in order:
        target = specs[i].get("_target")
        if target is None or specs.get(target, {}).get("drive") != "aim":
            continue
        chain = _path(nodes, i, target)
        lengths = np.linalg.norm(np.diff(positions[chain], axis=0), axis=1)
        total = float(lengths.sum())
        for k, middle in enumerate(chain[1:-1], start=1):
            if specs[middle]["drive"] == "rest" and middle not in bone_of and total > 0:
                specs[middle].update(
                    {
                        "drive": "between",
                        "between": [nodes[i].name, nodes[target].name],
                        "weight": round(float(lengths[:k].sum()) / total, 4),
                    }
                )
    bones = []
    for i in order:
        spec = specs[i]
        spec.pop("_target", None)
        bones.append(spec)
    data = {
        "name": name,
        "description": description,
        "units": units,
        "up": up,
        "forward": forward,
        "handedness": handedness,
        "rest_pose": rest_pose,
        "bones": bones,
        "source": source,
    }
    return profile_from_dict(data, source or name)


def _aim_spec(nodes, positions, humanoid: dict[str, int], i: int, drive: Drive) -> dict:
    spec: dict = {"drive": "aim", "aim": list(drive.aim)}
    for tip in drive.tips:
        chain = _path(nodes, i, humanoid[tip]) if tip in humanoid else None
        if chain and len(chain) >= 2:
            child = chain[1]
            if np.linalg.norm(positions[child] - positions[i]) > 1e-6:
                spec["tip"] = nodes[child].name
            else:  # a zero-length helper in between: aim at the humanoid bone's rest position instead
                spec["tip_rest"] = [nodes[i].name, nodes[humanoid[tip]].name]
            spec["_target"] = humanoid[tip]
            break
    else:
        if drive.tip_rest is None:  # nothing to point at (no forearm found, say): leave it at rest
            return {"drive": "rest"}
        spec["tip_rest"] = drive.tip_rest
    if drive.twist is not None:
        spec["twist"] = list(drive.twist)
        pair = drive.twist_pair
        if pair is not None and all(bone in humanoid for bone in pair):
            spec["twist_rest"] = [nodes[humanoid[pair[0]]].name, nodes[humanoid[pair[1]]].name]
        else:
            spec["twist_rest"] = drive.twist_rest
    return spec


def _rest_pose_kind(positions: np.ndarray, humanoid: dict[str, int], up: np.ndarray) -> str:
    if "LeftUpperArm" not in humanoid or "LeftLowerArm" not in humanoid:
        return "other"
    arm = positions[humanoid["LeftLowerArm"]] - positions[humanoid["LeftUpperArm"]]
    drop = np.degrees(np.arcsin(np.clip(-(arm @ up) / max(np.linalg.norm(arm), 1e-12), -1, 1)))
    return "T" if abs(drop) < 20 else "A" if 20 <= drop <= 65 else "other"


def read_gltf_rig(path: str | Path) -> tuple[RigProfile, RigReport]:
    """Profile and mapping report for a .glb / .gltf / .vrm model. The file's shape is checked where
    it is read (`check_gltf_nodes`); an extension or skin table of an unexpected shape met later is
    still a one-line RigError naming the file, never a traceback."""
    try:
        return _read_gltf_rig(path)
    except RigError as error:
        if str(path) in str(error):
            raise
        raise RigError(f"rig model {path}: {error}") from None  # found by runtime.harden: name the file
    except (TypeError, KeyError, AttributeError, IndexError, ValueError, np.linalg.LinAlgError) as error:
        raise RigError(f"cannot use rig model {path}: malformed glTF ({type(error).__name__})") from None


def _read_gltf_rig(path: str | Path) -> tuple[RigProfile, RigReport]:
    path = Path(path)
    where = str(path)
    document = read_gltf_json(path)
    nodes = gltf_nodes(document, where)
    skeleton_nodes = sorted(
        {
            j
            for skin in document.get("skins", [])
            for j in skin.get("joints", [])
            if isinstance(j, int) and 0 <= j < len(nodes)
        }
    )
    found = vrm_humanoid(document)
    if found is not None:
        method, humanoid = found
        humanoid = {bone: node for bone, node in humanoid.items() if 0 <= node < len(nodes)}
    else:
        method = "bone names"
        humanoid = guess_humanoid(nodes, skeleton_nodes or list(range(len(nodes))))
    core = ("Hips", "LeftUpperArm", "RightUpperArm", "LeftUpperLeg", "RightUpperLeg")
    missing = [bone for bone in core if bone not in humanoid]
    if "Head" not in humanoid and "Neck" not in humanoid:
        missing.append("Head")
    if missing:
        raise RigError(f"rig model {where}: no humanoid skeleton found ({method}: no {', '.join(missing)})")
    positions, _ = _world_rest(nodes)
    try:
        up, forward = detect_axes(positions, humanoid)
    except RigError as error:
        raise RigError(f"rig model {where}: {error}") from None
    profile = humanoid_profile(
        path.stem,
        nodes,
        humanoid,
        up=up,
        forward=forward,
        handedness="right",
        units="m",
        rest_pose=_rest_pose_kind(positions, humanoid, np.array(AXIS_VECTORS[up])),
        description=f"read from {path.name} ({method})",
        source=where,
    )
    named = {nodes[node].name for node in humanoid.values()}
    candidates = [nodes[i].name for i in skeleton_nodes] + profile.bone_names
    sits = {bone.joint for bone in profile.bones}
    ends = {"HeadEnd", "LeftHandEnd", "RightHandEnd"}  # direction targets, never bones
    report = RigReport(
        source=where,
        method=method,
        humanoid={bone: nodes[node].name for bone, node in sorted(humanoid.items())},
        unmapped_bones=list(dict.fromkeys(n for n in candidates if n not in named)),
        missing_joints=[j for j in skeleton.JOINT_NAMES if j not in sits and j not in ends],
        up=up,
        forward=forward,
    )
    report.expressions, report.expressions_from = model_expressions(document)
    profile.expressions, profile.expressions_only = dict(report.expressions), True
    profile.description = " ".join(report.lines()[:2])
    return profile, report


# VRM 1.0 preset expression names by the node's (VRM 0 preset) names.
VRM1_PRESETS = {
    "Blink": "blink",
    "Blink_L": "blinkLeft",
    "Blink_R": "blinkRight",
    "A": "aa",
    "I": "ih",
    "U": "ou",
    "E": "ee",
    "O": "oh",
    "Joy": "happy",
    "Angry": "angry",
    "Sorrow": "sad",
    "Fun": "relaxed",
    "Surprised": "surprised",
    "Neutral": "neutral",
    "LookUp": "lookUp",
    "LookDown": "lookDown",
    "LookLeft": "lookLeft",
    "LookRight": "lookRight",
}


def model_expressions(document: dict) -> tuple[dict[str, str], str]:
    """(the node's expression name -> the model's own name, where they came from) for a glTF/VRM
    document: VRM 1.0 expressions (presets by their VRM 1.0 names, custom ones by ARKit name), VRM
    0.x blendshape groups (presets by presetName, custom groups by ARKit name), else the meshes'
    morph target names (`extras.targetNames`) that are ARKit or VRM 0 preset names, any case."""
    from liverig.runtime.expressions import ARKIT_NAMES, VRM_PRESETS

    canonical = {name.lower(): name for name in (*ARKIT_NAMES, *VRM_PRESETS)}
    found: dict[str, str] = {}
    extensions = document.get("extensions") or {}
    vrm1 = (extensions.get("VRMC_vrm") or {}).get("expressions")
    if isinstance(vrm1, dict):
        presets = vrm1.get("preset") or {}
        by_vrm1 = {v: k for k, v in VRM1_PRESETS.items()}
        for key in presets if isinstance(presets, dict) else ():
            if key in by_vrm1:
                found[by_vrm1[key]] = key
        custom = vrm1.get("custom") or {}
        for key in custom if isinstance(custom, dict) else ():
            if isinstance(key, str) and key.lower() in canonical:
                found.setdefault(canonical[key.lower()], key)
        return found, "VRM 1.0 expressions"
    groups = ((extensions.get("VRM") or {}).get("blendShapeMaster") or {}).get("blendShapeGroups")
    if isinstance(groups, list):
        presets = {name.lower(): name for name in VRM_PRESETS}
        for group in groups:
            if not isinstance(group, dict) or not isinstance(group.get("name"), str):
                continue
            preset = str(group.get("presetName") or "").lower()
            if preset in presets:
                found.setdefault(presets[preset], group["name"])
            elif group["name"].lower() in canonical:
                found.setdefault(canonical[group["name"].lower()], group["name"])
        return found, "VRM 0.x blendshape groups"
    for mesh in document.get("meshes") or []:
        if not isinstance(mesh, dict):
            continue
        lists = [(mesh.get("extras") or {}).get("targetNames")]
        primitives = [p for p in mesh.get("primitives") or [] if isinstance(p, dict)]
        lists += [(p.get("extras") or {}).get("targetNames") for p in primitives]
        for names in lists:
            for name in names if isinstance(names, list) else ():
                if isinstance(name, str) and name.lower() in canonical:
                    found.setdefault(canonical[name.lower()], name)
    return found, "morph target names"
