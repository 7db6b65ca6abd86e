"""The evaluation's grid searches: One Euro as the paper tunes it (`tune_casiez`) and lag-matched
(`tune_best`, `one_euro_at_lag`), the node's root filter (`tune_root`), foot lock (`tune_feet`) and
deadband (`tune_deadband`), each on the tuning or validation sequences, never on the test; and the
best causal linear filter (`linear_filter_bound`), what linear smoothing can reach at any lag.
"""

from __future__ import annotations

import numpy as np

from liverig.core.config import DeadbandConfig, FeetConfig, OneEuroConfig, ShareConfig, load_config
from liverig.models.evaluation.methods import (
    deadbanded,
    foot_locked,
    glided,
    guarded,
    node_motion,
    node_root,
    one_euro,
    root_filtered,
    run_backend,
    run_heads,
)
from liverig.models.evaluation.metrics import root_score, score, seq_valid

MIN_CUTOFFS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0)  # Hz
BETAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # Hz per (m/s)
CASIEZ_JITTER_MARGIN = 0.25  # "still poses stop jittering": see tune_casiez
FIR_TAPS = 12  # linear_filter_bound: frames of history (0.4 s at 30 fps)
SHARES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)  # tune_share: the network's share of the correction
SHARE_DETECTORS = ((2.0, 3.0), (4.0, 1.0), (4.0, 3.0), (8.0, 3.0))  # its light One Euro (Hz, beta)
SHARE_ACCEL_MARGIN = 0.05  # tune_share: at most 5 % more acceleration error than the network alone


def tune_share(seqs: list[dict], model) -> tuple[ShareConfig, list[tuple[ShareConfig, dict, dict]]]:
    """The network's share of the correction (`motion.share`) on the grid: the lowest MPJPE + PA-MPJPE
    summed over the framings (each framing weighs the same) among the settings with lag <= 1 frame and
    an acceleration error at most SHARE_ACCEL_MARGIN above the network alone's in every framing (the
    share is not to buy accuracy with jitter), the whole node motion stage run for each setting.
    `seqs`: validation sequences of performers the network never trained on (the share is about data
    it did not see). Returns the choice and every (setting, {framing: score}, total) tried."""
    motion = load_config().motion
    framings = sorted({s.get("framing", "full") for s in seqs})
    tried = []
    for share in sorted(SHARES, reverse=True):  # 1 first: the network alone, the accel reference
        for fc, beta in SHARE_DETECTORS if share < 1 else SHARE_DETECTORS[:1]:
            config = ShareConfig(network=share, detector=OneEuroConfig(min_cutoff=fc, beta=beta))
            run = motion.model_copy(update={"share": config})
            scores = {}
            for framing in framings:
                pick = [s for s in seqs if s.get("framing", "full") == framing]
                scores[framing] = score([node_motion(model, s, run) for s in pick], pick)
            alone = tried[0][1] if tried else scores
            ok = all(
                v["lag"] <= 1.0 and v["accel"] <= (1 + SHARE_ACCEL_MARGIN) * alone[f]["accel"]
                for f, v in scores.items()
            )
            total = sum(v["mpjpe"] + v["pa_mpjpe"] for v in scores.values()) if ok else float("inf")
            tried.append((config, scores, {"total": total}))
    best = min(tried, key=lambda t: t[2]["total"])
    return best[0], tried


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
    return {
        "min_cutoff": fc,
        "beta": beta,
        "jitter_floor_mm": float(floor),
        "still_jitter_mm": {f"{f:g}": float(j) for f, j in zip(fcs, jit, strict=True)},
        "lag_by_beta": {f"{b:g}": float(g) for b, g in zip(betas, lags, strict=True)},
    }


def tune_best(seqs: list[dict], max_lag: float = 1.0, inputs: list | None = None) -> dict:
    """The (min_cutoff, beta) on the grid with the lowest acceleration error whose lag <= max_lag."""
    fcs, betas = (a.ravel() for a in np.meshgrid(MIN_CUTOFFS, BETAS, indexing="ij"))
    scores = _grid_scores(seqs, fcs, betas, inputs)
    ok = [i for i, s in enumerate(scores) if s["lag"] <= max_lag] or [
        min(range(len(scores)), key=lambda i: scores[i]["lag"])
    ]
    i = min(ok, key=lambda i: scores[i]["accel"])
    return {"min_cutoff": float(fcs[i]), "beta": float(betas[i]), "train": scores[i]}


ROOT_RAY_CUTOFFS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 16.0)  # Hz
ROOT_RAY_BETAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # Hz per (ray tangent / s)
ROOT_DISTANCE_CUTOFFS = (0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # Hz
ROOT_DISTANCE_BETAS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)  # Hz per (m/s)
ROOT_DEPTH_TOLERANCE = 0.01  # tune_root: depth errors within 1 % of the lowest count as equal
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
    return config, {
        "mpjpe_alone": alone,
        "mpjpe": best[2] if best else float("nan"),
        "skate_alone": root_score(roots, seqs, joints)["world_skate"],
        "skate": best[0] if best else float("nan"),
    }


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
            ok = (
                on_moving["mpjpe"] <= alone_moving["mpjpe"] * (1 + DEADBAND_MPJPE_TOLERANCE)
                and on_moving["lag"] <= alone_moving["lag"] + DEADBAND_LAG_TOLERANCE
            )
            if ok and (best is None or calm < best[0]):
                best = (calm, config, on_moving)
    config = best[1] if best is not None else DeadbandConfig(enabled=False)
    return config, {
        "mpjpe_alone": alone_moving["mpjpe"],
        "lag_alone": alone_moving["lag"],
        "jitter_alone": alone_holds["jitter"],
        "jitter": best[0] if best else float("nan"),
        "mpjpe": best[2]["mpjpe"] if best else float("nan"),
        "lag": best[2]["lag"] if best else float("nan"),
    }


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
    ok = [
        i
        for i, (r, v) in enumerate(zip(scores, checked, strict=True))
        if max(r["lateral_lag"], v["lateral_lag"]) <= 1.0
    ] or list(range(len(scores)))
    r = min(ok, key=lambda i: scores[i]["lateral_accel"])
    return {"ray": (float(fcs[r]), float(betas[r])), "distance": distance}


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
