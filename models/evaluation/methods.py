"""The methods the evaluation's tables compare: each maps a test sequence to root-relative joints
(T, 22, 3), run causally frame by frame, and the node's filters wrapped to run over a sequence.

Methods, all run causally frame by frame:
    raw              the detector's joints as they come
    One Euro (Casiez)    tuned on the TRAIN sequences by the paper's procedure (tuning.py `tune_casiez`;
                     realdet: with the train holds, the still poses its first step judges by)
    One Euro (lag<=1)    the lowest acceleration error over a grid with lag <= 1 frame, also on TRAIN
    LSTM             models/lstm.py (torch; recurrent, so a whole-sequence forward is its stepping)
    ST-CNN           the shipped ONNX graph through models.backends (onnxruntime), one step per
                     frame, exactly as the node's motion stage runs it (`node_motion`): after the
                     side guard (runtime/sides.py, `guarded`), which swaps the detector's brief
                     left/right mix-ups back, and before the re-entry glide (runtime/reentry.py,
                     `glided`), the deadband (runtime/deadband.py, `deadbanded`) and the unseen-legs
                     stage (runtime/unseen.py, `stood`); every ST-CNN row has them, the
                     baselines do not
    ST-CNN without side guard  the network on the detector's observation as it is
    ST-CNN (smooth weights)  models/weights/stcnn_smooth.onnx, the alternative weights fine-tuned
                     for smoothness (`motion.weights`), run the same way
    ST-CNN + 1€      a light One Euro on the ST-CNN's output, tuned on VAL by the baseline's own
                     criterion (the lowest acceleration error with lag <= 1 frame)
    ST-CNN + bone hold (live)  `motion.body.lock_bones: true`: the ST-CNN, then bone lengths measured
                     from the first confident frames and held (runtime/body.py, `hold_bones`)
    ST-CNN + bone hold (profile)  the same with lengths from a body profile measured on another take
                     of the same person (`calibration_take`: the same clip through the next camera)
    ST-CNN + foot lock  (realdet) `motion.feet.lock: true`: planted feet held where they landed
                     (runtime/feet.py) on the node's root, settings tuned on TRAIN (tuning.py `tune_feet`)

The root (realdet only: placing the Hips needs the detector's image landmarks): `observed_root`, the
node's `RootFilter` (`root_filtered`, `node_root`) and the network's root head (`root_head_path`).
"""

from __future__ import annotations

import re

import numpy as np

from liverig.core.config import (
    DeadbandConfig,
    FeetConfig,
    MotionConfig,
    ReentryConfig,
    RootConfig,
    SidesConfig,
    UnseenConfig,
)
from liverig.core.skeleton import NUM_JOINTS
from liverig.core.types import MotionSample
from liverig.models import features as feat
from liverig.models.evaluation.metrics import FPS, seq_valid
from liverig.models.training.train import aspect
from liverig.runtime.deadband import Deadband
from liverig.runtime.feet import FootLock
from liverig.runtime.motion import RootFilter
from liverig.runtime.one_euro import OneEuroFilter
from liverig.runtime.reentry import Reentry
from liverig.runtime.sides import SideGuard
from liverig.runtime.unseen import UnseenLegs


def raw(seq: dict) -> np.ndarray:
    """The detector's joints; a frame without a detection holds the last one (nothing is scored there)."""
    world = seq["world"].astype(np.float64).copy()
    valid = seq_valid(seq)
    for t in range(1, len(world)):
        if not valid[t]:
            world[t] = world[t - 1]
    return world


def one_euro(seq: dict, min_cutoff, beta, d_cutoff: float = 1.0, x: np.ndarray | None = None) -> np.ndarray:
    """One Euro (runtime/one_euro.py) over root-relative joints (or any per-frame array `x`, e.g. the
    root), reset when a person reappears, as the node does. `min_cutoff` / `beta` may be arrays (C,):
    all C settings run at once on joints -> (T, C, 22, 3)."""
    x = raw(seq) if x is None else np.asarray(x, dtype=np.float64)
    valid = seq_valid(seq)
    fc, b = np.asarray(min_cutoff, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    many = fc.ndim > 0
    if many:
        fc, b = fc[:, None, None], b[:, None, None]
        x = np.broadcast_to(x[:, None], (len(x), len(fc), NUM_JOINTS, 3))
    filt = OneEuroFilter(fc, b, d_cutoff)
    out = np.empty(x.shape)
    for t in range(len(x)):
        if not valid[t]:
            filt.reset()
            out[t] = out[t - 1] if t else x[t]
            continue
        out[t] = filt(x[t], t / FPS)
    return out


def present_runs(valid: np.ndarray) -> list[slice]:
    """Contiguous runs of frames with a detection."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], valid.astype(int), [0]])))
    return [slice(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _hold_gaps(out: np.ndarray, valid: np.ndarray) -> np.ndarray:
    for t in range(1, len(out)):
        if not valid[t]:
            out[t] = out[t - 1]
    return out


def run_heads(model, seq: dict, heads: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A models.backends StreamingModel stepped frame by frame as the node runs it (runtime/
    learned_motion.py): stepped on frames with a detection only, reset whenever a person appears.
    Returns each of `heads` per frame, from one pass: `joints` (T, J, 3), `rot6d` as matrices
    (T, J, 3, 3), `root` (T, 3), the Hips' displacement since the previous frame, `contact` (T, 2)."""
    from liverig.models.backends import rot6d_to_matrix

    a, valid = aspect(seq), seq_valid(seq)
    shape = {
        "joints": seq["truth"].shape,
        "rot6d": seq["truth"].shape + (3,),
        "root": (len(valid), 3),
        "contact": (len(valid), 2),
    }
    out = {head: np.zeros(shape[head], dtype=np.float64) for head in heads}
    for run in present_runs(valid):
        model.reset()
        for t in range(run.start, run.stop):
            step = model.step(seq["world"][t], seq["image"][t], seq["visibility"][t], a)
            for head, values in out.items():
                values[t] = rot6d_to_matrix(step.rot6d) if head == "rot6d" else getattr(step, head)
    return {head: _hold_gaps(values, valid) for head, values in out.items()}


def run_backend(model, seq: dict, head: str = "joints") -> np.ndarray:
    """One head of `run_heads`."""
    return run_heads(model, seq, (head,))[head]


def run_torch(model, seq: dict) -> np.ndarray:
    """A torch model (ST-CNN window forward or LSTM) over each run of detected frames from zero
    history: causal, so the same as stepping it, and much faster for validation and tuning."""
    import torch

    features, scale = feat.normalise(seq["world"], seq["image"], seq["visibility"], aspect(seq))
    valid = seq_valid(seq)
    out = np.zeros(seq["truth"].shape, dtype=np.float64)
    with torch.no_grad():
        for run in present_runs(valid):
            y = model(torch.from_numpy(features[run])[None])["joints"][0].numpy()
            out[run] = feat.denormalise(y, scale[run], 2)
    return _hold_gaps(out, valid)


def hold_bones(joints: np.ndarray, seq: dict, profile: np.ndarray | None = None) -> np.ndarray:
    """The node's bone-length hold (runtime/body.py, configured as configs/default.yaml has it, with
    lock_bones on) run causally over one sequence: lengths measured live from the first confident
    frames, or taken from `profile`."""
    from liverig.core.config import load_config
    from liverig.runtime.body import BodyCalibration

    body = BodyCalibration(load_config().motion.body.model_copy(update={"lock_bones": True}), profile)
    out = joints.copy()
    for t in np.flatnonzero(seq_valid(seq)):
        out[t] = body(frame_sample(seq, t, joints[t])).joints
    return out


def body_profile(joints: np.ndarray, seq: dict) -> np.ndarray:
    """The bone lengths `run_node.py --calibrate-body` would save from this take (NaN: not measured)."""
    from liverig.core.config import load_config
    from liverig.runtime.body import BodyCalibration

    config = load_config().motion.body.model_copy(update={"lock_bones": False})
    body = BodyCalibration(config)
    for t in np.flatnonzero(seq_valid(seq)):
        body(frame_sample(seq, t, joints[t]))
        if body.calibrated:
            break
    return body.measured()


def calibration_take(i: int, seqs: list[dict]) -> int:
    """Another take of the same person for sequence i: the next sequence of the same clip (segment)
    seen by another camera; i itself when there is none."""

    def person(s: dict) -> str:
        return re.sub(r"_c\d+$", "", str(s.get("name", "")))

    same = [k for k, s in enumerate(seqs) if person(s) == person(seqs[i])]
    return same[(same.index(i) + 1) % len(same)]


def guarded(seq: dict, config: SidesConfig | None = None) -> dict:
    """The sequence's observation through runtime.sides.SideGuard (restarted when the person
    reappears), as the node's smoothed methods see it: the detector's brief left/right mix-ups of
    forearms and shins swapped back."""
    guard, valid = SideGuard(config or SidesConfig()), seq_valid(seq)
    out = {k: (np.array(v) if k in ("world", "image", "visibility") else v) for k, v in seq.items()}
    for t in range(len(valid)):
        if not valid[t]:
            guard.reset()
            continue
        sample = guard(frame_sample(out, t, out["world"][t]))
        out["world"][t], out["visibility"][t], out["image"][t] = (
            sample.joints,
            sample.confidence,
            sample.image,
        )
    return out


def observed_root(seq: dict) -> np.ndarray:
    """The Hips placed by the node's reprojection, held through frames without a detection."""
    return _hold_gaps(seq["observed_root"].astype(np.float64).copy(), seq_valid(seq))


def root_filtered(seq: dict, ray: tuple, distance: tuple) -> np.ndarray:
    """runtime.motion.RootFilter over a sequence, restarted when the person reappears, as the node
    does. `ray`, `distance`: (min_cutoff, beta) pairs, each may be arrays (C,) -> (T, C, 3)."""
    x, valid = observed_root(seq), seq_valid(seq)
    root_filter = RootFilter.from_settings((*ray, 1.0), (*distance, 1.0))
    out = np.empty((len(x), *np.broadcast(*ray, *distance).shape, 3))
    for t in range(len(x)):
        if not valid[t]:
            root_filter.reset()
            out[t] = out[t - 1] if t else 0.0
            continue
        out[t] = root_filter.smooth(x[t], t / FPS)  # the batched form: every setting at once
    return out


def frame_sample(seq: dict, t: int, joints: np.ndarray, root=None, contact=None) -> MotionSample:
    """Frame t of a sequence as the node's motion filters take it (core/types.py MotionSample)."""
    root = np.zeros(3) if root is None else root
    count = len(joints)
    confidence = seq["visibility"][t] if "visibility" in seq else np.ones(count)  # a truth-only sequence
    image = seq["image"][t] if "image" in seq else np.zeros((count, 2))
    time_s = float(seq["time_s"][t]) if "time_s" in seq else t / FPS  # a recording's own clock
    return MotionSample(time_s, joints, confidence, image, root, aspect(seq), contact)


def _through(stage, joints: np.ndarray, seq: dict) -> np.ndarray:
    """A motion filter of the node (`reset()` + one call on a MotionSample) over a sequence's joints,
    restarted when the person reappears, as the node runs it."""
    valid, out = seq_valid(seq), joints.copy()
    for t in range(len(out)):
        if not valid[t]:
            stage.reset()
            continue
        out[t] = stage(frame_sample(seq, t, joints[t])).joints
    return _hold_gaps(out, valid)


def stood(joints: np.ndarray, seq: dict) -> np.ndarray:
    """runtime.unseen.UnseenLegs after the network: legs out of view for a while eased to standing."""
    return _through(UnseenLegs(UnseenConfig()), joints, seq)


def glided(joints: np.ndarray, seq: dict) -> np.ndarray:
    """runtime.reentry.Reentry after the network: joints seen again after an occlusion glide back."""
    return _through(Reentry(ReentryConfig()), joints, seq)


def deadbanded(joints: np.ndarray, seq: dict, config: DeadbandConfig | None = None) -> np.ndarray:
    """runtime.deadband.Deadband after the glide: joints that stay put held calm."""
    return _through(Deadband(config or DeadbandConfig()), joints, seq)


def node_motion(model, seq: dict, motion: MotionConfig | None = None) -> np.ndarray:
    """The network as the node runs it: the node's own motion stage (runtime/motion.py, configured as
    configs/default.yaml has it: side guard, the network and its share, re-entry glide, deadband,
    bone lengths, root filter, unseen legs; or as `motion` says) around `model`, frame by frame;
    nobody in view: the last joints held. tests/test_eval_matches_node.py checks it against a replay
    through run_node.py."""
    from liverig.core.config import load_config
    from liverig.runtime.learned_motion import LearnedSmoother
    from liverig.runtime.motion import MotionStage

    config = load_config()
    motion = config.motion if motion is None else motion
    stage = MotionStage(motion, config.perception, LearnedSmoother(motion, model))
    valid, out = seq_valid(seq), np.zeros(np.shape(seq["world"]), dtype=np.float64)
    root = observed_root(seq)
    for t in range(len(valid)):
        if valid[t]:
            out[t] = stage.follow(frame_sample(seq, t, seq["world"][t], root[t])).joints
        else:
            stage.lost(float(seq["time_s"][t]) if "time_s" in seq else t / FPS)
    return _hold_gaps(out, valid)


def shipped_root_settings() -> dict[str, tuple[float, float]]:
    """The node's RootFilter settings (configs/default.yaml, `motion.root`) as (min_cutoff, beta)."""
    node = RootConfig()
    return {
        "ray": (node.ray.min_cutoff, node.ray.beta),
        "distance": (node.distance.min_cutoff, node.distance.beta),
    }


def node_root(seq: dict) -> np.ndarray:
    """The Hips in camera space as the node places them: the reprojected root through RootFilter."""
    shipped = shipped_root_settings()
    return root_filtered(seq, shipped["ray"], shipped["distance"])


def foot_locked(
    joints: np.ndarray, root: np.ndarray, contact: np.ndarray, seq: dict, config: FeetConfig
) -> np.ndarray:
    """runtime.feet.FootLock over a sequence on the node's root, restarted when the person
    reappears, as the node does."""
    valid, lock, out = seq_valid(seq), FootLock(config), joints.copy()
    for t in range(len(out)):
        if not valid[t]:
            lock.reset()
            continue
        out[t] = lock(frame_sample(seq, t, joints[t], root[t], contact[t])).joints
    return _hold_gaps(out, valid)


def root_head_path(model, seq: dict, correction: float = 0.1) -> np.ndarray:
    """The node's previous root: the network's per-frame Hips displacement integrated and pulled
    towards the reprojected root by `correction` per frame."""
    step, x, valid = run_backend(model, seq, "root"), observed_root(seq), seq_valid(seq)
    out = x.copy()
    for run in present_runs(valid):
        for t in range(run.start + 1, run.stop):
            out[t] = out[t - 1] + step[t]
            out[t] += correction * (x[t] - out[t])
    return _hold_gaps(out, valid)
