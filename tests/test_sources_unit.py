"""Sources without a camera: the newest-frame mailbox, and a camera that disappears and comes back.

There is no webcam on CI machines, so the camera device itself is replaced by a scripted capture
object with OpenCV's read()/release() interface; everything else is the real WebcamSource thread.
"""

import threading

import numpy as np
import pytest

from runtime.config import SourceConfig
from runtime.sources import LatestSlot, SourceError, WebcamSource, parse_source_spec


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
