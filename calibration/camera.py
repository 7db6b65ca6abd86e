"""Camera calibration from chessboard photos: intrinsics, distortion, and the field of view the node needs.

The Motion stage places the body in space by reprojecting MediaPipe's metric world landmarks through a
pinhole camera (runtime/skeleton.estimate_root_position), so a wrong field of view scales the avatar's
travel. Calibrate once per camera:

    python -m liverig.calibration.camera "shots/*.jpg" --pattern 9x6 --square-mm 25
    python -m liverig.calibration.camera --webcam 0 --shots 15 --pattern 9x6

prints the intrinsics and the line to put in your config (`perception.horizontal_fov_deg`).
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from dataclasses import dataclass

import cv2
import numpy as np


class CalibrationError(ValueError):
    """Too few usable chessboard views, or unreadable images."""


@dataclass
class CameraCalibration:
    matrix: np.ndarray  # 3x3 intrinsics (pixels)
    distortion: np.ndarray  # OpenCV's k1 k2 p1 p2 k3
    image_size: tuple[int, int]  # (width, height)
    rms_px: float  # RMS reprojection error of the chessboard corners
    views: int  # images where the whole board was found

    @property
    def horizontal_fov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.image_size[0] / (2 * self.matrix[0, 0])))

    @property
    def vertical_fov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.image_size[1] / (2 * self.matrix[1, 1])))


def find_corners(gray: np.ndarray, pattern: tuple[int, int]) -> np.ndarray | None:
    """Sub-pixel inner corners of a chessboard with `pattern` = (columns, rows) inner corners."""
    found, corners = cv2.findChessboardCorners(gray, pattern)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3)
    return cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1), criteria)


def calibrate(images: list[np.ndarray], pattern: tuple[int, int], square_m: float) -> CameraCalibration:
    """Zhang's method (cv2.calibrateCamera) over every image in which the whole board is found."""
    board = np.zeros((pattern[0] * pattern[1], 3), np.float32)
    board[:, :2] = np.mgrid[0 : pattern[0], 0 : pattern[1]].T.reshape(-1, 2) * square_m
    object_points, image_points, size = [], [], None
    for image in images:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if size is not None and gray.shape[::-1] != size:
            raise CalibrationError(f"images differ in size: {gray.shape[::-1]} vs {size}")
        size = gray.shape[::-1]
        corners = find_corners(gray, pattern)
        if corners is not None:
            object_points.append(board)
            image_points.append(corners)
    if len(image_points) < 3:
        raise CalibrationError(
            f"the {pattern[0]}x{pattern[1]} board was found in {len(image_points)} "
            f"of {len(images)} images; need at least 3"
        )
    rms, matrix, distortion, _, _ = cv2.calibrateCamera(object_points, image_points, size, None, None)
    return CameraCalibration(matrix, distortion.ravel(), size, float(rms), len(image_points))


def _webcam_shots(index: int, count: int, pattern: tuple[int, int]) -> list[np.ndarray]:
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise CalibrationError(f"webcam:{index} cannot be opened")
    shots: list[np.ndarray] = []
    try:
        while len(shots) < count:
            ok, image = capture.read()
            if not ok:
                raise CalibrationError(f"webcam:{index} stopped delivering frames")
            if find_corners(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), pattern) is not None:
                shots.append(image)
                print(f"board {len(shots)}/{count}: move it to a new place and angle", file=sys.stderr)
                for _ in range(15):  # let the user move the board before the next shot
                    capture.read()
    finally:
        capture.release()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.calibration.camera", description=__doc__.splitlines()[0]
    )
    parser.add_argument("images", nargs="?", help="glob of chessboard photos, e.g. 'shots/*.jpg'")
    parser.add_argument("--webcam", type=int, help="take the shots live from this camera instead")
    parser.add_argument("--shots", type=int, default=15, help="live shots to take (default 15)")
    parser.add_argument("--pattern", default="9x6", help="inner corners, columns x rows (default 9x6)")
    parser.add_argument("--square-mm", type=float, default=25.0, help="chessboard square size (mm)")
    args = parser.parse_args(argv)
    try:
        pattern = tuple(int(v) for v in args.pattern.lower().split("x"))
        if len(pattern) != 2:
            raise ValueError
    except ValueError:
        parser.error(f"--pattern must look like 9x6, got {args.pattern!r}")
    try:
        if args.webcam is not None:
            images = _webcam_shots(args.webcam, args.shots, pattern)
        elif args.images:
            paths = sorted(glob.glob(args.images))
            images = [cv2.imread(p) for p in paths]
            if not paths or any(image is None for image in images):
                raise CalibrationError(f"no readable images match {args.images!r}")
        else:
            parser.error("give an images glob or --webcam N")
        result = calibrate(images, pattern, args.square_mm / 1000.0)
    except CalibrationError as error:
        print(f"calibration: error: {error}", file=sys.stderr)
        return 2
    fx, fy, cx, cy = result.matrix[0, 0], result.matrix[1, 1], result.matrix[0, 2], result.matrix[1, 2]
    print(f"views used: {result.views}, RMS reprojection error: {result.rms_px:.3f} px")
    width, height = result.image_size
    print(f"image {width}x{height}: fx {fx:.1f} fy {fy:.1f} cx {cx:.1f} cy {cy:.1f}")
    print(f"distortion k1 k2 p1 p2 k3: {np.array2string(result.distortion, precision=4)}")
    print("put this in your config:")
    print(f"perception:\n  horizontal_fov_deg: {result.horizontal_fov_deg:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
