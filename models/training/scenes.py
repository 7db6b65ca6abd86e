"""Bodies and scenes for the real-detector corpus (issue 18): who stands in front of the camera, and where.

The motion model is trained on pictures of one wooden mannequin (`render.py`); real users differ in
height, proportions, girth, hair and clothes, and film themselves in rooms, not in front of a sky.
This module holds the two tables the corpus draws from, each entry with the split it may feed:

  - BODIES: named presets, each bone-length proportions + a height factor (applied to the mocap
    joints, so the mannequin is posed onto them: `shape_joints`), a mesh build (girth per region:
    vertices pushed away from their bone's axis, weighted by their skin weights: `build_mesh`, once
    per sequence), a hair style and a clothing style (patterns painted in the fragment shader from
    rest-pose coordinates; colours drawn per sequence by `scene_look`).
  - BACKGROUNDS: real photographs out of pinned registry packages (the opencv-doc Debian package and
    the scikit-image wheel the project already pins), each checked by SHA-256 after extraction and
    cached in `.cache/liverig/backgrounds/`; the renderer hangs one as a photo wall behind the figure.

Held out: a body or background whose split is "test" is never drawn for a train or val sequence,
one whose split is "val" never for train (`allowed`); test sequences draw from every entry, so the
evaluation can compare bodies it trained on with bodies it never saw, within one split.

Check command (renders each body, full body and webcam framing, runs the real PoseLandmarker):

    python -m liverig.models.training.scenes --bodies-sheet out/bodies.png [--measure 60]
    python -m liverig.models.training.scenes --render-cost 100   # ms per frame, plain vs scene
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from liverig.core import fetch
from liverig.models.training.render import HAIR_STYLES, LOWER, PATTERNS

SPLIT_ORDER = ("train", "val", "test")
REGIONS = ("belly", "chest", "hips", "thighs", "upper_arms", "neck")


@dataclass(frozen=True)
class BodyPreset:
    """One body: proportions (simulate._GROUPS bone-group factors), height factor, girth per region
    (1 = the mannequin), and hair and clothing styles."""

    name: str
    split: str
    height: float
    bones: dict[str, float] = field(default_factory=dict)
    girth: dict[str, float] = field(default_factory=dict)
    hair: str = "short"
    top: str = "plain"  # PATTERNS, painted on the shirt
    lower: str = "trousers"  # LOWER: a skirt or dress leaves the legs bare below the hem
    sleeve: float = 0.55  # 0 shoulder .. 1 elbow .. 2 wrist

    def __post_init__(self) -> None:
        """A misspelt preset is an error naming it, not a silently plain body."""
        from liverig.models.training.simulate import _GROUPS

        for value, allowed_values, what in (
            (self.split, SPLIT_ORDER, "split"),
            (self.hair, HAIR_STYLES, "hair"),
            (self.top, PATTERNS, "top"),
            (self.lower, LOWER, "lower"),
        ):
            if value not in allowed_values:
                raise ValueError(f"body {self.name}: {what} {value!r} is not one of {allowed_values}")
        for key, table in ((set(self.bones), _GROUPS), (set(self.girth), REGIONS)):
            if key - set(table):
                raise ValueError(
                    f"body {self.name}: unknown {sorted(key - set(table))}; expected {sorted(table)}"
                )


BODIES: tuple[BodyPreset, ...] = (
    BodyPreset(
        "slim_tall_woman",
        "train",
        1.05,
        {"shoulders": 0.9, "hips": 1.08, "thigh": 1.05, "shin": 1.05, "head": 0.96},
        {"belly": 0.9, "chest": 1.08, "hips": 1.12, "thighs": 0.98, "upper_arms": 0.88, "neck": 0.85},
        hair="long",
        top="plain",
        lower="dress",
        sleeve=0.3,
    ),
    BodyPreset(
        "heavy_set_man",
        "train",
        1.0,
        {"shoulders": 1.08, "hips": 1.06, "torso": 1.02},
        {"belly": 1.55, "chest": 1.3, "hips": 1.3, "thighs": 1.3, "upper_arms": 1.3, "neck": 1.35},
        hair="short",
        top="checks",
    ),
    BodyPreset(
        "short_stocky",
        "train",
        0.9,
        {"thigh": 0.9, "shin": 0.9, "upper_arm": 0.93, "forearm": 0.93, "shoulders": 1.06},
        {"belly": 1.25, "chest": 1.2, "hips": 1.15, "thighs": 1.25, "upper_arms": 1.25, "neck": 1.3},
        hair="bald",
        top="plain",
        sleeve=1.6,
    ),
    BodyPreset(
        "broad_athletic",
        "train",
        1.03,
        {"shoulders": 1.15, "hips": 0.98},
        {"belly": 0.95, "chest": 1.3, "hips": 1.0, "thighs": 1.2, "upper_arms": 1.35, "neck": 1.2},
        hair="short",
        top="stripes",
    ),
    BodyPreset(
        "curvy_woman",
        "train",
        0.97,
        {"shoulders": 0.92, "hips": 1.1},
        {"belly": 1.12, "chest": 1.22, "hips": 1.35, "thighs": 1.25, "upper_arms": 1.1, "neck": 0.95},
        hair="long",
        top="print",
        lower="skirt",
    ),
    BodyPreset(
        "average_man",
        "train",
        1.0,
        {},
        {"belly": 1.05},
        hair="short",
        top="plain",
        sleeve=2.0,
    ),
    BodyPreset(
        "slender_teen",
        "val",
        0.88,
        {"head": 1.05, "torso": 0.95, "shoulders": 0.9, "hips": 0.92},
        {"belly": 0.85, "chest": 0.88, "hips": 0.9, "thighs": 0.85, "upper_arms": 0.82, "neck": 0.85},
        hair="long",
        top="print",
    ),
    BodyPreset(
        "lanky_man",
        "val",
        1.08,
        {"upper_arm": 1.06, "forearm": 1.06, "thigh": 1.04, "shin": 1.04},
        {"belly": 0.88, "chest": 0.92, "hips": 0.92, "thighs": 0.88, "upper_arms": 0.85, "neck": 0.9},
        hair="short",
        top="checks",
        sleeve=2.0,
    ),
    BodyPreset(
        "elderly_stooped",
        "test",
        0.95,
        {"torso": 0.94, "shoulders": 0.92, "hips": 1.0},
        {"belly": 1.3, "chest": 1.05, "hips": 1.1, "thighs": 0.95, "upper_arms": 0.92, "neck": 1.1},
        hair="bald",
        top="plain",
        sleeve=2.0,
    ),
    BodyPreset(
        "petite_woman",
        "test",
        0.9,
        {"shoulders": 0.88, "hips": 1.02},
        {"belly": 0.92, "chest": 1.1, "hips": 1.15, "thighs": 1.0, "upper_arms": 0.9, "neck": 0.88},
        hair="long",
        top="stripes",
        lower="skirt",
        sleeve=0.3,
    ),
)
BODY_INDEX = {b.name: b for b in BODIES}
# `elderly_stooped` is a build (belly, thin arms, short torso), not a posture: the joints are the
# mocap's truth, and bending them would change the motion, not the body.


@dataclass(frozen=True)
class Background:
    """A photo out of a pinned package: which package, which member, its SHA-256, licence, split."""

    name: str
    split: str
    source: str  # "opencv-doc" or "scikit-image"
    member: str
    sha256: str
    licence: str
    what: str


OPENCV_DOC = (
    "opencv-doc",
    "4.6.0+dfsg-12",
    "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
)
SKIMAGE = ("scikit-image", "0.25.2", "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641")
_OCV = "/usr/share/doc/opencv-doc/examples/"
_OCV_LICENCE = "Apache-2.0 AND BSD-3-Clause (Debian copyright of OpenCV)"
BACKGROUNDS: tuple[Background, ...] = (
    Background(
        "office_shelf",
        "train",
        "opencv-doc",
        _OCV + "alphamat/input_images/plant.jpg",
        "9928b44eee0d1d7ab2ffd9d6d80bbbff962d6e85c7786de2cd3c97fe72229186",
        _OCV_LICENCE,
        "an office: a potted plant in front of shelves and boxes",
    ),
    Background(
        "patterned_curtain",
        "train",
        "opencv-doc",
        _OCV + "data/aloeL.jpg",
        "cce5736808efe80d9f04b118dbb978c344d4345672b332718c3e039a3eeb8eee",
        _OCV_LICENCE,
        "a flowered curtain behind an aloe on a table",
    ),
    Background(
        "toy_shelf",
        "train",
        "opencv-doc",
        _OCV + "data/rubberwhale1.png",
        "eb312435369dac9efcc92f7e098edbd9ed8d7e6dfede8b3b4d8e3702cd80b796",
        _OCV_LICENCE,
        "a child's room: toys, a lattice, an orange knitted cloth",
    ),
    Background(
        "chair_corner",
        "train",
        "opencv-doc",
        _OCV + "data/box_in_scene.png",
        "8b0225ff76244a42bd1400c0904f8b7afea7d97b7d8115495e42e98ad347bd51",
        _OCV_LICENCE,
        "a chair with boxes and bags on it (greyscale)",
    ),
    Background(
        "office_block",
        "train",
        "opencv-doc",
        _OCV + "data/building.jpg",
        "742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07",
        _OCV_LICENCE,
        "an office block behind a lawn",
    ),
    Background(
        "brick_house",
        "train",
        "opencv-doc",
        _OCV + "reg/home.png",
        "205d424fb53bc9a2d62d03e16a33f70d8609d4602e06194cf6218a3666226512",
        _OCV_LICENCE,
        "a red-brick house wall with windows",
    ),
    Background(
        "palace_front",
        "val",
        "opencv-doc",
        _OCV + "data/home.jpg",
        "23b8cf46a1965d0ec33459b875aed43187802834db49e0daa9fa2cc842e9d8d2",
        _OCV_LICENCE,
        "an ornate yellow palace front under a blue sky",
    ),
    Background(
        "old_street",
        "test",
        "opencv-doc",
        _OCV + "data/leuvenA.jpg",
        "b2977cdbd9fb3f94dadd6f76cf586d145676deb8a22b5f0f42149d21c058c09f",
        _OCV_LICENCE,
        "a cobbled street between brick houses",
    ),
    Background(
        "brick_wall",
        "test",
        "scikit-image",
        "skimage/data/brick.png",
        "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
        "CC0 (CC0Textures, Bricks25)",
        "a brick wall, straight on (greyscale)",
    ),
)
BACKGROUND_INDEX = {b.name: b for b in BACKGROUNDS}


def allowed(table: tuple, split: str) -> list:
    """The entries of BODIES or BACKGROUNDS a sequence of `split` may draw: train only train's, val
    train's and val's, test every one (so test holds bodies and photos seen and never seen)."""
    if split not in SPLIT_ORDER:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLIT_ORDER}")
    rank = SPLIT_ORDER.index(split)
    return [e for e in table if SPLIT_ORDER.index(e.split) <= rank]


def pick_scene(split: str, rng: np.random.Generator) -> tuple[BodyPreset, Background]:
    """A body and a background for one sequence of `split`."""
    bodies, backgrounds = allowed(BODIES, split), allowed(BACKGROUNDS, split)
    return bodies[rng.integers(len(bodies))], backgrounds[rng.integers(len(backgrounds))]


# ---------------------------------------------------------------------------------------------
# Background photos


def background_path(name: str) -> Path:
    """The cached photo `name` (BACKGROUNDS), taken out of its pinned package once and checked by
    SHA-256; a cached file that no longer matches (corrupted) is an error naming it, not a picture."""
    if name not in BACKGROUND_INDEX:
        raise ValueError(f"unknown background {name!r}; choose one of {', '.join(BACKGROUND_INDEX)}")
    bg = BACKGROUND_INDEX[name]
    dest = _cached(bg)
    if not dest.exists():
        # Every missing photo of the same package at once: a .deb is unpacked only once.
        archive = (
            fetch.apt_download(*OPENCV_DOC) if bg.source == "opencv-doc" else fetch.pip_download(*SKIMAGE)
        )
        todo = [b for b in BACKGROUNDS if b.source == bg.source and not _cached(b).exists()]
        parts = {b.member: _cached(b).with_name(_cached(b).name + ".part") for b in todo}
        fetch.extract_many(archive, parts)
        for b in todo:
            _check(parts[b.member], b).replace(_cached(b))
    return _check(dest, bg)


def _cached(bg: Background) -> Path:
    return fetch.cache_dir("backgrounds") / f"{bg.name}{Path(bg.member).suffix}"


def _check(path: Path, bg: Background) -> Path:
    actual = fetch.sha256_of(path)
    if actual != bg.sha256:
        raise fetch.FetchError(
            f"checksum mismatch for background {bg.name} ({path}): expected {bg.sha256}, got {actual}; "
            "delete the file to fetch it again"
        )
    return path


def load_background(name: str) -> np.ndarray:
    """The photo `name` as an RGB uint8 array (H, W, 3)."""
    import cv2

    path = background_path(name)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise fetch.FetchError(f"background {name}: {path} is not a readable image")
    return np.ascontiguousarray(image[:, :, ::-1])


# ---------------------------------------------------------------------------------------------
# Bodies


def shape_joints(joints: np.ndarray, body: BodyPreset, rng: np.random.Generator | None = None) -> np.ndarray:
    """The motion (T, 22, 3) on `body`'s proportions and height (feet kept on the floor), plus, with
    `rng`, a little per-sequence jitter (bone groups and height by exp(N(0, 0.02)))."""
    from liverig.models.training.simulate import _GROUPS, scale_bones

    factors = {g: float(body.bones.get(g, 1.0)) for g in _GROUPS}
    if rng is not None:
        factors = {g: f * float(np.exp(rng.normal(0.0, 0.02))) for g, f in factors.items()}
    height = body.height * (float(np.exp(rng.normal(0.0, 0.02))) if rng is not None else 1.0)
    return scale_bones(joints, factors) * height


def _segment_radial(v: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectors from the nearest point of segment a-b to each point v (the part across the bone)."""
    ab = b - a
    t = np.clip(((v - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return v - (a + t[:, None] * ab)


def build_mesh(man, body: BodyPreset) -> np.ndarray:
    """The mannequin's rest vertices (V, 3) with `body`'s girth: each region's vertices pushed away
    from its bone axis by (girth - 1) x their distance from it, weighted by their skin weight on the
    region's joints, so the build blends smoothly across joints. Poses are unchanged (the bind
    positions stay), only the surface moves."""
    v = man.vertices
    bind, ix = man.bind, man.index

    def weight(names: list[str]) -> np.ndarray:
        ids = [ix(n) for n in names]
        return (man.skin_weights * np.isin(man.skin_joints, ids)).sum(axis=1)

    out = v.copy()
    spine_z = float(np.mean([bind[ix(n), 2] for n in ("Pelvis", "Torso", "Spine", "Chest")]))

    def vertical(x: np.ndarray, sideways: float) -> np.ndarray:
        """Across the body's vertical axis: depth fully, width by `sideways` (a big chest or belly
        grows forward more than outward; the shoulders' width is the bones')."""
        return np.stack([sideways * x[:, 0], np.zeros(len(x)), x[:, 2] - spine_z], axis=1)

    g = {r: float(body.girth.get(r, 1.0)) for r in REGIONS}
    # Belly: the front of the lower torso pushed forward, most at navel height.
    navel = bind[ix("Torso"), 1]
    bump = np.exp(-(((v[:, 1] - navel) / 0.12) ** 2)) * (v[:, 2] > spine_z)
    out[:, 2] += (g["belly"] - 1) * weight(["Pelvis", "Torso", "Spine"]) * bump * (v[:, 2] - spine_z)
    # Chest/bust and hips: across the vertical axis, in x and z.
    out += (g["chest"] - 1) * weight(["Chest", "Spine", "L_Thorax", "R_Thorax"])[:, None] * vertical(v, 0.4)
    out += (g["hips"] - 1) * weight(["Pelvis"])[:, None] * vertical(v, 1.0)
    for s in ("L", "R"):
        limbs = (
            ("thighs", f"{s}_Hip", f"{s}_Knee"),
            ("upper_arms", f"{s}_Shoulder", f"{s}_Elbow"),
        )
        for region, a, b in limbs:
            radial = _segment_radial(v, bind[ix(a)], bind[ix(b)])
            out += (g[region] - 1) * weight([a])[:, None] * radial
        # The forearms and calves follow halfway: a heavy arm is not thin below the elbow.
        for region, a, b in (
            ("thighs", f"{s}_Knee", f"{s}_Ankle"),
            ("upper_arms", f"{s}_Elbow", f"{s}_Wrist"),
        ):
            radial = _segment_radial(v, bind[ix(a)], bind[ix(b)])
            out += 0.5 * (g[region] - 1) * weight([a])[:, None] * radial
    radial = _segment_radial(v, bind[ix("Neck")], bind[ix("Head")])
    out += (g["neck"] - 1) * weight(["Neck"])[:, None] * radial
    if body.hair == "long":  # volume: the hair stands off the scalp and the back of the head
        head = man.dominant == ix("Head")
        centre = bind[ix("Head")] + [0.0, 0.05, -0.01]
        scalp = head & ((v[:, 1] > centre[1] + 0.04) | (v[:, 2] < centre[2] - 0.02))
        out[scalp] += 0.012 * _unit_rows(v[scalp] - centre)
    return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


# ---------------------------------------------------------------------------------------------
# Looks: clothes and light per sequence

# Colour temperature (kelvin) to an RGB tint, normalised to the brightest channel: a few points of
# the blackbody locus (CIE 1931, sRGB primaries), interpolated.
_KELVIN = np.array([2700.0, 3500.0, 4500.0, 5500.0, 6500.0, 8000.0])
_TINT = np.array(
    [
        [1.00, 0.66, 0.35],
        [1.00, 0.76, 0.54],
        [1.00, 0.86, 0.73],
        [1.00, 0.93, 0.87],
        [1.00, 0.98, 1.00],
        [0.87, 0.91, 1.00],
    ]
)


def light_tint(kelvin: float) -> tuple[float, float, float]:
    """The RGB tint of a light of this colour temperature (interpolated from _TINT)."""
    return tuple(float(np.interp(kelvin, _KELVIN, _TINT[:, c])) for c in range(3))


def scene_look(rng: np.random.Generator, body: BodyPreset, background: str = ""):
    """A Look for `body`: its hair, pattern, skirt/dress and sleeves, with colours and light drawn
    from `rng` (skin, clothes, hair colour; key light 0.35-0.95, ambient 0.3-0.8, 2700-8000 K)."""
    from liverig.models.training.render import random_look

    look = random_look(rng)
    shirts = np.array(
        [
            (0.9, 0.9, 0.88),
            (0.1, 0.1, 0.12),
            (0.8, 0.75, 0.2),
            (0.2, 0.5, 0.7),
            (0.6, 0.1, 0.2),
            (0.9, 0.6, 0.7),
        ]
    )
    second = tuple(float(c) for c in shirts[rng.integers(len(shirts))])
    return replace(
        look,
        hair_style=body.hair,
        top_pattern=body.top,
        top_color2=second,
        lower=body.lower,
        sleeve=min(body.sleeve, 1.3),  # past 1 the whole upper arm (render.vertex_colours)
        forearm_sleeve=max(0.0, body.sleeve - 1.0),
        key_level=float(rng.uniform(0.35, 0.95)),
        ambient_level=float(rng.uniform(0.3, 0.8)),
        light_color=light_tint(float(rng.uniform(2700.0, 8000.0))),
        backdrop_gain=float(rng.uniform(0.6, 1.15)),
        background=background,
        body=body.name,
    )


# ---------------------------------------------------------------------------------------------
# The check: a contact sheet and per-body detection


CHECK_CLIP, CHECK_START = "cmu_01_01", 120  # past the clip's opening T-pose


def _check_motion(frames: int) -> np.ndarray:
    """`frames` frames of a test-split clip of the registry (CMU subject 01), after its T-pose."""
    from liverig.models.training import mocap

    clip = next(c for c in mocap.load_clips("test") if c.name == CHECK_CLIP)
    return clip.joints[CHECK_START : CHECK_START + frames].astype(np.float64)


def bodies_sheet(out: Path, measure_frames: int = 0, seed: int = 3) -> list[dict]:
    """Render every body (full body and webcam framing, a backdrop each) into one contact sheet at
    `out`; with `measure_frames`, film that many frames per body and framing through the real
    PoseLandmarker and return detection rate and raw world MPJPE (hip-aligned, mm) per body. The
    first row is the baseline: the plain mannequin (`realdet.varied_body`-free, random look) before
    the sky, as the corpus filmed it before bodies and scenes."""
    import cv2

    from liverig.models.training.realdet import Studio, split_stats, to_simulate_layout
    from liverig.models.training.render import in_place

    motion = _check_motion(max(measure_frames, 60))
    studio = Studio()
    rows, stats = [], []
    try:
        for k, body in enumerate([None, *BODIES]):
            name, split = (body.name, body.split) if body is not None else ("mannequin (sky)", "-")
            tiles = []
            for framing in ("full", "webcam"):
                bg = BACKGROUNDS[(2 * k + (framing == "webcam")) % len(BACKGROUNDS)].name if body else None
                rng = np.random.default_rng(seed + k)
                joints = shape_joints(motion, body) if body is not None else motion
                if framing == "webcam":
                    joints = in_place(joints)
                n = measure_frames or 1
                result = studio.film(
                    joints, rng, 20.0, keep_frames=True, frames=n, framing=framing, body=body, background=bg
                )
                for t in sorted({0, n // 2, n - 1}) if measure_frames else [0]:
                    tile = cv2.resize(result["frames"][t], (320, 240))
                    tiles.append(tile)
                if measure_frames:
                    s = split_stats(
                        [
                            to_simulate_layout(
                                {**result, "name": name, "clip": "", "split": "", "activity": ""}
                            )
                        ]
                    )
                    stats.append(
                        {
                            "body": name,
                            "split": split,
                            "framing": framing,
                            "background": bg,
                            "detected": s["detected"],
                            "mpjpe_mm": s.get("mpjpe_mm", float("nan")),
                        }
                    )
                    print(
                        f"{name:18s} {split:5s} {framing:6s} {bg or 'sky':18s} detected "
                        f"{s['detected']:6.1%}  MPJPE {s.get('mpjpe_mm', float('nan')):6.1f} mm",
                        flush=True,
                    )
            row = np.hstack(tiles)
            cv2.putText(row, f"{name} ({split})", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2)
            rows.append(row)
    finally:
        studio.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows))
    return stats


def render_cost(frames: int = 100) -> dict[str, float]:
    """Median and p99 milliseconds per rendered frame (render only, no detection), the plain
    mannequin before the sky against a body with its build and a photo wall, interleaved frame by
    frame in one process so that both see the same machine load."""
    import time

    from liverig.models.training.render import Mannequin, Renderer, choose_camera, random_look

    motion = _check_motion(frames)
    man = Mannequin.load()
    body = BODY_INDEX["heavy_set_man"]
    plain_t = man.pose(motion)
    body_t = man.pose(shape_joints(motion, body))
    rng = np.random.default_rng(0)
    camera = choose_camera(motion, rng, 20.0)
    photo = load_background("office_shelf")
    times: dict[str, list[float]] = {"plain": [], "body+photo": []}
    with Renderer(man) as plain, Renderer(man) as scene:
        plain.set_look(random_look(rng))
        plain.set_camera(camera)
        scene.set_body(build_mesh(man, body))
        scene.set_look(scene_look(rng, body, "office_shelf"))
        scene.set_backdrop(photo, 2.0)
        scene.set_camera(camera)
        for t in range(frames):
            for key, renderer, transforms in (("plain", plain, plain_t), ("body+photo", scene, body_t)):
                tick = time.perf_counter()
                renderer.render(transforms[t])
                times[key].append(1000 * (time.perf_counter() - tick))
    out = {}
    for key, values in times.items():
        out[f"{key}_median_ms"] = float(np.median(values))
        out[f"{key}_p99_ms"] = float(np.percentile(values, 99))
    out["ratio"] = out["body+photo_median_ms"] / out["plain_median_ms"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bodies-sheet", type=Path, default=Path("out/bodies.png"), help="PNG contact sheet to write"
    )
    parser.add_argument("--measure", type=int, default=0, help="frames per body and framing to detect on")
    parser.add_argument("--fetch", action="store_true", help="only fetch and check every background")
    parser.add_argument("--render-cost", type=int, default=0, help="time this many frames, plain vs scene")
    args = parser.parse_args(argv)
    try:
        if args.fetch:
            for bg in BACKGROUNDS:
                print(background_path(bg.name))
            return
        if args.render_cost:
            for key, value in render_cost(args.render_cost).items():
                print(f"{key:24s} {value:8.2f}")
            return
        bodies_sheet(args.bodies_sheet, args.measure)
    except fetch.FetchError as error:
        sys.exit(f"scenes: {error}")


if __name__ == "__main__":
    main()
