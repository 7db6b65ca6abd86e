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
from dataclasses import replace

import numpy as np

from liverig.core import skeleton
from liverig.core.config import MotionConfig, OneEuroConfig, PerceptionConfig, RootConfig
from liverig.core.types import MotionSample, Observation, Pose
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
        return cls.from_settings(
            (ray.min_cutoff, ray.beta, ray.d_cutoff), (distance.min_cutoff, distance.beta, distance.d_cutoff)
        )

    def reset(self) -> None:
        self._filter.reset()

    def __call__(self, sample: MotionSample) -> MotionSample:
        return replace(sample, root=self.smooth(sample.root, sample.time_s))

    def smooth(self, root: np.ndarray, time_s: float) -> np.ndarray:
        """Root (3,) in canonical camera axes (the person at negative Z) at `time_s` -> smoothed root
        (C, 3) with C settings side by side (the evaluation's tuning runs them so)."""
        distance = np.maximum(-np.asarray(root[2:], dtype=np.float64), MIN_DISTANCE_M)
        smoothed = self._filter(np.concatenate([root[:2] / distance, distance]), time_s)
        distance = smoothed[..., 2:]
        return np.concatenate([smoothed[..., :2] * distance, -distance], axis=-1)


class RawSmoother:
    """The `raw` method's smoother: the detector's joints as they are."""

    def reset(self) -> None:
        pass

    def __call__(self, sample: MotionSample) -> MotionSample:
        return sample


class OneEuroSmoother:
    """The `one_euro` method's smoother: a One Euro filter on every joint coordinate."""

    def __init__(self, config: OneEuroConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        c = self.config
        self._joints = OneEuroFilter(c.min_cutoff, c.beta, c.d_cutoff)

    def __call__(self, sample: MotionSample) -> MotionSample:
        return replace(sample, joints=self._joints(sample.joints, sample.time_s))


class MotionStage:
    """Observation -> Pose. The motion filters (core/types.py MotionSample: each `reset()` plus one
    call on a sample) run in a plain loop, in the order `motion_filters` builds from the config;
    around them: the finite-landmark guard, absence handling (hold, then ease to rest) and Pose
    assembly. `smoother` is the method's own filter (raw, One Euro, the learned model)."""

    def __init__(self, config: MotionConfig, perception: PerceptionConfig, smoother) -> None:
        self.config = config
        self.fov_deg = perception.horizontal_fov_deg
        self.smoother = smoother
        self.smoothed = not isinstance(smoother, RawSmoother)
        profile = load_profile(config.body.profile) if config.body.profile else None
        smoothed = self.smoothed
        # Each optional filter is None when the config (or the method) leaves it out.
        self.side_guard = SideGuard(config.sides) if config.sides.guard and smoothed else None
        self.reentry = Reentry(config.reentry) if config.reentry.glide and smoothed else None
        # stcnn only: One Euro already holds still poses calm (it is the classic filter, kept as it is)
        calm = config.deadband.enabled and config.method == "stcnn"
        self.deadband = Deadband(config.deadband) if calm and smoothed else None
        self.body = BodyCalibration(config.body, profile)
        self.root_filter = RootFilter.from_config(config.root)
        self.foot_lock = FootLock(config.feet) if config.feet.lock else None
        self.unseen_legs = UnseenLegs(config.unseen) if config.unseen.legs and smoothed else None
        held = (self.body, self.root_filter) if smoothed else ()  # raw: the detector's bones and root
        self.filters = [
            stage
            for stage in (
                self.side_guard,
                smoother,
                self.reentry,
                self.deadband,
                *held,
                self.foot_lock,
                self.unseen_legs,
            )
            if stage is not None
        ]
        self.finite = FiniteLandmarks()
        self._rest = skeleton.rest_pose()
        self._last: Pose | None = None
        self._absent_since: float | None = None

    def reset(self) -> None:
        """Forget the motion's history (the person was lost; a new source). Bone lengths measured so
        far stay (`body.forget()` drops them)."""
        self.finite.reset()
        for stage in self.filters:
            stage.reset()
        self._last = None
        self._absent_since = None

    def follow(self, sample: MotionSample) -> MotionSample:
        """A frame with the person in view through every filter, in order; after an absence the
        filters restart first (and, after a long one, the bone lengths are measured afresh).
        The evaluator (models/evaluation/methods.py `node_motion`) calls this too."""
        if self._absent_since is not None:
            long_absence = sample.time_s - self._absent_since > self.config.rest_after_s
            self.reset()
            if long_absence:
                self.body.forget()
        for stage in self.filters:
            sample = stage(sample)
        return sample

    def lost(self, time_s: float) -> None:
        """A frame with nobody in view: the absence starts (if it had not)."""
        if self._absent_since is None:
            self._absent_since = time_s

    def __call__(self, obs: Observation) -> Pose:
        """One observation through the guard and the filters (or the absence handling) to a Pose."""
        if obs.present:
            obs = self.finite(obs)
        if obs.present:
            joints, confidence, image, root = canonical_observation(obs, self.fov_deg)
            width, height = obs.image_size
            sample = self.follow(
                MotionSample(obs.time_s, joints, confidence, image, root, width / max(height, 1))
            )
            pose = Pose(
                obs.index,
                obs.time_s,
                obs.timing,
                True,
                sample.joints,
                sample.confidence,
                sample.root,
                sample.contact,
            )
            self._last = pose
        else:
            pose = self._absent(obs)
        obs.timing.mark("motion")
        return pose

    def _absent(self, obs: Observation) -> Pose:
        self.lost(obs.time_s)
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
