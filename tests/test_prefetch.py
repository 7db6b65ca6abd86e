"""The face's and hands' detectors beside the body's (`perception.parallel`, runtime/parts.py): the
shared stderr filter under two threads, the face part's prefetched results against its own
synchronous ones on a real clip, the scheduler planning before the body, and the node running the
face's detector on its own thread."""

from __future__ import annotations

import os
import threading
import time

import cv2
import numpy as np
import pytest

from liverig.core import skeleton
from liverig.core.config import FaceConfig, load_config
from liverig.core.types import Frame, Observation, Pose, Timing
from liverig.runtime.assets import sample_path
from liverig.runtime.face import FacePart
from liverig.runtime.landmarkers import filtered_stderr
from liverig.runtime.node import open_node, run_loop
from liverig.runtime.parts import MISSING, Prefetch
from liverig.runtime.perception import PoseEstimator
from liverig.runtime.scheduler import Scheduler
from tests.test_scheduler import Clock, TimedPart


def test_the_stderr_filter_is_shared_by_threads(capfd):
    """Two threads filter native stderr at once, entering and leaving out of step: every real line
    is passed on, no noise line is, and fd 2 is the real stderr again afterwards. (A redirection per
    thread restores the other thread's capture file as "stderr" and loses what follows.)"""

    def chatter(name: str, pause: float) -> None:
        for i in range(40):
            with filtered_stderr((f"noise {name}",)):
                os.write(2, f"noise {name} {i}\n".encode())
                time.sleep(pause)
                os.write(2, f"line {name} {i}\n".encode())

    threads = [threading.Thread(target=chatter, args=(n, p)) for n, p in (("a", 0.001), ("b", 0.0017))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os.write(2, b"after both\n")
    err = capfd.readouterr().err
    for name in "ab":
        assert all(f"line {name} {i}\n" in err for i in range(40))
    assert "noise" not in err
    assert err.rstrip().endswith("after both")


def test_prefetch_takes_only_its_own_frame_and_raises_on_the_nodes_thread():
    prefetch = Prefetch("test")
    threads = []
    prefetch.submit(1, lambda: threads.append(threading.current_thread().name) or "one")
    assert prefetch.take(1) == "one" and threads[0].startswith("liverig-test")
    prefetch.submit(2, lambda: "two")
    assert prefetch.take(3) is MISSING  # another frame's work is dropped...
    assert prefetch.take(2) is MISSING  # ...and gone
    prefetch.submit(4, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        prefetch.take(4)
    prefetch.close()


def _carphone(count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(sample_path("carphone.mp4")))
    frames = []
    while len(frames) < count and (image := capture.read()[1]) is not None:
        frames.append(image)
    capture.release()
    return frames


def _pose(index: int, timing: Timing) -> Pose:
    return Pose(index, index / 30.0, timing, True, skeleton.rest_pose(), np.ones(skeleton.NUM_JOINTS))


def test_the_prefetched_face_matches_the_face_run_after_the_body():
    """The same clip through two face parts: one the node's old way (after the body, cropped at this
    frame's head), one prefetched (started before the body, cropped at the previous frame's head,
    on its own thread). Same blinks and mouth, frame by frame, within the crop's small difference."""
    images = _carphone(120)
    after, beside = FacePart(FaceConfig()), FacePart(FaceConfig())
    threads: set[str] = set()
    detect = beside._detect

    def recorded(frame, crop):
        threads.add(threading.current_thread().name)
        return detect(frame, crop)

    beside._detect = recorded
    keys = ("eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthSmileLeft", "A", "Blink")
    got = {name: ([], []) for name in keys}
    try:
        with PoseEstimator() as body:
            for i, image in enumerate(images):
                frame = Frame(i, i / 30.0, Timing(0.0), image)
                beside.submit(frame)  # before the body, as the node does
                observation = body(frame)
                for part, column in ((after, 0), (beside, 1)):
                    pose = _pose(i, frame.timing)
                    part(frame, observation, pose)
                    for name in keys:
                        got[name][column].append(pose.expressions.get(name, 0.0))
    finally:
        after.close()
        beside.close()
    assert threads == {"liverig-face_0"}
    for name in keys:
        a, b = (np.asarray(column) for column in got[name])
        assert np.all(np.isfinite(b))
        assert np.median(np.abs(a - b)) < 0.03, name
        assert np.corrcoef(a, b)[0, 1] > 0.85 or np.ptp(a) < 0.05, name
    blink = np.asarray(got["Blink"][1])
    assert blink[38:48].max() > 0.8 and blink[88:98].max() > 0.8  # the clip's two real blinks


class PrefetchingPart(TimedPart):
    """A scheduled part that can start its work before the body (`submit`): records when."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.submitted: list[int] = []

    def submit(self, frame) -> None:
        self.submitted.append(frame.index)


def test_the_scheduler_plans_before_the_body_and_starts_only_planned_parts():
    """A face that costs the node's thread 2 ms (its detector ran beside the body) fits after a 12 ms
    body; then the body slows to 29 ms and the plan (made before the body, from the body's learned
    time) holds the face except at its 10 Hz minimum. What was started beside the body is exactly
    what ran."""
    clock = Clock()
    face = PrefetchingPart("face", clock, costs=(2.0,), min_rate_hz=10.0)
    scheduler = Scheduler([face], target_fps=30.0, clock=clock)
    for i in range(120):
        body_ms = 12.0 if i < 60 else 29.0
        clock.now = max(clock.now, i / 30.0)
        timing = Timing(clock.now)
        timing.stages["wait"] = clock.now
        frame = Frame(i, i / 30.0, timing)
        scheduler.prepare(frame)
        clock.now += body_ms / 1000.0
        scheduler.run(frame, Observation.absent(i, i / 30.0, timing), _pose(i, timing))
        clock.now += 0.001
        scheduler.frame_done()
    assert face.submitted == face.ran
    assert set(range(10, 60)) <= set(face.ran)  # fits: every frame
    late = [i for i in face.ran if i >= 80]
    assert 11 <= len(late) <= 15  # 40 frames at 30 fps (1.33 s) with a 10 Hz minimum: ~13
    assert abs(scheduler._body_ms - 29.0) < 1.0


@pytest.mark.parametrize("parallel", [True, False])
def test_the_node_runs_the_face_beside_the_body(parallel):
    """The bundled clip through the node (face on, unpaced): with `perception.parallel` the face's
    detector runs on its own thread on every frame; without, on the node's thread."""
    config = load_config()
    config.source.realtime = False
    config.perception.parallel = parallel
    node = open_node(config, f"video:{sample_path('carphone.mp4')}", [], None, log=lambda m: None)
    face = next(part for part in node.parts if part.name == "face")
    threads: list[str] = []
    detect = face._detect

    def recorded(frame, crop):
        threads.append(threading.current_thread().name)
        return detect(frame, crop)

    face._detect = recorded
    stats = run_loop(node, max_frames=60)
    assert stats.frames == 60 and len(threads) == 60
    main = threading.main_thread().name
    assert set(threads) == ({"liverig-face_0"} if parallel else {main})


def test_the_node_runs_the_hands_beside_the_body():
    """The hands part on (unpaced clip): its detectors and finger filters run on its own thread."""
    config = load_config()
    config.source.realtime = False
    config.perception.hands.enabled = True
    node = open_node(config, f"video:{sample_path('carphone.mp4')}", [], None, log=lambda m: None)
    hands = next(part for part in node.parts if part.name == "hands")
    threads: list[str] = []
    perceive = hands._perceive

    def recorded(image, observation, time_s):
        threads.append(threading.current_thread().name)
        return perceive(image, observation, time_s)

    hands._perceive = recorded
    stats = run_loop(node, max_frames=30)
    assert stats.frames == 30 and threads == ["liverig-hands_0"] * 30
    assert "hands_detector" in stats.samples() and "hands" in stats.samples()


def test_a_camera_that_changes_size_does_not_crop_with_the_old_body():
    """The previous frame's body was seen at 640x480; this frame is 320x240: the prefetched face
    looks at the whole new frame instead of cropping at pixels that are not there."""
    images = _carphone(2)
    big = cv2.resize(images[0], (640, 480))
    part = FacePart(FaceConfig())
    try:
        with PoseEstimator() as body:
            first = Frame(0, 0.0, Timing(0.0), big)
            observation = body(first)
            part(first, observation, _pose(0, first.timing))
            small = Frame(1, 1 / 30.0, Timing(0.0), cv2.resize(images[1], (160, 120))[:100, :100])
            part.submit(small)
            pose = _pose(1, small.timing)
            part(small, body(small), pose)
        assert np.all(np.isfinite(list(pose.expressions.values())))
    finally:
        part.close()
