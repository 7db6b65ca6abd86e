"""Camera calibration on the real photos of OpenCV's calibration tutorial (Debian opencv-doc)."""

import math

import cv2
import pytest

from liverig.calibration.camera import CalibrationError, calibrate, main
from liverig.core.fetch import apt_download, cache_dir, extract_many

OPENCV_DOC = (
    "opencv-doc",
    "4.6.0+dfsg-12",
    "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
)
NAMES = [f"left{i:02d}.jpg" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14)]


@pytest.fixture(scope="module")
def chessboards():
    folder = cache_dir("samples", "chessboard")
    if not all((folder / name).exists() for name in NAMES):
        deb = apt_download(*OPENCV_DOC)
        extract_many(deb, {f"usr/share/doc/opencv-doc/examples/data/{name}": folder / name for name in NAMES})
    return [folder / name for name in NAMES]


def test_calibration_of_the_tutorial_camera(chessboards):
    result = calibrate([cv2.imread(str(p)) for p in chessboards], (9, 6), 0.025)
    assert result.views == 13 and result.image_size == (640, 480)
    assert result.rms_px < 0.6  # OpenCV's tutorial reports about 0.4 px for these images
    fx, fy = result.matrix[0, 0], result.matrix[1, 1]
    assert 500 < fx < 570 and abs(fx - fy) < 0.02 * fx  # square pixels, ~533 px in the tutorial
    assert result.horizontal_fov_deg == pytest.approx(math.degrees(2 * math.atan(320 / fx)))
    assert 58 < result.horizontal_fov_deg < 65


def test_command_prints_the_config_line(chessboards, capsys):
    assert main([str(chessboards[0].parent / "left*.jpg")]) == 0
    out = capsys.readouterr().out
    assert "horizontal_fov_deg:" in out and "RMS" in out


def test_too_few_boards_is_a_clear_error(chessboards):
    blank = cv2.imread(str(chessboards[0])) * 0
    with pytest.raises(CalibrationError, match="found in 0 of 2 images"):
        calibrate([blank, blank], (9, 6), 0.025)
