"""A headless CPU renderer of a person performing recorded motion, for the real-detector data set.

A model trained on simulated detector noise did not transfer to the real PoseLandmarker (see the
project notes), so we show the real detector a rendered person whose true joints we know. The
person is `mannequin-x`'s skinned wooden T-pose mannequin (Apache-2.0; only `wooden.npz` is taken
out of the pinned wheel, the package is never installed): 24k vertices, 54 joints in SMPL-X order,
8 skin weights per vertex, of which the 4 strongest are used, as the package itself does.

Posing (`Mannequin.pose`) turns canonical joint positions (T, 22, 3) into one affine transform per
SMPL-X joint, so that the mannequin's landmark sites land exactly on the mocap joints:

  - limbs: each bone is aligned with its mocap direction and stretched along itself to the mocap
    length; its twist comes from the limb's bend plane (elbows and knees are hinges), fading to
    the parent's frame swung onto the bone when the limb is nearly straight (the plane is then
    undefined);
  - torso: a pelvis frame from the hip line and a chest frame from the shoulder line, both with
    the hips-to-shoulders line as "up"; the spine joints slerp between them and the torso is
    scaled to the subject's hip width, shoulder width and torso length in every frame;
  - head: from the ear-level Head and the nose (HeadEnd); the neck bone bridges chest and head;
  - hands, fingers, feet and toes ride rigidly on their hand or foot bone.

Rendering (`Renderer`) uses moderngl on EGL, which on a machine without a GPU is Mesa's llvmpipe:
skinning runs in the vertex shader, 640x480 with 4x MSAA, vertex colours (skin, shirt, trousers,
shoes, hair; eyes, brows, nose and mouth painted in the fragment shader in rest-pose space), a
key light plus sky/ground ambient, a checker floor and a sky gradient. Cameras (`choose_camera`)
use the dict layout of `models.training.simulate.random_camera`; camera space is the canonical one, which
is also OpenGL's eye space (+X right, +Y up, looking along -Z).

Debian packages needed at run time: libegl1, libegl-mesa0, libgl1-mesa-dri. PyPI: moderngl.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from liverig.core import fetch
from liverig.core.geometry import orthonormal_frames, swing_rotations, units
from liverig.core.skeleton import JOINT_INDEX, NUM_JOINTS
from liverig.models.training.mocap import derive_torso, facing

MANNEQUIN = ("mannequin-x", "0.3.0", "c343d8ad6be17770e396ba9119d4a0fc605fad8eb8580d72e95f61fe4a6a8a6b")
MANNEQUIN_MEMBER = "mannequin/assets/wooden.npz"
IMAGE_SIZE = (640, 480)
J = JOINT_INDEX

# Canonical sites on the rest mannequin that have no SMPL-X joint of their own (metres, rest axes:
# +Y up, facing +Z, left on +X). Ear level sits 4.7 cm above the SMPL-X Head joint, at mid-height of
# the 22.7 cm head; the nose is NOSE_FORWARD in front of it, as models/training/mocap.py defines HeadEnd.
EAR_LEVEL = np.array([0.0, 0.445, -0.01])
NOSE_FORWARD = 0.10
TOE_TIP_UP = 0.02  # the toe tip site sits this far above the sole (mocap CONTACT_RADIUS of Toes)

# Rest hinge normals n0 = (upper bone) x (lower bone, slightly bent): elbows bend forward from the
# palms-down T-pose, knees bend backward.
ARM_HINGE = {"Left": np.array([0.0, -1.0, 0.0]), "Right": np.array([0.0, 1.0, 0.0])}
LEG_HINGE = np.array([1.0, 0.0, 0.0])
BEND_FADE = (np.sin(np.radians(8.0)), np.sin(np.radians(30.0)))  # bend-plane twist fades in here
GIRTH_CLIP = (0.85, 1.15)


def mannequin_path() -> Path:
    """`wooden.npz` from the pinned mannequin-x wheel (checksummed), extracted once into the cache."""
    dest = fetch.cache_dir("mannequin") / "wooden-0.3.0.npz"
    if not dest.exists():
        wheel = fetch.pip_download(*MANNEQUIN)
        part = dest.with_suffix(".part")
        fetch.extract(wheel, MANNEQUIN_MEMBER, part)
        part.replace(dest)
    return dest


# ---------------------------------------------------------------------------------------------
# Small vectorised geometry helpers (leading axes are frames)


def _unit(v: np.ndarray) -> np.ndarray:
    return units(v)[0]


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3) with columns a, b made orthogonal to a, and a x b."""
    return orthonormal_frames(units(a)[0], b)


def _swing(v_from: np.ndarray, v_to: np.ndarray) -> np.ndarray:
    """The smallest rotations (..., 3, 3) turning directions v_from onto v_to (core/geometry.py)."""
    shape = np.broadcast_shapes(np.shape(v_from), np.shape(v_to))
    a, b = (units(np.broadcast_to(v, shape).reshape(-1, 3))[0] for v in (v_from, v_to))
    return swing_rotations(a, b).reshape(*shape[:-1], 3, 3)


def _slerp(r0: np.ndarray, r1: np.ndarray, t: float) -> np.ndarray:
    """Rotation matrices (..., 3, 3) a fraction t of the way from r0 to r1."""
    shape = r0.shape[:-2]
    rel = Rotation.from_matrix((r1 @ np.swapaxes(r0, -1, -2)).reshape(-1, 3, 3)).as_rotvec()
    return Rotation.from_rotvec(t * rel).as_matrix().reshape(*shape, 3, 3) @ r0


def _stretch(direction: np.ndarray, ratio: np.ndarray, girth: float | np.ndarray) -> np.ndarray:
    """Scale matrices (..., 3, 3): `ratio` along the rest `direction`, `girth` across it."""
    d = _unit(direction)
    g = np.asarray(girth, dtype=np.float64)[..., None, None]
    return g * np.eye(3) + (np.asarray(ratio)[..., None, None] - g) * (d[..., :, None] * d[..., None, :])


def _rotate_about(v: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: rotate vectors v about unit axes by angles (all with leading frame axes)."""
    cos, sin = np.cos(angle)[..., None], np.sin(angle)[..., None]
    return v * cos + np.cross(axis, v) * sin + axis * (axis * v).sum(-1, keepdims=True) * (1 - cos)


# ---------------------------------------------------------------------------------------------
# The mannequin


@dataclass
class Mannequin:
    """The rest mesh, its skin and the canonical sites, plus the posing that drives them."""

    vertices: np.ndarray  # (V, 3) rest positions
    normals: np.ndarray  # (V, 3) rest normals, outward
    faces: np.ndarray  # (F, 3)
    skin_joints: np.ndarray  # (V, 4) int
    skin_weights: np.ndarray  # (V, 4), rows sum to 1
    dominant: np.ndarray  # (V,) the joint with the largest of all 8 weights
    names: tuple[str, ...]
    parents: np.ndarray
    bind: np.ndarray  # (54, 3) rest joint positions the skin is bound to
    rest_sites: np.ndarray  # (22, 3) the canonical joints on the rest mannequin
    site_joint: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (22,)

    @classmethod
    def load(cls, path: Path | None = None) -> Mannequin:
        with np.load(path or mannequin_path()) as d:
            names = tuple(str(n) for n in d["joint_names"])
            vertices = d["vertices"].astype(np.float64)
            faces = d["faces"].astype(np.int64)
            idx8, w8 = d["skin_joint_indices"].astype(np.int64), d["skin_weights"].astype(np.float64)
            rigid = d["skin_rigid_joint_indices"].astype(np.int64)
            bind = d["skin_source_joint_positions"].astype(np.float64)
            parents = d["parents"].astype(np.int64)
        dominant = idx8[np.arange(len(idx8)), w8.argmax(axis=1)]
        # The 4 strongest influences, renormalised; the package's rigid parts follow one joint.
        order = np.argsort(w8, axis=1)[:, -4:]
        joints4 = np.take_along_axis(idx8, order, axis=1)
        weights4 = np.take_along_axis(w8, order, axis=1)
        weights4 /= weights4.sum(axis=1, keepdims=True)
        joints4[rigid >= 0] = rigid[rigid >= 0, None]
        weights4[rigid >= 0] = (1.0, 0.0, 0.0, 0.0)
        man = cls(
            vertices,
            _vertex_normals(vertices, faces),
            faces,
            joints4,
            weights4,
            dominant,
            names,
            parents,
            bind,
            np.zeros((NUM_JOINTS, 3)),
        )
        man._define_sites()
        return man

    def index(self, name: str) -> int:
        return self.names.index(name)

    def _define_sites(self) -> None:
        """Where each canonical joint sits on the rest mannequin, and which joint carries it."""
        b, ix = self.bind, self.index
        sites = np.zeros((NUM_JOINTS, 3))
        carrier = np.zeros(NUM_JOINTS, dtype=np.int64)
        for side, s in (("Left", "L"), ("Right", "R")):
            toe = self.vertices[np.isin(self.dominant, [ix(f"{s}_Ankle"), ix(f"{s}_Toe")])]
            toe_tip = np.array([b[ix(f"{s}_Toe"), 0], toe[:, 1].min() + TOE_TIP_UP, toe[:, 2].max() - 0.005])
            table = {
                "UpperArm": (f"{s}_Shoulder", b[ix(f"{s}_Shoulder")]),
                "LowerArm": (f"{s}_Elbow", b[ix(f"{s}_Elbow")]),
                "Hand": (f"{s}_Wrist", b[ix(f"{s}_Wrist")]),
                "HandEnd": (f"{s}_Hand", 0.5 * (b[ix(f"{s}_Index1")] + b[ix(f"{s}_Pinky1")])),
                "UpperLeg": (f"{s}_Hip", b[ix(f"{s}_Hip")]),
                "LowerLeg": (f"{s}_Knee", b[ix(f"{s}_Knee")]),
                "Foot": (f"{s}_Ankle", b[ix(f"{s}_Ankle")]),
                "Toes": (f"{s}_Ankle", toe_tip),
            }
            for part, (joint, point) in table.items():
                sites[J[side + part]], carrier[J[side + part]] = point, ix(joint)
        sites[J["Head"]], carrier[J["Head"]] = EAR_LEVEL, ix("Head")
        sites[J["HeadEnd"]] = EAR_LEVEL + [0.0, 0.0, NOSE_FORWARD]
        carrier[J["HeadEnd"]] = ix("Head")
        self.rest_sites = derive_torso(sites[None])[0]
        for name in ("Hips", "Spine", "Chest", "Neck"):  # derived, not carried: mark with -1
            carrier[J[name]] = -1
        self.site_joint = carrier

    # -- posing ----------------------------------------------------------------------------------

    def pose(self, joints: np.ndarray) -> np.ndarray:
        """Affine transforms (T, 54, 3, 4) that put the rest mannequin on canonical joints (T, 22, 3).

        A rest point v bound to joint k goes to A_k v + t_k ([A | t] is the 3x4 matrix); the canonical
        sites land on `joints` exactly (up to float rounding), whatever the subject's proportions.
        """
        X = np.asarray(joints, dtype=np.float64)
        T = len(X)
        C0, b, ix = self.rest_sites, self.bind, self.index
        A = np.zeros((T, len(self.names), 3, 3))
        p = np.zeros((T, len(self.names), 3))  # where each joint's bind position goes

        # Overall girth: the subject's limb lengths against the mannequin's.
        limbs = [
            ("UpperArm", "LowerArm"),
            ("LowerArm", "Hand"),
            ("UpperLeg", "LowerLeg"),
            ("LowerLeg", "Foot"),
        ]
        ratio = [
            np.linalg.norm(X[:, J[s + c]] - X[:, J[s + a]], axis=-1)
            / np.linalg.norm(C0[J[s + c]] - C0[J[s + a]])
            for a, c in limbs
            for s in ("Left", "Right")
        ]
        girth = float(np.clip(np.median(np.mean(ratio, axis=0)), *GIRTH_CLIP))

        # Torso: pelvis and chest frames, spine joints in between.
        H, N = X[:, J["Hips"]], X[:, J["Neck"]]
        H0, N0 = C0[J["Hips"]], C0[J["Neck"]]
        hip_line, sh_line = (
            X[:, J["LeftUpperLeg"]] - X[:, J["RightUpperLeg"]],
            X[:, J["LeftUpperArm"]] - X[:, J["RightUpperArm"]],
        )
        hip_line0, sh_line0 = (
            C0[J["LeftUpperLeg"]] - C0[J["RightUpperLeg"]],
            C0[J["LeftUpperArm"]] - C0[J["RightUpperArm"]],
        )
        r_pelvis = _frame(hip_line, N - H) @ _frame(hip_line0, N0 - H0).T
        r_chest = _frame(sh_line, N - H) @ _frame(sh_line0, N0 - H0).T
        rest_torso = _frame(hip_line0 + sh_line0, N0 - H0)  # columns: across, up, forward
        length0 = np.linalg.norm(N0 - H0)
        k_up = np.linalg.norm(N - H, axis=-1) / length0
        k_hip = np.linalg.norm(hip_line, axis=-1) / np.linalg.norm(hip_line0)
        k_sh = np.linalg.norm(sh_line, axis=-1) / np.linalg.norm(sh_line0)
        for name, f in (
            ("Pelvis", 0.0),
            ("Torso", 1 / 3),
            ("Spine", 2 / 3),
            ("Chest", 1.0),
            ("L_Thorax", 1.0),
            ("R_Thorax", 1.0),
        ):
            k = ix(name)
            rel = b[k] - H0
            a = rel @ rest_torso[:, 1] / length0
            perp = rel - a * length0 * rest_torso[:, 1]
            rot = _slerp(r_pelvis, r_chest, f)
            diag = np.stack([(1 - f) * k_hip + f * k_sh, k_up, np.full(T, girth)], axis=-1)
            scale = rest_torso @ (diag[..., :, None] * rest_torso.T)
            A[:, k] = rot @ scale
            p[:, k] = H + a * (N - H) + (A[:, k] @ perp)
        # Head: forward (to the nose) and up (from the neck) give its frame; it is never stretched.
        head, nose = X[:, J["Head"]], X[:, J["HeadEnd"]]
        r_head = (
            _frame(nose - head, head - N) @ _frame(C0[J["HeadEnd"]] - C0[J["Head"]], C0[J["Head"]] - N0).T
        )
        A[:, ix("Head")] = r_head
        p[:, ix("Head")] = head + r_head @ (b[ix("Head")] - C0[J["Head"]])
        # Neck: from a point on the way up from the shoulders to the head joint, bridging the two.
        neck_rest = b[ix("Head")] - b[ix("Neck")]
        lam = np.linalg.norm(b[ix("Neck")] - N0) / (
            np.linalg.norm(b[ix("Neck")] - N0) + np.linalg.norm(neck_rest)
        )
        p[:, ix("Neck")] = N + lam * (p[:, ix("Head")] - N)
        neck = p[:, ix("Head")] - p[:, ix("Neck")]
        mid = _slerp(r_chest, r_head, 0.5)
        r_neck = _swing(mid @ neck_rest, neck) @ mid
        A[:, ix("Neck")] = r_neck @ _stretch(
            neck_rest, np.linalg.norm(neck, axis=-1) / np.linalg.norm(neck_rest), girth
        )

        # Limbs.
        for side, s in (("Left", "L"), ("Right", "R")):
            chains = (
                (
                    r_chest,
                    ARM_HINGE[side],
                    ("UpperArm", "LowerArm", "Hand", "HandEnd"),
                    (f"{s}_Shoulder", f"{s}_Elbow", f"{s}_Wrist"),
                ),
                (
                    r_pelvis,
                    LEG_HINGE,
                    ("UpperLeg", "LowerLeg", "Foot", "Toes"),
                    (f"{s}_Hip", f"{s}_Knee", f"{s}_Ankle"),
                ),
            )
            for r_parent, n0, sites, smplx in chains:
                root, mid_j, end, tip = (X[:, J[side + n]] for n in sites)
                root0, mid0, end0, tip0 = (C0[J[side + n]] for n in sites)
                rots = _limb_rotations(r_parent, n0, root0, mid0, end0, tip0, root, mid_j, end, tip)
                for k_name, rot, (a, c), (a0, c0) in zip(
                    smplx,
                    rots,
                    ((root, mid_j), (mid_j, end), (end, tip)),
                    ((root0, mid0), (mid0, end0), (end0, tip0)),
                    strict=True,
                ):
                    k = ix(k_name)
                    ratio_k = np.linalg.norm(c - a, axis=-1) / np.linalg.norm(c0 - a0)
                    A[:, k] = rot @ _stretch(c0 - a0, ratio_k, girth)
                    p[:, k] = a + A[:, k] @ (b[k] - a0)
            # Hands and fingers ride on the wrist bone, the toe on the ankle bone.
            riders = {
                f"{s}_Wrist": [f"{s}_Hand"]
                + [
                    n
                    for n in self.names
                    if n.startswith(s + "_") and n[2:-1] in ("Index", "Middle", "Pinky", "Ring", "Thumb")
                ],
                f"{s}_Ankle": [f"{s}_Toe"],
            }
            for carrier, followers in riders.items():
                kc = ix(carrier)
                for name in followers:
                    k = ix(name)
                    A[:, k] = A[:, kc]
                    p[:, k] = p[:, kc] + A[:, kc] @ (b[k] - b[kc])

        t = p - (A @ b[:, :, None])[..., 0]
        return np.concatenate([A, t[..., None]], axis=-1)

    def sites(self, transforms: np.ndarray) -> np.ndarray:
        """The canonical joints (T, 22, 3) of the posed mannequin (what `pose` should reproduce)."""
        out = np.zeros((len(transforms), NUM_JOINTS, 3))
        carried = self.site_joint >= 0
        tr = transforms[:, self.site_joint[carried]]
        out[:, carried] = (tr[..., :3] @ self.rest_sites[carried][:, :, None])[..., 0] + tr[..., 3]
        return derive_torso(out)

    def skin(self, transforms: np.ndarray, vertices: np.ndarray | None = None) -> np.ndarray:
        """Posed vertices (V, 3) for one frame's transforms (54, 3, 4): linear blend skinning on the CPU.

        The renderer skins in its vertex shader; this is the same sum, for tests and bounds.
        `vertices`: other rest vertices on the same skin (a body's build, `scenes.build_mesh`).
        """
        rest = self.vertices if vertices is None else vertices
        blend = (self.skin_weights[..., None, None] * transforms[self.skin_joints]).sum(axis=1)
        return (blend[..., :3] @ rest[:, :, None])[..., 0] + blend[..., 3]


def _limb_rotations(r_parent, n0, root0, mid0, end0, tip0, root, mid, end, tip) -> list[np.ndarray]:
    """World rotations (T, 3, 3) of a limb's three bones (upper, lower, hand/foot).

    Upper and lower bone share the hinge normal: the bend plane's normal where the limb is bent,
    otherwise the rest normal carried by the parent frame swung onto the upper bone.
    """
    u0, f0, h0 = mid0 - root0, end0 - mid0, tip0 - end0
    u, f, h = mid - root, end - mid, tip - end
    uhat = _unit(u)
    fallback = (_swing(r_parent @ u0, u) @ r_parent) @ n0
    fallback = _unit(fallback - (fallback * uhat).sum(-1, keepdims=True) * uhat)
    bend = np.cross(u, f)
    sin_bend = np.linalg.norm(bend, axis=-1) / np.maximum(
        np.linalg.norm(u, axis=-1) * np.linalg.norm(f, axis=-1), 1e-12
    )
    bend = _unit(bend)
    # Turn the fallback towards the bend normal about the bone, by a weight that grows with the bend.
    weight = np.clip((sin_bend - BEND_FADE[0]) / (BEND_FADE[1] - BEND_FADE[0]), 0.0, 1.0)
    weight = weight * weight * (3 - 2 * weight)
    angle = np.arctan2((np.cross(fallback, bend) * uhat).sum(-1), (fallback * bend).sum(-1))
    normal = _rotate_about(fallback, uhat, weight * angle)
    rest_upper = _frame(u0, n0)
    r_upper = _frame(u, normal) @ rest_upper.T
    r_lower = _frame(f, normal) @ _frame(f0, n0).T
    r_end = _swing(r_lower @ h0, h) @ r_lower
    return [r_upper, r_lower, r_end]


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, flipped to point away from the body where the winding disagrees."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_n)
    return _unit(normals)


# ---------------------------------------------------------------------------------------------
# Looks and cameras


HAIR_STYLES = ("short", "long", "bald")
PATTERNS = ("plain", "stripes", "checks", "print")  # the fragment shader's pattern numbers, in order
LOWER = ("trousers", "skirt", "dress")


@dataclass
class Look:
    """Colours (linear-ish RGB in [0, 1]) and light of one rendered sequence."""

    skin: tuple[float, float, float] = (0.87, 0.67, 0.53)
    shirt: tuple[float, float, float] = (0.75, 0.12, 0.12)
    trousers: tuple[float, float, float] = (0.15, 0.22, 0.45)
    shoes: tuple[float, float, float] = (0.08, 0.07, 0.07)
    hair: tuple[float, float, float] = (0.16, 0.10, 0.06)
    sleeve: float = 0.55  # how far down the upper arm the sleeve reaches (0 shoulder, 1 elbow)
    light_dir: tuple[float, float, float] = (0.4, 0.8, 0.45)  # towards the key light, camera axes
    floor: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (0.62, 0.60, 0.56),
        (0.42, 0.40, 0.37),
    )
    sky: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (0.86, 0.90, 0.95),
        (0.45, 0.62, 0.85),
    )
    # Bodies and scenes (models/training/scenes.py); the defaults draw the mannequin as it always was.
    hair_style: str = "short"  # HAIR_STYLES
    top_pattern: str = "plain"  # PATTERNS, painted on the shirt (and a dress) in rest-pose space
    top_color2: tuple[float, float, float] = (0.9, 0.9, 0.88)  # the pattern's second colour
    lower: str = "trousers"  # LOWER: a skirt or a dress (in the shirt's colour) to above the knee
    forearm_sleeve: float = 0.0  # how far down the forearm a long sleeve reaches (0 elbow, 1 wrist)
    key_level: float = 0.6  # key light strength
    ambient_level: float = 0.6  # sky/ground ambient strength
    light_color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the key light's tint
    backdrop_gain: float = 1.0  # the photo wall's exposure
    background: str = ""  # the photo wall's name (scenes.BACKGROUNDS), "" for none
    body: str = ""  # the body preset's name (scenes.BODIES), "" for the plain mannequin


SKINS = ((0.93, 0.76, 0.64), (0.87, 0.67, 0.53), (0.72, 0.53, 0.40), (0.55, 0.38, 0.27), (0.38, 0.26, 0.19))
SHIRTS = (
    (0.75, 0.12, 0.12),
    (0.12, 0.45, 0.20),
    (0.85, 0.70, 0.15),
    (0.20, 0.30, 0.70),
    (0.90, 0.90, 0.88),
    (0.35, 0.35, 0.38),
    (0.55, 0.20, 0.55),
    (0.95, 0.45, 0.10),
)
TROUSERS = (
    (0.15, 0.22, 0.45),
    (0.10, 0.10, 0.11),
    (0.55, 0.48, 0.33),
    (0.35, 0.36, 0.38),
    (0.22, 0.28, 0.18),
)
HAIR = ((0.16, 0.10, 0.06), (0.05, 0.04, 0.04), (0.45, 0.30, 0.15), (0.70, 0.58, 0.35), (0.35, 0.33, 0.32))


def random_look(rng: np.random.Generator) -> Look:
    """Varied clothes, skin, hair and light, so the data does not teach one appearance."""

    def pick(options):
        return tuple(float(c) for c in options[rng.integers(len(options))])

    light = _unit(np.array([rng.uniform(-0.8, 0.8), rng.uniform(0.5, 1.2), rng.uniform(0.3, 1.0)]))
    tint = rng.uniform(0.9, 1.05)
    return Look(
        skin=pick(SKINS),
        shirt=pick(SHIRTS),
        trousers=pick(TROUSERS),
        shoes=pick(((0.08, 0.07, 0.07), (0.3, 0.2, 0.12), (0.85, 0.85, 0.85))),
        hair=pick(HAIR),
        sleeve=float(rng.choice([0.3, 0.55, 1.3])),
        light_dir=tuple(float(c) for c in light),
        floor=tuple(tuple(float(x) for x in np.clip(np.array(c) * tint, 0, 1)) for c in Look().floor),
    )


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World -> camera rotation (rows: right, up, back) of a level camera at `position` facing `target`."""
    back = _unit(np.asarray(position, float) - target)
    right = _unit(np.cross([0.0, 1.0, 0.0], back))
    return np.stack([right, np.cross(back, right), back])


def make_camera(position, target, fov_deg: float, image_size=IMAGE_SIZE, **extra) -> dict:
    """A camera dict in `models.training.simulate.random_camera`'s layout."""
    width, _ = image_size
    position = np.asarray(position, dtype=np.float64)
    return {
        "position": position,
        "rotation": look_at(position, np.asarray(target, float)),
        "fov_deg": float(fov_deg),
        "focal_px": float(0.5 * width / np.tan(np.radians(fov_deg) / 2)),
        "image_size": tuple(image_size),
        **extra,
    }


def to_camera(points: np.ndarray, camera: dict) -> np.ndarray:
    """World points (..., 3) -> camera space (canonical axes: +X right, +Y up, subject at -Z)."""
    return (points - camera["position"]) @ camera["rotation"].T


def body_extent_points(joints: np.ndarray) -> np.ndarray:
    """The joints plus the head top, fingertips and soles (T, 27, 3): what must stay in the picture."""
    head_top = joints[:, J["Head"]] + 0.14 * _unit(joints[:, J["Head"]] - joints[:, J["Neck"]])
    tips = [
        joints[:, J[s + "HandEnd"]] + 0.1 * _unit(joints[:, J[s + "HandEnd"]] - joints[:, J[s + "Hand"]])
        for s in ("Left", "Right")
    ]
    soles = [joints[:, J[s + "Foot"]] - [0.0, 0.1, 0.0] for s in ("Left", "Right")]
    return np.concatenate([joints, np.stack([head_top, *tips, *soles], axis=1)], axis=1)


def fits(points: np.ndarray, camera: dict, margin: float = 0.04) -> bool:
    """Whether every point is in front of the camera and inside the image, `margin` from the edges."""
    from liverig.models.training.simulate import project

    cam = to_camera(points, camera)
    if np.any(cam[..., 2] > -0.5):
        return False
    uv = project(cam, camera)
    return bool(np.all((uv > margin) & (uv < 1 - margin)))


def choose_camera(
    joints: np.ndarray,
    rng: np.random.Generator,
    azimuth_deg: float,
    height_m: tuple[float, float] = (0.9, 1.7),
    fov_deg: tuple[float, float] = (50.0, 70.0),
    distance_m: tuple[float, float] = (2.5, 5.5),
    image_size=IMAGE_SIZE,
) -> dict:
    """A level camera looking at the subject's average hips from `azimuth_deg` off the subject's mean
    facing (0: straight in front), as near as 2.5-5.5 m allows with the whole body in view.

    The distance is drawn between the nearest that fits and 1.5 m beyond it (within the range); a
    subject who travels too far for the range gets a wider view and, at worst, a farther camera.
    """
    hips = joints[:, J["Hips"]]
    target = hips.mean(axis=0)
    face = facing(joints).mean(axis=0)
    if np.linalg.norm(face) < 0.3:  # spinning: the first frame's facing
        face = facing(joints[:1])[0]
    base = np.arctan2(face[0], face[2])
    azimuth = base + np.radians(azimuth_deg)
    height = rng.uniform(*height_m)
    fov = rng.uniform(*fov_deg)
    points = body_extent_points(joints)[:: max(1, len(joints) // 120)]

    def camera_at(distance: float, fov_now: float) -> dict:
        offset = distance * np.array([np.sin(azimuth), 0.0, np.cos(azimuth)])
        position = np.array([target[0], height, target[2]]) + offset
        return make_camera(position, target, fov_now, image_size)

    for fov_try in (fov, max(fov, fov_deg[1])):
        near = next(
            (
                d
                for d in np.arange(distance_m[0], distance_m[1] + 1e-6, 0.1)
                if fits(points, camera_at(d, fov_try))
            ),
            None,
        )
        if near is not None:
            fov = fov_try
            break
    else:
        near = next((d for d in np.arange(distance_m[1], 9.0, 0.1) if fits(points, camera_at(d, fov))), 9.0)
    distance = rng.uniform(near, max(near, min(distance_m[1], near + 1.5)))
    camera = camera_at(distance, fov)
    camera.update(
        azimuth_deg=float(azimuth_deg), distance_m=float(distance), height_m=float(height), target=target
    )
    return camera


def in_place(joints: np.ndarray, sigma_frames: float = 20.0) -> np.ndarray:
    """The motion on a treadmill: the slow horizontal travel of the hips (a Gaussian low-pass of their
    path) taken out, sway and steps kept. A webcam at arm's length sees a person who stays at the
    desk; travelling motion would walk out of the picture within a second. Near a clip's ends the
    low-pass holds the edge values, so some travel stays there (tests/test_realdet.py)."""
    from scipy.ndimage import gaussian_filter1d

    hips = joints[:, J["Hips"], :].astype(np.float64)
    slow = gaussian_filter1d(hips, sigma_frames, axis=0, mode="nearest")
    shift = (slow - slow.mean(axis=0)) * np.array([1.0, 0.0, 1.0])
    return joints - shift[:, None, :]


def webcam_camera(
    joints: np.ndarray,
    rng: np.random.Generator,
    azimuth_deg: float,
    distance_m: tuple[float, float] = (0.5, 1.5),
    fov_deg: tuple[float, float] = (55.0, 90.0),
    image_size=IMAGE_SIZE,
) -> dict:
    """The streamer's framing (issue 18): a camera at desk-to-head height, 0.5-1.5 m from the chest,
    55-90 deg horizontal field of view, aimed at the upper body; the legs fall partly or wholly out of
    the picture. `joints` should be in place (`in_place`).

    The distance is drawn in the range, then pushed out (at most to the range's far end, then the
    field of view widened) until the head stays in the picture and no body point comes nearer the lens
    than 0.25 m: a hand reaching through the camera is no picture anyone films.
    """
    neck, head = joints[:, J["Neck"]], joints[:, J["Head"]]
    chest = joints[:, J["Chest"]]
    face = facing(joints).mean(axis=0)
    if np.linalg.norm(face) < 0.3:
        face = facing(joints[:1])[0]
    azimuth = np.arctan2(face[0], face[2]) + np.radians(azimuth_deg)
    centre = chest.mean(axis=0)
    hips_y, head_y = float(joints[:, J["Hips"], 1].mean()), float(head[:, 1].mean())
    height = rng.uniform(hips_y + 0.05, head_y + 0.15)  # a desk's camera up to a monitor-top one
    aim = centre + rng.uniform(0.0, 1.0) * (neck.mean(axis=0) - centre)
    fov = rng.uniform(*fov_deg)
    heads = np.concatenate([head, joints[:, J["HeadEnd"]]])[:: max(1, len(joints) // 60)]
    body = body_extent_points(joints)[:: max(1, len(joints) // 60)]

    def camera_at(distance: float, fov_now: float) -> dict:
        offset = distance * np.array([np.sin(azimuth), 0.0, np.cos(azimuth)])
        position = np.array([centre[0], height, centre[2]]) + offset
        return make_camera(position, aim, fov_now, image_size)

    def ok(camera: dict) -> bool:
        near = to_camera(body, camera)[..., 2].max() < -0.25
        return bool(near and fits(heads, camera, margin=0.0))

    distance = rng.uniform(*distance_m)
    steps = [(d, fov) for d in np.arange(distance, distance_m[1] + 1e-6, 0.05)]
    steps += [(distance_m[1], f) for f in np.arange(fov, fov_deg[1] + 1e-6, 5.0)]
    steps += [(d, fov_deg[1]) for d in np.arange(distance_m[1], 3.0, 0.1)]
    distance, fov = next(((d, f) for d, f in steps if ok(camera_at(d, f))), steps[-1])
    camera = camera_at(distance, fov)
    camera.update(
        azimuth_deg=float(azimuth_deg), distance_m=float(distance), height_m=float(height), target=aim
    )
    return camera


# ---------------------------------------------------------------------------------------------
# The renderer

_FIGURE_VS = """
#version 330
uniform mat4 view_proj;
uniform mat4 bones[54];
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec4 in_weights;
in ivec4 in_joints;
in float in_face;
in float in_garment;
flat out float v_garment;
out vec3 v_normal;
out vec3 v_color;
out vec3 v_rest;
out float v_face;
void main() {
    mat4 skin = in_weights.x * bones[in_joints.x] + in_weights.y * bones[in_joints.y]
              + in_weights.z * bones[in_joints.z] + in_weights.w * bones[in_joints.w];
    vec4 world = skin * vec4(in_pos, 1.0);
    v_normal = mat3(skin) * in_normal;
    v_color = in_color;
    v_rest = in_pos;
    v_face = in_face;
    v_garment = in_garment;
    gl_Position = view_proj * world;
}
"""

# Face features are painted in rest space (the head faces +Z there); see EAR_LEVEL for the head.
_FIGURE_FS = """
#version 330
uniform vec3 light_dir;
uniform vec3 sky_color;
uniform vec3 ground_color;
uniform vec3 hair_color;
uniform vec3 light_color;
uniform float key_level;
uniform float ambient_level;
uniform int top_pattern;
uniform vec3 top_color2;
flat in float v_garment;
in vec3 v_normal;
in vec3 v_color;
in vec3 v_rest;
in float v_face;
out vec4 f_color;

float ellipse(vec2 p, vec2 c, vec2 r) { vec2 d = (p - c) / r; return dot(d, d); }

vec3 paint_face(vec3 p, vec3 base) {
    if (p.z < 0.02) {
        // ears: slightly darker discs on the sides
        if (abs(p.x) > 0.055 && ellipse(vec2(p.z, p.y), vec2(-0.008, 0.443), vec2(0.016, 0.026)) < 1.0)
            return base * 0.82;
        return base;
    }
    vec2 q = vec2(abs(p.x), p.y);
    float eye = ellipse(q, vec2(0.029, 0.458), vec2(0.0135, 0.0075));
    if (eye < 1.0) {
        if (ellipse(q, vec2(0.029, 0.458), vec2(0.0065, 0.0065)) < 1.0) return vec3(0.12, 0.08, 0.05);
        return vec3(0.94, 0.93, 0.90);
    }
    if (ellipse(q, vec2(0.030, 0.474), vec2(0.016, 0.0032)) < 1.0) return hair_color;      // brows
    if (ellipse(q, vec2(0.0, 0.392), vec2(0.022, 0.0065)) < 1.0) return vec3(0.62, 0.25, 0.24);  // mouth
    if (ellipse(q, vec2(0.0, 0.424), vec2(0.011, 0.016)) < 1.0) return base * 0.88;           // nose
    if (ellipse(q, vec2(0.006, 0.412), vec2(0.004, 0.003)) < 1.0) return base * 0.55;        // nostrils
    return base;
}

// Cloth patterns in rest space (metres): 1 stripes, 2 checks, 3 a dotted print; 0 plain.
vec3 pattern(int kind, vec3 p, vec3 a, vec3 b) {
    if (kind == 1) return fract(p.y / 0.07) < 0.5 ? a : b;
    if (kind == 2) { vec3 c = floor(p / 0.06); return mod(c.x + c.y + c.z, 2.0) < 0.5 ? a : b; }
    if (kind == 3) { vec2 q = fract(vec2(p.x + p.z, p.y) / 0.05) - 0.5; return dot(q, q) < 0.06 ? b : a; }
    return a;
}

void main() {
    vec3 n = normalize(v_normal);
    vec3 base = v_face > 0.5 ? paint_face(v_rest, v_color) : v_color;
    if (v_garment > 0.5 && v_garment < 1.5) base = pattern(top_pattern, v_rest, base, top_color2);
    float key = max(dot(n, normalize(light_dir)), 0.0);
    vec3 ambient = mix(ground_color, sky_color, 0.5 + 0.5 * n.y);
    f_color = vec4(base * (ambient_level * ambient + key_level * key * light_color), 1.0);
}
"""

_FLOOR_VS = """
#version 330
uniform mat4 view_proj;
in vec3 in_pos;
out vec3 v_world;
void main() { v_world = in_pos; gl_Position = view_proj * vec4(in_pos, 1.0); }
"""

_FLOOR_FS = """
#version 330
uniform vec3 color_a;
uniform vec3 color_b;
uniform vec3 eye;
uniform vec3 fog_color;
uniform vec2 shadow_centre;
in vec3 v_world;
out vec4 f_color;
void main() {
    vec2 p = v_world.xz / 0.6;
    vec2 w = fwidth(p) + 1e-4;
    vec2 i = 2.0 * (abs(fract((p - 0.5 * w) * 0.5) - 0.5) - abs(fract((p + 0.5 * w) * 0.5) - 0.5)) / w;
    float c = 0.5 - 0.5 * i.x * i.y;
    vec3 col = mix(color_a, color_b, c);
    float shadow = 1.0 - 0.35 * exp(-dot(v_world.xz - shadow_centre, v_world.xz - shadow_centre) / 0.12);
    col *= shadow;
    float fog = 1.0 - exp(-length(v_world - eye) / 30.0);
    f_color = vec4(mix(col, fog_color, fog), 1.0);
}
"""

_WALL_VS = """
#version 330
uniform mat4 view_proj;
in vec3 in_pos;
in vec2 in_uv;
out vec2 v_uv;
void main() { v_uv = in_uv; gl_Position = view_proj * vec4(in_pos, 1.0); }
"""

_WALL_FS = """
#version 330
uniform sampler2D photo;
uniform vec3 tint;
in vec2 v_uv;
out vec4 f_color;
void main() { f_color = vec4(texture(photo, v_uv).rgb * tint, 1.0); }
"""

_SKY_VS = """
#version 330
in vec2 in_pos;
out vec2 v_ndc;
void main() { v_ndc = in_pos; gl_Position = vec4(in_pos, 0.9999, 1.0); }
"""

_SKY_FS = """
#version 330
uniform mat4 inv_view_proj;
uniform vec3 horizon;
uniform vec3 zenith;
in vec2 v_ndc;
out vec4 f_color;
void main() {
    vec4 a = inv_view_proj * vec4(v_ndc, -1.0, 1.0);
    vec4 b = inv_view_proj * vec4(v_ndc, 1.0, 1.0);
    vec3 ray = normalize(b.xyz / b.w - a.xyz / a.w);
    float t = sqrt(clamp(ray.y, 0.0, 1.0));
    f_color = vec4(mix(horizon, zenith, t), 1.0);
}
"""


def vertex_colours(man: Mannequin, look: Look) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-vertex base colour (V, 3), face flag (V,) and garment (V,: 0 none, 1 the top, whose pattern
    the fragment shader paints, 2 trousers or skirt, plain) from bone weights and rest-pose position."""
    names = [man.names[k] for k in man.dominant]
    v = man.vertices
    colour = np.zeros_like(v)
    face = np.zeros(len(v))
    garment = np.zeros(len(v))
    shoulder, elbow = man.bind[man.index("L_Shoulder"), 0], man.bind[man.index("L_Elbow"), 0]
    wrist = man.bind[man.index("L_Wrist"), 0]
    sleeve_end = shoulder + look.sleeve * (elbow - shoulder)
    cuff = elbow + look.forearm_sleeve * (wrist - elbow)
    ankle_y = man.bind[man.index("L_Ankle"), 1]
    hip_y, knee_y = man.bind[man.index("L_Hip"), 1], man.bind[man.index("L_Knee"), 1]
    hem_y = knee_y + 0.2 * (hip_y - knee_y)  # a skirt or dress ends just above the knee
    skirt = look.lower in ("skirt", "dress")
    skirt_colour, skirt_garment = (look.shirt, 1.0) if look.lower == "dress" else (look.trousers, 2.0)
    for i, name in enumerate(names):
        part = name[2:] if name[:2] in ("L_", "R_") else name
        if part in ("Head",):
            colour[i] = look.skin
            face[i] = 1.0
        elif part == "Elbow" and look.forearm_sleeve > 0 and abs(v[i, 0]) < cuff:
            colour[i], garment[i] = look.shirt, 1.0
        elif part in ("Neck", "Elbow", "Wrist", "Hand") or part[:-1] in (
            "Index",
            "Middle",
            "Pinky",
            "Ring",
            "Thumb",
        ):
            colour[i] = look.skin
        elif part == "Shoulder":
            inside = abs(v[i, 0]) < sleeve_end or look.forearm_sleeve > 0
            colour[i], garment[i] = (look.shirt, 1.0) if inside else (look.skin, 0.0)
        elif part in ("Chest", "Spine", "Torso", "Thorax"):
            colour[i], garment[i] = look.shirt, 1.0
        elif part in ("Ankle", "Toe"):
            low = v[i, 1] < ankle_y + 0.03
            colour[i] = look.shoes if low else (look.skin if skirt else look.trousers)
            garment[i] = 0.0 if low or skirt else 2.0
        elif skirt and part in ("Hip", "Knee") and v[i, 1] < hem_y:
            colour[i] = look.skin
        elif skirt:  # Pelvis, Hip, Knee above the hem
            colour[i], garment[i] = skirt_colour, skirt_garment
        else:  # Pelvis, Hip, Knee
            colour[i], garment[i] = look.trousers, 2.0
    # Hair: the top and back of the head; long hair also down the sides and the neck to the
    # shoulders; bald-ish: a fringe round the back only.
    head = face > 0
    y, z, x = v[:, 1], v[:, 2], np.abs(v[:, 0])
    if look.hair_style == "bald":
        hair = head & (z < -0.04) & (y > 0.40) & (y < 0.45)
    else:
        hair = head & ((y > 0.5) | ((z < -0.035) & (y > 0.39)) | ((x > 0.055) & (y > 0.475) & (z < 0.04)))
    if look.hair_style == "long":
        neck_y = man.bind[man.index("L_Shoulder"), 1] - 0.06
        hair |= head & (x > 0.05) & (z < 0.03) & (y > 0.36)
        hair |= (
            ~head
            & (z < -0.03)
            & (x < 0.11)
            & (y > neck_y)
            & np.isin(
                man.dominant, [man.index(n) for n in ("Neck", "Chest", "L_Thorax", "R_Thorax", "Spine")]
            )
        )
    colour[hair] = look.hair
    garment[hair] = 0.0
    # A belt line where shirt meets trousers.
    pelvis = np.array([n == "Pelvis" for n in names])
    top = v[pelvis, 1].max()
    if look.lower != "dress":
        belt = pelvis & (y > top - 0.02)
        colour[belt], garment[belt] = np.array(look.trousers) * 0.5, 0.0
    return colour, face, garment


def _perspective(fov_deg: float, aspect: float, near: float = 0.05, far: float = 100.0) -> np.ndarray:
    fx = 1.0 / np.tan(np.radians(fov_deg) / 2)
    return np.array(
        [
            [fx, 0, 0, 0],
            [0, fx * aspect, 0, 0],
            [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
            [0, 0, -1, 0],
        ]
    )


def view_projection(camera: dict) -> np.ndarray:
    """The OpenGL clip transform (4, 4) of a camera dict (horizontal field of view, square pixels)."""
    width, height = camera["image_size"]
    view = np.eye(4)
    view[:3, :3] = camera["rotation"]
    view[:3, 3] = -camera["rotation"] @ camera["position"]
    return _perspective(camera["fov_deg"], width / height) @ view


class Renderer:
    """Renders the mannequin, posed by per-joint transforms, into BGR uint8 images (EGL, offscreen)."""

    def __init__(self, mannequin: Mannequin, image_size=IMAGE_SIZE, samples: int = 4):
        import moderngl  # imported here: only rendering needs it (and Mesa's EGL)

        self.man = mannequin
        self.size = tuple(image_size)
        self.ctx = moderngl.create_standalone_context(backend="egl")
        ctx = self.ctx
        self._msaa = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer(self.size, 4, samples=samples)],
            depth_attachment=ctx.depth_renderbuffer(self.size, samples=samples),
        )
        self._resolved = ctx.framebuffer(color_attachments=[ctx.renderbuffer(self.size, 4)])
        self._figure = ctx.program(vertex_shader=_FIGURE_VS, fragment_shader=_FIGURE_FS)
        self._floor = ctx.program(vertex_shader=_FLOOR_VS, fragment_shader=_FLOOR_FS)
        self._sky = ctx.program(vertex_shader=_SKY_VS, fragment_shader=_SKY_FS)
        self._wall = ctx.program(vertex_shader=_WALL_VS, fragment_shader=_WALL_FS)
        m = mannequin
        f4 = np.float32
        self._positions = ctx.buffer(m.vertices.astype(f4).tobytes())
        self._normals = ctx.buffer(m.normals.astype(f4).tobytes())
        self._static = [
            (self._positions, "3f", "in_pos"),
            (self._normals, "3f", "in_normal"),
            (ctx.buffer(m.skin_weights.astype(f4).tobytes()), "4f", "in_weights"),
            (ctx.buffer(m.skin_joints.astype(np.int32).tobytes()), "4i", "in_joints"),
        ]
        self._colour = ctx.buffer(reserve=len(m.vertices) * 12)
        self._face = ctx.buffer(reserve=len(m.vertices) * 4)
        self._garment = ctx.buffer(reserve=len(m.vertices) * 4)
        index = ctx.buffer(m.faces.astype(np.int32).tobytes())
        self._figure_vao = ctx.vertex_array(
            self._figure,
            [
                *self._static,
                (self._colour, "3f", "in_color"),
                (self._face, "1f", "in_face"),
                (self._garment, "1f", "in_garment"),
            ],
            index,
        )
        self._wall_buffer = ctx.buffer(reserve=6 * 20)
        self._wall_vao = ctx.vertex_array(self._wall, [(self._wall_buffer, "3f 2f", "in_pos", "in_uv")])
        self._photo = None  # the backdrop's texture, None: the sky gradient only
        self._photo_image: np.ndarray | None = None
        self._wall_behind = 0.0
        sky = ctx.buffer(np.array([-1, -1, 3, -1, -1, 3], dtype=f4).tobytes())
        self._sky_vao = ctx.vertex_array(self._sky, [(sky, "2f", "in_pos")])
        self._floor_buffer = ctx.buffer(reserve=6 * 12)
        self._floor_vao = ctx.vertex_array(self._floor, [(self._floor_buffer, "3f", "in_pos")])
        self.camera: dict | None = None
        self.set_look(Look())

    def set_look(self, look: Look) -> None:
        colour, face, garment = vertex_colours(self.man, look)
        self._colour.write(colour.astype(np.float32).tobytes())
        self._face.write(face.astype(np.float32).tobytes())
        self._garment.write(garment.astype(np.float32).tobytes())
        fig = self._figure
        fig["top_pattern"].value = PATTERNS.index(look.top_pattern)
        fig["top_color2"].value = tuple(look.top_color2)
        fig["key_level"].value, fig["ambient_level"].value = look.key_level, look.ambient_level
        fig["light_color"].value = tuple(look.light_color)
        self._wall["tint"].value = tuple(
            float(look.backdrop_gain * (0.5 + 0.5 * c)) for c in look.light_color
        )
        sky_horizon, sky_zenith = look.sky
        self._figure["sky_color"].value = tuple(sky_horizon)
        self._figure["ground_color"].value = tuple(look.floor[1])
        self._figure["hair_color"].value = tuple(look.hair)
        self._floor["color_a"].value, self._floor["color_b"].value = look.floor
        self._floor["fog_color"].value = tuple(sky_horizon)
        self._sky["horizon"].value, self._sky["zenith"].value = sky_horizon, sky_zenith
        self.look = look
        self._update_light()

    def _update_light(self) -> None:
        """The key light comes from the camera's side of the subject, so no sequence is backlit."""
        rotation = self.camera["rotation"] if self.camera is not None else np.eye(3)
        self._figure["light_dir"].value = tuple(
            float(v) for v in rotation.T @ np.asarray(self.look.light_dir)
        )

    def set_body(self, vertices: np.ndarray | None) -> None:
        """Rest vertices (V, 3) of a body's build (`scenes.build_mesh`); None: the mannequin's own.
        Normals are recomputed from the moved surface. Once per sequence, not per frame."""
        v = self.man.vertices if vertices is None else np.asarray(vertices, dtype=np.float64)
        normals = self.man.normals if vertices is None else _vertex_normals(v, self.man.faces)
        self._positions.write(v.astype(np.float32).tobytes())
        self._normals.write(normals.astype(np.float32).tobytes())

    def set_backdrop(self, photo: np.ndarray | None, behind_m: float = 2.0) -> None:
        """Hang a photo (RGB uint8, H x W x 3) as a wall `behind_m` beyond the camera's target,
        facing the camera, standing on the floor and filling the view; None: the sky only.
        Call before `set_camera` (which places the wall)."""
        if self._photo is not None:
            self._photo.release()
            self._photo = None
        self._photo_image, self._wall_behind = photo, float(behind_m)
        if photo is None:
            return
        h, w = photo.shape[:2]
        self._photo = self.ctx.texture((w, h), 3, np.ascontiguousarray(photo[::-1]).tobytes())
        self._photo.build_mipmaps()
        self._photo.repeat_x = self._photo.repeat_y = False

    def _place_wall(self, camera: dict) -> None:
        """The photo wall's quad: perpendicular to the camera's level view direction, from the floor
        up past the top of the view, wide enough for the view and some sway; the photo cropped to
        the wall's shape (never stretched)."""
        position = np.asarray(camera["position"], float)
        target = np.asarray(camera.get("target", position - camera["rotation"][2]), float)
        forward = -camera["rotation"][2] * np.array([1.0, 0.0, 1.0])
        forward /= max(np.linalg.norm(forward), 1e-9)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        depth = float((target - position) @ forward) + self._wall_behind
        # Where the view's four corner rays meet the wall's plane: the wall covers them, with a margin.
        width_px, height_px = camera["image_size"]
        tx = np.tan(np.radians(camera["fov_deg"]) / 2)
        rays = np.array([[sx * tx, sy * tx * height_px / width_px, -1.0] for sx in (-1, 1) for sy in (-1, 1)])
        rays = rays @ camera["rotation"]  # camera -> world directions
        along = np.maximum(rays @ forward, 1e-3)
        hits = position + (depth / along)[:, None] * rays
        half_w = 1.15 * float(np.abs((hits - position) @ right).max()) + 0.3
        top = 1.1 * float(hits[:, 1].max()) + 0.3
        centre = position + depth * forward
        centre[1] = 0.0
        corners = [
            centre + sx * half_w * right + [0.0, sy * top, 0.0]
            for sx, sy in ((-1, 0), (1, 0), (1, 1), (-1, 1))
        ]
        h, w = self._photo_image.shape[:2]
        wall_aspect, photo_aspect = 2.0 * half_w / top, w / h
        su, sv = (
            (1.0, photo_aspect / wall_aspect)
            if wall_aspect > photo_aspect
            else (wall_aspect / photo_aspect, 1.0)
        )
        uv = [
            (0.5 - su / 2, 0.5 - sv / 2),
            (0.5 + su / 2, 0.5 - sv / 2),
            (0.5 + su / 2, 0.5 + sv / 2),
            (0.5 - su / 2, 0.5 + sv / 2),
        ]
        quad = [np.concatenate([corners[k], uv[k]]) for k in (0, 1, 2, 0, 2, 3)]
        self._wall_buffer.write(np.array(quad, dtype=np.float32).tobytes())
        self._wall["view_proj"].write(self._vp)

    def set_camera(self, camera: dict, floor_centre: np.ndarray | None = None) -> None:
        """Place the camera; the floor (a 60 m square at y = 0) is centred under `floor_centre`."""
        self.camera = camera
        vp = view_projection(camera)
        self._vp = vp.astype(np.float32).T.tobytes()  # GLSL matrices are column-major
        for prog in (self._figure, self._floor):
            prog["view_proj"].write(self._vp)
        self._sky["inv_view_proj"].write(np.linalg.inv(vp).astype(np.float32).T.tobytes())
        self._floor["eye"].value = tuple(camera["position"])
        self._update_light()
        cx, cz = (floor_centre if floor_centre is not None else camera.get("target", np.zeros(3)))[[0, 2]]
        h = 30.0
        quad = np.array(
            [
                [cx - h, 0, cz - h],
                [cx + h, 0, cz - h],
                [cx + h, 0, cz + h],
                [cx - h, 0, cz - h],
                [cx + h, 0, cz + h],
                [cx - h, 0, cz + h],
            ],
            dtype=np.float32,
        )
        self._floor_buffer.write(quad.tobytes())
        if self._photo is not None:
            self._place_wall(camera)

    def render(self, transforms: np.ndarray) -> np.ndarray:
        """One frame (H, W, 3) BGR uint8 of the mannequin posed by `transforms` (54, 3, 4)."""
        import moderngl

        if self.camera is None:
            raise RuntimeError("set_camera first")
        bones = np.zeros((len(transforms), 4, 4), dtype=np.float32)
        bones[:, :3] = transforms
        bones[:, 3, 3] = 1.0
        self._figure["bones"].write(np.ascontiguousarray(bones.transpose(0, 2, 1)).tobytes())
        pelvis = transforms[self.man.index("Pelvis"), :, 3]
        self._floor["shadow_centre"].value = (float(pelvis[0]), float(pelvis[2]))
        ctx = self.ctx
        self._msaa.use()
        ctx.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        ctx.disable(moderngl.DEPTH_TEST)
        self._sky_vao.render(moderngl.TRIANGLES)
        ctx.enable(moderngl.DEPTH_TEST)
        if self._photo is not None:
            self._photo.use(0)
            self._wall_vao.render(moderngl.TRIANGLES)
        self._floor_vao.render(moderngl.TRIANGLES)
        self._figure_vao.render(moderngl.TRIANGLES)
        ctx.copy_framebuffer(self._resolved, self._msaa)
        width, height = self.size
        rgb = np.frombuffer(self._resolved.read(components=3, alignment=1), dtype=np.uint8)
        return np.ascontiguousarray(rgb.reshape(height, width, 3)[::-1, :, ::-1])

    def close(self) -> None:
        self.ctx.release()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
