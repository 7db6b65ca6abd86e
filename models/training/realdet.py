"""Real-detector training pairs: recorded motion rendered as a person, seen by the real PoseLandmarker.

A motion model trained on simulated detector noise did not transfer to MediaPipe's real output (see
the project notes): the real error is slow, structured and mostly depth. So we render the mocap
clips (`models/training/render.py`), run the real `full` PoseLandmarker on the frames, and keep both.

    python -m liverig.models.training.realdet [--frames-budget N] [--max-minutes M] [--splits test,val,train]
    python -m liverig.models.training.realdet --report [--splits ...]
    python -m liverig.models.training.realdet --preview NAME[,NAME...] [--preview-frames 0,40,80]
    python -m liverig.models.training.realdet --fixture            # tests/fixtures/rendered_clip.mp4 + truth

Each clip of `models.training.mocap` (its split kept: a clip never feeds two splits) is cut into segments of
at most SEGMENT_MAX frames, and each segment is filmed by CAMERAS cameras (camera 0 from the front
half, the others sometimes from the side; see `camera_azimuth`). Sequences are generated in split
order, all clips' camera 0 before any camera 1, so a partial run still covers every clip. One
landmarker per sequence, VIDEO mode, 30 fps timestamps. Each sequence is one `.npz` in
`cache_dir("realdet")`, written atomically and skipped when already there (the run is resumable):

    image (T,33,3) world (T,33,3) visibility (T,33) present (T,)   MediaPipe, as returned (0 if absent)
    truth_world (T,22,3)  canonical joints in camera space, metres (+X right, +Y up, subject at -Z)
    truth (T,22,3), root (T,3)   truth_world hip-centred, and the hips: `simulate()`'s conventions
    camera_position (3,) camera_rotation (3,3) (world -> camera rows), fov_deg, focal_px, image_size,
    azimuth_deg, distance_m, height_m; fps, clip, split, activity, start, stop, camera, look (JSON),
    body, background (scenes.BODIES / BACKGROUNDS names; "mannequin" and "sky" outside the corpus)

Holds (`--holds`): the user who stands still, which the mocap hardly shows. Per clip, its most
standing frame (`standing_frame`: both feet down, the slowest such frame) held for HOLD_SECONDS and
filmed by every camera with HOLD_PIXEL_NOISE of Gaussian pixel noise (a webcam's sensor noise: the
same picture twice would otherwise give the detector nothing to jitter on). They live apart, in
`cache_dir("realdet") / "holds" / split`, so the moving sets stay as they are:
`load_realdet(split, holds_root())`.

`load_realdet(split)` turns them into `models.training.simulate.simulate()`'s layout (canonical joints via
`core.skeleton`), so the trainer can use real-detector pairs instead of, or beside, simulated ones.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from liverig.core.fetch import PROJECT_ROOT, cache_dir
from liverig.core.skeleton import (
    JOINT_INDEX,
    LANDMARK_NAMES,
    estimate_root_position,
    image_joints,
    landmarks_to_joints,
)
from liverig.models.training import mocap
from liverig.models.training.simulate import pooled_noise

FORMAT_VERSION = 2  # 2: `body` and `background` names (version 1 files load as "mannequin", "sky")
SEGMENT_MAX = 300
CAMERAS = 5  # the shipped networks were trained and scored on this many views per segment
FPS = mocap.FPS
FIXTURE_DIR = PROJECT_ROOT / "tests" / "fixtures"
FIXTURE = {"clip": "cmu_01_01", "start": 0, "stop": 75, "azimuth_deg": 25.0, "seed": 7}
FRAMINGS = ("full", "webcam")
CORPUS_SEGMENT = 150  # corpus sequences: frames per segment (5 s), one framing each
CORPUS_FRAMES = {"test": 4800, "val": 1800, "train": 30000}  # the corpus subset per split, about
HOLD_SECONDS = 3.0  # holds: how long each standing pose is held
HOLD_PIXEL_NOISE = 3.0  # holds: std of the Gaussian noise added to each 8-bit pixel value, every frame
HOLD_FEET_HEIGHT_M = 0.05  # standing_frame: both feet (the lower of ankle and toes) this close to the floor
SLOW_ACCEL_MM = 5.0  # mm/frame^2: sequences moving about as little as the anchor's (2.3)
# What the detector is compared with (project notes, "A feasibility figure"): a rendered person.
ANCHORS = {
    "rms_x_mm": 53.0,
    "rms_y_mm": 56.0,
    "rms_z_mm": 118.0,
    "mpjpe_mm": 120.0,
    "pa_mpjpe_mm": 87.0,
    "scale": 0.905,
    "accel_mm": 12.0,
    "truth_accel_mm": 2.3,
}


@dataclass(frozen=True)
class SequenceSpec:
    """One rendered sequence: a segment of a clip seen by one camera."""

    clip: str
    split: str
    activity: str
    segment: int
    start: int
    stop: int
    camera: int
    hold: bool = False  # the frame `start` held for HOLD_SECONDS, with pixel noise
    framing: str = "full"  # FRAMINGS; "webcam": render.webcam_camera on the motion in place
    body: bool = False  # corpus sequences: the mannequin's proportions varied (`varied_body`)
    preset: str = ""  # corpus sequences: a scenes.BODIES name (its proportions, build, hair, clothes)
    background: str = ""  # corpus sequences: a scenes.BACKGROUNDS photo behind the figure

    @property
    def name(self) -> str:
        part = "hold" if self.hold else f"s{self.segment}"
        return f"{self.clip}_{part}_{'w' if self.framing == 'webcam' else 'c'}{self.camera}"

    @property
    def seed(self) -> int:
        return zlib.crc32(self.name.encode())

    @property
    def frames(self) -> int:
        return round(HOLD_SECONDS * FPS) if self.hold else self.stop - self.start


def segments(frames: int, longest: int = SEGMENT_MAX) -> list[tuple[int, int]]:
    """Cut `frames` into the fewest equal (start, stop) pieces of at most `longest` frames."""
    count = max(1, math.ceil(frames / longest))
    edges = np.linspace(0, frames, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def plan(
    splits: tuple[str, ...] = ("test", "val", "train"), cameras: int = CAMERAS, holds: bool = False
) -> list[SequenceSpec]:
    """Every sequence, in generation order: by split, then camera, then clip and segment. `holds`:
    instead one hold per clip and camera, of its `standing_frame` (see the module docstring)."""
    clips = {c.name: c for c in mocap.load_clips("all")}
    out = []
    for split in splits:
        specs = [s for s in mocap.CLIPS if s.split == split]
        for cam in range(cameras):
            for s in specs:
                joints = clips[s.name].joints
                if holds:
                    frame = standing_frame(joints)
                    out.append(SequenceSpec(s.name, split, "still", 0, frame, frame + 1, cam, hold=True))
                    continue
                for k, (a, b) in enumerate(segments(len(joints))):
                    out.append(SequenceSpec(s.name, split, s.activity, k, a, b, cam))
    return out


def standing_frame(joints: np.ndarray) -> int:
    """The frame of a clip (T, 22, 3; world, floor at y = 0) most like standing still: both feet within
    HOLD_FEET_HEIGHT_M of the floor, the slowest such frame (mean joint speed); the slowest frame of
    all when the feet are never both down."""
    feet = [[JOINT_INDEX[f"{side}Foot"], JOINT_INDEX[f"{side}Toes"]] for side in ("Left", "Right")]
    down = np.all([joints[:, pair, 1].min(axis=1) < HOLD_FEET_HEIGHT_M for pair in feet], axis=0)
    speed = np.linalg.norm(np.gradient(joints, axis=0), axis=-1).mean(axis=-1)
    return int(np.argmin(np.where(down, speed, np.inf)) if down.any() else np.argmin(speed))


def camera_azimuth(camera_index: int, rng: np.random.Generator) -> float:
    """Degrees off the subject's mean facing: camera 0 within +-50 deg of the front, the others
    half the time within +-70 deg and half the time from the side (70-110 deg either way).

    The detector is trained mostly on people facing the camera; the side views test its limits.
    """
    if camera_index == 0:
        return float(rng.uniform(-50.0, 50.0))
    if rng.random() < 0.5:
        return float(rng.uniform(-70.0, 70.0))
    return float(rng.choice([-1.0, 1.0]) * rng.uniform(70.0, 110.0))


def plan_corpus(
    splits: tuple[str, ...] = ("test", "val", "train"), budgets: dict[str, int] | None = None
) -> list[SequenceSpec]:
    """A diverse subset of the extended corpus (`mocap.load_corpus`) to film, about `budgets[split]`
    frames per split (CORPUS_FRAMES), in generation order.

    Each clip is cut into CORPUS_SEGMENT-frame segments, taken in a seeded order; round r films the
    r-th segment of every clip, the clips interleaved by category (so a budget cut mid-round still
    covers every category), the framing alternating between full body and webcam. The test split
    keeps only the repository clips: performers no training clip shows (the registry's CMU 01 also
    sits in train).
    """
    from liverig.models.training.mocap_corpus import CATEGORIES
    from liverig.models.training.scenes import pick_scene

    budgets = CORPUS_FRAMES if budgets is None else budgets
    clips, split_of = mocap.load_corpus("all")
    registry = {s.name for s in mocap.CLIPS}
    out = []
    for split in splits:
        mine = [
            c for c in clips if split_of[c.name] == split and not (split == "test" and c.name in registry)
        ]
        groups: dict[str, list] = {}
        for c in mine:
            groups.setdefault(CATEGORIES.get(c.activity, "other"), []).append(c)
        order = [
            g[k]
            for k in range(max(map(len, groups.values()), default=0))
            for g in groups.values()
            if k < len(g)
        ]
        queues = {}
        for c in order:
            pieces = segments(len(c.joints), CORPUS_SEGMENT)
            shuffled = np.random.default_rng(zlib.crc32(c.name.encode())).permutation(len(pieces))
            queues[c.name] = [(int(k), *pieces[k]) for k in shuffled]
        total, rnd = 0, 0
        while total < budgets.get(split, 0) and any(queues.values()):
            for i, c in enumerate(order):
                if not queues[c.name] or total >= budgets[split]:
                    continue
                k, a, b = queues[c.name].pop(0)
                framing = FRAMINGS[(i + rnd) % 2]
                spec = SequenceSpec(c.name, split, c.activity, k, a, b, rnd, framing=framing, body=True)
                preset, backdrop = pick_scene(split, np.random.default_rng(spec.seed + 1))
                out.append(replace(spec, preset=preset.name, background=backdrop.name))
                total += b - a
            rnd += 1
    return out


def varied_body(joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The motion on a body of other proportions: bone groups scaled by exp(N(0, 0.06)), the whole
    figure by exp(N(0, 0.06)) (simulate.augment's bone and height scaling, without its speed, mirror
    and yaw). The mannequin is posed from the joints, so it takes the new proportions."""
    from liverig.models.training.simulate import _GROUPS, scale_bones

    x = scale_bones(joints, {g: float(np.exp(rng.normal(0.0, 0.06))) for g in _GROUPS})
    return x * np.exp(rng.normal(0.0, 0.06))


def corpus_root() -> Path:
    """Where the corpus sequences are cached (a `root` for `load_realdet`)."""
    return cache_dir("realdet", "corpus")


def holds_root() -> Path:
    """Where the holds are cached (a `root` for `load_realdet`)."""
    return cache_dir("realdet", "holds")


def sequence_path(spec: SequenceSpec, root: Path | None = None) -> Path:
    folder = root or (holds_root() if spec.hold else cache_dir("realdet"))
    return folder / spec.split / f"{spec.name}.npz"


# ---------------------------------------------------------------------------------------------
# Generating


class Studio:
    """The renderer and the mannequin, created once per process (an EGL context costs ~0.5 s)."""

    def __init__(self) -> None:
        from liverig.models.training.render import Mannequin, Renderer

        self.man = Mannequin.load()
        self.renderer = Renderer(self.man)

    def film(
        self,
        joints: np.ndarray,
        rng: np.random.Generator,
        azimuth_deg: float,
        fps: float = FPS,
        keep_frames: bool = False,
        frames: int | None = None,
        pixel_noise: float = 0.0,
        framing: str = "full",
        body=None,
        background: str | None = None,
    ) -> dict:
        """Render world joints (T, 22, 3) from a camera at `azimuth_deg` and run the real detector.

        The camera is chosen for the whole motion; `frames` renders only the first so many of it.
        `pixel_noise`: std of Gaussian noise (8-bit levels) added to every picture, drawn from `rng`.
        `framing`: "full" (the whole body, 2.5-5.5 m) or "webcam" (render.webcam_camera: 0.5-1.5 m,
        upper body; pass the motion through render.in_place first).
        `body` (a scenes.BodyPreset; give it joints already through `scenes.shape_joints`): its mesh
        build, hair and clothes, and scene lighting; `background`: a scenes.BACKGROUNDS photo as a
        wall behind the figure. Without them the picture is the plain mannequin before a sky, as always.
        """
        from liverig.core.config import PerceptionConfig
        from liverig.core.types import Frame, Timing
        from liverig.models.training.render import choose_camera, random_look, to_camera, webcam_camera
        from liverig.runtime.perception import PoseEstimator

        if body is not None:
            from liverig.models.training.scenes import build_mesh, scene_look

            look = scene_look(rng, body, background or "")
            self.renderer.set_body(build_mesh(self.man, body))
        else:
            look = random_look(rng)
            self.renderer.set_body(None)
        if background:
            from liverig.models.training.scenes import load_background

            behind = rng.uniform(0.8, 2.5) if framing == "webcam" else rng.uniform(1.0, 4.0)
            self.renderer.set_backdrop(load_background(background), behind)
        else:
            self.renderer.set_backdrop(None)
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; expected one of {FRAMINGS}")
        pick = webcam_camera if framing == "webcam" else choose_camera
        camera = pick(joints, rng, azimuth_deg)
        joints = joints[:frames]
        transforms = self.man.pose(joints)
        self.renderer.set_look(look)
        self.renderer.set_camera(camera)
        T = len(joints)
        image, world = np.zeros((T, 33, 3), np.float32), np.zeros((T, 33, 3), np.float32)
        visibility, present = np.zeros((T, 33), np.float32), np.zeros(T, bool)
        pictures, render_s, detect_s = [], 0.0, 0.0
        with PoseEstimator(PerceptionConfig(model="full")) as estimator:
            for t in range(T):
                tick = time.perf_counter()
                picture = self.renderer.render(transforms[t])
                if pixel_noise > 0:
                    noise = rng.normal(0.0, pixel_noise, picture.shape)
                    picture = np.clip(picture + noise, 0, 255).astype(np.uint8)
                tock = time.perf_counter()
                obs = estimator(Frame(index=t, time_s=t / fps, timing=Timing(tock), image=picture))
                detect_s += time.perf_counter() - tock
                render_s += tock - tick
                if keep_frames:
                    pictures.append(picture)
                if obs.present:
                    present[t] = True
                    image[t], world[t], visibility[t] = (
                        obs.image_landmarks,
                        obs.world_landmarks,
                        obs.visibility,
                    )
        cam = to_camera(joints, camera)
        root = cam[:, 0]
        out = {
            "image": image,
            "world": world,
            "visibility": visibility,
            "present": present,
            "truth_world": cam.astype(np.float32),
            "truth": (cam - root[:, None]).astype(np.float32),
            "root": root.astype(np.float32),
            "camera_position": camera["position"],
            "camera_rotation": camera["rotation"],
            "camera_target": camera["target"],
            "fov_deg": camera["fov_deg"],
            "focal_px": camera["focal_px"],
            "image_size": np.array(camera["image_size"]),
            "azimuth_deg": camera["azimuth_deg"],
            "distance_m": camera["distance_m"],
            "height_m": camera["height_m"],
            "fps": fps,
            "look": json.dumps(asdict(look)),
            "framing": framing,
            "body": look.body or "mannequin",
            "background": background or "sky",
            "version": FORMAT_VERSION,
            "render_ms": 1000 * render_s / T,
            "detect_ms": 1000 * detect_s / T,
        }
        if keep_frames:
            out["frames"] = pictures
        return out

    def close(self) -> None:
        self.renderer.close()


def _save(path: Path, arrays: dict) -> None:
    """np.savez_compressed, atomically: a run killed mid-write leaves no half file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(partial, path)


def generate(
    splits: tuple[str, ...] = ("test", "val", "train"),
    frames_budget: int | None = None,
    max_minutes: float | None = None,
    cameras: int = CAMERAS,
    root: Path | None = None,
    holds: bool = False,
    corpus: bool = False,
) -> list[Path]:
    """Render, detect and save every planned sequence (`holds`: every hold; `corpus`: `plan_corpus`'s,
    under `corpus_root()`) not cached yet, within the budgets."""
    if corpus:
        clips = {c.name: c for c in mocap.load_corpus("all")[0]}
        root = root or corpus_root()
        specs = plan_corpus(splits)
    else:
        clips = {c.name: c for c in mocap.load_clips("all")}
        specs = plan(splits, cameras, holds)
    todo = [s for s in specs if not sequence_path(s, root).exists()]
    print(f"realdet: {len(todo)} sequences to generate ({sum(s.frames for s in todo)} frames)", flush=True)
    studio = Studio() if todo else None
    written, done, begin = [], 0, time.perf_counter()
    try:
        for spec in todo:
            elapsed = time.perf_counter() - begin
            if frames_budget is not None and done + spec.frames > frames_budget:
                print(f"realdet: frames budget reached ({done} frames)", flush=True)
                break
            if max_minutes is not None and elapsed > 60 * max_minutes:
                print(f"realdet: time budget reached ({elapsed / 60:.1f} min)", flush=True)
                break
            rng = np.random.default_rng(spec.seed)
            joints = clips[spec.clip].joints[spec.start : spec.stop].astype(np.float64)
            if spec.hold:
                joints = np.repeat(joints, spec.frames, axis=0)
            preset = None
            if spec.preset:
                from liverig.models.training.scenes import BODY_INDEX, shape_joints

                preset = BODY_INDEX[spec.preset]
                joints = shape_joints(joints, preset, rng)
            elif spec.body:
                joints = varied_body(joints, rng)
            if spec.framing == "webcam":
                from liverig.models.training.render import in_place

                joints = in_place(joints)
                azimuth = float(rng.uniform(-45.0, 45.0))  # a streamer turns to the camera
            else:
                azimuth = camera_azimuth(spec.camera, rng)
            fps = FPS if spec.hold else clips[spec.clip].fps
            noise = HOLD_PIXEL_NOISE if spec.hold else 0.0
            result = studio.film(
                joints,
                rng,
                azimuth,
                fps,
                pixel_noise=noise,
                framing=spec.framing,
                body=preset,
                background=spec.background or None,
            )
            result.update(
                clip=spec.clip,
                split=spec.split,
                activity=spec.activity,
                start=spec.start,
                stop=spec.stop,
                camera=spec.camera,
                segment=spec.segment,
            )
            path = sequence_path(spec, root)
            _save(path, result)
            written.append(path)
            done += spec.frames
            rate = done / (time.perf_counter() - begin)
            print(
                f"realdet: {spec.split:5s} {spec.name:32s} {spec.frames:4d} f  detected "
                f"{result['present'].mean():6.1%}  az {result['azimuth_deg']:+6.1f}  "
                f"d {result['distance_m']:.1f} m  "
                f"render {result['render_ms']:5.1f} ms  detect {result['detect_ms']:5.1f} ms  | {done} f, "
                f"{rate:.1f} f/s, {(time.perf_counter() - begin) / 60:.1f} min",
                flush=True,
            )
    finally:
        if studio is not None:
            studio.close()
    return written


# ---------------------------------------------------------------------------------------------
# Loading


def load_sequences(split: str, root: Path | None = None) -> list[dict]:
    """The raw cached sequences of one split (arrays as saved, strings unwrapped)."""
    folder = (root or cache_dir("realdet")) / split
    out = []
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as data:
            item = {k: (data[k].item() if data[k].ndim == 0 else data[k]) for k in data.files}
        item["name"] = path.stem
        out.append(item)
    return out


def to_simulate_layout(seq: dict) -> dict:
    """One raw sequence in `models.training.simulate.simulate()`'s layout (canonical joints, float32).

    world (T,22,3) the detector's joints, hip-centred, canonical axes; image (T,22,2); visibility
    (T,22); truth (T,22,3); root (T,3); camera (dict). Frames without a detection are all zero
    with zero visibility, which is how `models.features` recognises an absent person.
    Plus observed_root (T,3): the Hips placed in camera space from the detector's landmarks by the
    node's own reprojection (core/skeleton.py), zero where nobody was found.
    """
    world, confidence = landmarks_to_joints(
        seq["world"].astype(np.float64), seq["visibility"].astype(np.float64)
    )
    image = image_joints(seq["image"].astype(np.float64))
    present = seq["present"].astype(bool)
    world[~present], image[~present], confidence[~present] = 0.0, 0.0, 0.0
    size = tuple(int(v) for v in seq["image_size"])
    observed_root = np.zeros((len(present), 3))
    for t in np.flatnonzero(present):
        observed_root[t] = estimate_root_position(
            seq["world"][t].astype(np.float64),
            seq["image"][t].astype(np.float64),
            seq["visibility"][t].astype(np.float64),
            size,
            float(seq["fov_deg"]),
        )
    camera = {
        "position": seq["camera_position"],
        "rotation": seq["camera_rotation"],
        "fov_deg": float(seq["fov_deg"]),
        "focal_px": float(seq["focal_px"]),
        "image_size": size,
        "azimuth_deg": float(seq["azimuth_deg"]),
        "distance_m": float(seq["distance_m"]),
        "height_m": float(seq["height_m"]),
    }
    f32 = np.float32
    return {
        "world": world.astype(f32),
        "image": image.astype(f32),
        "visibility": confidence.astype(f32),
        "truth": seq["truth"].astype(f32),
        "root": seq["root"].astype(f32),
        "observed_root": observed_root.astype(f32),
        "camera": camera,
        "present": present,
        "name": seq["name"],
        "clip": str(seq["clip"]),
        "split": str(seq["split"]),
        "activity": str(seq["activity"]),
        "fps": float(seq["fps"]),
        "framing": str(seq.get("framing", "full")),
        "body": str(seq.get("body", "mannequin")),
        "background": str(seq.get("background", "sky")),
    }


def load_realdet(split: str, root: Path | None = None) -> list[dict]:
    """Cached real-detector sequences of one split, each in `simulate()`'s layout (see above).

    Sequences in which the detector never found the person are left out.
    """
    if split not in mocap.SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {mocap.SPLITS}")
    return [to_simulate_layout(s) for s in load_sequences(split, root) if s["present"].any()]


# ---------------------------------------------------------------------------------------------
# Measuring


def procrustes_mpjpe(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame MPJPE (T,) in metres after the best similarity transform (rotation, scale, shift)."""
    p = pred - pred.mean(axis=1, keepdims=True)
    q = truth - truth.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(np.swapaxes(p, 1, 2) @ q)
    d = np.sign(np.linalg.det(u @ vt))
    s[:, -1] *= d
    u[:, :, -1] *= d[:, None]
    rot = u @ vt
    scale = s.sum(axis=1) / (p**2).sum(axis=(1, 2))
    aligned = scale[:, None, None] * p @ rot
    return np.linalg.norm(aligned - q, axis=-1).mean(axis=1)


def _runs(mask: np.ndarray, shortest: int = 5) -> list[slice]:
    """Contiguous runs of True at least `shortest` long."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return [slice(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= shortest]


def split_stats(sequences: list[dict]) -> dict:
    """Detection rate and the detector's world error against the truth (see `report`)."""
    frames = sum(len(s["present"]) for s in sequences)
    seen = sum(int(s["present"].sum()) for s in sequences)
    pairs, pa = [], []
    for s in sequences:
        for run in _runs(s["present"]):
            pairs.append((s["world"][run], s["truth"][run]))
            pa.append(
                procrustes_mpjpe(s["world"][run].astype(np.float64), s["truth"][run].astype(np.float64))
            )
    out = {"sequences": len(sequences), "frames": frames, "detected": seen / max(frames, 1)}
    if pairs:
        out.update(pooled_noise(pairs))
        out["pa_mpjpe_mm"] = float(np.concatenate(pa).mean() * 1000)
    return out


def _truth_accel_mm(truth: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(truth[:, 1:], 2, axis=0), axis=-1).mean() * 1000)


def _cell(value: float) -> str:
    if isinstance(value, int):
        return f"{value:10d}"
    return f"{value:10.3f}" if abs(value) < 10 else f"{value:10.1f}"


def report(splits: tuple[str, ...] = mocap.SPLITS, root: Path | None = None) -> dict[str, dict]:
    """Per split: frames, detection rate, hip-aligned error per camera axis (RMS) and MPJPE, Procrustes
    MPJPE, scale (least squares), acceleration error vs the truth's own (mm/frame^2).

    The column "slow" pools the sequences of all these splits whose truth moves about as little as
    the anchor's (truth acceleration under SLOW_ACCEL_MM): acceleration errors grow with the motion.
    """
    stats, slow = {}, []
    for split in splits:
        sequences = [to_simulate_layout(s) for s in load_sequences(split, root)]
        if sequences:
            stats[split] = split_stats(sequences)
            slow += [s for s in sequences if _truth_accel_mm(s["truth"]) < SLOW_ACCEL_MM]
    if slow:
        stats["slow"] = split_stats(slow)
    keys = (
        "sequences",
        "frames",
        "detected",
        "rms_x_mm",
        "rms_y_mm",
        "rms_z_mm",
        "mpjpe_mm",
        "pa_mpjpe_mm",
        "offset_mm",
        "scale",
        "accel_mm",
        "truth_accel_mm",
    )
    print(f"{'':16s}" + "".join(f"{s:>10s}" for s in stats) + f"{'anchor':>10s}")
    for key in keys:
        row = "".join(_cell(stats[s].get(key, float("nan"))) for s in stats)
        anchor = ANCHORS.get(key)
        print(f"{key:16s}{row}{_cell(anchor) if anchor is not None else ''}")
    return stats


# ---------------------------------------------------------------------------------------------
# Looking at it


def draw_landmarks(
    picture: np.ndarray, image_landmarks: np.ndarray | None, truth_uv: np.ndarray | None
) -> np.ndarray:
    """The frame with the detected landmarks (left: blue, right: orange, centre: green) and the true
    joints (white crosses) drawn on it: for checking by eye that left lands on the figure's left."""
    import cv2

    out = picture.copy()
    h, w = out.shape[:2]
    if truth_uv is not None:
        for u, v in truth_uv:
            cv2.drawMarker(out, (int(u * w), int(v * h)), (255, 255, 255), cv2.MARKER_CROSS, 8, 1)
    if image_landmarks is not None:
        for name, (x, y, _) in zip(LANDMARK_NAMES, image_landmarks, strict=True):
            colour = (
                (255, 120, 0)
                if name.startswith("left")
                else (0, 140, 255)
                if name.startswith("right")
                else (0, 200, 0)
            )
            cv2.circle(out, (int(x * w), int(y * h)), 4, colour, -1)
        for name in ("left_wrist", "right_wrist", "left_ankle", "right_ankle"):
            x, y, _ = image_landmarks[LANDMARK_NAMES.index(name)]
            cv2.putText(
                out,
                name[0].upper(),
                (int(x * w) + 6, int(y * h) - 6),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (255, 120, 0) if name[0] == "l" else (0, 140, 255),
                2,
            )
    return out


def preview(names: list[str], frames: list[int], out_dir: Path | None = None) -> list[Path]:
    """Re-render the named sequences (any split), detect, and write PNGs of the chosen frames."""
    import cv2

    from liverig.models.training.simulate import project

    out_dir = out_dir or cache_dir("realdet", "preview")
    specs = {s.name: s for s in plan(mocap.SPLITS, cameras=CAMERAS + 2)}
    clips = {c.name: c for c in mocap.load_clips("all")}
    studio, written = Studio(), []
    try:
        for name in names:
            spec = specs[name]
            rng = np.random.default_rng(spec.seed)
            joints = clips[spec.clip].joints[spec.start : spec.stop].astype(np.float64)
            last = min(max(frames) + 1, spec.frames)
            azimuth = camera_azimuth(spec.camera, rng)
            result = studio.film(joints, rng, azimuth, keep_frames=True, frames=last)
            camera = {"image_size": tuple(result["image_size"]), "focal_px": result["focal_px"]}
            for t in (f for f in frames if f < last):
                lms = result["image"][t] if result["present"][t] else None
                uv = project(result["truth_world"][t], camera)
                path = out_dir / f"{name}_f{t:03d}.png"
                cv2.imwrite(str(path), draw_landmarks(result["frames"][t], lms, uv))
                written.append(path)
            print(f"{name}: detected {result['present'].mean():.0%}, az {result['azimuth_deg']:+.0f} deg")
    finally:
        studio.close()
    return written


# ---------------------------------------------------------------------------------------------
# The test fixture


def write_fixture(out_dir: Path = FIXTURE_DIR, quality: int = 60) -> tuple[Path, Path]:
    """A short TEST-split sequence as an mp4v video plus its truth, for the end-to-end tests."""
    import cv2

    clip = next(c for c in mocap.load_clips("test") if c.name == FIXTURE["clip"])
    joints = clip.joints[FIXTURE["start"] : FIXTURE["stop"]].astype(np.float64)
    studio = Studio()
    try:
        result = studio.film(
            joints, np.random.default_rng(FIXTURE["seed"]), FIXTURE["azimuth_deg"], keep_frames=True
        )
    finally:
        studio.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / "rendered_clip.mp4"
    width, height = (int(v) for v in result["image_size"])
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), clip.fps, (width, height))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
    for picture in result["frames"]:
        writer.write(picture)
    writer.release()
    truth = out_dir / "rendered_clip_truth.npz"
    np.savez_compressed(
        truth,
        truth=result["truth"],
        root=result["root"],
        fps=clip.fps,
        clip=clip.name,
        start=FIXTURE["start"],
        stop=FIXTURE["stop"],
        camera_position=result["camera_position"],
        camera_rotation=result["camera_rotation"],
        fov_deg=result["fov_deg"],
        focal_px=result["focal_px"],
        image_size=result["image_size"],
        azimuth_deg=result["azimuth_deg"],
        detected_when_rendered=result["present"].mean(),
    )
    print(
        f"fixture: {video} ({video.stat().st_size / 1e6:.2f} MB, {len(result['frames'])} frames), detected "
        f"{result['present'].mean():.0%} on the raw frames"
    )
    return video, truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", default="test,val,train", help="comma-separated, in generation order")
    parser.add_argument("--frames-budget", type=int, default=None, help="stop after about this many frames")
    parser.add_argument("--max-minutes", type=float, default=None, help="start no sequence after this long")
    parser.add_argument("--cameras", type=int, default=CAMERAS, help="cameras per clip segment")
    parser.add_argument("--report", action="store_true", help="measure the cached sequences instead")
    parser.add_argument("--preview", default="", help="sequence names to render as PNGs with landmarks")
    parser.add_argument("--preview-frames", default="0,40,80")
    parser.add_argument("--fixture", action="store_true", help="write the tests/fixtures rendered clip")
    parser.add_argument("--holds", action="store_true", help="generate the held standing poses instead")
    parser.add_argument(
        "--corpus", action="store_true", help="film a subset of the extended corpus, full body and webcam"
    )
    args = parser.parse_args(argv)
    splits = tuple(s for s in args.splits.split(",") if s)
    if args.report:
        report(tuple(s for s in mocap.SPLITS if s in splits), corpus_root() if args.corpus else None)
    elif args.preview:
        frames = [int(f) for f in args.preview_frames.split(",")]
        for path in preview(args.preview.split(","), frames):
            print(path)
    elif args.fixture:
        write_fixture()
    else:
        generate(
            splits, args.frames_budget, args.max_minutes, args.cameras, holds=args.holds, corpus=args.corpus
        )


if __name__ == "__main__":
    sys.exit(main())
