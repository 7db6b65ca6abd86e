"""Per-frame input features of the motion network, and the scale that turns its outputs back to metres.

Defined once here and shared by training, export and every runtime backend (numpy only, no torch), so
the numbers a model was trained on are the numbers it sees live.

One frame's observation of the canonical skeleton (core/skeleton.py) is

    world       (..., 22, 3)  metres, canonical axes (+Y up, +Z towards the camera), any origin
    image       (..., 22, 2)  normalised image coordinates: x / width, y / height, y pointing down
    visibility  (..., 22)     in [0, 1]

and becomes `features` (..., 22, NUM_FEATURES) float32, one row per joint (FEATURE_NAMES):

    0:3  world_xyz   root-relative world joints divided by the world torso length
    3:5  image_xy    image joints centred on the Hips, y flipped to point up, x stretched by the
                     aspect ratio (so both axes are in units of image height), divided by the
                     image-space torso length
    5    visibility  clipped to [0, 1]
    6:8  hips_xy     the Hips' image position relative to the image centre, same axes as image_xy but
                     not divided by the torso length (where the person is in the picture)
    8    log_torso   log(image torso length / REFERENCE_IMAGE_TORSO): how big the person is on screen
    9    present     1 when a person is observed this frame
The last three are per frame, repeated on every joint's row.

Torso length = mean of the left and right hip-to-shoulder distances (UpperLeg to UpperArm), which
stays put when the spine bends. It is measured on the current frame alone (no state, so training and
runtime cannot drift apart) and clipped to a plausible range, so a bad detection cannot blow the
scale up. A frame with nobody in view (all visibilities 0) gives all-zero features and the default
world scale.

The network predicts in the same normalised units; `denormalise` multiplies by the world scale to get
metres again (root-relative joints, future joints, root displacement). Rotations and contact
probabilities carry no scale.

Root trajectory target: `root_displacement` = the Hips' camera-space position minus that of the
previous frame (metres per frame, canonical axes; 0 on the first frame), divided by the world scale.
"""

from __future__ import annotations

import numpy as np

from liverig.core.skeleton import JOINT_INDEX, NUM_JOINTS

# The network's per-frame outputs, in the order the exported graphs return them (models/stcnn.py
# `step_outputs`) and every backend reads them (models/backends.py).
STEP_OUTPUTS = ("joints", "root", "rot6d", "contact", "future")

FEATURE_NAMES: tuple[str, ...] = (
    "world_x",
    "world_y",
    "world_z",
    "image_x",
    "image_y",
    "visibility",
    "hips_image_x",
    "hips_image_y",
    "log_image_torso",
    "present",
)
NUM_FEATURES = len(FEATURE_NAMES)
WORLD = slice(0, 3)  # where the normalised world joints sit in a feature row (the residual base)

WORLD_TORSO_CLIP = (0.25, 1.0)  # metres; an adult's hip-to-shoulder distance is ~0.45-0.55 m
DEFAULT_WORLD_TORSO = 0.5  # metres, the scale used when nobody is in view
IMAGE_TORSO_CLIP = (0.01, 2.0)  # image heights
REFERENCE_IMAGE_TORSO = 0.25  # image heights: a person filling about 3/4 of the picture

_SHOULDERS = (JOINT_INDEX["LeftUpperArm"], JOINT_INDEX["RightUpperArm"])
_HIPS = (JOINT_INDEX["LeftUpperLeg"], JOINT_INDEX["RightUpperLeg"])


def torso_length(points: np.ndarray) -> np.ndarray:
    """Mean left/right hip-to-shoulder distance of (..., J, D) points, shape (...)."""
    left = points[..., _SHOULDERS[0], :] - points[..., _HIPS[0], :]
    right = points[..., _SHOULDERS[1], :] - points[..., _HIPS[1], :]
    return 0.5 * (np.sqrt((left * left).sum(axis=-1)) + np.sqrt((right * right).sum(axis=-1)))


def _clip(x: np.ndarray, lo_hi: tuple[float, float]) -> np.ndarray:
    return np.minimum(np.maximum(x, lo_hi[0]), lo_hi[1])  # np.clip costs several times more per call


def normalise(
    world: np.ndarray, image: np.ndarray, visibility: np.ndarray, aspect: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Observation (any leading shape) -> (features (..., J, NUM_FEATURES) float32, world scale (...)).

    `aspect` is the image's width / height, so image distances are measured in one unit on both axes.
    Kept to few numpy calls (each costs ~1-2 us on small arrays): it runs on the node's latency path.
    """
    world = np.asarray(world, dtype=np.float64)
    image = np.asarray(image, dtype=np.float64)
    if world.shape[-2:] != (NUM_JOINTS, 3) or image.shape[-2:] != (NUM_JOINTS, 2):
        raise ValueError(f"expected world (..., {NUM_JOINTS}, 3) and image (..., {NUM_JOINTS}, 2)")
    visibility = _clip(np.asarray(visibility, dtype=np.float64), (0.0, 1.0))
    present = visibility.max(axis=-1) > 0
    scale = np.where(present, _clip(torso_length(world), WORLD_TORSO_CLIP), DEFAULT_WORLD_TORSO)
    img = image * (aspect, -1.0)  # x in image heights, y up like the world axes
    image_scale = _clip(torso_length(img), IMAGE_TORSO_CLIP)

    out = np.empty(world.shape[:-1] + (NUM_FEATURES,), dtype=np.float64)
    out[..., 0:3] = (world - world[..., :1, :]) / scale[..., None, None]
    out[..., 3:5] = (img - img[..., :1, :]) / image_scale[..., None, None]
    out[..., 5] = visibility
    out[..., 6:8] = img[..., None, 0, :] - (0.5 * aspect, -0.5)  # the Hips off the image centre
    out[..., 8] = np.log(image_scale / REFERENCE_IMAGE_TORSO)[..., None]
    out[..., 9] = 1.0
    out = np.where(present[..., None, None], out, 0.0).astype(np.float32)
    return out, scale.astype(np.float32)


def denormalise(x, scale, trailing_dims: int):
    """Multiply normalised outputs by the world scale; works on numpy arrays and torch tensors.

    `x` has the scale's shape followed by `trailing_dims` more axes, e.g. joints (..., J, 3) -> 2.
    """
    return x * scale.reshape(tuple(scale.shape) + (1,) * trailing_dims)


def root_displacement(root: np.ndarray) -> np.ndarray:
    """Camera-space Hips positions (..., T, 3) -> per-frame displacement (..., T, 3), 0 on frame 0."""
    root = np.asarray(root)
    step = np.diff(root, axis=-2)
    return np.concatenate([np.zeros_like(root[..., :1, :]), step], axis=-2)
