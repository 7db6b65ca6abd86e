"""The motion evaluation's metrics: functions of a method's output and a test sequence's truth,
nothing run, nothing tuned, so that the tables, the tuning and the tests all score the same way.

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

Frames where the detector found nobody (`seq_valid`) are left out of every metric (every method still
steps through them, as the node would). Also here: the root's scores (`root_score`, `jump_heights`),
the occlusion bursts' (`occlusion_scores`), the contact head's (`contact_scores`), joint rotations'
(`rotation_scores`) and the accel column's references (`still_output_accel`, `delayed_truth_accel`).
"""

from __future__ import annotations

import numpy as np

from liverig.core.skeleton import BONES, JOINT_INDEX, LIMB_PAIRS
from liverig.models.training.simulate import LIMBS
from liverig.models.training.train import contact_labels, up_direction

FPS = 30.0
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
        "mpjpe": mean(cat["mpjpe"], 1000),
        "pa_mpjpe": mean(cat["pa"], 1000),
        "accel": mean(cat["accel"], 1000),
        "jitter": mean(cat["jitter"], 1000),
        "still_frames": float(len(cat["jitter"])),
        "lag": lag_frames(corr),
        "bone_cv": cv / max(cv_w, 1.0),
        "skate": mean(cat["skate"], 1),
        "flips": float(cat["flips"].sum()),
    }


def seq_valid(seq: dict) -> np.ndarray:
    """Frames with a detection (all frames for the simulator, which always finds the person)."""
    if seq.get("present") is not None:
        return np.asarray(seq["present"], dtype=bool)
    return np.asarray(seq["visibility"]).max(axis=-1) > 0


ROOT_AXES = {"lateral": [0, 1], "depth": [2]}  # camera x, y (across the view) and z (along it)


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
        speeds = [
            skate(j, s["truth"], s["root"].astype(np.float64), seq_valid(s), r, up_direction(s))
            for j, r, s in zip(joints, roots, seqs, strict=True)
        ]
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
    return {
        "hidden": float(hidden.mean() * 1000) if len(hidden) else float("nan"),
        "jump": float(np.mean(jumps) * 1000) if jumps else float("nan"),
        "jumps": float(len(jumps)),
    }


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
    out = {
        part: float(error[:, [JOINT_INDEX[n] for n in names]].mean())
        for part, names in ROTATION_GROUPS.items()
    }
    out["angle"] = float(error[:, ROTATION_JOINTS].mean())
    out["change"] = float(change[:, ROTATION_JOINTS].mean())
    out["change_arms_legs"] = float(
        change[:, [JOINT_INDEX[n] for n in ROTATION_GROUPS["arms"] + ROTATION_GROUPS["legs"]]].mean()
    )
    return out


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
