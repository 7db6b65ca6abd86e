"""Retargeting: the canonical skeleton (core/skeleton.py) onto a real rig described by data.

A rig is a profile: `configs/rigs/NAME.yaml`, or read from a user's .vrm/.glb/.gltf file by
`runtime.gltf_rig`. It states bone names and parents, the rest pose (local offsets and rotations in
the rig's own axes and units), the rig's axes (up, forward, handedness) and units, and how each bone
is driven:

    aim      the bone points along a canonical direction (`aim: [from, to]`, joints or weighted mixes
             of joints); its roll follows a second canonical direction (`twist`), or keeps the roll
             of its nearest aimed ancestor where the canonical skeleton says nothing about roll.
    between  the bone turns `weight` of the way from one aimed bone's turn to another's (spine or
             neck bones the canonical skeleton has no joint for).
    rest     the bone keeps its rest rotation relative to its parent (clavicles, toes, the root).

Per frame each aimed bone gets the world rotation that carries its rest direction (towards its `tip`
child, or `tip_rest`) onto the canonical direction, and its rest roll reference (`twist_rest`) onto
the canonical one; then local = parent_world⁻¹ · world. Canonical vectors enter the rig through one
fixed linear map (the person's left → the rig's left, up → up, towards the camera → the rig's
forward), which is where the handedness change happens, so no code knows about any particular rig.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy.spatial.transform import Rotation

from liverig.core import skeleton
from liverig.core.config import RetargetConfig
from liverig.core.geometry import crosses, dots, orthonormal_frames, perpendiculars, swing_rotations, units
from liverig.core.safe_io import read_yaml_file
from liverig.core.types import Pose, RigFrame
from liverig.runtime.ease import smoothstep

RIGS_DIR = Path(__file__).resolve().parent.parent / "configs" / "rigs"
MODEL_SUFFIXES = (".vrm", ".glb", ".gltf")
METRES_PER_UNIT = {"m": 1.0, "cm": 0.01}
AXIS_VECTORS = {
    "+X": (1.0, 0.0, 0.0),
    "-X": (-1.0, 0.0, 0.0),
    "+Y": (0.0, 1.0, 0.0),
    "-Y": (0.0, -1.0, 0.0),
    "+Z": (0.0, 0.0, 1.0),
    "-Z": (0.0, 0.0, -1.0),
}
ANATOMY_WORDS = ("left", "right", "up", "down", "forward", "backward")
ALONG_PARENT = "along_parent"  # tip_rest keyword: the bone continues its parent's direction
# Roll from a bend plane is only trusted once the limb is bent this much (a straight limb has none);
# in between, the measured roll is blended with the roll the bone inherits.
TWIST_MIN_DEG = 5.0
TWIST_FULL_DEG = 20.0

Axis = Literal["+X", "-X", "+Y", "-Y", "+Z", "-Z"]
Point = str | dict[str, float]  # a canonical joint, or a weighted mix of joints (weights sum to 1)
RestVector = str | dict[str, float] | list[float] | list[str]


class RigError(ValueError):
    """A rig that cannot be used; the message is one line naming the rig, file and key."""


class BoneSpec(BaseModel):
    """One rig bone: its rest transform and how the canonical skeleton drives it.

    A rest vector (tip_rest, twist_rest) is spelled as an anatomical word (left, right, up, down,
    forward, backward) or a weighted mix of them ({forward: 1, down: 0.5}); a pair of this rig's
    bones [from, to] (their rest positions); three numbers in rig axes; or, for tip_rest only,
    `along_parent` (the bone continues its parent's rest direction).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no .inf/.nan offsets

    name: str
    parent: str | None
    offset: tuple[float, float, float]  # rest local translation in the parent's frame, rig units
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)  # rest local rotation x,y,z,w
    humanoid: str | None = None  # Unity HumanBodyBones name, where the bone is one (informative)
    joint: str | None = None  # the canonical joint this bone sits at, if any
    drive: Literal["aim", "between", "rest"]
    aim: tuple[Point, Point] | None = None  # canonical direction [from, to] the bone points along
    tip: str | None = None  # the child bone the rig bone points at in its rest pose ...
    tip_rest: RestVector | None = None  # ... or the rest direction itself, for bones without one
    twist: tuple[Point, Point] | None = None  # canonical direction fixing the bone's roll
    twist_rest: RestVector | None = None  # where that direction lies in the rest pose
    between: tuple[str, str] | None = None  # two aimed bones whose turns this bone blends
    weight: float | None = Field(None, ge=0.0, le=1.0)  # 0: the first bone's turn, 1: the second's


class RigProfile(BaseModel):
    """A rig: bones in topological order (parents first), axes, units, rest pose and drives."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no .inf/.nan offsets

    name: str
    description: str = ""
    units: Literal["m", "cm"]
    up: Axis
    forward: Axis  # the direction the character faces in its rest pose
    handedness: Literal["left", "right"]
    rest_pose: Literal["T", "A", "other"] = "other"
    bones: list[BoneSpec] = Field(min_length=1)
    source: str = ""  # where the profile was read from (set by the loaders)
    # Expression names (runtime/expressions.py: ARKit + VRM 0 presets, the person's sides) -> this
    # rig's own names, e.g. VRM 1.0's {Joy: happy, A: aa, Blink_L: blinkLeft}. Names not listed pass
    # as they are, unless `expressions_only` (a model file: only the blendshapes it has are sent).
    expressions: dict[str, str] = Field(default_factory=dict)
    expressions_only: bool = False

    @property
    def metres_per_unit(self) -> float:
        return METRES_PER_UNIT[self.units]

    @property
    def bone_names(self) -> list[str]:
        return [bone.name for bone in self.bones]

    @property
    def parents(self) -> list[int]:
        index = {bone.name: i for i, bone in enumerate(self.bones)}
        return [-1 if bone.parent is None else index[bone.parent] for bone in self.bones]

    def index(self, name: str) -> int:
        for i, bone in enumerate(self.bones):
            if bone.name == name:
                return i
        raise KeyError(f"rig '{self.name}' has no bone '{name}'")

    def anatomy(self) -> dict[str, np.ndarray]:
        """The character's own directions (left, up, forward and their opposites) in rig axes.

        left = up × forward in a right-handed rig and its opposite in a left-handed one: a left-handed
        coordinate system is a mirror image, and vectors' components are all that code ever sees.
        """
        up = np.array(AXIS_VECTORS[self.up])
        forward = np.array(AXIS_VECTORS[self.forward])
        left = np.cross(up, forward) * (1.0 if self.handedness == "right" else -1.0)
        return {"left": left, "right": -left, "up": up, "down": -up, "forward": forward, "backward": -forward}

    def canonical_to_rig(self) -> np.ndarray:
        """3×3 map from canonical vectors to rig axes (unitless): the person's left, up and facing
        direction (canonical +X, +Y, +Z) become the character's left, up and forward."""
        anatomy = self.anatomy()
        return np.stack([anatomy["left"], anatomy["up"], anatomy["forward"]], axis=1)

    def rest_offsets(self) -> np.ndarray:
        return np.array([bone.offset for bone in self.bones], dtype=np.float64)

    def rest_rotations(self) -> np.ndarray:
        return np.array([bone.rotation for bone in self.bones], dtype=np.float64)


def is_unity_humanoid(profile: RigProfile) -> bool:
    """Bones as a VMC receiver holds them: HumanBodyBones names, Unity axes (left-handed, +Y up,
    facing +Z), metres and identity rest rotations (vrm0, unity_humanoid)."""
    identity = np.allclose(np.abs(profile.rest_rotations()[:, 3]), 1.0, atol=1e-6)
    names = all(bone.humanoid in (None, bone.name) for bone in profile.bones)
    axes = (profile.units, profile.up, profile.forward, profile.handedness) == ("m", "+Y", "+Z", "left")
    return identity and names and axes


# ---------------------------------------------------------------------------------------------
# Loading and validation


def _read_yaml(path: Path) -> dict:
    data = read_yaml_file(path, "rig profile", RigError)  # regular files, size-, depth-limited, UTF-8
    if not isinstance(data, dict):
        raise RigError(f"rig profile {path}: the top level must be a mapping")
    return data


def load_profile_file(path: str | Path) -> RigProfile:
    """Read and validate a profile YAML; `extends: NAME` starts from another profile's keys."""
    path = Path(path)
    data = _read_yaml(path)
    base = data.pop("extends", None)
    if base is not None:
        base_path = RIGS_DIR / f"{base}.yaml"
        if not isinstance(base, str) or not base_path.is_file():
            raise RigError(f"rig profile {path}: key 'extends': unknown rig '{base}'")
        base_data = _read_yaml(base_path)
        base_data.pop("extends", None)
        data = {**base_data, **data}
    data.setdefault("source", str(path))
    return profile_from_dict(data, str(path))


def profile_from_dict(data: dict, where: str) -> RigProfile:
    """Validate a profile's data; errors are RigError one-liners naming `where` and the key."""
    try:
        profile = RigProfile.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        label = _bone_label(data, first["loc"])
        raise RigError(f"rig profile {where}: key '{key}'{label}: {first['msg']}") from None
    check_profile(profile, where)
    return profile


def _bone_label(data: dict, loc: tuple) -> str:
    if len(loc) >= 2 and loc[0] == "bones" and isinstance(loc[1], int):
        try:
            return f" (bone '{data['bones'][loc[1]]['name']}')"
        except (KeyError, IndexError, TypeError):
            return ""
    return ""


def check_profile(profile: RigProfile, where: str) -> None:
    """Cross-references pydantic cannot see: parents, tips, joint names, drives, axes."""

    def fail(key: str, message: str) -> None:
        raise RigError(f"rig profile {where}: key '{key}': {message}")

    if np.dot(AXIS_VECTORS[profile.up], AXIS_VECTORS[profile.forward]) != 0:
        fail("forward", f"{profile.forward} is not perpendicular to up {profile.up}")
    seen: dict[str, int] = {}
    for i, bone in enumerate(profile.bones):
        key = f"bones.{i}"
        if bone.name in seen:
            fail(f"{key}.name", f"duplicate bone '{bone.name}'")
        if bone.parent is not None and bone.parent not in seen:
            fail(f"{key}.parent", f"'{bone.parent}' is not a bone listed before '{bone.name}'")
        if bone.parent is None and i > 0:
            fail(f"{key}.parent", f"'{bone.name}' is a second root: only the first bone may have no parent")
        seen[bone.name] = i
        norm = float(np.linalg.norm(bone.rotation))
        if abs(norm - 1.0) > 1e-3:
            fail(f"{key}.rotation", f"not a unit quaternion (norm {norm:.4f})")
        if bone.joint is not None and bone.joint not in skeleton.JOINT_INDEX:
            fail(f"{key}.joint", f"'{bone.joint}' is not a canonical joint")
    if profile.bones[0].parent is not None:
        fail("bones.0.parent", "the first bone must be the root (parent: null)")
    if [bone.joint for bone in profile.bones].count("Hips") != 1:
        fail("bones", "exactly one bone must have joint: Hips (it carries the root motion)")
    children: dict[str, set[str]] = {bone.name: set() for bone in profile.bones}
    for bone in profile.bones:
        if bone.parent is not None:
            children[bone.parent].add(bone.name)
    for i, bone in enumerate(profile.bones):
        key = f"bones.{i}"
        aim_keys = {
            "aim": bone.aim,
            "tip": bone.tip,
            "tip_rest": bone.tip_rest,
            "twist": bone.twist,
            "twist_rest": bone.twist_rest,
        }
        between_keys = {"between": bone.between, "weight": bone.weight}
        if bone.drive == "aim":
            if bone.aim is None:
                fail(f"{key}.aim", f"bone '{bone.name}' has drive: aim but no aim")
            if (bone.tip is None) == (bone.tip_rest is None):
                fail(f"{key}.tip", f"bone '{bone.name}' needs exactly one of tip / tip_rest")
            if bone.tip is not None and bone.tip not in children[bone.name]:
                fail(f"{key}.tip", f"'{bone.tip}' is not a child of '{bone.name}'")
            if (bone.twist is None) != (bone.twist_rest is None):
                fail(f"{key}.twist_rest", f"bone '{bone.name}': twist and twist_rest go together")
            for part, points in (("aim", bone.aim), ("twist", bone.twist)):
                for point in points or ():
                    problem = _point_problem(point)
                    if problem:
                        fail(f"{key}.{part}", problem)
            for part, spec in (("tip_rest", bone.tip_rest), ("twist_rest", bone.twist_rest)):
                problem = _rest_vector_problem(spec, seen, allow_parent=part == "tip_rest")
                if problem:
                    fail(f"{key}.{part}", problem)
            extra = [k for k, v in between_keys.items() if v is not None]
        elif bone.drive == "between":
            if bone.between is None or bone.weight is None:
                fail(f"{key}.between", f"bone '{bone.name}' has drive: between but no between/weight")
            for other in bone.between:
                if other not in seen or profile.bones[seen[other]].drive != "aim":
                    fail(f"{key}.between", f"'{other}' is not an aimed bone of this rig")
            extra = [k for k, v in aim_keys.items() if v is not None]
        else:
            extra = [k for k, v in {**aim_keys, **between_keys}.items() if v is not None]
        if extra:
            fail(f"{key}.{extra[0]}", f"'{bone.name}' has drive: {bone.drive}, which takes no {extra[0]}")


def _point_problem(point: Point) -> str | None:
    names = [point] if isinstance(point, str) else list(point)
    for name in names:
        if name not in skeleton.JOINT_INDEX:
            return f"'{name}' is not a canonical joint"
    if isinstance(point, dict) and abs(sum(point.values()) - 1.0) > 1e-6:
        return f"weights of {point} must sum to 1"
    return None


def _rest_vector_problem(spec: RestVector | None, bones: dict[str, int], allow_parent: bool) -> str | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec == ALONG_PARENT and allow_parent:
            return None
        return None if spec in ANATOMY_WORDS else f"'{spec}' is not one of {', '.join(ANATOMY_WORDS)}"
    if isinstance(spec, dict):
        bad = [word for word in spec if word not in ANATOMY_WORDS]
        return f"'{bad[0]}' is not one of {', '.join(ANATOMY_WORDS)}" if bad else None
    if all(isinstance(v, str) for v in spec):
        if len(spec) != 2:
            return "a bone pair needs exactly two bone names"
        missing = [name for name in spec if name not in bones]
        return f"'{missing[0]}' is not a bone of this rig" if missing else None
    return None if len(spec) == 3 else "a vector needs exactly three numbers"


# ---------------------------------------------------------------------------------------------
# Rotations as batches of 3×3 matrices (the shared geometry is core/geometry.py). Everything works on
# all bones of a wave at once: per-call overhead, not arithmetic, is the cost.

_EPS = 1e-9
_TWIST_LOW = math.sin(math.radians(TWIST_MIN_DEG))
_TWIST_HIGH = math.sin(math.radians(TWIST_FULL_DEG))


def _twist_weights(sines: np.ndarray) -> np.ndarray:
    return smoothstep((sines - _TWIST_LOW) / (_TWIST_HIGH - _TWIST_LOW))


FINGER_WORDS = ("Thumb", "Index", "Middle", "Ring", "Little")


def _finger_alignments(
    profile: RigProfile, rest_positions: np.ndarray, by_humanoid: dict[str, int]
) -> dict[int, np.ndarray]:
    """Per finger bone of a rig whose rest hand is not posed as in the T-pose (A-pose rigs: the hand
    slopes down and forward), the rotation (rig axes) from the T-pose hand onto the rig's rest hand.

    A part's finger turn is a turn from the T-pose hand (fingers along the arm, palm down, thumb
    forward); conjugated by this it is the same turn about the rig's own rest hand. Identity (left
    out) for T-pose rigs."""
    anatomy = profile.anatomy()
    alignments: dict[int, np.ndarray] = {}
    for side, outward in (("Left", anatomy["left"]), ("Right", anatomy["right"])):
        hand = by_humanoid.get(f"{side}Hand")
        if hand is None:
            continue
        tip = by_humanoid.get(f"{side}MiddleProximal")
        parent = profile.parents[hand]
        if tip is not None:
            along = rest_positions[tip] - rest_positions[hand]
        elif parent >= 0:
            along = rest_positions[hand] - rest_positions[parent]
        else:
            continue
        norm = float(np.linalg.norm(along))
        if norm < 1e-9:
            continue
        rig = orthonormal_frames((along / norm)[None], anatomy["forward"][None])[0]
        tpose = orthonormal_frames(outward[None], anatomy["forward"][None])[0]
        align = rig @ tpose.T
        if np.allclose(align, np.eye(3), atol=1e-6):
            continue
        for name, bone in by_humanoid.items():
            if name.startswith(side) and any(word in name for word in FINGER_WORDS):
                alignments[bone] = align
    return alignments


# ---------------------------------------------------------------------------------------------
# Forward kinematics


def _chain(parents, local: np.ndarray, offsets: np.ndarray, root_matrix: np.ndarray, root_position):
    positions = np.zeros((len(parents), 3))
    world = np.zeros((len(parents), 3, 3))
    for b, p in enumerate(parents):
        parent_rotation = root_matrix if p < 0 else world[p]
        parent_position = root_position if p < 0 else positions[p]
        positions[b] = parent_position + parent_rotation @ offsets[b]
        world[b] = parent_rotation @ local[b]
    return positions, world


def world_transforms(
    profile: RigProfile,
    local_rotations: np.ndarray | None = None,
    root_position: np.ndarray | None = None,
    root_rotation: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """World positions (B, 3) in rig units and rotation matrices (B, 3, 3), in rig axes.

    Defaults: the rest pose, the root at the origin with no rotation.
    """
    quats = profile.rest_rotations() if local_rotations is None else np.asarray(local_rotations, float)
    local = Rotation.from_quat(quats).as_matrix()
    root_matrix = np.eye(3) if root_rotation is None else Rotation.from_quat(root_rotation).as_matrix()
    root = np.zeros(3) if root_position is None else np.asarray(root_position, float)
    return _chain(profile.parents, local, profile.rest_offsets(), root_matrix, root)


def forward_kinematics(
    profile: RigProfile,
    local_rotations: np.ndarray,
    root_position: np.ndarray,
    root_rotation: np.ndarray | None = None,
) -> np.ndarray:
    """World positions (B, 3) of every bone in rig space and units."""
    return world_transforms(profile, local_rotations, root_position, root_rotation)[0]


# ---------------------------------------------------------------------------------------------
# Retargeting


def _mix_row(point: Point) -> np.ndarray:
    row = np.zeros(skeleton.NUM_JOINTS)
    for name, weight in ({point: 1.0} if isinstance(point, str) else point).items():
        row[skeleton.JOINT_INDEX[name]] += weight
    return row


class Retargeter:
    """Canonical Pose → RigFrame for one rig profile; build once, call `retarget` every frame.

    Options (RetargetConfig): `mirror` reflects the pose first (x → -x, left and right joints swapped),
    so the avatar moves like the person's mirror image; `facing: away` turns the rig root half a turn
    about the rig's up axis; `move_root` places the root so the Hips land where the camera saw them.

    The RigFrame, all in the profile's axes, handedness and units:
      local_rotations  each bone's full local rotation (x, y, z, w) relative to its parent, rest
                       rotation included: what a bone's local rotation property should be set to.
                       For profiles whose rest rotations are identity (vrm0, vrm1, unity_humanoid,
                       mixamo) it is also the rotation relative to the rest pose.
      local_positions  the rest offsets (bones do not stretch).
      root_position    where the rig's origin goes so the Hips land where they should: with
                       root_origin "first_seen" (default) at the rig's rest Hips plus the person's
                       displacement since first seen; with "camera" at the camera-space Hips mapped
                       into rig space; zeros with move_root off.
      root_rotation    identity facing the camera, half a turn about up facing away.
    World transform of a bone = root transform ∘ local transforms down the chain (forward_kinematics).
    """

    def __init__(self, profile: RigProfile, config: RetargetConfig | None = None) -> None:
        self.profile = profile
        self.config = config or RetargetConfig()
        self._names = profile.bone_names
        self._parents = np.array(profile.parents, dtype=np.int64)
        self._offsets = profile.rest_offsets()
        self._rest_local = Rotation.from_quat(profile.rest_rotations()).as_matrix()
        rest_positions, self._rest_world = _chain(
            self._parents, self._rest_local, self._offsets, np.eye(3), np.zeros(3)
        )
        anatomy = profile.anatomy()
        root = Rotation.from_rotvec((np.pi if self.config.facing == "away" else 0.0) * anatomy["up"])
        self._root_matrix = root.as_matrix()
        self._root_quat = root.as_quat()
        self._to_rig = self._root_matrix @ profile.canonical_to_rig()  # canonical vector -> rig world
        self._scale = 1.0 / profile.metres_per_unit
        self._plan_aims(rest_positions, anatomy)
        self._plan_rest()
        hips = next(i for i, bone in enumerate(profile.bones) if bone.joint == "Hips")
        chain = [hips]
        while self._parents[chain[-1]] >= 0:
            chain.append(int(self._parents[chain[-1]]))
        self._hips_chain = chain[::-1]  # root ... hips
        self._previous: np.ndarray | None = None
        self._rest_hips = rest_positions[hips]
        self._root_reference: np.ndarray | None = None  # camera-space Hips when the person was first seen
        # Bones the parts may drive directly (fingers, eyes, the head from the face), by humanoid name.
        self._by_humanoid = {bone.humanoid: i for i, bone in enumerate(profile.bones) if bone.humanoid}
        self._canonical_to_rig = profile.canonical_to_rig()
        self._part_alignment = _finger_alignments(profile, rest_positions, self._by_humanoid)

    def _plan_aims(self, rest_positions: np.ndarray, anatomy: dict[str, np.ndarray]) -> None:
        """Per aimed bone: canonical mixing rows, rest direction and roll reference, anchor."""
        bones = self.profile.bones
        index = {name: i for i, name in enumerate(self._names)}
        self._aimed = [i for i, bone in enumerate(bones) if bone.drive == "aim"]
        slot = {b: k for k, b in enumerate(self._aimed)}
        zero = np.zeros(skeleton.NUM_JOINTS)
        aim_rows, twist_rows, directions, sides, anchors = [], [], [], [], []
        for b in self._aimed:
            bone = bones[b]
            aim_rows.append(_mix_row(bone.aim[1]) - _mix_row(bone.aim[0]))
            twist_rows.append(_mix_row(bone.twist[1]) - _mix_row(bone.twist[0]) if bone.twist else zero)
            if bone.tip is not None:
                directions.append(rest_positions[index[bone.tip]] - rest_positions[b])
            else:
                directions.append(self._rest_vector(bone.tip_rest, b, rest_positions, anatomy, index))
            twist_rest = bone.twist_rest
            sides.append(
                np.zeros(3)
                if twist_rest is None
                else self._rest_vector(twist_rest, b, rest_positions, anatomy, index)
            )
            ancestor = self._parents[b]
            while ancestor >= 0 and ancestor not in slot:
                ancestor = self._parents[ancestor]
            anchors.append(slot[ancestor] if ancestor >= 0 else len(self._aimed))  # last slot: the root
        self._aim_mix = np.array(aim_rows).reshape(-1, skeleton.NUM_JOINTS)
        self._twist_mix = np.array(twist_rows).reshape(-1, skeleton.NUM_JOINTS)
        self._has_twist = np.array([bones[b].twist is not None for b in self._aimed], dtype=bool)
        self._anchor = np.array(anchors, dtype=np.int64)
        self._anchor_list = anchors
        self._d_rest, norms = units(np.array(directions).reshape(-1, 3))
        if np.any(norms == 0):
            name = bones[self._aimed[int(np.argmin(norms))]].name
            raise RigError(f"rig '{self.profile.name}': bone '{name}' has no rest direction (tip on it)")
        sides = np.array(sides).reshape(-1, 3)
        sides, norms = units(sides - dots(sides, self._d_rest)[:, None] * self._d_rest)
        parallel = np.flatnonzero(self._has_twist & (norms < 1e-3))
        if parallel.size:
            name = bones[self._aimed[parallel[0]]].name
            raise RigError(f"rig '{self.profile.name}': bone '{name}': twist_rest is parallel to the bone")
        self._s_rest = np.where((norms > 0)[:, None], sides, perpendiculars(self._d_rest))
        self._frame_rest_t = np.swapaxes(orthonormal_frames(self._d_rest, self._s_rest), -1, -2)

    def _plan_rest(self) -> None:
        bones = self.profile.bones
        slot = {b: k for k, b in enumerate(self._aimed)}
        index = {name: i for i, name in enumerate(self._names)}
        self._between = [i for i, bone in enumerate(bones) if bone.drive == "between"]
        self._between_from = [slot[index[bones[b].between[0]]] for b in self._between]
        self._between_to = [slot[index[bones[b].between[1]]] for b in self._between]
        self._between_weight = np.array([bones[b].weight for b in self._between], dtype=np.float64)
        self._driven = sorted(self._aimed + self._between)
        self._resting = [b for b, bone in enumerate(bones) if bone.drive == "rest"]

    def _rest_vector(self, spec: RestVector, bone: int, rest_positions, anatomy, index) -> np.ndarray:
        """A rest-pose vector from its profile spelling (see BoneSpec.tip_rest), in rig axes."""
        if isinstance(spec, str):
            if spec == ALONG_PARENT:
                parent = self._parents[bone]
                return rest_positions[bone] - rest_positions[parent] if parent >= 0 else anatomy["up"]
            return anatomy[spec]
        if isinstance(spec, dict):
            return sum((weight * anatomy[word] for word, weight in spec.items()), np.zeros(3))
        if all(isinstance(v, str) for v in spec):
            return rest_positions[index[spec[1]]] - rest_positions[index[spec[0]]]
        return np.asarray(spec, dtype=np.float64)

    def reset(self) -> None:
        """Forget the previous frame's quaternion signs and where the person was first seen (a new
        source: no continuity to keep, and the root origin is measured afresh)."""
        self._previous = None
        self._root_reference = None

    def __call__(self, pose: Pose) -> RigFrame:
        """One frame: local rotations for every bone, the root placement, in the rig's conventions."""
        joints = np.asarray(pose.joints, dtype=np.float64)
        root_camera = np.asarray(pose.root_position, dtype=np.float64)
        contact = None if pose.foot_contact is None else np.asarray(pose.foot_contact, dtype=np.float64)
        if self.config.mirror:
            joints = skeleton.mirror_joints(joints)
            root_camera = root_camera * np.array([-1.0, 1.0, 1.0])
            contact = None if contact is None else contact[::-1].copy()  # their left foot is its right
        aims = self._aim_mix @ joints @ self._to_rig.T
        twists = self._twist_mix @ joints @ self._to_rig.T
        deltas = self._aim_deltas(aims, twists)
        world = self._world(deltas)
        parent_world = np.where(self._parents[:, None, None] < 0, self._root_matrix, world[self._parents])
        local = np.einsum("bji,bjk->bik", parent_world, world)
        if pose.bone_rotations:
            self._apply_bone_rotations(local, pose.bone_rotations)
        quats = Rotation.from_matrix(local).as_quat()
        if self._previous is not None:  # keep each quaternion on the previous frame's side
            quats *= np.where(np.sum(quats * self._previous, axis=1) < 0, -1.0, 1.0)[:, None]
        self._previous = quats.copy()
        root_position = np.zeros(3)
        if self.config.move_root and np.all(np.isfinite(root_camera)):
            if self.config.root_origin == "camera":
                target = self._to_rig @ root_camera * self._scale
            else:  # "first_seen": the avatar starts where the rig stands and moves as the person moves
                if self._root_reference is None and pose.present:
                    self._root_reference = root_camera.copy()
                reference = root_camera if self._root_reference is None else self._root_reference
                target = self._to_rig @ (root_camera - reference) * self._scale + self._rest_hips
            root_position = target - self._hips_position(world)
        pose.timing.mark("retarget")
        return RigFrame(
            index=pose.index,
            time_s=pose.time_s,
            timing=pose.timing,
            rig=self.profile.name,
            bone_names=list(self._names),
            parents=self._parents.tolist(),
            local_rotations=quats,
            local_positions=self._offsets.copy(),
            root_position=root_position,
            root_rotation=self._root_quat.copy(),
            tracking=bool(pose.present),
            blendshapes=self._expressions(pose.expressions),
            foot_contact=contact,  # absent poses carry none
        )

    def _apply_bone_rotations(self, local: np.ndarray, rotations: dict[str, np.ndarray]) -> None:
        """Bones a part drives (Pose.bone_rotations: a turn from the rest pose, canonical axes, about
        the bone's own joint) replace the body's local rotation: local = P⁻¹·D·P·rest_local, where
        P is the parent's rest world rotation and D the turn in rig axes. Mirrored, the person's
        left hand drives the avatar's right one, reflected. Names the rig lacks are skipped, and so
        is a non-finite turn (the bone keeps what the body gave it)."""
        targets, turns = [], []
        for name, quat in rotations.items():
            if self.config.mirror:
                name = skeleton.mirror_name(name)
            bone = self._by_humanoid.get(name)
            quat = np.asarray(quat, dtype=np.float64)
            if bone is None or quat.shape != (4,) or not np.all(np.isfinite(quat)) or not quat.any():
                continue
            targets.append(bone)
            turns.append(quat)
        if not targets:
            return
        turn = Rotation.from_quat(np.array(turns)).as_matrix()
        if self.config.mirror:
            reflect = np.diag([-1.0, 1.0, 1.0])
            turn = reflect @ turn @ reflect
        m = self._canonical_to_rig
        turn = m @ turn @ m.T  # m is orthonormal (a rotation or a reflection)
        if self._part_alignment:  # fingers of a rig whose rest hand is not the T-pose's
            for k, bone in enumerate(targets):
                align = self._part_alignment.get(bone)
                if align is not None:
                    turn[k] = align @ turn[k] @ align.T
        bones = np.array(targets)
        parents = self._parents[bones]
        rest_parent = np.where(parents[:, None, None] < 0, np.eye(3), self._rest_world[parents])
        local[bones] = np.swapaxes(rest_parent, -1, -2) @ turn @ rest_parent @ self._rest_local[bones]

    def _expressions(self, expressions: dict[str, float]) -> dict[str, float]:
        """The pose's expressions under the rig's names (the profile's `expressions` mapping);
        mirrored, the person's left is the avatar's right (sides swap before the renaming). Two
        names mapped onto one rig name send the larger value."""
        mirror = self.config.mirror
        names, only = self.profile.expressions, self.profile.expressions_only
        if not names and not mirror and not only:
            return dict(expressions)
        out: dict[str, float] = {}
        for name, value in expressions.items():
            if mirror:
                name = skeleton.mirror_name(name)
            target = names.get(name)
            if target is None:
                if only:
                    continue
                target = name
            out[target] = max(value, out[target]) if target in out else value
        return out

    def _aim_deltas(self, aims: np.ndarray, twists: np.ndarray) -> np.ndarray:
        """For each aimed bone, the world rotation (K, 3, 3) from its rest pose to this frame's pose.

        A bone whose roll is fully measured (a well bent limb, the hip line across the spine) needs
        nothing from its ancestors, so those are solved all at once; the rest (roll-less bones such as
        hands, straight limbs, missing joints) inherit their nearest aimed ancestor's turn, wave by wave.
        """
        count = len(self._aimed)
        directions, norms = units(aims)
        across, across_norms = units(twists - dots(twists, directions)[:, None] * directions)
        twist_norms = np.sqrt(dots(twists, twists))
        sines = across_norms / np.where(twist_norms > _EPS, twist_norms, np.inf)  # 0 for NaN / zero
        weights = np.where(self._has_twist & (norms > 0), _twist_weights(sines), 0.0)
        deltas = np.empty((count + 1, 3, 3))
        deltas[:count] = orthonormal_frames(directions, across) @ self._frame_rest_t
        deltas[count] = self._root_matrix  # what bones without an aimed ancestor inherit
        for wave in self._waves(weights < 1.0):
            parent = deltas[self._anchor[wave]]
            inherited = np.einsum("kij,kj->ki", parent, self._d_rest[wave])
            # A missing or collapsed joint keeps the ancestor's turn.
            direction = np.where((norms[wave] > 0)[:, None], directions[wave], inherited)
            follow = swing_rotations(inherited, direction) @ parent
            weight = weights[wave]
            if np.any(weight > 0):  # partly measured roll: turn that part of the way about the bone
                inherited_side = np.einsum("kij,kj->ki", follow, self._s_rest[wave])
                roll = np.arctan2(
                    dots(crosses(inherited_side, across[wave]), direction), dots(inherited_side, across[wave])
                )
                follow = Rotation.from_rotvec(direction * (weight * roll)[:, None]).as_matrix() @ follow
            deltas[wave] = follow
        return deltas[:count]

    def _waves(self, pending: np.ndarray) -> list[np.ndarray]:
        """Pending bones in groups whose anchors are all solved by earlier groups (or not pending)."""
        flags = pending.tolist()
        levels: list[int] = []
        for k, anchor in enumerate(self._anchor_list):
            levels.append(levels[anchor] + 1 if anchor < k and flags[anchor] else 0)
        levels_array = np.where(pending, np.array(levels), -1)
        top = int(levels_array.max(initial=-1))
        return [np.flatnonzero(levels_array == level) for level in range(top + 1)]

    def _world(self, deltas: np.ndarray) -> np.ndarray:
        """World rotations of every bone: driven bones from their turns, rest bones from their parents."""
        turns = np.empty((len(self._names), 3, 3))
        turns[self._aimed] = deltas
        if self._between:
            start, end = deltas[self._between_from], deltas[self._between_to]
            relative = Rotation.from_matrix(np.swapaxes(start, -1, -2) @ end).as_rotvec()
            part = Rotation.from_rotvec(relative * self._between_weight[:, None]).as_matrix()
            turns[self._between] = start @ part
        world = np.empty_like(turns)
        world[self._driven] = turns[self._driven] @ self._rest_world[self._driven]
        for b in self._resting:
            p = self._parents[b]
            world[b] = (self._root_matrix if p < 0 else world[p]) @ self._rest_local[b]
        return world

    def _hips_position(self, world: np.ndarray) -> np.ndarray:
        """Where the Hips bone lands with the root at the origin (rig units)."""
        position = np.zeros(3)
        for b in self._hips_chain:
            p = self._parents[b]
            position = position + (self._root_matrix if p < 0 else world[p]) @ self._offsets[b]
        return position
