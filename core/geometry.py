"""Rotation geometry on batches of vectors and 3x3 matrices, shared by retargeting
(runtime/retarget.py) and the training truth (models/rotations.py). scipy's Rotation builds,
interpolates and converts rotations; the only thing done by hand is aligning two vector pairs, a
change of basis between orthonormal frames. Everything works on all bones of a wave at once:
per-call overhead, not arithmetic, is the cost."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

EPS = 1e-9


def units(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise unit vectors and norms; zero or NaN rows get norm 0 (and are left unscaled)."""
    norms = np.sqrt(np.einsum("...i,...i->...", vectors, vectors))
    good = norms > EPS  # False for NaN too
    return vectors / np.where(good, norms, 1.0)[..., None], np.where(good, norms, 0.0)


def dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


_LEVI_CIVITA = np.zeros((3, 3, 3))
_LEVI_CIVITA[0, 1, 2] = _LEVI_CIVITA[1, 2, 0] = _LEVI_CIVITA[2, 0, 1] = 1.0
_LEVI_CIVITA[0, 2, 1] = _LEVI_CIVITA[2, 1, 0] = _LEVI_CIVITA[1, 0, 2] = -1.0


def crosses(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross products (np.cross costs ten times more on small arrays)."""
    return np.einsum("ijk,...j,...k->...i", _LEVI_CIVITA, a, b)


def perpendiculars(directions: np.ndarray) -> np.ndarray:
    helpers = np.eye(3)[np.argmin(np.abs(directions), axis=-1)]
    return units(helpers - dots(helpers, directions)[..., None] * directions)[0]


def orthonormal_frames(directions: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """Orthonormal frames (n, 3, 3): first column the direction, second the part of `side` across it."""
    sides, norms = units(sides - dots(sides, directions)[..., None] * directions)
    if not np.all(norms):
        sides = np.where((norms > 0)[..., None], sides, perpendiculars(directions))
    return np.stack([directions, sides, crosses(directions, sides)], axis=-1)


def swing_rotations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations (n, 3, 3) taking unit vectors a onto unit vectors b (turns about a × b)."""
    axes = crosses(a, b)
    sines = np.sqrt(dots(axes, axes))
    cosines = dots(a, b)
    angles = np.arctan2(sines, cosines)  # before the fix-up below: opposite vectors give pi
    opposite = (sines < 1e-9) & (cosines < 0)
    if np.any(opposite):  # half a turn about any axis across a
        axes = np.where(opposite[:, None], perpendiculars(a), axes)
        sines = np.where(opposite, 1.0, sines)
    return Rotation.from_rotvec(axes * (angles / np.where(sines > 0, sines, 1.0))[:, None]).as_matrix()
