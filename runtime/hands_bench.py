"""Benchmark the hands part: per-frame cost (median, p99, ms) and what 30 finger bones add downstream.

    python -m liverig.runtime.hands_bench [--frames 150] [--models full,lite]

1. The hands part per frame (HandsPart.__call__: landmarkers, finger bones, easing), each model, on:
   - "desk, hand in view": the two test photos of a hand (tests/fixtures/hands/), 15 frames each in
     turn, no body: the whole frame, the hand tracked from frame to frame;
   - "no hand in view": the bundled bikes.mp4 clip, no body: the palm detector runs every frame
     (the worst case while nobody shows a hand);
   - "body in view, two crops": the open-hand photo with a body whose left wrist is on the hand and
     right wrist in a corner: one tracked hand, one palm search per frame;
   and, in the same run on the same photos, the body's PoseLandmarker (perception.model full) as the
   baseline the ratio is taken to.
2. The finger bones alone (finger_rotations + easing, no detector), per hand.
3. Downstream of the part, on the vrm0 rig: retargeting with and without the 30 finger bones in the
   rig and in the pose, and the VMC encoder for the 55-bone frame against the 25 body bones alone.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from liverig.bridges.vmc import encode_vmc
from liverig.core import skeleton
from liverig.core.config import HandsConfig, PerceptionConfig, RetargetConfig
from liverig.core.types import Frame, Observation, Pose, RigFrame, Timing
from liverig.runtime.assets import HAND_VARIANTS, sample_path
from liverig.runtime.fingers import FINGER_BONES, finger_rotations
from liverig.runtime.hands import HandsPart, _HandTrack
from liverig.runtime.perception import PoseEstimator
from liverig.runtime.retarget import Retargeter, profile_from_dict
from liverig.runtime.rigs import load_rig

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hands"


def _summary(samples_ms: list[float], baseline_ms: float | None = None) -> str:
    median, p99 = np.median(samples_ms), np.percentile(samples_ms, 99)
    ratio = f"   {median / baseline_ms:4.2f}x body" if baseline_ms else ""
    return f"median {median:7.3f} ms   p99 {p99:7.3f} ms{ratio}"


def _time(call: Callable[[int], object], count: int) -> list[float]:
    out = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def _photos(frames: int) -> list[np.ndarray]:
    pictures = [cv2.imread(str(FIXTURES / name)) for name in ("open_hand.jpg", "gripping_hand.jpg")]
    return [pictures[(i // 15) % 2] for i in range(frames)]


def _clip(name: str, frames: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(sample_path(name)))
    out = []
    while len(out) < frames:
        ok, image = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        out.append(image)
    capture.release()
    return out


def _body_at_hand(part: HandsPart, picture: np.ndarray) -> Observation:
    """A body observation with its left wrist on the photo's hand and its right wrist in a corner."""
    size = (picture.shape[1], picture.shape[0])
    hand = next(iter(part.detect(picture, Observation.absent(0, 0.0, Timing(0.0), size), 1e6).values()))
    points = hand.image_landmarks
    landmarks = np.full((33, 3), 0.05)
    wrist, knuckles = points[0], (points[5] + points[17]) / 2
    landmarks[[13, 15, 17, 19]] = [wrist - 1.5 * (knuckles - wrist), wrist, points[17], points[5]]
    return Observation(0, 0.0, Timing(0.0), True, size, landmarks, landmarks.copy(), np.ones(33))


def bench_part(frames: int, models: list[str]) -> None:
    photos = _photos(frames)
    empty = _clip("bikes.mp4", frames)
    with PoseEstimator(PerceptionConfig()) as body:
        clock = iter(range(frames * 10))
        body_ms = _time(lambda i: body(Frame(i, next(clock) / 30.0, Timing(0.0), photos[i])), frames)
    print(f"  {'body PoseLandmarker (full), same photos':44s} {_summary(body_ms)}")
    baseline = float(np.median(body_ms))
    for model in models:
        part = HandsPart(HandsConfig(enabled=True, model=model))
        try:
            body_seen = _body_at_hand(part, photos[0])
            cases = [
                ("desk, hand in view", photos, None),
                ("no hand in view (bikes.mp4)", empty, None),
                ("body in view, two crops", [photos[0]] * frames, body_seen),
            ]
            for label, pictures, observation in cases:
                part.reset()
                start = 1000.0 + len(label)  # each case later than the last (VIDEO mode)

                def call(i: int, pictures=pictures, observation=observation, start=start, part=part) -> None:
                    timing = Timing(0.0)
                    t = start + i / 30.0
                    picture = pictures[i]
                    seen = observation or Observation.absent(
                        i, t, timing, (picture.shape[1], picture.shape[0])
                    )
                    pose = Pose(i, t, timing, False, skeleton.rest_pose(), np.zeros(skeleton.NUM_JOINTS))
                    part(Frame(i, t, timing, picture), seen, pose)

                print(f"  hands ({model}) {label:32s} {_summary(_time(call, frames), baseline)}")
        finally:
            part.close()


def bench_fingers(frames: int) -> None:
    part = HandsPart(HandsConfig(enabled=True))
    try:
        picture = _photos(1)[0]
        size = (picture.shape[1], picture.shape[0])
        hand = next(iter(part.detect(picture, Observation.absent(0, 0.0, Timing(0.0), size), 2e6).values()))
    finally:
        part.close()
    rng = np.random.default_rng(0)
    points = [hand.world_landmarks + rng.normal(scale=0.002, size=(21, 3)) for _ in range(frames)]
    track = _HandTrack("Left", HandsConfig())
    rows = [
        ("finger_rotations, one hand", lambda i: finger_rotations(points[i], "Left")),
        ("+ smoothing and easing (one hand)", lambda i: track.update(points[i], i / 30)),
    ]
    for label, call in rows:
        print(f"  {label:44s} {_summary(_time(call, frames))}")


def _without_fingers(rig: str):
    profile = load_rig(rig)
    data = profile.model_dump()
    data["bones"] = [
        b for b in data["bones"] if b["humanoid"] not in FINGER_BONES and "metacarpal" not in b["name"]
    ]
    return profile_from_dict(data, f"{rig} without fingers")


def bench_downstream(frames: int) -> None:
    rng = np.random.default_rng(1)
    joints = skeleton.rest_pose()
    turns = {name: np.array([0.1, 0.0, 0.0, 1.0]) / np.linalg.norm([0.1, 0, 0, 1]) for name in FINGER_BONES}
    full = Retargeter(load_rig("vrm0"), RetargetConfig())
    body = Retargeter(_without_fingers("vrm0"), RetargetConfig())

    def pose(i: int, fingers: bool) -> Pose:
        noisy = joints + rng.normal(scale=0.01, size=joints.shape)
        return Pose(
            i,
            i / 30,
            Timing(0.0),
            True,
            noisy,
            np.ones(skeleton.NUM_JOINTS),
            bone_rotations=dict(turns) if fingers else {},
        )

    rows = [
        ("retarget vrm0, 25 body bones (no fingers)", lambda i: body(pose(i, False))),
        ("retarget vrm0, 55 bones, fingers at rest", lambda i: full(pose(i, False))),
        ("retarget vrm0, 55 bones, 30 finger turns", lambda i: full(pose(i, True))),
    ]
    base = None
    for label, call in rows:
        samples = _time(call, frames)
        base = base or float(np.median(samples))
        print(f"  {label:44s} {_summary(samples)}   {np.median(samples) / base:4.2f}x")
    frame = full(pose(0, True))
    keep = [i for i, name in enumerate(frame.bone_names) if name not in FINGER_BONES]
    body_frame = RigFrame(
        frame.index,
        frame.time_s,
        frame.timing,
        frame.rig,
        [frame.bone_names[i] for i in keep],
        list(range(len(keep))),
        frame.local_rotations[keep],
        frame.local_positions[keep],
        frame.root_position,
        frame.root_rotation,
    )
    base = None
    for label, rig_frame in (("vmc encode, 25 body bones", body_frame), ("vmc encode, 55 bones", frame)):
        samples = _time(lambda i, rig_frame=rig_frame: encode_vmc(rig_frame, 0.0), frames * 10)
        datagrams = encode_vmc(rig_frame, 0.0)
        base = base or float(np.median(samples))
        print(
            f"  {label:44s} {_summary(samples)}   {np.median(samples) / base:4.2f}x   "
            f"{len(datagrams)} datagram(s), {sum(len(d) for d in datagrams)} bytes"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.runtime.hands_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--frames", type=int, default=150, help="frames per case (default 150)")
    parser.add_argument("--models", default=",".join(HAND_VARIANTS), help="hand models (default: full,lite)")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(HAND_VARIANTS))
    if unknown or args.frames < 2:
        parser.error(f"--models from {','.join(HAND_VARIANTS)}, --frames >= 2")
    machine = platform.processor() or platform.machine()
    print(f"liverig hands benchmark: {machine}, {args.frames} frames per case")
    print("1. The hands part per frame:")
    bench_part(args.frames, models)
    print("2. Finger bones alone:")
    bench_fingers(args.frames)
    print("3. Downstream of the part (vrm0):")
    bench_downstream(args.frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
