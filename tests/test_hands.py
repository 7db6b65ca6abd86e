"""The hands part on real photos of hands (tests/fixtures/hands/, from Debian's opencv-doc; licences in
licenses/opencv-doc-images.txt): the model bundle we build, finger curl, handedness, the relaxed-pose
easing, and the node's VMC output read by liblo's oscdump."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from liverig.core import skeleton
from liverig.core.config import HandsConfig
from liverig.core.fetch import extract, npm_pack
from liverig.core.types import Frame, Observation, Pose, Timing
from liverig.runtime import assets
from liverig.runtime.assets import HAND_VARIANTS, hand_model_path
from liverig.runtime.fingers import FINGER_BONES, FINGERS, bend_degrees, finger_rotations, relaxed_rotations
from liverig.runtime.hands import HandsPart, wrist_boxes
from liverig.runtime.scheduler import Scheduler
from tests.node_support import run_node

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hands"
OPEN = FIXTURES / "open_hand.jpg"  # an open left hand, palm to the camera, on a table
GRIP = FIXTURES / "gripping_hand.jpg"  # a left hand's fingers curled round the edge of a board


@pytest.fixture(scope="module")
def part():
    hands = HandsPart(HandsConfig(enabled=True))
    yield hands
    hands.close()


def image(path: Path, mirrored: bool = False) -> np.ndarray:
    picture = cv2.imread(str(path))
    return np.ascontiguousarray(picture[:, ::-1]) if mirrored else picture


def no_body(picture: np.ndarray) -> Observation:
    return Observation.absent(0, 0.0, Timing(0.0), (picture.shape[1], picture.shape[0]))


_CLOCK = iter(range(1, 1_000_000))  # detect() times: the part's landmarkers need them increasing


def detect(part: HandsPart, picture: np.ndarray, observation: Observation | None = None) -> dict:
    """The hands seen in a still photo (a few frames, so the VIDEO-mode tracker settles on it)."""
    observation = observation or no_body(picture)
    for _ in range(3):
        seen = part.detect(picture, observation, float(next(_CLOCK)))
    return seen


def curl(part: HandsPart, path: Path) -> float:
    """Mean bend of the four fingers' proximal and intermediate bones, degrees (0: straight)."""
    (side, hand), *_ = detect(part, image(path)).items()
    rotations = finger_rotations(hand.world_landmarks, side)
    return float(
        np.mean(
            [bend_degrees(rotations, side, f, s) for f in FINGERS[1:] for s in ("Proximal", "Intermediate")]
        )
    )


# --- the model bundle ------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", HAND_VARIANTS)
def test_the_hand_bundle_has_the_members_hand_landmarker_reads(variant):
    with zipfile.ZipFile(hand_model_path(variant)) as bundle:
        entries = {info.filename: info for info in bundle.infolist()}
        assert set(entries) == {"hand_detector.tflite", "hand_landmarks_detector.tflite"}
        for info in entries.values():
            assert info.compress_type == zipfile.ZIP_STORED
            assert (info.header_offset + len(info.FileHeader())) % 4 == 0
            assert b"TFLITE_METADATA" in bundle.read(info.filename)
    hands = HandsPart(HandsConfig(model=variant))
    try:
        assert set(detect(hands, image(OPEN))) == {"Left"}
    finally:
        hands.close()


def test_the_palm_detector_wants_unit_range_input(tmp_path):
    """Why the palm detector's metadata says (pixel - 0) / 255: with the pose detector's [-1, 1] it
    finds no hand in either photo."""
    tarball = npm_pack(assets.HANDS_PACKAGE, assets.HANDS_VERSION, assets.HANDS_TARBALL_SHA256)
    blob = extract(tarball, assets.HANDS_BLOB_MEMBER, tmp_path / "blob").read_bytes()
    landmarks = extract(tarball, "package/hand_landmark_full.tflite", tmp_path / "lm").read_bytes()
    start, end = assets.PALM_DETECTOR_RANGE["full"]
    wrong = tmp_path / "hand_landmarker_wrong.task"
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        assets._write_bundle(
            {
                "hand_detector.tflite": assets.with_image_metadata(blob[start:end], *assets.DETECTOR_NORM),
                "hand_landmarks_detector.tflite": assets.with_image_metadata(
                    landmarks, *assets.HAND_LANDMARK_NORM
                ),
            },
            Path(tmp),
            wrong,
        )
    hands = HandsPart(HandsConfig(), model_path=wrong)
    right = HandsPart(HandsConfig())
    try:
        for path in (OPEN, GRIP):
            assert detect(hands, image(path)) == {}
            assert len(detect(right, image(path))) == 1
    finally:
        hands.close()
        right.close()


# --- fingers and sides -----------------------------------------------------------------------------


def test_curled_fingers_bend_clearly_more_than_an_open_hand(part):
    open_curl, grip_curl = curl(part, OPEN), curl(part, GRIP)
    assert open_curl < 25.0
    assert grip_curl > open_curl + 10.0, (open_curl, grip_curl)


def test_the_lite_model_is_a_cheaper_detail_level_that_still_reads_the_curl():
    """The scheduler's lighter level (a late frame): the lite model's own landmarkers (opened at
    the start, not in that late frame), and an open hand still straighter than a gripping one."""
    hands = HandsPart(HandsConfig(enabled=True))
    try:
        assert hands.details == ("full", "lite")
        full = hands._landmarkers
        hands.set_detail(1)
        assert hands._landmarkers is not full and set(hands._sets) == {"full", "lite"}
        open_curl, grip_curl = curl(hands, OPEN), curl(hands, GRIP)
        assert grip_curl > open_curl + 10.0, (open_curl, grip_curl)
        hands.set_detail(0)
        assert hands._landmarkers is full
    finally:
        hands.close()


def test_without_a_body_the_side_is_the_one_the_image_shows_and_a_mirror_swaps_it(part):
    """No body in view (a desk): MediaPipe's label decides. Both photos show a left hand, unmirrored;
    mirrored, the same hands are right hands."""
    for path in (OPEN, GRIP):
        assert set(detect(part, image(path))) == {"Left"}
        assert set(detect(part, image(path, mirrored=True))) == {"Right"}
        assert next(iter(detect(part, image(path)).values())).source == "frame"


def body_at(hand_points: np.ndarray, side: str, size: tuple[int, int], mirrored: bool = False) -> Observation:
    """A body observation whose `side` wrist, knuckles and elbow sit on the photo's hand (image
    landmarks from the hand found in it), the other arm far off in a corner."""
    landmarks = np.full((33, 3), 0.05)
    visibility = np.ones(33)
    wrist, index, little = hand_points[0], hand_points[5], hand_points[17]
    elbow = wrist - 1.5 * ((index + little) / 2 - wrist)
    ours = {"Left": (13, 15, 17, 19), "Right": (14, 16, 18, 20)}[side]
    for k, point in zip(ours, (elbow, wrist, little, index), strict=True):
        landmarks[k] = point
    if mirrored:  # the person seen in a mirror: x flips and their left and right swap
        landmarks[:, 0] = 1.0 - landmarks[:, 0]
        names = skeleton.LANDMARK_NAMES
        partner = [n.replace("left", "#").replace("right", "left").replace("#", "right") for n in names]
        landmarks = landmarks[[names.index(n) for n in partner]]
    return Observation(0, 0.0, Timing(0.0), True, size, landmarks, landmarks.copy(), visibility)


def test_with_a_body_a_hand_belongs_to_the_wrist_it_is_at_whatever_its_label(part):
    """The hand in the photo is a left hand to MediaPipe; at the body's right wrist it is the right
    hand (the body decides), and seen in a mirror it is assigned to the other side again."""
    picture = image(OPEN)
    size = (picture.shape[1], picture.shape[0])
    points = next(iter(detect(part, picture).values())).image_landmarks
    for side in ("Left", "Right"):
        seen = detect(part, picture, body_at(points, side, size))
        assert set(seen) == {side} and seen[side].source == "crop"
        # The crop's landmarks land on the hand in the whole photo.
        assert np.abs(seen[side].image_landmarks[:, :2] - points[:, :2]).max() < 0.03
        other = "Right" if side == "Left" else "Left"
        mirrored = detect(part, image(OPEN, mirrored=True), body_at(points, side, size, mirrored=True))
        assert set(mirrored) == {other}


def test_a_hand_nearer_the_other_wrist_is_not_taken(part):
    """Both wrists close together, the photo's hand nearer the right one: the left crop may see it, but
    it is the right hand's."""
    picture = image(OPEN)
    size = (picture.shape[1], picture.shape[0])
    points = next(iter(detect(part, picture).values())).image_landmarks
    observation = body_at(points, "Right", size)
    left_wrist = points[0] + (points[9] - points[0]) * 0.9  # near the hand, but further than the right wrist
    observation.image_landmarks[15] = left_wrist
    observation.image_landmarks[[17, 19]] = left_wrist + (points[9] - points[0]) * 0.5
    boxes = wrist_boxes(observation, *size, 0.5)
    assert set(boxes) == {"Left", "Right"}
    assert set(detect(part, picture, observation)) == {"Right"}


# --- over time -------------------------------------------------------------------------------------


def run_frames(part: HandsPart, pictures: list[np.ndarray], fps: float = 30.0) -> list[dict]:
    """The part over a sequence of images; each frame's 30 finger bones."""
    part.reset()
    out = []
    for i, picture in enumerate(pictures):
        timing = Timing(0.0)
        frame = Frame(i, i / fps, timing, picture)
        pose = Pose(i, i / fps, timing, False, skeleton.rest_pose(), np.zeros(skeleton.NUM_JOINTS))
        part(frame, no_body(picture), pose)
        out.append(pose.bone_rotations)
    return out


def angle_to(rotations: dict, target: dict, side: str = "Left") -> float:
    """The largest angle (degrees) between one hand's bones and `target`'s."""
    return max(
        np.degrees((Rotation.from_quat(rotations[b]).inv() * Rotation.from_quat(target[b])).magnitude())
        for b in target
        if b.startswith(side)
    )


def test_a_hand_that_leaves_holds_then_eases_to_relaxed_and_glides_back(part):
    config = part.config  # hold 0.1 s, relax 0.3 s, re-enter 0.15 s at 30 fps
    hand, empty = image(OPEN), np.zeros_like(image(OPEN))
    frames = run_frames(part, [hand] * 15 + [empty] * 20 + [hand] * 15)
    relaxed = relaxed_rotations("Left")
    assert all(set(f) == set(FINGER_BONES) for f in frames)
    assert all(np.all(np.isfinite(q)) for f in frames for q in f.values())
    seen = frames[14]
    assert angle_to(seen, relaxed) > 10.0  # an open hand is not the relaxed one
    assert angle_to(frames[0], relaxed) < 1e-6  # first seen: glides in from relaxed...
    hold = int(config.hold_s * 30)
    for k in range(15, 15 + hold):  # lost at frame 15: held
        assert angle_to(frames[k], seen) < 1e-6
    done = 15 + int(np.ceil((config.hold_s + config.relax_s) * 30))
    assert angle_to(frames[done], relaxed) < 1e-6
    distances = [angle_to(frames[k], relaxed) for k in range(14, done + 1)]
    assert all(b <= a + 1e-9 for a, b in zip(distances, distances[1:], strict=False))  # monotonic
    steps = [angle_to(frames[k], frames[k + 1]) for k in range(14, done)]
    assert max(steps) < 0.25 * distances[0]  # no jump: spread over the relax time
    # Back in view: glides from relaxed to the open hand, no jump either.
    assert angle_to(frames[35], relaxed) < 1e-6
    assert angle_to(frames[49], seen) < 2.0
    steps = [angle_to(frames[k], frames[k + 1]) for k in range(35, 49)]
    assert max(steps) < 0.5 * angle_to(seen, relaxed)


def test_right_hand_untouched_by_a_left_hand_and_relaxed_from_the_start(part):
    frames = run_frames(part, [image(OPEN)] * 5)
    assert angle_to(frames[-1], relaxed_rotations("Right"), "Right") < 1e-6


def test_landmarks_that_are_not_finite_leave_a_finite_relaxed_hand(part):
    from liverig.runtime.hands import _HandTrack

    track = _HandTrack("Left", HandsConfig())
    points = np.full((21, 3), np.nan)
    for i in range(20):
        out = track.update(points if i % 2 else points * np.inf, i / 30)
        assert all(np.all(np.isfinite(q)) for q in out.values())
    assert angle_to(out, relaxed_rotations("Left")) < 1e-6


def test_the_part_reports_its_cost(part):
    run_frames(part, [image(OPEN)] * 3)
    assert part.cost_ms > 0.0 and part.name == "hands"


# --- the node, end to end --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("perception: {hands: {model: heavy}}", "perception.hands.model"),
        ("perception: {hands: {relax_s: 0}}", "perception.hands.relax_s"),
        ("perception: {hands: {enable: true}}", "perception.hands.enable"),
    ],
)
def test_bad_hands_settings_are_one_line_errors_naming_the_key(tmp_path, text, key):
    config = tmp_path / "bad.yaml"
    config.write_text(text + "\n")
    result = run_node("--source", f"video:{OPEN}", "--config", config, "--max-frames", "1")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and key in lines[0] and str(config) in lines[0], result.stderr


def test_the_node_sends_finger_bones_over_vmc(tmp_path, oscdump):
    """run_node.py on a clip of the two photos (open, then curled), hands on: oscdump reads the
    VMC bone messages and the left index finger's proximal bone turns between the two; the BVH
    recording of the same run has the finger joints."""
    clip = tmp_path / "hands.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for path in [OPEN] * 10 + [GRIP] * 10:
        writer.write(image(path))
    writer.release()
    config = tmp_path / "hands.yaml"
    config.write_text("source: {realtime: false}\nperception: {hands: {enabled: true}}\n")
    result = run_node(
        "--source",
        f"video:{clip}",
        "--config",
        config,
        "--motion",
        "raw",
        "--out",
        f"vmc://127.0.0.1:{oscdump.port}",
        "--out",
        f"bvh:{tmp_path / 'hands.bvh'}",
        "--stats",
    )
    assert result.returncode == 0, result.stderr
    assert "hands" in result.stderr  # --stats shows the part's cost
    messages = oscdump.messages(expect=20 * 58)
    bones = [m for m in messages if m[0] == "/VMC/Ext/Bone/Pos"]
    names = {m[2][0] for m in bones}
    assert set(FINGER_BONES) <= names
    index = [np.array([float(v) for v in m[2][4:8]]) for m in bones if m[2][0] == "LeftIndexProximal"]
    assert len(index) == 20
    open_turn, grip_turn = Rotation.from_quat(index[9]), Rotation.from_quat(index[-1])
    assert np.degrees((open_turn.inv() * grip_turn).magnitude()) > 10.0
    bvh = (tmp_path / "hands.bvh").read_text()
    assert "JOINT LeftIndexProximal" in bvh and "JOINT RightLittleDistal" in bvh
    motion = bvh.split("MOTION", 1)[1].split("\n")
    assert motion[1].split() == ["Frames:", "20"]
    channels = sum(int(line.split()[1]) for line in bvh.splitlines() if line.strip().startswith("CHANNELS"))
    assert all(len(line.split()) == channels for line in motion[3:] if line.strip())


def test_a_hand_too_small_for_the_searched_area_is_dropped(part):
    """min_hand_fraction: the photo shrunk to a third in a corner of a black frame, its hand spanning
    about 40 % of the frame's height, is found by default (0.1) and dropped when asked for 60 %."""
    small = np.zeros((480, 640, 3), dtype=np.uint8)
    small[20:180, 20:233] = cv2.resize(image(OPEN), (213, 160), interpolation=cv2.INTER_AREA)
    seen = detect(part, small)
    assert set(seen) == {"Left"}
    span = np.ptp(seen["Left"].image_landmarks[:, :2] * (640, 480), axis=0).max() / 480
    assert 0.2 < span < 0.6
    strict = HandsPart(HandsConfig(min_hand_fraction=0.6))
    try:
        assert detect(strict, small) == {}
    finally:
        strict.close()


def test_skipped_frames_hold_the_fingers_and_keep_easing(part):
    """A scheduler that skips the part on some frames calls skip(): the bones stay as last measured
    (not the rig's rest), and a lost hand goes on easing to relaxed."""
    frames = run_frames(part, [image(OPEN)] * 10)
    measured = frames[-1]
    timing = Timing(0.0)
    picture = image(OPEN)
    for k, t in enumerate((10 / 30, 11 / 30)):
        pose = Pose(10 + k, t, timing, False, skeleton.rest_pose(), np.zeros(skeleton.NUM_JOINTS))
        part.hold(Frame(10 + k, t, timing, picture), no_body(picture), pose)
        assert set(pose.bone_rotations) == set(FINGER_BONES)
        assert angle_to(pose.bone_rotations, measured) < 1e-6
    run = run_frames(part, [image(OPEN)] * 10 + [np.zeros_like(picture)])  # lost at frame 10
    assert angle_to(run[-1], relaxed_rotations("Left")) > 10.0  # still held
    pose = Pose(99, 2.0, timing, False, skeleton.rest_pose(), np.zeros(skeleton.NUM_JOINTS))
    part.hold(Frame(99, 2.0, timing, picture), no_body(picture), pose)  # long after: relaxed
    assert angle_to(pose.bone_rotations, relaxed_rotations("Left")) < 1e-6


def test_the_scheduler_runs_then_holds_the_hands_within_their_minimum_rate(part):
    """Under the node's budget scheduler: with room, the hands run every frame; with no budget to
    spare they are held (the fingers as last measured, not the rig's rest) until their 10 Hz minimum
    is due on the scheduler's clock, then run again."""
    part.reset()
    now = [100.0]
    scheduler = Scheduler([part], target_fps=30, budget_ms=1e6, clock=lambda: now[0])
    picture = image(OPEN)
    choices, bones = [], []
    steps = [1 / 30] * 10 + [0.01, 0.01, 0.2]
    for i, step in enumerate(steps):
        if i == 10:
            scheduler.budget_ms = 0.001  # a busy frame from here on
        now[0] += step
        timing = Timing(now[0])
        pose = Pose(i, i / 30, timing, False, skeleton.rest_pose(), np.zeros(skeleton.NUM_JOINTS))
        scheduler.run(Frame(i, i / 30, timing, picture), no_body(picture), pose)
        choices.append(scheduler.last_choice["hands"])
        bones.append(pose.bone_rotations)
    assert choices == [0] * 10 + [None, None, 0]
    for held in bones[10:12]:
        assert set(held) == set(FINGER_BONES)
        assert angle_to(held, bones[9]) < 1e-6
    assert 0.0 <= part.activity <= 1.0


def test_speed_is_how_fast_the_fingers_turn():
    from liverig.runtime.hands import _HandTrack
    from tests.test_fingers import synthetic_hand

    track = _HandTrack("Left", HandsConfig())
    still = synthetic_hand("Left", {f: [(20.0, 0.0)] * 3 for f in FINGERS}, Rotation.identity())
    for i in range(30):
        track.update(still, i / 30)
    assert track.speed < 1.0
    for i in range(30, 40):  # curling 3° a frame at 30 fps: 90°/s
        bend = 20.0 + 3.0 * (i - 29)
        track.update(
            synthetic_hand("Left", {f: [(bend, 0.0)] * 3 for f in FINGERS}, Rotation.identity()), i / 30
        )
    assert 30.0 < track.speed < 200.0
    track.update(None, 40 / 30)
    assert track.speed == 0.0
