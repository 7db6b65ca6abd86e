"""The Motion stage: Observation (33 MediaPipe landmarks) -> Pose (canonical skeleton, smoothed).

Methods (config `motion.method`):
    stcnn      the learned streaming model (models/), default
    one_euro   One Euro filter per coordinate (Casiez 2012): the baseline
    raw        the detector's output, unsmoothed
Landmarks the detector returned as NaN or infinity count as unseen (`FiniteLandmarks`). The smoothed
methods (one_euro, stcnn) first undo the detector's brief left/right mix-ups of the
forearms and shins (runtime/sides.py, `motion.sides`). All share what happens when nobody is in
view: hold the last pose for `rest_after_s`, then ease to the rest pose over `rest_ease_s`; a
returning person restarts the filter so nothing drags across.
The smoothed methods then let joints seen again after an occlusion glide back instead of jumping
(runtime/reentry.py, `motion.reentry`), hold joints that stay put calm (stcnn only:
runtime/deadband.py, `motion.deadband`), measure the user's bone lengths (runtime/body.py,
`motion.body`; someone returning after the pose went to rest is measured afresh; with `lock_bones`
the bones are held at them) and smooth the Hips' position in camera space (`RootFilter`,
`motion.root`); with `motion.feet.lock`, feet the model says are planted are then held where they
landed (runtime/feet.py; stcnn only); last, legs out of view for a while ease into a standing pose
(runtime/unseen.py, `motion.unseen`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from liverig.core import skeleton
from liverig.core.config import MotionConfig, PerceptionConfig, RootConfig
from liverig.core.types import Observation, Pose
from liverig.runtime.body import BodyCalibration, load_profile
from liverig.runtime.deadband import Deadband
from liverig.runtime.ease import smoothstep
from liverig.runtime.feet import FootLock
from liverig.runtime.one_euro import OneEuroFilter
from liverig.runtime.reentry import Reentry
from liverig.runtime.sides import SideGuard
from liverig.runtime.unseen import UnseenLegs


def canonical_observation(obs: Observation, fov_deg: float):
    """Joints (J,3) root-relative, confidence (J,), image joints (J,2), root (3,) for a present person."""
    joints, confidence = skeleton.landmarks_to_joints(obs.world_landmarks, obs.visibility)
    image = skeleton.image_joints(obs.image_landmarks)
    root = skeleton.estimate_root_position(
        obs.world_landmarks, obs.image_landmarks, obs.visibility, obs.image_size, fov_deg
    )
    return joints, confidence, image, root


MIN_DISTANCE_M = 0.1  # a reprojected body nearer than this to the lens is treated as this near


class FiniteLandmarks:
    """Landmarks that are NaN or infinite become unseen (visibility 0), placed where that landmark
    last was (or at the body's centre); a frame with no finite landmark at all is "nobody in view".

    Why: one NaN handed on would stay in every filter's memory (the network's 81-frame history, the
    root filter) and the avatar would vanish until the person left. The detector should never send
    one, but a recording edited by hand or a future detector might."""

    def __init__(self) -> None:
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # image, world landmarks

    def reset(self) -> None:
        self._last = None

    def __call__(self, obs: Observation) -> Observation:
        image, world, visibility = obs.image_landmarks, obs.world_landmarks, obs.visibility
        bad = ~(np.isfinite(image).all(axis=1) & np.isfinite(world).all(axis=1) & np.isfinite(visibility))
        if not bad.any():
            self._last = (image, world)
            return obs
        if bad.all():
            return Observation.absent(obs.index, obs.time_s, obs.timing, obs.image_size)
        if self._last is not None:
            fill_image, fill_world = self._last[0][bad], self._last[1][bad]
        else:
            fill_image, fill_world = image[~bad].mean(axis=0), world[~bad].mean(axis=0)
        image, world, visibility = image.copy(), world.copy(), visibility.copy()
        image[bad], world[bad], visibility[bad] = fill_image, fill_world, 0.0
        self._last = (image, world)
        return dataclasses.replace(obs, image_landmarks=image, world_landmarks=world, visibility=visibility)


class RootFilter:
    """The Hips' camera-space position, smoothed across and along the camera's view ray separately.

    One camera places the hips precisely across the image (the ray's direction, x/-z and y/-z: the
    image position of the hips) but poorly along it (the distance, which comes from the body's
    apparent size: ~10 cm of mostly slow error). So the direction gets a light One Euro filter (at
    most a frame of lag) and the distance a hard one; filtering x, y, z alike would either let the
    distance noise through or make sideways steps lag (models/EVAL.md, "Root").

    One One Euro filter runs on (direction x, direction y, distance) with a setting per element;
    settings of shape (..., 3) run that many filters at once (the evaluation tunes them so).
    """

    def __init__(self, min_cutoff, beta, d_cutoff=1.0) -> None:
        self._filter = OneEuroFilter(min_cutoff, beta, d_cutoff)

    @classmethod
    def from_settings(cls, ray: tuple, distance: tuple) -> RootFilter:
        """`ray`, `distance`: (min_cutoff, beta, d_cutoff) each; any value may be an array (C,) of
        settings, which then run side by side."""
        r = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (*ray, *distance)))
        return cls(*(np.stack([r[k], r[k], r[k + 3]], axis=-1) for k in range(3)))

    @classmethod
    def from_config(cls, config: RootConfig) -> RootFilter:
        ray, distance = config.ray, config.distance
        return cls.from_settings((ray.min_cutoff, ray.beta, ray.d_cutoff),
                                 (distance.min_cutoff, distance.beta, distance.d_cutoff))  # fmt: skip

    def reset(self) -> None:
        self._filter.reset()

    def __call__(self, root: np.ndarray, time_s: float) -> np.ndarray:
        """Root (3,) in canonical camera axes (the person at negative Z) at `time_s` -> smoothed root."""
        distance = np.maximum(-np.asarray(root[2:], dtype=np.float64), MIN_DISTANCE_M)
        smoothed = self._filter(np.concatenate([root[:2] / distance, distance]), time_s)
        distance = smoothed[..., 2:]
        return np.concatenate([smoothed[..., :2] * distance, -distance], axis=-1)


class MotionStage:
    """Base: absence handling, bone lengths, the root filter and Pose assembly; subclasses implement
    `_smooth` (and `reset`, calling this one's)."""

    smoothed = True  # hold bone lengths and filter the root (False: the detector's output as it is)

    def __init__(self, config: MotionConfig, perception: PerceptionConfig) -> None:
        self.config = config
        self.fov_deg = perception.horizontal_fov_deg
        profile = load_profile(config.body.profile) if config.body.profile else None
        self.body = BodyCalibration(config.body, profile)
        self.root_filter = RootFilter.from_config(config.root)
        self.foot_lock = FootLock(config.feet) if config.feet.lock else None
        self.side_guard = SideGuard(config.sides) if config.sides.guard and self.smoothed else None
        self.unseen_legs = UnseenLegs(config.unseen) if config.unseen.legs and self.smoothed else None
        self.reentry = Reentry(config.reentry) if config.reentry.glide and self.smoothed else None
        # stcnn only: One Euro already holds still poses calm (it is the classic filter, kept as it is)
        calm = config.deadband.enabled and config.method == "stcnn"
        self.deadband = Deadband(config.deadband) if calm else None
        self.finite = FiniteLandmarks()
        self._rest = skeleton.rest_pose()
        self._last: Pose | None = None
        self._absent_since: float | None = None

    def reset(self) -> None:
        """Forget all history (a new person, or a new source)."""
        self.root_filter.reset()
        self.finite.reset()
        for stage in (self.foot_lock, self.side_guard, self.unseen_legs, self.reentry, self.deadband):
            if stage is not None:
                stage.reset()

    def _smooth(self, obs: Observation, joints, confidence, image):
        """Return (joints, foot_contact or None) for a present person."""
        raise NotImplementedError

    def step(self, obs: Observation) -> Pose:
        if obs.present:
            obs = self.finite(obs)
        if obs.present:
            if self._absent_since is not None:
                self.reset()
                if obs.time_s - self._absent_since > self.config.rest_after_s:
                    self.body.reset()
            self._absent_since = None
            joints, confidence, image, root = canonical_observation(obs, self.fov_deg)
            if self.side_guard is not None:
                joints, confidence, image = self.side_guard(joints, confidence, image, obs.time_s)
            joints, contact = self._smooth(obs, joints, confidence, image)
            if self.reentry is not None:
                joints = self.reentry(joints, confidence, obs.time_s)
            if self.deadband is not None:
                joints = self.deadband(joints, obs.time_s)
            if self.smoothed:
                joints = self.body.apply(joints, confidence)
                root = self.root_filter(root, obs.time_s)
            if self.foot_lock is not None and contact is not None:
                joints = self.foot_lock(joints, root, contact, obs.time_s)
            if self.unseen_legs is not None:
                joints = self.unseen_legs(joints, confidence, obs.time_s)
            pose = Pose(obs.index, obs.time_s, obs.timing, True, joints, confidence, root, contact)
            self._last = pose
        else:
            pose = self._absent(obs)
        obs.timing.mark("motion")
        return pose

    def _absent(self, obs: Observation) -> Pose:
        if self._absent_since is None:
            self._absent_since = obs.time_s
        last = self._last
        if last is None:
            joints, root = self._rest, np.array([0.0, 0.0, -3.0])
        else:
            waited = obs.time_s - self._absent_since - self.config.rest_after_s
            blend = float(smoothstep(waited / self.config.rest_ease_s))
            joints = (1 - blend) * last.joints + blend * self._rest
            root = last.root_position
        zeros = np.zeros(skeleton.NUM_JOINTS)
        return Pose(obs.index, obs.time_s, obs.timing, False, joints.copy(), zeros, root.copy())


class RawMotion(MotionStage):
    smoothed = False  # the detector's output, as it is

    def _smooth(self, obs, joints, confidence, image):
        return joints, None


class OneEuroMotion(MotionStage):
    def __init__(self, config: MotionConfig, perception: PerceptionConfig) -> None:
        super().__init__(config, perception)
        self.reset()

    def reset(self) -> None:
        super().reset()
        p = self.config.one_euro
        self._joints = OneEuroFilter(p.min_cutoff, p.beta, p.d_cutoff)

    def _smooth(self, obs, joints, confidence, image):
        return self._joints(joints, obs.time_s), None
