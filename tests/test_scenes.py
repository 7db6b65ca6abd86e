"""Bodies and scenes of the real-detector corpus (models/training/scenes.py).

Needs the mannequin and the background photos (pinned packages, cached), and for the rendering tests
EGL (Debian libegl1, libegl-mesa0, libgl1-mesa-dri) and moderngl; skipped without them.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from liverig.core.fetch import FetchError
from liverig.core.skeleton import JOINT_INDEX as J
from liverig.core.skeleton import image_joints, rest_pose
from liverig.models.training import scenes
from liverig.models.training.mocap import derive_torso

# A standing pose with the arms lowered 50 degrees from the T (elbows and hands follow rigidly).
STAND = derive_torso((rest_pose() + [0.0, 0.95, 0.0])[None])[0]


def _arms_down(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        root = out[J[side + "UpperArm"]]
        a = np.radians(50.0) * sign
        rot = np.array([[np.cos(a), np.sin(a), 0.0], [-np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
        for part in ("LowerArm", "Hand", "HandEnd"):
            out[J[side + part]] = root + rot @ (out[J[side + part]] - root)
    return out


POSE = _arms_down(STAND)


@pytest.fixture(scope="module")
def mannequin():
    from liverig.models.training.render import Mannequin

    try:
        return Mannequin.load()
    except FetchError as error:
        pytest.skip(f"mannequin-x wheel unavailable: {error}")


def _silhouette(man, body, axis: int = 0) -> np.ndarray:
    """The silhouette (orthographic, 5 mm pixels) of `body` posed on POSE, seen from the front
    (axis 0: x across) or the side (axis 2: z across)."""
    joints = scenes.shape_joints(POSE[None], body)
    verts = man.skin(man.pose(joints)[0], scenes.build_mesh(man, body))
    px = np.round((verts[:, [axis, 1]] - [-1.2, -0.1]) / 0.005).astype(np.int32)
    px[:, 1] = 480 - px[:, 1]
    mask = np.zeros((500, 480), np.uint8)
    for triangle in px[man.faces]:  # one by one: fillPoly's even-odd rule would cancel overlaps
        cv2.fillConvexPoly(mask, triangle, 1)
    return mask


def _build_features(man, body) -> np.ndarray:
    """Front area, side area, height, and the side view's depth at chest, belly and hips (pixels)."""
    front, side = _silhouette(man, body, 0), _silhouette(man, body, 2)
    rows = np.flatnonzero(front.any(axis=1))
    top, height = rows.min(), rows.max() - rows.min()
    depth = [float(side[int(top + f * height)].sum()) for f in (0.25, 0.35, 0.45)]
    return np.array([front.sum(), side.sum(), height, *depth], dtype=float)


def test_body_presets_have_distinct_silhouettes(mannequin):
    """Every pair of bodies differs by > 3 % in front or side silhouette area, height, or depth at
    the chest, belly or hips: they are different builds, not one body recoloured."""
    features = {body.name: _build_features(mannequin, body) for body in scenes.BODIES}
    names = list(features)
    assert len(names) >= 8
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diff = np.abs(features[a] / features[b] - 1.0).max()
            assert diff > 0.03, (a, b, features[a], features[b])
    # The builds go where they say: the heavy-set man, as tall as the average man, is deeper at the
    # belly and fills more of the side view; the teen is the slightest of all.
    assert features["heavy_set_man"][4] > 1.2 * features["average_man"][4]
    assert features["heavy_set_man"][1] > 1.15 * features["average_man"][1]
    assert min(features, key=lambda name: features[name][0]) == "slender_teen"


def test_mesh_build_keeps_the_skeleton_and_moves_the_surface(mannequin):
    heavy = scenes.BODY_INDEX["heavy_set_man"]
    built = scenes.build_mesh(mannequin, heavy)
    assert built.shape == mannequin.vertices.shape and np.isfinite(built).all()
    moved = np.linalg.norm(built - mannequin.vertices, axis=1)
    assert 0.01 < moved.max() < 0.12  # centimetres, not a different mesh
    plain = scenes.BodyPreset("plain", "train", 1.0)
    np.testing.assert_array_equal(scenes.build_mesh(mannequin, plain), mannequin.vertices)


def test_scenes_are_deterministic_per_seed():
    body = scenes.BODY_INDEX["curvy_woman"]
    looks = [scenes.scene_look(np.random.default_rng(5), body, "brick_wall") for _ in range(2)]
    assert looks[0] == looks[1]
    assert looks[0] != scenes.scene_look(np.random.default_rng(6), body, "brick_wall")
    shaped = [scenes.shape_joints(STAND[None], body, np.random.default_rng(5)) for _ in range(2)]
    np.testing.assert_array_equal(shaped[0], shaped[1])
    picks = [scenes.pick_scene("test", np.random.default_rng(k)) for k in range(40)]
    assert picks == [scenes.pick_scene("test", np.random.default_rng(k)) for k in range(40)]
    assert len({b.name for b, _ in picks}) > 5 and len({g.name for _, g in picks}) > 5


def test_split_table_never_trains_on_held_out_bodies_or_photos():
    for table in (scenes.BODIES, scenes.BACKGROUNDS):
        assert {e.split for e in table} == set(scenes.SPLIT_ORDER)
        assert len({e.name for e in table}) == len(table)
        held = {e.name for e in table if e.split == "test"}
        assert len(held) >= 2
        assert not held & {e.name for e in scenes.allowed(table, "train")}
        assert not held & {e.name for e in scenes.allowed(table, "val")}
        assert {e.name for e in scenes.allowed(table, "train")} == {
            e.name for e in table if e.split == "train"
        }
        assert {e.name for e in scenes.allowed(table, "test")} == {e.name for e in table}
    for k in range(200):
        body, bg = scenes.pick_scene("train", np.random.default_rng(k))
        assert body.split == "train" and bg.split == "train"
    with pytest.raises(ValueError, match="unknown split"):
        scenes.allowed(scenes.BODIES, "dev")


def test_corpus_plan_draws_scenes_by_split():
    from liverig.models.training import mocap, realdet
    from liverig.models.training import mocap_corpus as corpus

    if not all(mocap._clip_path(f.name).exists() for f in corpus.FILES[:3]):
        pytest.skip("corpus not converted (python -m liverig.models.training.mocap --corpus)")
    specs = realdet.plan_corpus(budgets={"test": 3000, "val": 600, "train": 3000})
    for s in specs:
        body, bg = scenes.BODY_INDEX[s.preset], scenes.BACKGROUND_INDEX[s.background]
        rank = scenes.SPLIT_ORDER.index(s.split)
        assert scenes.SPLIT_ORDER.index(body.split) <= rank and scenes.SPLIT_ORDER.index(bg.split) <= rank
    test_bodies = {s.preset for s in specs if s.split == "test"}
    assert test_bodies & {b.name for b in scenes.BODIES if b.split == "test"}  # never-trained bodies
    assert test_bodies & {b.name for b in scenes.BODIES if b.split == "train"}  # and trained ones


def test_background_photos_are_checked(tmp_path, monkeypatch):
    """The cached photos match their pins; a corrupted cached photo is a one-line error naming it."""
    try:
        paths = [scenes.background_path(bg.name) for bg in scenes.BACKGROUNDS]
    except FetchError as error:
        pytest.skip(f"background packages unavailable: {error}")
    for path in paths:
        image = cv2.imread(str(path))
        assert image is not None and min(image.shape[:2]) >= 250
    monkeypatch.setenv("LIVERIG_CACHE", str(tmp_path))
    bad = tmp_path / "backgrounds" / paths[0].name
    bad.parent.mkdir(parents=True)
    shutil.copyfile(paths[0], bad)
    with open(bad, "r+b") as handle:  # one flipped byte in the middle
        handle.seek(bad.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    name = scenes.BACKGROUNDS[0].name
    with pytest.raises(FetchError) as caught:
        scenes.load_background(name)
    message = str(caught.value)
    assert "checksum mismatch" in message and name in message and "\n" not in message
    with pytest.raises(SystemExit) as stop:
        scenes.main(["--bodies-sheet", str(tmp_path / "x.png"), "--fetch"])
    assert str(stop.value).startswith("scenes: checksum mismatch") and "\n" not in str(stop.value)


@pytest.fixture(scope="module")
def studio():
    pytest.importorskip("moderngl")
    from liverig.models.training.realdet import Studio

    try:
        studio = Studio()
    except FetchError as error:
        pytest.skip(f"mannequin-x wheel unavailable: {error}")
    except Exception as error:  # no EGL / Mesa on this machine
        pytest.skip(f"no headless OpenGL (install libegl1 libegl-mesa0 libgl1-mesa-dri): {error}")
    yield studio
    studio.close()


def test_every_body_is_found_by_the_real_detector_before_a_photo(studio, pose_model_full):
    """Each body, standing before a photo wall, through the real `full` PoseLandmarker in three
    pictures (three seeds: clothes colours, light, camera, photo): found in at least two, where it
    stands; the saved names say who and where. (A single picture can be missed: measured per body
    over 60-frame clips in docs/mocap.md, "Bodies and scenes".)"""
    from liverig.models.training.simulate import project

    for k, body in enumerate(scenes.BODIES):
        joints = scenes.shape_joints(POSE[None], body)
        found = 0
        for seed in range(3):
            background = scenes.BACKGROUNDS[(k + seed) % len(scenes.BACKGROUNDS)].name
            result = studio.film(
                joints,
                np.random.default_rng(10 * k + seed),
                15.0,
                keep_frames=True,
                body=body,
                background=background,
            )
            assert result["body"] == body.name and result["background"] == background
            if not result["present"][0]:
                continue
            found += 1
            camera = {"image_size": tuple(result["image_size"]), "focal_px": result["focal_px"]}
            truth_uv = project(result["truth_world"][0], camera)
            seen_uv = image_joints(result["image"][:1].astype(np.float64))[0]
            # Feet and hips within 12 % of the figure's height in the picture, the joints' median
            # within 8 % (a single picture's wrists held against the body, or a dark face in dim
            # light, are the detector's weak spots).
            tall = np.ptp(truth_uv[:, 1])
            ends = [J[n] for n in ("LeftFoot", "RightFoot", "LeftUpperLeg", "RightUpperLeg")]
            assert np.linalg.norm(seen_uv[ends] - truth_uv[ends], axis=-1).max() < 0.12 * tall, body.name
            assert np.median(np.linalg.norm(seen_uv - truth_uv, axis=-1)) < 0.08 * tall, body.name
        assert found >= 2, body.name
    # The backdrop is the photo: most of the picture's top rows differ from the sky-only render.
    plain = studio.film(joints, np.random.default_rng(0), 15.0, keep_frames=True)
    assert plain["body"] == "mannequin" and plain["background"] == "sky"
    sky, photo = plain["frames"][0][:60].astype(int), result["frames"][0][:60].astype(int)
    assert (np.abs(sky - photo).sum(axis=-1) > 30).mean() > 0.5


def test_version_1_sequences_still_load():
    """Caches written before bodies and scenes (no `body`, `background`) load as the plain mannequin."""
    from liverig.models.training import realdet

    T = 3
    seq = {
        "world": np.zeros((T, 33, 3), np.float32),
        "image": np.full((T, 33, 3), 0.5, np.float32),
        "visibility": np.ones((T, 33), np.float32),
        "present": np.zeros(T, bool),
        "truth": np.zeros((T, 22, 3), np.float32),
        "root": np.zeros((T, 3), np.float32),
        "camera_position": np.zeros(3),
        "camera_rotation": np.eye(3),
        "fov_deg": 60.0,
        "focal_px": 500.0,
        "image_size": np.array([640, 480]),
        "azimuth_deg": 0.0,
        "distance_m": 3.0,
        "height_m": 1.2,
        "fps": 30.0,
        "clip": "c",
        "split": "train",
        "activity": "a",
        "name": "c_s0_c0",
        "version": 1,
    }
    out = realdet.to_simulate_layout(seq)
    assert out["body"] == "mannequin" and out["background"] == "sky"


def test_a_misspelt_preset_is_an_error_naming_it():
    with pytest.raises(ValueError, match="body x: hair 'curly'"):
        scenes.BodyPreset("x", "train", 1.0, hair="curly")
    with pytest.raises(ValueError, match=r"body y: unknown \['belly2'\]"):
        scenes.BodyPreset("y", "train", 1.0, girth={"belly2": 1.2})
    with pytest.raises(ValueError, match="unknown background 'moon'"):
        scenes.background_path("moon")
