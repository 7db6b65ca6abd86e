"""Sources without a camera: the newest-frame mailbox, and a camera that disappears and comes back.

There is no webcam on CI machines, so the camera device itself is replaced by a scripted capture
object with OpenCV's read()/release() interface; everything else is the real WebcamSource thread.
"""

import threading
import time

import cv2
import numpy as np
import pytest

from liverig.core.config import SourceConfig
from liverig.runtime.sources import LatestSlot, SourceError, WebcamSource, parse_source_spec


def test_latest_slot_keeps_newest_and_counts_drops():
    slot = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take() == 4
    assert slot.dropped == 4
    slot.close()
    assert slot.take() is None


class ScriptedCamera:
    """Gives `frames` images, then fails reads (unplugged)."""

    def __init__(self, frames: int) -> None:
        self.left = frames
        self.released = False

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self):
        self.released = True


def test_webcam_lost_is_reported_and_retried():
    opens = []
    messages = []
    back = threading.Event()

    def open_camera(index, config):
        opens.append(index)
        if len(opens) == 1:
            return ScriptedCamera(3)  # works, then is unplugged
        if len(opens) < 4:
            return None  # still unplugged: retried
        back.set()
        return ScriptedCamera(2)  # plugged back in

    config = SourceConfig(reconnect_interval_s=0.01)
    source = WebcamSource(0, config, open_camera=open_camera, log=messages.append).start()
    got = []
    for frame in source.frames():
        got.append(frame.index)
        if back.is_set() and len(got) + source.dropped >= 5:
            break
    source.close()
    assert source.reconnects >= 1
    assert any("camera lost" in m for m in messages)
    assert any("camera back" in m for m in messages)
    assert len(got) + source.dropped >= 5  # frames from before and after the loss


def test_webcam_missing_at_start_is_a_source_error():
    with pytest.raises(SourceError, match="webcam:7"):
        WebcamSource(7, SourceConfig(), open_camera=lambda i, c: None)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("webcam", "bad source spec"),
        ("webcam:x", "must be a number"),
        ("camera:0", "bad source spec"),
        ("video:/no/such/file.mp4", "file not found"),
        ("replay:", "bad source spec"),
    ],
)
def test_bad_source_specs(spec, message):
    with pytest.raises(SourceError, match=message):
        parse_source_spec(spec)


class RaisingCamera(ScriptedCamera):
    """Gives `frames` images, then its read() raises, as OpenCV's does when a driver fails."""

    def read(self):
        if self.left <= 0:
            raise cv2.error("OpenCV: (-215:Assertion failed) !_src.empty() in function 'read'")
        return super().read()


class LiveCamera(ScriptedCamera):
    """Delivers a frame every millisecond for as long as it is read."""

    def __init__(self) -> None:
        super().__init__(frames=1)

    def read(self):
        time.sleep(0.001)
        self.left = 1
        return super().read()


def test_webcam_read_error_is_reported_once_and_retried():
    opens, messages = [], []
    back = threading.Event()

    def open_camera(index, config):
        opens.append(index)
        if len(opens) == 1:
            return RaisingCamera(3)  # works, then the driver fails
        if len(opens) < 4:
            return RaisingCamera(0)  # reopens, but every read still fails: not reported again
        back.set()
        return LiveCamera()

    config = SourceConfig(reconnect_interval_s=0.01)
    source = WebcamSource(0, config, open_camera=open_camera, log=messages.append).start()
    after = 0
    for _ in source.frames():
        after += back.is_set()
        if after >= 3:
            break
    source.close()
    lost = [m for m in messages if "camera lost" in m]
    assert len(lost) == 1 and "Assertion failed" in lost[0], messages
    assert [m for m in messages if "camera back" in m] == ["webcam:0: camera back"]
    assert source.reconnects == 1 and after >= 3  # the capture thread survived the exceptions


def test_probed_webcam_without_a_frame_is_a_source_error():
    dark = ScriptedCamera(0)  # opens, but the first read already fails (a laptop with its lid shut)
    with pytest.raises(SourceError, match=r"webcam:0: camera 0 opened but delivered no frame \(read fail"):
        WebcamSource(0, SourceConfig(), open_camera=lambda i, c: dark, probe_frame=True)
    assert dark.released


def test_probed_webcam_whose_read_raises_is_a_source_error():
    broken = RaisingCamera(0)
    with pytest.raises(SourceError, match="delivered no frame .*Assertion failed"):
        WebcamSource(0, SourceConfig(), open_camera=lambda i, c: broken, probe_frame=True)
    assert broken.released


def test_probed_webcam_whose_read_hangs_gives_up_and_releases_it_later():
    unblock, released = threading.Event(), threading.Event()

    class HangingCamera(ScriptedCamera):
        def read(self):
            unblock.wait(10)
            return False, None

        def release(self):
            released.set()

    start = time.monotonic()
    with pytest.raises(SourceError, match=r"delivered no frame \(nothing within 0.2 s\)"):
        WebcamSource(
            0,
            SourceConfig(first_frame_timeout_s=0.2),
            open_camera=lambda i, c: HangingCamera(0),
            probe_frame=True,
        )
    assert time.monotonic() - start < 2
    assert not released.is_set()  # not from under a read still in progress...
    unblock.set()
    assert released.wait(2)  # ...but as soon as it returns


def test_probed_webcam_with_frames_streams():
    camera = LiveCamera()
    source = WebcamSource(0, SourceConfig(), open_camera=lambda i, c: camera, probe_frame=True)
    assert not camera.released  # the probe read a frame and kept the camera
    frames = []
    for frame in source.start().frames():
        frames.append(frame)
        if len(frames) >= 3:
            break
    source.close()
    assert frames[0].image.shape == (4, 4, 3) and camera.released


def test_unprobed_webcam_without_a_frame_still_opens():
    source = WebcamSource(0, SourceConfig(), open_camera=lambda i, c: ScriptedCamera(0))
    source.close()


def test_video_spec_naming_a_directory_says_so(tmp_path):
    with pytest.raises(SourceError, match="is a directory"):
        parse_source_spec(f"video:{tmp_path}")


def test_a_probed_camera_whose_release_raises_too_is_still_a_source_error():
    """A broken driver may fail on release as well: the caller still learns why (no frame), so the
    node can fall back to the bundled clip."""

    class Broken(RaisingCamera):
        def release(self):
            raise cv2.error("OpenCV: release failed")

    with pytest.raises(SourceError, match="delivered no frame"):
        WebcamSource(0, SourceConfig(), open_camera=lambda i, c: Broken(0), probe_frame=True)
