"""Training for the motion network. A skeleton for now: it runs end to end on dummy clips; real clips
will come from models/mocap.py + models/simulate.py, which return the same arrays.

    python -m models.train --steps 1 --batch 4            # smoke run on dummy data
    python -m models.train --steps 2000 --out W.pt        # later, with real clips

A clip is a dict of per-frame arrays, the layout `simulate()` returns:
    world (T,22,3) m and image (T,22,2) normalised, visibility (T,22): the detector's view;
    truth (T,22,3) m, root-relative, camera-aligned; root (T,3) m, the Hips in camera space;
    optional rot6d (T,22,6): truth local rotations (the rotation loss is weighted 0 until they exist).
    optional camera["image_size"] (width, height): sets the aspect ratio the features use (as live).
`make_batch` cuts random windows from clips, builds features with models/features.py exactly as the
runtime does, and the targets the heads are compared with. Losses are in metres (de-normalised with
each frame's world scale), so they read as errors in mm x 1e-3.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models import features as feat
from models.stcnn import IDENTITY_6D, STCNN, STCNNConfig, rot6d_to_matrix, save
from runtime.skeleton import BONES, JOINT_INDEX, NUM_JOINTS

FEET = (
    (JOINT_INDEX["LeftFoot"], JOINT_INDEX["LeftToes"]),
    (JOINT_INDEX["RightFoot"], JOINT_INDEX["RightToes"]),
)
_BONE_PARENT = [p for p, _ in BONES]
_BONE_CHILD = [c for _, c in BONES]


@dataclass
class LossWeights:
    joints: float = 1.0  # MPJPE
    velocity: float = 0.5
    acceleration: float = 0.5
    bones: float = 0.2  # bone lengths vs truth, and their frame-to-frame change vs the truth's
    rotation: float = 0.0  # 6D rotations vs truth: 0 until clips carry truth rotations
    contact: float = 0.05  # BCE
    future: float = 0.5  # MPJPE of the joints 1..H frames ahead
    root: float = 0.5  # Hips displacement per frame


def contact_labels(
    truth: np.ndarray, root: np.ndarray, speed: float = 0.015, height: float = 0.05
) -> np.ndarray:
    """Heuristic foot contacts (T, 2) from truth: the lower of foot/toes moves slower than `speed`
    m/frame and is within `height` m of the clip's floor (the 5th percentile of foot heights, +Y up)."""
    points = truth + root[:, None, :]
    labels = np.zeros((len(truth), 2), dtype=np.float32)
    floor = np.percentile(points[:, [j for pair in FEET for j in pair], 1], 5)
    for side, pair in enumerate(FEET):
        foot = points[:, list(pair)]  # (T, 2, 3)
        v = np.linalg.norm(np.diff(foot, axis=0, prepend=foot[:1]), axis=-1).min(axis=-1)
        low = foot[..., 1].min(axis=-1) < floor + height
        labels[:, side] = (v < speed) & low
    return labels


def dummy_clip(frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random-walk motion with detector-like noise: exercises every path, teaches nothing real."""
    base = rng.normal(0, 0.25, (NUM_JOINTS, 3))
    base[0] = 0.0
    truth = base + np.cumsum(rng.normal(0, 0.004, (frames, NUM_JOINTS, 3)), axis=0)
    truth -= truth[:, :1]
    root = np.array([0.0, 0.9, -3.0]) + np.cumsum(rng.normal(0, 0.005, (frames, 3)), axis=0)
    world = truth + rng.normal(0, 0.02, truth.shape)
    image = 0.5 + 0.25 * (truth + root[:, None] - root[:1, None])[..., :2] * (1, -1)
    visibility = rng.uniform(0.3, 1.0, (frames, NUM_JOINTS))
    return {"world": world, "image": image, "visibility": visibility, "truth": truth, "root": root}


def make_batch(clips: list[dict], batch: int, window: int, horizon: int, rng: np.random.Generator) -> dict:
    """Random windows of `window` frames (+ `horizon` frames for the future targets) -> tensors."""
    out: dict[str, list] = {
        k: [] for k in ("features", "scale", "joints", "future", "root", "contact", "rot6d")
    }
    has_rot = []
    for _ in range(batch):
        clip = clips[rng.integers(len(clips))]
        start = rng.integers(0, len(clip["truth"]) - window - horizon + 1)
        sl = slice(start, start + window)
        width, height = clip.get("camera", {}).get("image_size", (1, 1))
        features, scale = feat.normalise(
            clip["world"][sl], clip["image"][sl], clip["visibility"][sl], width / height
        )
        truth = clip["truth"][start : start + window + horizon]
        out["features"].append(features)
        out["scale"].append(scale)
        out["joints"].append(truth[:window])
        out["future"].append(np.stack([truth[k : k + window] for k in range(1, horizon + 1)], axis=1))
        out["root"].append(feat.root_displacement(clip["root"][max(start - 1, 0) : start + window])[-window:])
        contact = clip.get("contact")
        out["contact"].append(
            (contact if contact is not None else contact_labels(clip["truth"], clip["root"]))[sl]
        )
        rot = clip.get("rot6d")
        has_rot.append(rot is not None)
        out["rot6d"].append(
            rot[sl] if rot is not None else np.broadcast_to(IDENTITY_6D, (window, NUM_JOINTS, 6))
        )
    tensors = {k: torch.as_tensor(np.stack(v), dtype=torch.float32) for k, v in out.items()}
    tensors["valid"] = tensors["features"][..., 0, -1]  # the `present` feature: (B, T)
    tensors["has_rot"] = torch.tensor(has_rot, dtype=torch.float32)
    return tensors


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.reshape(mask.shape + (1,) * (x.dim() - mask.dim())).expand_as(x)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def losses(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every loss term, unweighted, in metres where lengths are involved."""
    scale, valid = batch["scale"], batch["valid"]
    joints = feat.denormalise(out["joints"], scale, 2)  # (B, T, J, 3)
    future = feat.denormalise(out["future"], scale, 3)
    root = feat.denormalise(out["root"], scale, 1)
    truth = batch["joints"]
    both = valid[:, 1:] * valid[:, :-1]
    vel, vel_t = joints.diff(dim=1), truth.diff(dim=1)
    lengths = (joints[..., _BONE_CHILD, :] - joints[..., _BONE_PARENT, :]).norm(dim=-1)  # (B, T, bones)
    lengths_t = (truth[..., _BONE_CHILD, :] - truth[..., _BONE_PARENT, :]).norm(dim=-1)
    rot, rot_t = rot6d_to_matrix(out["rot6d"]), rot6d_to_matrix(batch["rot6d"])
    return {
        "joints": _masked_mean((joints - truth).norm(dim=-1), valid),
        "velocity": _masked_mean((vel - vel_t).norm(dim=-1), both),
        "acceleration": _masked_mean(
            (vel.diff(dim=1) - vel_t.diff(dim=1)).norm(dim=-1), both[:, 1:] * both[:, :-1]
        ),
        "bones": _masked_mean((lengths - lengths_t).abs(), valid)
        + _masked_mean((lengths.diff(dim=1) - lengths_t.diff(dim=1)).abs(), both),
        "rotation": _masked_mean(((rot - rot_t) ** 2).sum((-1, -2)), valid * batch["has_rot"][:, None]),
        "contact": F.binary_cross_entropy_with_logits(out["contact_logits"], batch["contact"]),
        "future": _masked_mean((future - batch["future"]).norm(dim=-1), valid),
        "root": _masked_mean((root - batch["root"]).norm(dim=-1), valid),
    }


def train_step(
    model: STCNN, opt: torch.optim.Optimizer, batch: dict, weights: LossWeights, schedule=None
) -> dict[str, float]:
    model.train()
    terms = losses(model(batch["features"]), batch)
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if schedule is not None:
        schedule.step()
    return {"total": total.item(), **{k: v.item() for k, v in terms.items()}}


def warmup_cosine(opt: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to 0. The warm-up matters: the per-frame heads read all 22
    joints at once, and full-size Adam steps on hundreds of zero-initialised weights overshoot."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=121, help="frames per training window")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=200, help="steps of linear learning-rate warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="save the trained weights here (.pt)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    model = STCNN(STCNNConfig())
    weights = LossWeights()
    clips = [dummy_clip(args.window + 60, rng) for _ in range(4)]
    for clip in clips:
        clip["contact"] = contact_labels(clip["truth"], clip["root"])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    schedule = warmup_cosine(opt, args.steps, min(args.warmup, args.steps))
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; loss weights {asdict(weights)}")
    log: dict[str, float] = {}
    for step in range(args.steps):
        batch = make_batch(clips, args.batch, args.window, model.cfg.future, rng)
        log = train_step(model, opt, batch, weights, schedule)
        print(f"step {step}: " + " ".join(f"{k} {v:.4f}" for k, v in log.items()))
    if args.out:
        save(model.eval(), args.out)
    return log


if __name__ == "__main__":
    main()
