"""The page's sample avatar: a small VRM 1.0 "mannequin" made here, from the vrm0 rig's proportions.

No VRM model on the package registries allows shipping it, so the project builds its own: one box
per humanoid bone (the left side tinted, a nose to show where it faces), rigid (no skinning), T-pose
with identity rest rotations, facing +Z as VRM 1.0 wants. It is written as a binary glTF with the
`VRMC_vrm` extension into the cache on first use; being made by liverig it carries liverig's licence.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from liverig.core.fetch import cache_dir

VERSION = 2  # 2: vrm0's finger bones. Bump on any change: a new file name, so no stale cache is served
LEAF_TIPS = {"Head": (0.0, 0.2, 0.0), "LeftToes": (0.0, 0.0, 0.05), "RightToes": (0.0, 0.0, 0.05)}
THICKNESS = {"Hips": 0.24, "Spine": 0.22, "Chest": 0.24, "UpperChest": 0.26, "Neck": 0.07, "Head": 0.17}


def sample_avatar_path() -> Path:
    """The cached sample `.vrm`, built if missing."""
    path = cache_dir("page") / f"liverig-mannequin-v{VERSION}.vrm"
    if not path.is_file():
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(build_mannequin())
        partial.replace(path)
    return path


def _vrm_name(unity: str) -> str:
    return unity[0].lower() + unity[1:]


def _cube() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit cube from y=0 to y=1 (x, z in -0.5..0.5): 24 vertices with flat normals, 36 indices."""
    positions, normals, indices = [], [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = np.zeros(3)
            normal[axis] = sign
            u, v = [a for a in range(3) if a != axis]
            base = len(positions)
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                corner = np.zeros(3)
                corner[axis], corner[u], corner[v] = sign * 0.5, du * 0.5, dv * 0.5
                positions.append(corner)
                normals.append(normal)
            quad = [base, base + 1, base + 2, base, base + 2, base + 3]
            # counter-clockwise seen from outside
            if (
                np.dot(
                    np.cross(positions[base + 1] - positions[base], positions[base + 2] - positions[base]),
                    normal,
                )
                < 0
            ):
                quad = [base, base + 2, base + 1, base, base + 3, base + 2]
            indices += quad
    positions = np.array(positions, np.float32) + np.array([0, 0.5, 0], np.float32)
    return positions, np.array(normals, np.float32), np.array(indices, np.uint16)


def build_mannequin() -> bytes:
    """The mannequin as GLB bytes (VRM 1.0)."""
    from liverig.runtime.rigs import load_rig

    profile = load_rig("vrm0")
    names, parents = profile.bone_names, profile.parents
    offsets = profile.rest_offsets() * np.array([-1.0, 1.0, 1.0])  # Unity (left-handed) -> glTF: mirror x
    children = {b: [c for c, p in enumerate(parents) if p == b] for b in range(len(names))}
    nodes: list[dict] = []
    bone_nodes: dict[str, int] = {}
    for b, name in enumerate(names):
        bone_nodes[name] = len(nodes)
        nodes.append({"name": name, "translation": [float(v) for v in offsets[b]], "children": []})
    for b, name in enumerate(names):
        if parents[b] >= 0:
            nodes[bone_nodes[names[parents[b]]]]["children"].append(bone_nodes[name])
    # One box per bone, from the bone's joint to its (first) child's.
    for b, name in enumerate(names):
        if name in LEAF_TIPS:
            tip = np.array(LEAF_TIPS[name])
        elif children[b]:
            tip = offsets[children[b][0]]
        else:
            tip = offsets[b] / max(np.linalg.norm(offsets[b]), 1e-9) * 0.08  # a hand: on along the arm
        length = float(np.linalg.norm(tip))
        if length < 1e-6:
            continue
        turn = Rotation.align_vectors([tip / length], [[0.0, 1.0, 0.0]])[0].as_quat()
        width = THICKNESS.get(name, 0.08 if "Leg" in name or "Arm" in name else 0.06)
        shape = {
            "name": f"{name}_box",
            "mesh": 1 if name.startswith("Left") else 0,
            "rotation": [float(v) for v in turn],
            "scale": [width, length, width * 0.8],
        }
        nodes[bone_nodes[name]]["children"].append(len(nodes))
        nodes.append(shape)
    nose = {"name": "nose", "mesh": 2, "translation": [0.0, 0.09, 0.085], "scale": [0.03, 0.03, 0.04]}
    nodes[bone_nodes["Head"]]["children"].append(len(nodes))
    nodes.append(nose)
    for node in nodes:
        if not node.get("children"):
            node.pop("children", None)

    positions, normals, indices = _cube()
    blob = positions.tobytes() + normals.tobytes() + indices.tobytes()
    blob += b"\0" * (-len(blob) % 4)
    primitive = {"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2}
    gltf = {
        "asset": {"version": "2.0", "generator": "liverig runtime/sample_avatar.py"},
        "extensionsUsed": ["VRMC_vrm"],
        "scene": 0,
        "scenes": [{"nodes": [bone_nodes["Hips"]]}],
        "nodes": nodes,
        "meshes": [{"primitives": [dict(primitive, material=m)]} for m in range(3)],
        "materials": [
            {
                "name": name,
                "pbrMetallicRoughness": {
                    "baseColorFactor": color,
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.8,
                },
            }
            for name, color in (
                ("body", [0.75, 0.78, 0.85, 1]),
                ("left", [0.45, 0.65, 0.95, 1]),
                ("nose", [0.95, 0.55, 0.35, 1]),
            )
        ],
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": positions.nbytes, "target": 34962},
            {"buffer": 0, "byteOffset": positions.nbytes, "byteLength": normals.nbytes, "target": 34962},
            {
                "buffer": 0,
                "byteOffset": positions.nbytes + normals.nbytes,
                "byteLength": indices.nbytes,
                "target": 34963,
            },
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(positions),
                "type": "VEC3",
                "min": positions.min(0).tolist(),
                "max": positions.max(0).tolist(),
            },
            {"bufferView": 1, "componentType": 5126, "count": len(normals), "type": "VEC3"},
            {"bufferView": 2, "componentType": 5123, "count": len(indices), "type": "SCALAR"},
        ],
        "extensions": {
            "VRMC_vrm": {
                "specVersion": "1.0",
                "meta": {
                    "name": "liverig mannequin",
                    "version": str(VERSION),
                    "authors": ["liverig"],
                    "licenseUrl": "https://vrm.dev/licenses/1.0/",
                    "avatarPermission": "everyone",
                    "allowExcessivelyViolentUsage": True,
                    "allowExcessivelySexualUsage": False,
                    "commercialUsage": "corporation",
                    "allowPoliticalOrReligiousUsage": True,
                    "allowAntisocialOrHateUsage": False,
                    "creditNotation": "unnecessary",
                    "allowRedistribution": True,
                    "modification": "allowModificationRedistribution",
                },
                "humanoid": {"humanBones": {_vrm_name(n): {"node": i} for n, i in bone_nodes.items()}},
            }
        },
    }
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body
