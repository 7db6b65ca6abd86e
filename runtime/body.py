"""Body calibration: measure the user's bone lengths once, then hold them fixed.

Why: a body's bones keep their length; per-frame estimates do not. The detector's depth error leaks
into every bone and the motion model passes some of it on (bone-length CV ≈ 10 % on real detector
output, models/EVAL.md). With the lengths held, recorded joints are a rigid skeleton.
The corrections turn the bones a little from frame to frame (rotational jitter 5.4 vs 4.8 °/frame on
real detector output), so holding is opt-in: the avatar and BVH rigs have fixed bones of their own.

Each bone gathers its length from the frames in which both its ends are confidently seen; left and
right partners share one pool (a body is close to symmetric, and pooling halves the noise). Once a
pool holds `calibration_frames` frames' worth of samples its median is frozen; until then the
running median is used. Bones never seen (legs under a desk) keep the motion stage's length. A body
profile written by `run_node.py --calibrate-body PATH` preloads frozen lengths, skipping the wait.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from liverig.core.config import BodyConfig
from liverig.core.safe_io import read_yaml_file
from liverig.core.skeleton import (
    BONE_CHILDREN,
    BONE_PARENTS,
    BONES,
    JOINT_NAMES,
    MIRROR,
    NUM_JOINTS,
    bone_lengths,
)
from liverig.core.types import MotionSample

PROFILE_VERSION = 1
BONE_NAMES: tuple[str, ...] = tuple(JOINT_NAMES[c] for _, c in BONES)  # a bone is named by its child
# Left/right bone pairs share a pool: GROUP[b] is the pool of bone b.
_GROUP_KEYS = sorted({tuple(sorted((c, int(MIRROR[c])))) for _, c in BONES})
GROUP = np.array([_GROUP_KEYS.index(tuple(sorted((c, int(MIRROR[c]))))) for _, c in BONES])
GROUP_SIZE = np.bincount(GROUP)


class BodyProfileError(ValueError):
    """A body profile that cannot be used; the message names the file and the key."""


# INCIDENCE @ joints gives every bone's vector (child - parent).
INCIDENCE = np.zeros((len(BONES), NUM_JOINTS))
INCIDENCE[np.arange(len(BONES)), BONE_CHILDREN] = 1.0
INCIDENCE[np.arange(len(BONES)), BONE_PARENTS] -= 1.0
# SPREAD @ (per-bone excess vectors) moves the joints: each end takes half of its bone's correction
# (the Hips none: they are the root and stay at the origin), averaged over the joint's bones.
SPREAD = np.zeros((NUM_JOINTS, len(BONES)))
for _b, (_p, _c) in enumerate(BONES):
    SPREAD[_p, _b] = 0.0 if _p == 0 else 0.5
    SPREAD[_c, _b] = -1.0 if _p == 0 else -0.5
SPREAD /= np.maximum(np.abs(INCIDENCE).sum(axis=0), 1.0)[:, None]


def project(joints: np.ndarray, lengths: np.ndarray, iterations: int, relaxation: float = 1.5) -> np.ndarray:
    """Joints (..., J, 3) moved little to give every bone its length (B,) (NaN: unconstrained):
    Jacobi projection of the length constraints (position-based dynamics), over-relaxed.

    Why not rebuild the chain from the Hips outwards with fixed lengths: that adds every upstream
    bone's direction noise to a hand or a foot; projecting spreads each correction over both ends.
    Measured on real detector output (models/EVAL.md): rebuilding costs ~4 mm MPJPE, projecting ~1."""
    lengths = np.asarray(lengths, dtype=np.float64)
    free = np.isnan(lengths)
    target = np.where(free, 1.0, lengths)
    step = relaxation * SPREAD
    x = np.array(joints, dtype=np.float64)
    for _ in range(iterations):
        vec = INCIDENCE @ x
        norm = np.sqrt(np.einsum("...i,...i->...", vec, vec))
        excess = np.where(free, 0.0, 1.0 - target / np.maximum(norm, 1e-9))
        x += step @ (excess[..., None] * vec)
    return x


def load_profile(path: str | Path) -> np.ndarray:
    """Bone lengths (B,) in metres from a body profile; NaN for bones the profile leaves out."""
    path = Path(path)
    data = read_yaml_file(
        path, "body profile", BodyProfileError
    )  # regular files, size-, depth-limited, UTF-8
    if not isinstance(data, dict) or data.get("liverig_body_profile") != PROFILE_VERSION:
        raise BodyProfileError(f"body profile {path}: expected 'liverig_body_profile: {PROFILE_VERSION}'")
    bones = data.get("bones")
    if not isinstance(bones, dict):
        raise BodyProfileError(f"body profile {path}: key 'bones' must map bone names to metres")
    lengths = np.full(len(BONES), np.nan)
    for name, value in bones.items():
        if name not in BONE_NAMES:
            name = " ".join(str(name).split())[:40]
            raise BodyProfileError(
                f"body profile {path}: key 'bones.{name}': unknown bone (known: {', '.join(BONE_NAMES)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.005 <= value <= 1.5:
            raise BodyProfileError(
                f"body profile {path}: key 'bones.{name}': expected a length in "
                f"metres between 0.005 and 1.5, got {repr(value)[:40]}"
            )
        lengths[BONE_NAMES.index(name)] = float(value)
    return lengths


class BodyCalibration:
    """A motion filter (core/types.py MotionSample): record confident bone lengths, then hold the
    joints to the calibrated ones. `reset()` (the person was lost a moment) keeps what was measured:
    it is the same person; `forget()` measures afresh (someone new may have stepped in)."""

    def __init__(self, config: BodyConfig, profile: np.ndarray | None = None) -> None:
        self.config = config
        self.profile = np.full(len(BONES), np.nan) if profile is None else np.asarray(profile, float)
        self.forget()

    def reset(self) -> None:
        """A brief loss of the person: the lengths measured so far carry over."""

    def forget(self) -> None:
        """Measure afresh (someone new may have stepped in); profile lengths stay."""
        needed = self.config.calibration_frames * GROUP_SIZE
        self._pools = [np.empty(n) for n in needed]
        self._counts = np.zeros(len(GROUP_SIZE), dtype=int)
        self.lengths = self.profile.copy()
        self._frozen = np.isfinite(self.profile)

    @property
    def calibrated(self) -> bool:
        """Every bone frozen (from the profile or measured)."""
        return bool(self._frozen.all())

    def measured(self) -> np.ndarray:
        """(B,) lengths frozen so far (NaN for the rest): what a body profile stores."""
        return np.where(self._frozen, self.lengths, np.nan)

    def __call__(self, sample: MotionSample) -> MotionSample:
        return replace(sample, joints=self._hold(sample.joints, sample.confidence))

    def _hold(self, joints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        if self.calibrated:
            return self._locked(joints)
        seen = np.minimum(confidence[BONE_PARENTS], confidence[BONE_CHILDREN])
        seen = seen >= self.config.min_confidence
        norm = bone_lengths(joints)
        grown = set()
        for b in np.flatnonzero(seen & ~self._frozen):
            g = GROUP[b]
            if self._counts[g] < len(self._pools[g]):
                self._pools[g][self._counts[g]] = norm[b]
                self._counts[g] += 1
                grown.add(g)
        for g in grown:
            bones = GROUP == g
            self.lengths[bones] = np.median(self._pools[g][: self._counts[g]])
            self._frozen[bones] = self._counts[g] == len(self._pools[g])
        return self._locked(joints)

    def _locked(self, joints: np.ndarray) -> np.ndarray:
        if not self.config.lock_bones:
            return joints
        return project(joints, self.lengths, self.config.projection_iterations)
