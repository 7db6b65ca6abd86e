"""Evaluate the motion models against the baselines: one command, one table, the same test sequences
for every method.

    python -m liverig.models.evaluation.evaluate --data sim  # simulated detector on the test clips
    python -m liverig.models.evaluation.evaluate --data realdet  # real PoseLandmarker on rendered test clips
    python -m liverig.models.evaluation.evaluate --recording OUT.jsonl --truth T.npz  # score a node recording
    python -m liverig.models.evaluation.evaluate --write-replays DIR  # realdet test sequences as node replays

Methods, all run causally frame by frame:
    raw              the detector's joints as they come
    One Euro (Casiez)    tuned on the TRAIN sequences by the paper's procedure (`tune_casiez`; realdet:
                     with the train holds, the still poses its first step judges by)
    One Euro (lag<=1)    the lowest acceleration error over a grid with lag <= 1 frame, also on TRAIN
    LSTM             models/lstm.py (torch; recurrent, so a whole-sequence forward is its stepping)
    ST-CNN           the shipped ONNX graph through models.backends (onnxruntime), one step per
                     frame, exactly as the node's motion stage runs it (`node_motion`): after the
                     side guard (runtime/sides.py, `guarded`), which swaps the detector's brief
                     left/right mix-ups back, and before the re-entry glide (runtime/reentry.py,
                     `glided`), the deadband (runtime/deadband.py, `deadbanded`) and the unseen-legs
                     stage (runtime/unseen.py, `stood`); every ST-CNN row below has them, the
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
                     (runtime/feet.py) on the node's root, settings tuned on TRAIN (`tune_feet`)

Test sequences. sim: the test clips (models/training/mocap.py) un-augmented, each seen by CAMERAS seeded
random
cameras through models/training/simulate.py, plus a 3 s hold of each clip's middle pose ("still": the user who
stands still; the mocap has almost no still frames, and jitter is what users see there). realdet: the
cached real-detector test sequences (models/training/realdet.py). Frames where the detector found nobody are
left out of every metric (every method still steps through them, as the node would).

Metrics (millimetres, frames at 30 fps; joints root-relative, all 22 including the Hips):
    MPJPE        mean joint position error
    PA-MPJPE     the same after the best similarity transform per frame (rotation, translation, scale)
    accel        mean |second difference of output - that of truth| (mm/frame^2)
    jitter       mean |velocity of output - that of truth| on still frames (truth joints slower than
                 STILL_MM mm/frame on average, in runs of >= STILL_RUN frames) (mm/frame)
    lag          frames by which the output's joint velocities trail the truth's: the argmax of their
                 cross-correlation over shifts -10..10, refined by a parabola (sub-frame)
    bone CV      per sequence and bone, std / mean of the length; mean over bones and sequences (%)
    skate        foot (ankle and toe) speed while the truth foot is in contact (models.training.train
                 contact_labels, heights along the world's up), output joints placed on the TRUE root
                 path (cm/s); the truth row shows the floor the contact heuristic allows
    flips        frames where an arm or leg pair is closer to the truth when left and right are swapped
                 (swapped error < half the unswapped, limbs >= 15 cm apart)

Injected into the test observations, every method rerun on them (seeded): left/right swap bursts
(`swap_line`: flipped frames) and occlusion bursts (`occlusion_line`: the occluded joints' error and
how far they jump back once seen again, the issue's "never a frozen limb jumping back").

realdet only (placing the Hips needs the detector's image landmarks): a Root table, the Hips in camera
space as the bridges send them (`root_score`: error, acceleration error and lag across and along the
view; foot speed with the joints on each row's own root), with the node's RootFilter settings re-tuned
on the tuning set (`tune_root`) and flagged if they differ from configs/default.yaml; the contact
head's precision and recall against the truth's contact labels; the foot lock's settings tuned
on the tuning set (`tune_feet`), flagged the same way; and holding still (`holds_section`): still
jitter on the held standing poses of the test clips (models/training/realdet.py `--holds`), which the moving
test clips hardly contain.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liverig.core.config import (
    DeadbandConfig,
    FeetConfig,
    ReentryConfig,
    RootConfig,
    SidesConfig,
    UnseenConfig,
)
from liverig.core.skeleton import BONES, JOINT_INDEX, LIMB_PAIRS, NUM_JOINTS
from liverig.core.types import MotionSample
from liverig.models import features as feat
from liverig.models.training.simulate import LIMBS
from liverig.models.training.train import (
    aspect,
    contact_labels,
    fixed_sim_set,
    held,
    load_realdet_split,
    occlude,
    simulated,
    swap_sides,
    up_direction,
)
from liverig.runtime.deadband import Deadband
from liverig.runtime.feet import FootLock
from liverig.runtime.motion import RootFilter
from liverig.runtime.one_euro import OneEuroFilter
from liverig.runtime.reentry import Reentry
from liverig.runtime.sides import SideGuard
from liverig.runtime.unseen import UnseenLegs

ROOT = Path(__file__).resolve().parent.parent.parent
EVAL_MD = ROOT / "models" / "EVAL.md"
FPS = 30.0
CAMERAS = 8  # simulated cameras per test clip
SEED = 2024  # the fixed test cameras; training never sees this seed's draws (test clips are unseen)
SWAP_TEST_HZ = 0.3  # swap_line: injected left/right swap bursts per second
OCCLUDE_TEST_HZ = 0.1  # occlusion_line: injected occlusion bursts per limb per second (training's rate)
JUMP_FRAMES = 3  # occlusion_line: frames after a burst in which a limb jumping back is looked for
STILL_MM, STILL_RUN = 3.0, 10
MAX_LAG = 10
# Joints whose local rotation the positions define (models/rotations.AIM, less the Spine, which lies
# on the Hips-Chest line of the canonical skeleton and so never turns on its own), by body part,
# scored apart: a joint whose truth barely turns (the Chest, the hands) flatters a mean over all.
ROTATION_GROUPS = {
    "torso": ("Hips", "Chest", "Neck", "Head"),
    "arms": ("LeftUpperArm", "LeftLowerArm", "RightUpperArm", "RightLowerArm"),
    "hands": ("LeftHand", "RightHand"),
    "legs": ("LeftUpperLeg", "LeftLowerLeg", "LeftFoot", "RightUpperLeg", "RightLowerLeg", "RightFoot"),
}
ROTATION_JOINTS = [JOINT_INDEX[name] for names in ROTATION_GROUPS.values() for name in names]
J = JOINT_INDEX
FEET = ([J["LeftFoot"], J["LeftToes"]], [J["RightFoot"], J["RightToes"]])
MIN_CUTOFFS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0)  # Hz
BETAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # Hz per (m/s)
CASIEZ_JITTER_MARGIN = 0.25  # "still poses stop jittering": see tune_casiez
FIR_TAPS = 12  # linear_filter_bound: frames of history (0.4 s at 30 fps)


# ---------------------------------------------------------------------------------------------
# Metrics on one sequence: pred, truth (T, 22, 3) metres, root-relative; valid (T,) frames to score


def mpjpe(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame mean joint error (T,), metres."""
    return np.linalg.norm(pred - truth, axis=-1).mean(axis=-1)


def pa_mpjpe(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame MPJPE (T,) after the similarity transform (Umeyama) that best maps pred onto truth."""
    p = pred - pred.mean(axis=1, keepdims=True)
    q = truth - truth.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(np.swapaxes(p, 1, 2) @ q)  # (T, 3, 3)
    d = np.sign(np.linalg.det(u @ vt))  # no reflections
    s[:, -1] *= d
    u[:, :, -1] *= d[:, None]
    scale = s.sum(axis=1) / np.maximum((p**2).sum(axis=(1, 2)), 1e-12)
    aligned = scale[:, None, None] * p @ (u @ vt)
    return np.linalg.norm(aligned - q, axis=-1).mean(axis=-1)


def accel_error(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame (T-2,) mean |Δ²pred - Δ²truth|, metres/frame²; entry i is centred on frame i+1."""
    return np.linalg.norm(np.diff(pred, 2, axis=0) - np.diff(truth, 2, axis=0), axis=-1).mean(axis=-1)


def still_frames(truth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T-1,) velocity frames inside still runs of the truth (mean joint speed < STILL_MM mm/frame)."""
    speed = np.linalg.norm(np.diff(truth, axis=0), axis=-1).mean(axis=-1) * 1000
    still = (speed < STILL_MM) & valid[1:] & valid[:-1]
    out = np.zeros_like(still)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], still.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        out[a:b] = b - a >= STILL_RUN
    return out


def jitter(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame (T-1,) mean |velocity error|, metres/frame (scored on still frames)."""
    return np.linalg.norm(np.diff(pred, axis=0) - np.diff(truth, axis=0), axis=-1).mean(axis=-1)


def lag_correlation(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Cross-correlation (2·MAX_LAG+1,) of output velocity against truth velocity at shifts -K..K:
    c[k] = mean_t <v_pred(t + k), v_truth(t)>. Sum over sequences, then `lag_frames`."""
    ok = (valid[1:] & valid[:-1])[:, None, None]
    vp = np.where(ok, np.diff(pred, axis=0), 0.0).reshape(len(ok), -1)
    vt = np.where(ok, np.diff(truth, axis=0), 0.0).reshape(len(ok), -1)
    n = len(vp)
    out = np.zeros(2 * MAX_LAG + 1)
    for i, k in enumerate(range(-MAX_LAG, MAX_LAG + 1)):
        if abs(k) < n:
            a = vp[max(k, 0) : n + min(k, 0)]
            b = vt[max(-k, 0) : n - max(k, 0)]
            out[i] = (a * b).sum()
    return out


def lag_frames(correlation: np.ndarray) -> float:
    """The shift of the correlation peak, refined by a parabola through it and its neighbours; NaN
    when nothing moves (a held pose has no lag)."""
    if not np.any(np.abs(correlation) > 1e-12):
        return float("nan")
    i = int(np.argmax(correlation))
    shift = float(i - MAX_LAG)
    if 0 < i < len(correlation) - 1:
        a, b, c = correlation[i - 1 : i + 2]
        denom = a - 2 * b + c
        if denom < 0:
            shift += 0.5 * (a - c) / denom
    return shift


def bone_cv(pred: np.ndarray) -> float:
    """Mean over bones of std / mean of the bone's length over the sequence, in %."""
    lengths = np.stack([np.linalg.norm(pred[:, c] - pred[:, p], axis=-1) for p, c in BONES], axis=1)
    return float((lengths.std(axis=0) / np.maximum(lengths.mean(axis=0), 1e-9)).mean() * 100)


def skate(
    pred: np.ndarray,
    truth: np.ndarray,
    root: np.ndarray,
    valid: np.ndarray,
    placed: np.ndarray | None = None,
    up: np.ndarray | None = None,
) -> np.ndarray:
    """Foot speeds (cm/s) at the frames where the truth foot is in contact (heights along `up`, the
    world's up in the camera frame), the output placed on the true root path or on `placed` (T, 3)."""
    contact = contact_labels(truth, root, up).astype(bool)
    world = pred + (root if placed is None else placed)[:, None]
    out = []
    for side, joints in enumerate(FEET):
        speed = np.linalg.norm(np.diff(world[:, joints], axis=0), axis=-1).mean(axis=-1) * FPS * 100
        on = contact[1:, side] & contact[:-1, side] & valid[1:] & valid[:-1]
        out.append(speed[on])
    return np.concatenate(out)


def flips(pred: np.ndarray, truth: np.ndarray, separation: float = 0.15) -> np.ndarray:
    """(T,) True where an arm or leg pair of the output is swapped left/right relative to the truth."""
    out = np.zeros(len(pred), dtype=bool)
    for left, right in LIMB_PAIRS:
        pl, pr, tl, tr = pred[:, left], pred[:, right], truth[:, left], truth[:, right]
        same = np.linalg.norm(pl - tl, axis=-1).mean(-1) + np.linalg.norm(pr - tr, axis=-1).mean(-1)
        swap = np.linalg.norm(pl - tr, axis=-1).mean(-1) + np.linalg.norm(pr - tl, axis=-1).mean(-1)
        apart = np.linalg.norm(tl - tr, axis=-1).mean(-1) >= separation
        out |= (swap < 0.5 * same) & apart
    return out


def score(preds: list[np.ndarray], seqs: list[dict]) -> dict[str, float]:
    """All metrics pooled over sequences (frame-weighted; lag from the summed correlation)."""
    parts: dict[str, list] = {k: [] for k in ("mpjpe", "pa", "accel", "jitter", "skate", "flips")}
    corr, cv, cv_w = np.zeros(2 * MAX_LAG + 1), 0.0, 0.0
    for pred, seq in zip(preds, seqs, strict=True):
        truth, valid = seq["truth"].astype(np.float64), seq_valid(seq)
        pred = np.asarray(pred, dtype=np.float64)
        v = np.flatnonzero(valid)
        parts["mpjpe"].append(mpjpe(pred[v], truth[v]))
        parts["pa"].append(pa_mpjpe(pred[v], truth[v]))
        triple = valid[2:] & valid[1:-1] & valid[:-2]
        parts["accel"].append(accel_error(pred, truth)[triple])
        parts["jitter"].append(jitter(pred, truth)[still_frames(truth, valid)])
        parts["skate"].append(skate(pred, truth, seq["root"].astype(np.float64), valid, up=up_direction(seq)))
        parts["flips"].append(flips(pred[v], truth[v]))
        corr += lag_correlation(pred, truth, valid)
        if len(v) > 1:
            cv += bone_cv(pred[v]) * len(v)
            cv_w += len(v)
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}

    def mean(x: np.ndarray, unit: float) -> float:
        return float(x.mean() * unit) if len(x) else float("nan")

    return {
        "frames": float(len(cat["mpjpe"])),
        "mpjpe": mean(cat["mpjpe"], 1000), "pa_mpjpe": mean(cat["pa"], 1000),
        "accel": mean(cat["accel"], 1000), "jitter": mean(cat["jitter"], 1000),
        "still_frames": float(len(cat["jitter"])), "lag": lag_frames(corr),
        "bone_cv": cv / max(cv_w, 1.0), "skate": mean(cat["skate"], 1), "flips": float(cat["flips"].sum()),
    }  # fmt: skip


def seq_valid(seq: dict) -> np.ndarray:
    """Frames with a detection (all frames for the simulator, which always finds the person)."""
    if seq.get("present") is not None:
        return np.asarray(seq["present"], dtype=bool)
    return np.asarray(seq["visibility"]).max(axis=-1) > 0


# ---------------------------------------------------------------------------------------------
# Methods: each maps a sequence to root-relative joints (T, 22, 3), causally


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
    shape = {"joints": seq["truth"].shape, "rot6d": seq["truth"].shape + (3,), "root": (len(valid), 3),
             "contact": (len(valid), 2)}  # fmt: skip
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


# ---------------------------------------------------------------------------------------------
# One Euro tuning


def _grid_scores(seqs: list[dict], fcs: np.ndarray, betas: np.ndarray, inputs: list | None = None) -> list:
    """score() of One Euro for every (fc, beta) pair, all pairs filtered at once per sequence."""
    outs = [one_euro(s, fcs, betas, x=None if inputs is None else inputs[i]) for i, s in enumerate(seqs)]
    return [score([o[:, c] for o in outs], seqs) for c in range(len(fcs))]


def tune_casiez(seqs: list[dict]) -> dict:
    """The paper's procedure as a search (Casiez et al. 2012, section "Tuning"):
    1. beta = 0: lower min_cutoff until still poses stop jittering; here: the largest min_cutoff whose
       still-frame jitter is within CASIEZ_JITTER_MARGIN of the way from the floor (the lowest
       min_cutoff's jitter) to the highest min_cutoff's: the knee of the curve. (The detector's
       error is partly slow drift, so jitter never stops entirely and a margin on the floor alone
       would pick the lowest cut-off of any grid);
    2. raise beta until fast motion stops lagging; here: the smallest beta with lag <= 1 frame (the
       lowest-lag beta if none gets there)."""
    fcs = np.array(MIN_CUTOFFS)
    still = _grid_scores(seqs, fcs, np.zeros_like(fcs))
    jit = np.array([s["jitter"] for s in still])
    if not np.isfinite(jit).all():  # no still frames to judge by: the acceleration error stands in
        jit = np.array([s["accel"] for s in still])
    floor = np.nanmin(jit)
    fc = float(fcs[np.flatnonzero(jit <= floor + CASIEZ_JITTER_MARGIN * (jit[-1] - floor)).max()])
    betas = np.array(BETAS)
    moving = _grid_scores(seqs, np.full_like(betas, fc), betas)
    lags = np.array([s["lag"] for s in moving])
    ok = np.flatnonzero(lags <= 1.0)
    beta = float(betas[ok.min()] if len(ok) else betas[np.argmin(lags)])
    return {"min_cutoff": fc, "beta": beta, "jitter_floor_mm": float(floor),
            "still_jitter_mm": {f"{f:g}": float(j) for f, j in zip(fcs, jit, strict=True)},
            "lag_by_beta": {f"{b:g}": float(g) for b, g in zip(betas, lags, strict=True)}}  # fmt: skip


def tune_best(seqs: list[dict], max_lag: float = 1.0, inputs: list | None = None) -> dict:
    """The (min_cutoff, beta) on the grid with the lowest acceleration error whose lag <= max_lag."""
    fcs, betas = (a.ravel() for a in np.meshgrid(MIN_CUTOFFS, BETAS, indexing="ij"))
    scores = _grid_scores(seqs, fcs, betas, inputs)
    ok = [i for i, s in enumerate(scores) if s["lag"] <= max_lag] or [
        min(range(len(scores)), key=lambda i: scores[i]["lag"])
    ]
    i = min(ok, key=lambda i: scores[i]["accel"])
    return {"min_cutoff": float(fcs[i]), "beta": float(betas[i]), "train": scores[i]}


# ---------------------------------------------------------------------------------------------
# Root: the Hips in camera space (realdet only: placing them needs the detector's image landmarks)

ROOT_RAY_CUTOFFS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 16.0)  # Hz
ROOT_RAY_BETAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # Hz per (ray tangent / s)
ROOT_DISTANCE_CUTOFFS = (0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # Hz
ROOT_DISTANCE_BETAS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)  # Hz per (m/s)
ROOT_DEPTH_TOLERANCE = 0.01  # tune_root: depth errors within 1 % of the lowest count as equal
ROOT_AXES = {"lateral": [0, 1], "depth": [2]}  # camera x, y (across the view) and z (along it)


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


def node_motion(model, seq: dict) -> np.ndarray:
    """The network as the node runs it: the node's own motion stage (runtime/motion.py, configured as
    configs/default.yaml has it: side guard, the network, re-entry glide, deadband, bone lengths,
    root filter, unseen legs) around `model`, frame by frame; nobody in view: the last joints held.
    tests/test_eval_matches_node.py checks it against a replay through run_node.py."""
    from liverig.core.config import load_config
    from liverig.runtime.learned_motion import LearnedSmoother
    from liverig.runtime.motion import MotionStage

    config = load_config()
    stage = MotionStage(config.motion, config.perception, LearnedSmoother(config.motion, model))
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
    return {"ray": (node.ray.min_cutoff, node.ray.beta),
            "distance": (node.distance.min_cutoff, node.distance.beta)}  # fmt: skip


def node_root(seq: dict) -> np.ndarray:
    """The Hips in camera space as the node places them: the reprojected root through RootFilter."""
    shipped = shipped_root_settings()
    return root_filtered(seq, shipped["ray"], shipped["distance"])


def foot_locked(joints: np.ndarray, root: np.ndarray, contact: np.ndarray, seq: dict,
                config: FeetConfig) -> np.ndarray:  # fmt: skip
    """runtime.feet.FootLock over a sequence on the node's root, restarted when the person
    reappears, as the node does."""
    valid, lock, out = seq_valid(seq), FootLock(config), joints.copy()
    for t in range(len(out)):
        if not valid[t]:
            lock.reset()
            continue
        out[t] = lock(frame_sample(seq, t, joints[t], root[t], contact[t])).joints
    return _hold_gaps(out, valid)


FEET_CONTACT_ON = (0.5, 0.6, 0.7)  # tune_feet's grid
FEET_MAX_OFFSETS = (0.02, 0.03, 0.04, 0.05, 0.08)  # m
FEET_MPJPE_TOLERANCE = 0.01  # tune_feet: at most 1 % more joint error than the network alone


def tune_feet(seqs: list[dict], model) -> tuple[FeetConfig, dict[str, float]]:
    """The foot lock's contact threshold and reach on the grid: the lowest foot speed in contact
    (world, on the node's root) among the settings that cost at most FEET_MPJPE_TOLERANCE of MPJPE.
    Holding a foot still where the detector says it is moving trades joint error for calm feet; the
    tolerance says how much of it to trade. Returns the settings and the figures that chose them."""
    heads = [run_heads(model, guarded(s), ("joints", "contact")) for s in seqs]
    joints, contacts = [h["joints"] for h in heads], [h["contact"] for h in heads]
    roots = [node_root(s) for s in seqs]
    alone = score(joints, seqs)["mpjpe"]
    best: tuple[float, FeetConfig, float] | None = None
    for on in FEET_CONTACT_ON:
        for reach_m in FEET_MAX_OFFSETS:
            config = FeetConfig(lock=True, contact_on=on, max_offset_m=reach_m)
            held = [foot_locked(*a, config) for a in zip(joints, roots, contacts, seqs, strict=True)]
            error = score(held, seqs)["mpjpe"]
            speed = root_score(roots, seqs, held)["world_skate"]
            if error <= alone * (1 + FEET_MPJPE_TOLERANCE) and (best is None or speed < best[0]):
                best = (speed, config, error)
    config = best[1] if best is not None else FeetConfig(lock=True, max_offset_m=min(FEET_MAX_OFFSETS))
    return config, {"mpjpe_alone": alone, "mpjpe": best[2] if best else float("nan"),
                    "skate_alone": root_score(roots, seqs, joints)["world_skate"],
                    "skate": best[0] if best else float("nan")}  # fmt: skip


DEADBAND_CUTOFFS = (0.5, 1.0, 2.0)  # Hz: tune_deadband's grid
DEADBAND_BANDS = ((0.005, 0.015), (0.010, 0.030), (0.015, 0.040), (0.020, 0.060))  # (inner, outer) m
DEADBAND_MPJPE_TOLERANCE = 0.005  # tune_deadband: at most 0.5 % more joint error on moving clips...
DEADBAND_LAG_TOLERANCE = 0.02  # ...and at most this many frames more lag


def tune_deadband(moving: list[dict], holds: list[dict], model) -> tuple[DeadbandConfig, dict[str, float]]:
    """The deadband's average and band on the grid: the lowest still jitter on `holds` among the
    settings that cost the moving clips at most DEADBAND_MPJPE_TOLERANCE of MPJPE and
    DEADBAND_LAG_TOLERANCE of lag (the node's stage before it: side guard, network, glide). Returns
    the settings and the figures that chose them."""
    into = {id(s): glided(run_backend(model, guarded(s)), s) for s in (*moving, *holds)}
    alone_moving = score([into[id(s)] for s in moving], moving)
    alone_holds = score([into[id(s)] for s in holds], holds)
    best: tuple[float, DeadbandConfig, dict] | None = None
    for cutoff in DEADBAND_CUTOFFS:
        for inner, outer in DEADBAND_BANDS:
            config = DeadbandConfig(cutoff_hz=cutoff, inner_m=inner, outer_m=outer)
            on_moving = score([deadbanded(into[id(s)], s, config) for s in moving], moving)
            calm = score([deadbanded(into[id(s)], s, config) for s in holds], holds)["jitter"]
            ok = (on_moving["mpjpe"] <= alone_moving["mpjpe"] * (1 + DEADBAND_MPJPE_TOLERANCE)
                  and on_moving["lag"] <= alone_moving["lag"] + DEADBAND_LAG_TOLERANCE)  # fmt: skip
            if ok and (best is None or calm < best[0]):
                best = (calm, config, on_moving)
    config = best[1] if best is not None else DeadbandConfig(enabled=False)
    return config, {"mpjpe_alone": alone_moving["mpjpe"], "lag_alone": alone_moving["lag"],
                    "jitter_alone": alone_holds["jitter"], "jitter": best[0] if best else float("nan"),
                    "mpjpe": best[2]["mpjpe"] if best else float("nan"),
                    "lag": best[2]["lag"] if best else float("nan")}  # fmt: skip


def deadband_line(tuned: DeadbandConfig, tuning: dict, test: dict[str, dict]) -> str:
    """The deadband's settings, tuned vs shipped, and what it costs the moving test clips."""
    shipped = DeadbandConfig()
    band = (tuned.cutoff_hz, tuned.inner_m, tuned.outer_m)
    same = (shipped.cutoff_hz, shipped.inner_m, shipped.outer_m) == band
    without, ours = test["ST-CNN without deadband"], test["ST-CNN"]
    t = tuning
    return (
        f"Deadband (`motion.deadband`, runtime/deadband.py; {'on' if shipped.enabled else 'off'} by "
        f"default): average {tuned.cutoff_hz:g} Hz, band {1000 * tuned.inner_m:g}-"
        f"{1000 * tuned.outer_m:g} mm, the calmest holds on val whose moving val clips lose at most "
        f"{DEADBAND_MPJPE_TOLERANCE:.1%} of MPJPE and {DEADBAND_LAG_TOLERANCE:g} f of lag (there: still "
        f"jitter {t['jitter_alone']:.2f} -> {t['jitter']:.2f} mm/f, MPJPE {t['mpjpe_alone']:.1f} -> "
        f"{t['mpjpe']:.1f} mm, lag {t['lag_alone']:.2f} -> {t['lag']:.2f} f)"
        + ("; configs/default.yaml has the same" if same else
           f"; **configs/default.yaml has {shipped.cutoff_hz:g} Hz, {1000 * shipped.inner_m:g}-"
           f"{1000 * shipped.outer_m:g} mm**")
        + f". On the moving test clips, without -> with it: MPJPE {without['mpjpe']:.1f} -> "
        f"{ours['mpjpe']:.1f} mm, accel {without['accel']:.2f} -> {ours['accel']:.2f} mm/f², lag "
        f"{without['lag']:.2f} -> {ours['lag']:.2f} f."
    )  # fmt: skip


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


def root_score(roots: list[np.ndarray], seqs: list[dict], joints: list[np.ndarray] | None = None) -> dict:
    """Per axis group (lateral, depth): error after removing each sequence's constant offset (mm; the
    avatar starts where the person was first seen, so a constant offset never shows), acceleration
    error (mm/f²), lag (frames); with `joints`, foot skate with the joints placed on these roots."""
    out: dict[str, float] = {}
    for group, axes in ROOT_AXES.items():
        err, acc, corr = [], [], np.zeros(2 * MAX_LAG + 1)
        for pred, seq in zip(roots, seqs, strict=True):
            valid, truth, p = seq_valid(seq), seq["root"][:, axes].astype(np.float64), pred[:, axes]
            offset = (p - truth)[valid]
            err.append(np.linalg.norm(offset - offset.mean(axis=0), axis=-1))
            acc.append(accel_error(p[:, None], truth[:, None])[valid[2:] & valid[1:-1] & valid[:-2]])
            corr += lag_correlation(p[:, None], truth[:, None], valid)
        out[group + "_error"] = float(np.concatenate(err).mean() * 1000)
        out[group + "_accel"] = float(np.concatenate(acc).mean() * 1000)
        out[group + "_lag"] = lag_frames(corr)
    if joints is not None:
        speeds = [skate(j, s["truth"], s["root"].astype(np.float64), seq_valid(s), r, up_direction(s))
                  for j, r, s in zip(joints, roots, seqs, strict=True)]  # fmt: skip
        out["world_skate"] = float(np.concatenate(speeds).mean())
    return out


def jump_heights(roots: list[np.ndarray], seqs: list[dict], rise: float = 0.10) -> np.ndarray:
    """(N, 2) metres: per jump, the truth's and the root's peak height above their own standing
    height (each sequence's median along the world's up). A jump is a run of frames where the true
    Hips are over `rise` above standing; the root's peak is looked for up to 3 frames either side
    (its lag). Why: a tool that grounds the avatar by force (peers' "auto-grounding") flattens jumps."""
    out = []
    for pred, seq in zip(roots, seqs, strict=True):
        valid, up = seq_valid(seq), up_direction(seq)
        up = np.array([0.0, 1.0, 0.0]) if up is None else up
        truth, root = seq["root"].astype(np.float64) @ up, pred @ up
        truth, root = truth - np.median(truth[valid]), root - np.median(root[valid])
        airborne = np.flatnonzero(np.diff(np.r_[0, (truth > rise) & valid, 0]))
        for start, stop in zip(airborne[::2], airborne[1::2], strict=True):
            around = slice(max(start - 3, 0), stop + 3)
            out.append((truth[start:stop].max(), root[around].max()))
    return np.array(out).reshape(-1, 2)


def jump_line(test: list[dict], roots: dict[str, list[np.ndarray]]) -> str:
    """How much of each jump's height the roots keep: mean ratio and its 5th-95th percentiles."""
    parts = []
    for name, rs in roots.items():
        heights = jump_heights(rs, test)
        if not len(heights):
            return ""
        ratio = heights[:, 1] / heights[:, 0] * 100
        low, high = np.percentile(ratio, [5, 95])
        parts.append(f"{name} {ratio.mean():.0f} % on average, {low:.0f}–{high:.0f} % for 9 jumps in 10")
    return (
        f"Jumps ({len(heights)} in the test clips, the true Hips {heights[:, 0].mean() * 100:.1f} cm up "
        f"on average; `jump_heights`): share of the true height the root reaches at the peak: "
        + "; ".join(parts)
        + ". Nothing grounds the avatar by force, so a jump stays a jump."
    )


def tune_root(seqs: list[dict], check: list[dict]) -> dict:
    """RootFilter settings on the grid of `seqs`, in two steps (the depth is the filtered distance alone):
    1. distance: the lowest depth acceleration error among the settings whose depth error is within
       ROOT_DEPTH_TOLERANCE of the lowest: what one camera gets wrong along its view is mostly slow
       (the body's apparent size), the error barely changes over a wide range of smoothing, and
       within that range the avatar should move towards and away from the camera as calmly as it can;
    2. ray: the lowest lateral acceleration error with lateral lag <= 1 frame (One Euro's own
       criterion here) on `seqs` and on the `check` sequences too: what the camera sees across its
       view is precise, and a lag shows. (A lag just under a frame on the tuning set was 1.2 frames
       on unseen sequences.)"""
    fcs, betas = (a.ravel() for a in np.meshgrid(ROOT_DISTANCE_CUTOFFS, ROOT_DISTANCE_BETAS, indexing="ij"))
    outs = [root_filtered(s, (1.0, 0.0), (fcs, betas)) for s in seqs]
    depth = [root_score([o[:, c] for o in outs], seqs) for c in range(len(fcs))]
    lowest = min(r["depth_error"] for r in depth)
    near = [i for i, r in enumerate(depth) if r["depth_error"] <= lowest * (1 + ROOT_DEPTH_TOLERANCE)]
    d = min(near, key=lambda i: depth[i]["depth_accel"])
    distance = (float(fcs[d]), float(betas[d]))
    fcs, betas = (a.ravel() for a in np.meshgrid(ROOT_RAY_CUTOFFS, ROOT_RAY_BETAS, indexing="ij"))

    def grid(group: list[dict]) -> list[dict]:
        outs = [root_filtered(s, (fcs, betas), distance) for s in group]
        return [root_score([o[:, c] for o in outs], group) for c in range(len(fcs))]

    scores, checked = grid(seqs), grid(check)
    ok = [i for i, (r, v) in enumerate(zip(scores, checked, strict=True))
          if max(r["lateral_lag"], v["lateral_lag"]) <= 1.0] or list(range(len(scores)))  # fmt: skip
    r = min(ok, key=lambda i: scores[i]["lateral_accel"])
    return {"ray": (float(fcs[r]), float(betas[r])), "distance": distance}


def root_section(test: list[dict], tune: list[dict], val: list[dict], onnx, joints: dict[str, list],
                 per_axis: dict) -> str:  # fmt: skip
    """The root table: the reprojected Hips, ways of smoothing them, and the node's RootFilter."""
    tuned, shipped = tune_root(tune, val), shipped_root_settings()
    ours = [node_root(s) for s in test]
    rows = [  # (root from, its roots, whose joints)
        ("reprojected (raw)", [observed_root(s) for s in test], "raw"),
        ("One Euro on x, y, z (lag<=1 setting)",
         [one_euro(s, per_axis["min_cutoff"], per_axis["beta"], x=observed_root(s)) for s in test],
         "One Euro (lag<=1)"),
        ("ST-CNN root head + 0.1 pull (before)", [root_head_path(onnx, s) for s in test], "ST-CNN"),
        ("RootFilter (the node: motion.root)", ours, "ST-CNN"),
        ("RootFilter (the node: motion.root)", ours, "One Euro (lag<=1)"),
        ("RootFilter (the node: motion.root)", ours, "ST-CNN + foot lock"),
    ]  # fmt: skip
    lines = [
        "| root from | joints | lateral error mm | lateral accel mm/f² | lateral lag f | depth error mm "
        "| depth accel mm/f² | depth lag f | feet in contact, world cm/s |",
        "|" + "---|" * 9,
    ]
    for name, roots, whose in rows:
        r = root_score(roots, test, joints[whose])
        lines.append(f"| {name} | {whose} | {r['lateral_error']:.1f} | {r['lateral_accel']:.2f} | "
                     f"{r['lateral_lag']:.2f} | {r['depth_error']:.1f} | {r['depth_accel']:.2f} | "
                     f"{r['depth_lag']:.2f} | {r['world_skate']:.1f} |")  # fmt: skip
    floor = root_score([s["root"].astype(np.float64) for s in test], test, [s["truth"] for s in test])
    zeros = "| 0.0 | 0.00 | 0.00 | 0.0 | 0.00 | 0.00"
    lines.append(f"| truth (floor) | truth {zeros} | {floor['world_skate']:.1f} |")

    def setting(rd: dict) -> str:
        return (
            f"ray {rd['ray'][0]:g} Hz / beta {rd['ray'][1]:g}, distance {rd['distance'][0]:g} Hz / beta "
            f"{rd['distance'][1]:g}"
        )

    same = tuned == shipped
    jumps = jump_line(test, {"RootFilter (the node)": ours, "reprojected (raw)": rows[0][1]})
    return "\n".join([
        "Root (the Hips in camera space, which the bridges send as the avatar's position; "
        "models/evaluation/evaluate.py `root_score`): lateral = camera x and y (across the view), "
        "depth = z (along "
        "it); errors after removing each sequence's constant offset; the last column is foot speed while "
        "the truth foot is in contact, with the joints placed on that row's root (the skate column above "
        "places them on the true root).",
        "",
        *lines,
        "",
        f"RootFilter as shipped (configs/default.yaml, `motion.root`): {setting(shipped)}; `tune_root` on "
        f"the tuning set (the lag checked on val too) now: {setting(tuned)}"
        + ("." if same else " (**differs from the shipped one**)."),
        *(["", jumps] if jumps else []),
    ])  # fmt: skip


def swap_line(test: list[dict], methods: dict) -> str:
    """Flipped frames when left/right swaps are injected into the test observations: does a method
    follow the detector when it mixes up the sides, or hold on to them? `methods`: name -> run(seq)."""
    rng = np.random.default_rng(SEED)
    injected = [swap_sides(s, rng, SWAP_TEST_HZ) for s in test]
    frames = sum(int(seq_valid(s).sum()) for s in injected)
    parts = []
    for name, run in methods.items():
        result = score([run(s) for s in injected], injected)
        parts.append(f"{name} {int(result['flips'])} ({result['mpjpe']:.1f} mm)")
    return (f"Left/right swaps injected into the test observations (models/training/train.py `swap_sides`, "
            f"{SWAP_TEST_HZ:g} bursts/s of 3-10 frames: the arms, the legs or both; the truth keeps its "
            f"sides), {frames} frames. Flipped frames (MPJPE) per method: "
            + ", ".join(parts) + ".")  # fmt: skip


def realdet_holds(split: str = "test") -> list[dict]:
    """The held standing poses of one split (models/training/realdet.py `--holds`), [] when not generated."""
    from liverig.models.training.realdet import holds_root, load_realdet

    return load_realdet(split, holds_root())


def holds_section(holds: list[dict], methods: dict) -> str:
    """Holding still on the real detector: each method's still jitter (the truth does not move, so
    this is the output's own mean joint speed) and MPJPE on the held standing poses, pooled and as
    the median over the holds (a pose the detector flickers on counts once there)."""
    if not holds:
        return ("Holding still: no held poses cached "
                "(`python -m liverig.models.training.realdet --holds --splits test`); "
                "this section is left out.")  # fmt: skip
    lines = ["| method | still jitter mm/f | median over holds | MPJPE mm |", "|---|---|---|---|"]
    for name, run in methods.items():
        preds = [run(s) for s in holds]
        pooled = score(preds, holds)
        each = [score([p], [s])["jitter"] for p, s in zip(preds, holds, strict=True)]
        lines.append(f"| {name} | {pooled['jitter']:.2f} | {np.median(each):.2f} | {pooled['mpjpe']:.1f} |")
    from liverig.models.training.realdet import HOLD_PIXEL_NOISE, HOLD_SECONDS

    frames = sum(int(seq_valid(s).sum()) for s in holds)
    clips = sorted({s["clip"] for s in holds})
    return "\n".join([
        f"Holding still (the user who stands still, which the test clips hardly show): {len(holds)} holds, "
        f"{frames} frames: the most standing frame of each test clip ({', '.join(clips)}) held for "
        f"{HOLD_SECONDS:g} s, seen by the test cameras with Gaussian pixel noise of {HOLD_PIXEL_NOISE:g} "
        "levels (a webcam's sensor noise; models/training/realdet.py `--holds`). "
        "Every method as in the main table.",
        "",
        *lines,
    ])  # fmt: skip


def occlusion_bursts(sample: dict, occluded: dict) -> list[tuple[list[int], int, int]]:
    """The bursts `occlude` put into `sample`, as (limb chain, start, stop): runs of frames whose
    visibility it changed (it returns no list of its own; bursts of one chain that overlap merge)."""
    out = []
    for chain in LIMBS.values():
        hit = np.any(occluded["visibility"][:, chain] != sample["visibility"][:, chain], axis=1)
        edges = np.flatnonzero(np.diff(np.r_[0, hit.astype(int), 0]))
        out += [(chain, int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return out


def occlusion_scores(preds: list[np.ndarray], seqs: list[dict], bursts: list[list]) -> dict[str, float]:
    """Filling occluded limbs (mm): `hidden`, the error of the occluded joints during their bursts;
    `jump`, per burst, the largest excess of an occluded joint's per-frame displacement over the
    truth's in the JUMP_FRAMES frames after it ends (the step out of the burst included), averaged
    over the bursts whose frames are all scored: a limb held frozen, then snapped back, shows here."""
    hidden, jumps = [], []
    for pred, seq, spans in zip(preds, seqs, bursts, strict=True):
        truth, valid = seq["truth"].astype(np.float64), seq_valid(seq)
        pred = np.asarray(pred, dtype=np.float64)
        for chain, start, stop in spans:
            t = np.arange(start, stop)[valid[start:stop]]
            hidden.append(np.linalg.norm(pred[t][:, chain] - truth[t][:, chain], axis=-1).ravel())
            around = slice(stop - 1, stop + JUMP_FRAMES)
            if stop + JUMP_FRAMES <= len(truth) and valid[around].all():
                step = np.linalg.norm(np.diff(pred[around][:, chain], axis=0), axis=-1)
                true_step = np.linalg.norm(np.diff(truth[around][:, chain], axis=0), axis=-1)
                jumps.append((step - true_step).max())
    hidden = np.concatenate(hidden) if hidden else np.zeros(0)
    return {"hidden": float(hidden.mean() * 1000) if len(hidden) else float("nan"),
            "jump": float(np.mean(jumps) * 1000) if jumps else float("nan"),
            "jumps": float(len(jumps))}  # fmt: skip


def occlusion_line(test: list[dict], methods: dict, clean: dict[str, list[np.ndarray]]) -> str:
    """Occlusion bursts injected into the test observations (models/training/train.py `occlude`, the
    training's
    generator): does a method fill the hidden limb, and does the limb jump back when it is seen
    again (issue: "never a frozen limb jumping back")? `methods`: name -> run(seq); `clean`: each
    method's outputs on the test as it is, scored at the same joints and frames for comparison."""
    rng = np.random.default_rng(SEED)
    injected = [occlude(s, rng, OCCLUDE_TEST_HZ) for s in test]
    bursts = [occlusion_bursts(s, o) for s, o in zip(test, injected, strict=True)]
    hidden = sum(int(np.any(o["visibility"] != s["visibility"], axis=1).sum())
                 for s, o in zip(test, injected, strict=True))  # fmt: skip
    lines = ["| method | occluded joints, MPJPE mm | the same, no bursts | all joints, MPJPE mm "
             "| jump back mm | the same, no bursts |", "|" + "---|" * 6]  # fmt: skip
    for name, run in methods.items():
        preds = [run(s) for s in injected]
        hit, calm = occlusion_scores(preds, injected, bursts), occlusion_scores(clean[name], test, bursts)
        overall = score(preds, injected)["mpjpe"]
        lines.append(f"| {name} | {hit['hidden']:.1f} | {calm['hidden']:.1f} | {overall:.1f} | "
                     f"{hit['jump']:.1f} | {calm['jump']:.1f} |")  # fmt: skip
    return "\n".join([
        f"Occlusion bursts injected into the test observations (models/training/train.py `occlude`, "
        f"the training's "
        f"generator: {OCCLUDE_TEST_HZ:g} bursts per limb per second, 0.3-1.5 s each, in which a forearm or "
        f"shin chain's visibility falls to 0.05-0.4 and its position freezes or wanders off by ~15 cm; the "
        f"truth is untouched; `occlusion_scores`): {sum(map(len, bursts))} bursts in {hidden} frames. "
        f"Jump back: per burst, the largest excess of an occluded joint's per-frame displacement over the "
        f"truth's in the {JUMP_FRAMES} frames after it ends, mean over the {int(hit['jumps'])} bursts "
        f"followed by {JUMP_FRAMES} scored frames. \"No bursts\": the same joints and frames of the "
        f"method's output on the test as it is.",
        "",
        *lines,
    ])  # fmt: skip


def feet_line(test: list[dict], contacts: list[np.ndarray], tuned: FeetConfig, tuning: dict) -> str:
    """The contact head against the truth's contacts, and the foot lock's settings: tuned vs shipped."""
    parts = []
    for threshold in (0.5, 0.7):
        c = contact_scores(contacts, test, threshold)
        parts.append(f"at {threshold:g} precision {c['precision']:.2f}, recall {c['recall']:.2f}")
    shipped = FeetConfig()
    same = (shipped.contact_on, shipped.max_offset_m) == (tuned.contact_on, tuned.max_offset_m)
    return (f"Foot contacts (the network's contact head against the truth's contact labels, base rate "
            f"{c['base']:.2f}): " + "; ".join(parts) + ". Foot lock (`motion.feet`, runtime/feet.py; "
            f"{'on' if shipped.lock else 'off'} by default): contact_on {tuned.contact_on:g}, max offset "
            f"{tuned.max_offset_m:g} m, the lowest world foot speed on the tuning set whose MPJPE is within "
            f"{FEET_MPJPE_TOLERANCE:.0%} of the network alone (there: {tuning['skate_alone']:.1f} -> "
            f"{tuning['skate']:.1f} cm/s, MPJPE {tuning['mpjpe_alone']:.1f} -> {tuning['mpjpe']:.1f} mm)"
            + ("; configs/default.yaml has the same." if same else
               f"; **configs/default.yaml has contact_on {shipped.contact_on:g}, max offset "
               f"{shipped.max_offset_m:g} m**."))  # fmt: skip


def contact_scores(contacts: list[np.ndarray], seqs: list[dict], threshold: float) -> dict[str, float]:
    """Precision and recall of `contacts >= threshold` against the truth's contact labels (the same
    heuristic the head was trained on), and the labels' base rate."""
    said, truth = [], []
    for c, s in zip(contacts, seqs, strict=True):
        valid = seq_valid(s)
        truth.append(contact_labels(s["truth"], s["root"], up_direction(s)).astype(bool)[valid])
        said.append(c[valid] >= threshold)
    said, truth = np.concatenate(said), np.concatenate(truth)
    hit = float((said & truth).sum())
    return {"precision": hit / max(said.sum(), 1), "recall": hit / max(truth.sum(), 1), "base": truth.mean()}


# ---------------------------------------------------------------------------------------------
# Data


def sim_sets() -> tuple[list[dict], list[dict], list[dict]]:
    """(tune, val, test) simulated sets: train / val / test clips, un-augmented, seeded cameras, each
    with a 3 s hold of every clip's middle pose (activity "still")."""
    from liverig.models.training.mocap import load_clips

    def with_holds(split: str, seed: int, cameras: int) -> list[dict]:
        clips = load_clips(split)
        rng = np.random.default_rng(seed + 1)
        holds = [simulated(held(c, np.random.default_rng(k), 90), rng, aug=False)
                 for k, c in enumerate(clips) for _ in range(max(1, cameras // 2))]  # fmt: skip
        return fixed_sim_set(clips, seed, cameras) + holds

    return with_holds("train", 11, 2), with_holds("val", 1234, 4), with_holds("test", SEED, CAMERAS)


def realdet_sets() -> tuple[list[dict], list[dict], list[dict]]:
    """(tune, val, test) real-detector sets; One Euro is tuned on train (val while train is not cached)."""
    train, val, test = (load_realdet_split(s) for s in ("train", "val", "test"))
    if not test:
        raise SystemExit(
            "no real-detector test sequences cached: run `python -m liverig.models.training.realdet` first"
        )
    return (train or val), val, test


# ---------------------------------------------------------------------------------------------
# The table


@dataclass
class Result:
    name: str
    preds: list[np.ndarray]
    note: str = ""


COLUMNS = [("mpjpe", "MPJPE mm", 1), ("pa_mpjpe", "PA-MPJPE mm", 1), ("accel", "accel mm/f²", 2),
           ("jitter", "still jitter mm/f", 2), ("lag", "lag f", 2), ("bone_cv", "bone CV %", 2),
           ("skate", "skate cm/s", 1), ("flips", "flips", 0)]  # fmt: skip


def rotation_scores(rotations: list[np.ndarray], seqs: list[dict]) -> dict[str, float]:
    """Local joint rotations (T, J, 3, 3) per sequence against the truth's (models/rotations.py):
    mean angle error (deg) per ROTATION_GROUPS part and over all ROTATION_JOINTS, and the error of the
    frame-to-frame rotation change (deg/frame: rotational jitter, what an avatar shows)."""
    from liverig.models.rotations import angle_deg, joint_rotations

    errors, changes = [], []
    for rot, seq in zip(rotations, seqs, strict=True):
        truth, valid = joint_rotations(seq["truth"]), seq_valid(seq)
        errors.append(angle_deg(rot[valid], truth[valid]))  # (frames, J)
        t = np.flatnonzero(valid[1:] & valid[:-1]) + 1  # frames whose predecessor is scored too
        step = np.swapaxes(rot[t - 1], -1, -2) @ rot[t]
        step_t = np.swapaxes(truth[t - 1], -1, -2) @ truth[t]
        changes.append(angle_deg(step, step_t))
    error, change = np.concatenate(errors), np.concatenate(changes)
    out = {part: float(error[:, [JOINT_INDEX[n] for n in names]].mean())
           for part, names in ROTATION_GROUPS.items()}  # fmt: skip
    out["angle"] = float(error[:, ROTATION_JOINTS].mean())
    out["change"] = float(change[:, ROTATION_JOINTS].mean())
    out["change_arms_legs"] = float(change[:, [JOINT_INDEX[n] for n in ROTATION_GROUPS["arms"]
                                               + ROTATION_GROUPS["legs"]]].mean())  # fmt: skip
    return out


def rotation_table(rows: list[tuple[str, list[np.ndarray]]], seqs: list[dict]) -> str:
    lines = ["| rotations from | torso ° | arms ° | hands ° | legs ° | all ° | change error °/f "
             "| change, arms+legs °/f |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, rotations in rows:
        r = rotation_scores(rotations, seqs)
        lines.append(f"| {name} | {r['torso']:.1f} | {r['arms']:.1f} | {r['hands']:.1f} | {r['legs']:.1f} "
                     f"| {r['angle']:.1f} | {r['change']:.2f} | {r['change_arms_legs']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def still_output_accel(seqs: list[dict]) -> float:
    """mm/frame²: the accel error of an output that never accelerates, i.e. the truth's own mean
    acceleration. No amount of smoothing gets below it; only following the true motion does."""
    parts = []
    for seq in seqs:
        truth, valid = seq["truth"].astype(np.float64), seq_valid(seq)
        triple = valid[2:] & valid[1:-1] & valid[:-2]
        parts.append(accel_error(np.zeros_like(truth), truth)[triple])
    return float(np.concatenate(parts).mean() * 1000)


def delayed_truth_accel(seqs: list[dict], delay: float) -> float:
    """mm/frame²: the accel error of the truth itself, delayed by `delay` frames (linear
    interpolation between frames): a noise-free output with that lag. The acceleration target asks
    for a ratio at equal lag, and lag alone already costs this much."""
    parts = []
    for seq in seqs:
        truth, valid = seq["truth"].astype(np.float64), seq_valid(seq)
        whole, part = int(np.floor(delay)), delay - np.floor(delay)
        earlier = np.maximum(np.arange(len(truth)) - whole, 0)
        late = (1 - part) * truth[earlier] + part * truth[np.maximum(earlier - 1, 0)]
        triple = valid[2:] & valid[1:-1] & valid[:-2]
        parts.append(accel_error(late, truth)[triple])
    return float(np.concatenate(parts).mean() * 1000)


def _lagged_differences(x: np.ndarray, taps: int) -> np.ndarray:
    """(T, ..., taps - 1): x[t - k] - x[t] for k = 1..taps-1, the first frame repeated before the start."""
    padded = np.concatenate([np.repeat(x[:1], taps - 1, axis=0), x])
    return np.stack([padded[taps - 1 - k : len(padded) - k] - x for k in range(1, taps)], axis=-1)


def linear_filter_bound(
    fit: list[np.ndarray],
    fit_seqs: list[dict],
    inputs: list[np.ndarray],
    seqs: list[dict],
    taps: int = FIR_TAPS,
) -> dict[str, float]:
    """score() of the best causal linear filter for the accel column: y[t] = sum_k h[k] x[t - k] over the
    last `taps` frames, sum(h) = 1 (a held pose stays put), one h for every joint and axis, fitted by
    least squares to the truth's accelerations alone on `fit_seqs` (no limit on lag or position
    error), then run on `inputs`: the least-squares best of its kind, so about what linear smoothing
    of that input can reach at any lag (longer or per-joint filters, fitted to the mean error itself,
    could do a little better)."""
    rows, targets_ = [], []
    for x, seq in zip(fit, fit_seqs, strict=True):
        x, valid = np.asarray(x, dtype=np.float64), seq_valid(seq)
        triple = valid[2:] & valid[1:-1] & valid[:-2]
        rows.append(np.diff(_lagged_differences(x, taps), 2, axis=0)[triple].reshape(-1, taps - 1))
        wanted = np.diff(seq["truth"].astype(np.float64), 2, axis=0) - np.diff(x, 2, axis=0)
        targets_.append(wanted[triple].ravel())
    h = np.linalg.lstsq(np.concatenate(rows), np.concatenate(targets_), rcond=None)[0]
    preds = [x + _lagged_differences(x, taps) @ h for x in (np.asarray(x, dtype=np.float64) for x in inputs)]
    return score(preds, seqs)


def one_euro_at_lag(grid: list[dict], lag: float) -> dict[str, float]:
    """The smoothest One Euro of `grid` (score() per setting, on the test clips themselves: in One
    Euro's favour) whose lag is at most `lag`: the baseline at equal lag."""
    ok = [s for s in grid if s["lag"] <= lag + 1e-9] or [min(grid, key=lambda s: s["lag"])]
    return min(ok, key=lambda s: s["accel"])


def table(rows: list[tuple[str, dict]], columns=COLUMNS) -> str:
    head = "| method | " + " | ".join(c[1] for c in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for name, s in rows:
        cells = [f"{s[k]:.{d}f}" if np.isfinite(s[k]) else "–" for k, _, d in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def activity_table(results: list[Result], seqs: list[dict]) -> str:
    """The main table's metrics per activity (the issue asks for both), computed by `score` as there."""
    acts = sorted({s.get("activity", "?") for s in seqs})
    cols = [("mpjpe", "MPJPE", 1), ("pa_mpjpe", "PA-MPJPE", 1), ("accel", "accel", 2), ("lag", "lag", 2),
            ("jitter", "jitter", 2), ("bone_cv", "bone CV %", 2), ("skate", "skate cm/s", 1),
            ("flips", "flips", 0)]  # fmt: skip
    lines = ["| activity | frames | method | " + " | ".join(c[1] for c in cols) + " |",
             "|" + "---|" * (len(cols) + 3)]  # fmt: skip
    for act in acts:
        idx = [i for i, s in enumerate(seqs) if s.get("activity", "?") == act]
        sub = [seqs[i] for i in idx]
        for r in results:
            s = score([r.preds[i] for i in idx], sub)
            cells = [f"{s[k]:.{d}f}" if np.isfinite(s[k]) else "–" for k, _, d in cols]
            lines.append(f"| {act} | {int(s['frames'])} | {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict(ok: bool, yes: str = "met", no: str = "missed") -> str:
    return f"**{yes if ok else no}**"


def accel_reference(scores: dict[str, dict]) -> dict[str, float]:
    """The One Euro row the acceleration target is a ratio of: the lowest accel with lag <= 1 frame."""
    oe = [scores[k] for k in scores if k.startswith("One Euro")]
    return min(oe, key=lambda s: s["accel"] if s["lag"] <= 1.0 + 1e-9 else np.inf)


def targets(scores: dict[str, dict], seqs: list[dict], results: list[Result], grid: list[dict]) -> list[str]:
    """The issue's targets, each met or missed and by how much. MPJPE is compared with the One Euro
    row of the lowest MPJPE, named (which row that is differs between sim and realdet). `grid`: One
    Euro's score() for every setting on these clips, for the comparison at equal lag."""
    ref = accel_reference(scores)
    ref_name = next(k for k in scores if scores[k] is ref)
    oe_name = min((k for k in scores if k.startswith("One Euro")), key=lambda k: scores[k]["mpjpe"])
    oe_mpjpe = scores[oe_name]["mpjpe"]
    raw_flips, raw_mpjpe = int(scores["raw"]["flips"]), scores["raw"]["mpjpe"]
    out = []
    for name in [k for k in scores if k.startswith("ST-CNN")]:
        s = scores[name]
        ratio = s["accel"] / ref["accel"]
        ok = ratio <= 0.5 and s["lag"] <= ref["lag"] + 0.05
        eq = one_euro_at_lag(grid, s["lag"])
        out += [
            f"- {name}: accel {s['accel']:.2f} = {ratio:.2f}x {ref_name}, the smoothest One Euro at lag "
            f"<= 1 ({ref['accel']:.2f}, lag {ref['lag']:.2f}); target <= 0.5x at equal or lower lag "
            f"(ours {s['lag']:.2f}): {_verdict(ok)}",
            f"- {name}: accel at equal lag: {s['accel']:.2f} vs {eq['accel']:.2f} for the smoothest One "
            f"Euro with lag <= {s['lag']:.2f} on these clips (lag {eq['lag']:.2f}) = "
            f"{s['accel'] / eq['accel']:.2f}x (less than One Euro at no more lag: "
            f"{_verdict(s['accel'] <= eq['accel'])})",
            f"- {name}: MPJPE {s['mpjpe']:.1f} vs {oe_mpjpe:.1f} mm for {oe_name}, the most accurate One "
            f"Euro ({100 * (s['mpjpe'] / oe_mpjpe - 1):+.1f} %): {_verdict(s['mpjpe'] < oe_mpjpe)}; vs raw "
            f"{raw_mpjpe:.1f} mm ({100 * (s['mpjpe'] / raw_mpjpe - 1):+.1f} %, target <= -25 %): "
            f"{_verdict(s['mpjpe'] <= 0.75 * raw_mpjpe)}",
            f"- {name}: bone CV {s['bone_cv']:.2f} % (target < 1 %): {_verdict(s['bone_cv'] < 1)}; "
            f"flips {int(s['flips'])} (target 0; raw {raw_flips}): {_verdict(s['flips'] == 0)}",
        ]
    by = {r.name: r for r in results}
    jumps = [i for i, s in enumerate(seqs) if s.get("activity") == "jump"]
    if "LSTM" in by and "ST-CNN" in by and jumps:
        sub = [seqs[i] for i in jumps]
        lstm = score([by["LSTM"].preds[i] for i in jumps], sub)
        ours = score([by["ST-CNN"].preds[i] for i in jumps], sub)
        gain = 100 * (1 - ours["mpjpe"] / lstm["mpjpe"])
        gain_a = 100 * (1 - ours["accel"] / lstm["accel"])
        out.append(
            f"- The article's claim (ST-CNN error 62 % lower than the LSTM's on jumps): on the jump clips "
            f"MPJPE {ours['mpjpe']:.1f} vs {lstm['mpjpe']:.1f} mm ({_lower(gain)}), accel "
            f"{ours['accel']:.2f} vs {lstm['accel']:.2f} ({_lower(gain_a)}): "
            + _verdict(gain >= 62, "reproduced", "not reproduced")
        )
    return out


def _lower(gain: float) -> str:
    """A relative gain in percent as words: '11 % lower' or '4 % higher'."""
    return f"{gain:.0f} % lower" if gain >= 0 else f"{-gain:.0f} % higher"


def _shown(path: Path) -> str:
    """A path as the report shows it: relative to the project when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def evaluate(data: str, weights: Path, lstm: Path | None, smooth: Path | None = None) -> str:
    """Run every method on the test set of `data` and return the markdown report."""
    from liverig.models.backends import load_model

    tune, val, test = sim_sets() if data == "sim" else realdet_sets()
    print(f"{data}: tuning on {len(tune)}, val {len(val)}, test {len(test)} sequences "
          f"({sum(len(s['truth']) for s in test)} frames)", flush=True)  # fmt: skip
    # Casiez's "until still poses stop jittering" needs still poses: realdet's are the train holds
    casiez = tune_casiez(tune + (realdet_holds("train") if data == "realdet" else []))
    best = tune_best(tune)
    print(f"One Euro (Casiez): {casiez['min_cutoff']} Hz, beta {casiez['beta']}; "
          f"best lag<=1: {best['min_cutoff']} Hz, beta {best['beta']}", flush=True)  # fmt: skip
    methods = {  # name -> the method run on one sequence (the swap check reruns them on swapped input)
        "raw": raw,
        "One Euro (Casiez)": lambda s: one_euro(s, casiez["min_cutoff"], casiez["beta"]),
        "One Euro (lag<=1)": lambda s: one_euro(s, best["min_cutoff"], best["beta"]),
    }
    if lstm is not None and Path(lstm).exists():
        from liverig.models.lstm import load

        net = load(str(lstm))
        methods["LSTM"] = lambda s: run_torch(net, s)
    onnx = load_model("onnxruntime", weights)
    methods["ST-CNN"] = lambda s: node_motion(onnx, s)  # as the node runs it
    methods["ST-CNN without side guard"] = lambda s: run_backend(onnx, s)
    results = [Result(name, [run(s) for s in test]) for name, run in methods.items()]
    ours = results[-2].preds
    # the network's own outputs under the ST-CNN row, one pass for every head the report needs
    network = [run_heads(onnx, guarded(s), ("joints", "contact", "rot6d")) for s in test]
    if smooth is not None and Path(smooth).exists():
        smooth_model = load_model("onnxruntime", smooth)
        results.append(Result("ST-CNN (smooth weights)",
                              [node_motion(smooth_model, s) for s in test]))  # fmt: skip
    # A light One Euro after the network, tuned on VAL: lowest accel whose lag stays within the baselines'.
    from liverig.models.stcnn import load as load_stcnn

    torch_net = load_stcnn(str(Path(weights).with_suffix(".pt")))
    val_in = [run_torch(torch_net, guarded(s)) for s in val]
    post = tune_best(val, max_lag=1.0, inputs=val_in)  # the baseline's own criterion, on val
    smoothed = [one_euro(s, post["min_cutoff"], post["beta"], x=o) for s, o in zip(test, ours, strict=True)]
    results.append(Result("ST-CNN + 1€", smoothed))
    # `motion.body.lock_bones: true`: the network, then the bone lengths held (runtime/body.py).
    held_live = [hold_bones(o, s) for s, o in zip(test, ours, strict=True)]
    results.append(Result("ST-CNN + bone hold (live)", held_live))
    profiles = [body_profile(ours[k], test[k]) for k in (calibration_take(i, test) for i in range(len(test)))]
    results.append(Result("ST-CNN + bone hold (profile)", [hold_bones(o, s, p) for s, o, p in
                                                     zip(test, ours, profiles, strict=True)]))  # fmt: skip
    if data == "realdet":  # the foot lock needs the Hips in camera space (from the image landmarks)
        contacts = [n["contact"] for n in network]
        feet, feet_tuning = tune_feet(tune, onnx)
        print(f"foot lock: contact_on {feet.contact_on}, max offset {feet.max_offset_m} m", flush=True)
        results.append(
            Result(
                "ST-CNN + foot lock",
                [
                    foot_locked(o, node_root(s), c, s, feet)
                    for s, o, c in zip(test, ours, contacts, strict=True)
                ],
            )
        )
    truth_row = score([s["truth"].astype(np.float64) for s in test], test)
    from liverig.models.rotations import joint_rotations

    by_name = {r.name: r.preds for r in results}
    rotation_rows = [(f"{name} joints", [joint_rotations(p) for p in by_name[name]])
                     for name in ("raw", "One Euro (lag<=1)", "LSTM", "ST-CNN", "ST-CNN + bone hold (live)")
                     if name in by_name]  # fmt: skip
    rotation_rows.insert(4, ("ST-CNN rotation head (rot6d)", [n["rot6d"] for n in network]))
    if smooth is not None and Path(smooth).exists():
        rotation_rows += [("ST-CNN (smooth weights) joints", [joint_rotations(p) for p in
                                                                by_name["ST-CNN (smooth weights)"]]),
                          ("ST-CNN (smooth weights) rotation head",
                           [run_backend(smooth_model, guarded(s), "rot6d") for s in test])]  # fmt: skip
    scores = {r.name: score(r.preds, test) for r in results}
    ref = accel_reference(scores)
    hold_methods = {k: run for k, run in methods.items() if k != "ST-CNN without side guard"}
    hold_methods["ST-CNN without deadband"] = lambda s: stood(glided(run_backend(onnx, guarded(s)), s), s)
    undamped = [stood(glided(n["joints"], s), s) for n, s in zip(network, test, strict=True)]
    around = {"ST-CNN": scores["ST-CNN"], "ST-CNN without deadband": score(undamped, test)}
    val_holds = realdet_holds("val") if data == "realdet" else []
    deadband = tune_deadband(val, val_holds, onnx) if val_holds else None
    if smooth is not None and Path(smooth).exists():
        hold_methods["ST-CNN (smooth weights)"] = lambda s: node_motion(smooth_model, s)
    hold_methods["ST-CNN + 1€"] = lambda s: one_euro(s, post["min_cutoff"], post["beta"],
                                                     x=node_motion(onnx, s))  # fmt: skip
    grid = _grid_scores(test, *(a.ravel() for a in np.meshgrid(MIN_CUTOFFS, BETAS, indexing="ij")))
    bound_raw = linear_filter_bound([raw(s) for s in val], val, [raw(s) for s in test], test)
    bound_ours = linear_filter_bound(val_in, val, ours, test)
    glides = [glided(n["joints"], s) for n, s in zip(network, test, strict=True)]
    glided_frames = sum(int(np.any(g != n["joints"], axis=(1, 2)).sum())
                        for g, n in zip(glides, network, strict=True))  # fmt: skip
    damped = [deadbanded(g, s) for g, s in zip(glides, test, strict=True)]
    stood_frames = sum(int(np.any(o != d, axis=(1, 2)).sum()) for o, d in zip(ours, damped, strict=True))
    frames = sum(int(seq_valid(s).sum()) for s in test)
    report = [
        f"### {data}: {len(test)} test sequences, {frames} scored frames "
        f"({int(scores['raw']['still_frames'])} still)",
        "",
        table([*scores.items(), ("truth (floor)", truth_row)]),
        "",
        f"One Euro (Casiez): min_cutoff {casiez['min_cutoff']:g} Hz, beta {casiez['beta']:g} "
        f"(still-jitter floor {casiez['jitter_floor_mm']:.2f} mm/f on the tuning set); One Euro (lag<=1): "
        f"min_cutoff {best['min_cutoff']:g} Hz, beta {best['beta']:g}; ST-CNN + 1€: min_cutoff "
        f"{post['min_cutoff']:g} Hz, beta {post['beta']:g} (tuned on val). Weights: {_shown(weights)}"
        + (f"; smooth weights: {_shown(smooth)}." if smooth is not None and Path(smooth).exists() else "."),
        "",
        "Joint rotations (local, per joint relative to its parent and the rest pose, the 15 joints the "
        "positions define: models/rotations.py), from each method's joints and from the network's "
        "rotation head:",
        "",
        rotation_table(rotation_rows, test),
        "",
        f"ST-CNN is the node's default Motion stage: the side guard, the network, the re-entry glide "
        f"(which moved joints seen again after an occlusion in {glided_frames} of these frames), the "
        "deadband (which holds joints that stay put calm; `motion.deadband`) and the unseen-legs stage "
        f"(which stood legs out of view in {stood_frames}). ST-CNN + bone hold (live): "
        "`motion.body.lock_bones: "
        "true`: bone lengths measured from the first confident frames of each sequence, then held "
        "(runtime/body.py); (profile): lengths from a body profile measured on another take of the same "
        "person (the same clip seen by the next camera), as `run_node.py --calibrate-body` makes one."
        + (" ST-CNN + foot lock: `motion.feet.lock: true` (runtime/feet.py), on the node's root, with the "
           "settings tuned on the tuning set (below the Root table)." if data == "realdet" else ""),
        "",
        f"Context for the accel column: the truth's own mean acceleration on these frames is "
        f"{still_output_accel(test):.2f} mm/f², the accel error of an output that never accelerates. "
        "Smoothing alone cannot get below it; only following the true motion more closely can. And lag "
        "costs acceleration error by itself: the truth, delayed by the best One Euro's lag "
        f"({ref['lag']:.2f} f), scores {delayed_truth_accel(test, ref['lag']):.2f} mm/f² without any "
        f"noise; delayed by the ST-CNN's ({scores['ST-CNN']['lag']:.2f} f), "
        f"{delayed_truth_accel(test, scores['ST-CNN']['lag']):.2f} (the target: "
        f"{0.5 * ref['accel']:.2f}). The best causal linear filter of the last {FIR_TAPS} frames, fitted on "
        "val to the truth's accelerations alone, whatever its lag (`linear_filter_bound`), scores "
        f"{bound_raw['accel']:.2f} mm/f² on the detector's joints (lag {bound_raw['lag']:.2f} f, MPJPE "
        f"{bound_raw['mpjpe']:.1f} mm) and {bound_ours['accel']:.2f} on the ST-CNN's (lag "
        f"{bound_ours['lag']:.2f} f, MPJPE {bound_ours['mpjpe']:.1f} mm).",
        "",
        *([holds_section(realdet_holds("test"), hold_methods), ""] if data == "realdet" else []),
        *([deadband_line(*deadband, around), ""] if deadband is not None else []),
        *([root_section(test, tune, val, onnx, by_name, best), "",
           feet_line(test, contacts, feet, feet_tuning), ""] if data == "realdet" else []),
        swap_line(test, {k: run for k, run in methods.items() if k != "One Euro (Casiez)"}),
        "",
        occlusion_line(test, methods, by_name),
        "",
        "Targets:",
        *targets(scores, test, results, grid),
        "",
        "Per activity:",
        "",
        activity_table(results, test),
    ]  # fmt: skip
    return "\n".join(report)


def write_section(data: str, text: str, path: Path = EVAL_MD) -> None:
    """Replace this data set's section of models/EVAL.md (the other's is kept)."""
    start, end = f"<!-- {data} -->", f"<!-- /{data} -->"
    body = path.read_text() if path.exists() else (
        "# Motion model evaluation\n\nWritten by "
        "`python -m liverig.models.evaluation.evaluate --data sim|realdet`; see the "
        "docstring of models/evaluation/evaluate.py for the metric definitions.\n\n"
        "<!-- sim -->\n<!-- /sim -->\n\n"
        "<!-- realdet -->\n<!-- /realdet -->\n"
    )  # fmt: skip
    section = f"{start}\n{text}\n{end}"
    if start in body:
        body = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: section, body, flags=re.S)
    else:
        body += "\n" + section + "\n"
    path.write_text(body)


# ---------------------------------------------------------------------------------------------
# Through the node: replays out, recordings in


def write_replays(out_dir: Path, holds: bool = False) -> list[Path]:
    """Every realdet test sequence (`holds`: every test hold) as a landmark recording (`--source
    replay:`) + its truth (.npz)."""
    from liverig.core.skeleton import landmarks_to_joints
    from liverig.core.types import Observation, Timing
    from liverig.models.training.realdet import holds_root, load_sequences
    from liverig.runtime.recording import LandmarkRecorder

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for seq in load_sequences("test", holds_root() if holds else None):
        fps = float(seq.get("fps", FPS))
        size = tuple(int(v) for v in seq["image_size"])
        path = out_dir / f"{seq['name']}.landmarks.jsonl"
        recorder = LandmarkRecorder(path)
        for t, present in enumerate(seq["present"]):
            timing = Timing(capture=0.0)
            if present:
                obs = Observation(
                    t,
                    t / fps,
                    timing,
                    True,
                    size,
                    seq["image"][t].astype(np.float64),
                    seq["world"][t].astype(np.float64),
                    seq["visibility"][t].astype(np.float64),
                )
            else:
                obs = Observation.absent(t, t / fps, timing, size)
            recorder.write(obs)
        recorder.close()
        world, _ = landmarks_to_joints(seq["world"].astype(np.float64), seq["visibility"].astype(np.float64))
        truth = out_dir / f"{seq['name']}.truth.npz"
        np.savez_compressed(truth, truth=seq["truth"], root=seq["root"], present=seq["present"], world=world,
                            fps=fps, activity=str(seq["activity"]), name=seq["name"],
                            camera_rotation=seq["camera_rotation"])  # fmt: skip
        written += [path, truth]
    return written


def score_recording(recording: Path, truth_path: Path) -> str:
    """Score a node output recording (`--out record:`) against a truth file, frame by frame by index."""
    from liverig.runtime.recording import read_output_recording

    _, frames = read_output_recording(recording)
    with np.load(truth_path) as data:
        truth = {k: data[k] for k in data.files}
    T = len(truth["truth"])
    joints, roots = np.zeros((T, NUM_JOINTS, 3)), np.zeros((T, 3))
    present = np.zeros(T, dtype=bool)
    for f in frames:
        i = int(f["index"])
        if 0 <= i < T and f.get("present") and f.get("joints") is not None:
            joints[i] = np.asarray(f["joints"], dtype=np.float64).reshape(NUM_JOINTS, 3)
            roots[i] = np.asarray(f.get("root") or np.nan, dtype=np.float64)
            present[i] = True
    if "present" in truth:
        present &= truth["present"].astype(bool)
    seq = {"truth": truth["truth"], "root": truth["root"], "present": present,
           "activity": str(truth.get("activity", "?"))}  # fmt: skip
    if "camera_rotation" in truth:  # the world's up, for the contact labels behind the skate figures
        seq["camera"] = {"rotation": truth["camera_rotation"]}
    rows = [("node", score([joints], [seq]))]
    if "world" in truth:
        rows.insert(0, ("raw (truth file)", score([raw({**seq, "world": truth["world"]})], [seq])))
    text = f"{recording}: {int(present.sum())} of {T} frames scored\n\n" + table(rows)
    if np.isfinite(roots[present]).all():
        r = root_score([_hold_gaps(roots, present)], [seq], [joints])
        text += (f"\n\nroot: lateral error {r['lateral_error']:.1f} mm, accel {r['lateral_accel']:.2f} "
                 f"mm/f², lag {r['lateral_lag']:.2f} f; depth error {r['depth_error']:.1f} mm, accel "
                 f"{r['depth_accel']:.2f} mm/f², lag {r['depth_lag']:.2f} f; feet in contact, world "
                 f"{r['world_skate']:.1f} cm/s (models/EVAL.md, Root)")  # fmt: skip
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=("sim", "realdet"), default="sim")
    parser.add_argument("--weights", type=Path, default=ROOT / "models" / "weights" / "stcnn.onnx")
    parser.add_argument("--lstm", type=Path, default=ROOT / "models" / "weights" / "lstm.pt")
    parser.add_argument(
        "--smooth",
        type=Path,
        default=ROOT / "models" / "weights" / "stcnn_smooth.onnx",
        help="the smoother alternative weights (a row of their own)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave models/EVAL.md alone")
    parser.add_argument("--recording", type=Path, help="a node output recording (JSON Lines) to score")
    parser.add_argument("--truth", type=Path, help="the truth .npz for --recording (see --write-replays)")
    parser.add_argument("--write-replays", type=Path, metavar="DIR", help="write realdet test replays here")
    parser.add_argument("--holds", action="store_true", help="--write-replays: the test holds instead")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.write_replays:
        paths = write_replays(args.write_replays, args.holds)
        print(f"wrote {len(paths) // 2} replays + truth files to {args.write_replays}")
        return
    if args.recording:
        if not args.truth:
            parser.error("--recording needs --truth")
        print(score_recording(args.recording, args.truth))
        return
    import torch

    torch.set_num_threads(args.threads)
    text = evaluate(args.data, args.weights, args.lstm, args.smooth)
    print(text)
    if not args.no_write:
        write_section(args.data, text)
        print(f"\nwrote the {args.data} section of {EVAL_MD}")


if __name__ == "__main__":
    main()
