"""Train the motion network (the ST-CNN, or the LSTM baseline) on real mocap seen through the detector.

The shipped weights (models/MODEL_CARD.md) come from one command each, on one CPU thread:

    python -m liverig.models.training.train --recipe shipped --out models/weights/stcnn.pt  # default, ~26 min
    python -m liverig.models.training.train --recipe smooth --out models/weights/stcnn_smooth.pt  # ~32 min
    python -m liverig.models.training.train --recipe shipped --arch lstm \
        --out models/weights/lstm.pt  # ~12 min

A recipe is stages (configs/recipes/NAME.yaml, read by models/training/recipes.py; `--recipe PATH`
runs a recipe file of your own), each starting from the previous one's weights; `shipped` is exactly:

    python -m liverig.models.training.train --data sim --steps 800 --lr 2e-3 \
        --loss acceleration=10,velocity=2,rotation=0.2 \
        --out models/weights/stcnn.stage1.pt --no-export
    python -m liverig.models.training.train --data both --init models/weights/stcnn.stage1.pt \
        --steps 1000 --lr 1e-3 \
        --warmup 50 --real-fraction 0.6 --loss acceleration=10,velocity=2,rotation=0.2 \
        --out models/weights/stcnn.pt

and `smooth` adds, from the second stage's weights:

    python -m liverig.models.training.train --data both --init STAGE2.pt --steps 500 --lr 5e-4 --warmup 30 \
        --real-fraction 0.6 --loss acceleration=60,velocity=6,rotation=0.2 \
        --out models/weights/stcnn_smooth.pt
    python -m liverig.models.training.train --data dummy --steps 2                                 # smoke run

One process, one thread by default, seeded: the same command gives the same weights (unless the
--minutes safety stop cuts the run short, which it says). At the end the best weights (by validation
loss) are written to --out (.pt, with the training record inside) and, for the ST-CNN, exported to
ONNX next to it (models/export.py: <out>.onnx + <out>.json sidecar), the file the node runs.

Data (--data):
  sim      train-split clips (models/training/mocap.py). Every --refresh steps a fresh pool is drawn:
           each clip
           augmented (models/simulate.augment: speed 0.7-1.3, bone scaling, height, mirroring, yaw) and
           seen through the calibrated detector simulator (random camera, offsets, depth drift,
           jitter, occlusion bursts, swaps), plus --holds held poses (`held`: the mocap has almost
           no still frames). Validation: val-split clips, fixed cameras.
  realdet  real PoseLandmarker output on rendered train clips (models/training/realdet.py), each refresh
           mirrored at random and given synthetic occlusion bursts (`occlude`; left/right swap bursts
           too with --swap-hz, off in the recipes); no yaw or speed change,
           which would misplace the real detector's camera-bound error; --real-holds K adds K of the
           train holds (models/training/realdet.py --holds) to each pool (off in the recipes: MODEL_CARD,
           "Holding still"). Validation: realdet val.
  both     each batch comes from the realdet pool with probability --real-fraction, else from the sim
           one; validated on realdet val (the domain the node lives in).
  dummy    random walks (tests and smoke runs only).
Clips shorter than --window are right-padded with absent frames (all-zero features, masked out of
every loss), so they start from zero history like a person the node has just seen appear.

A clip is a dict of per-frame arrays, the layout `simulate()` returns:
    world (T,22,3) m and image (T,22,2) normalised, visibility (T,22): the detector's view;
    truth (T,22,3) m, root-relative, camera-aligned; root (T,3) m, the Hips in camera space;
    optional rot6d (T,22,6): truth local rotations; computed from `truth` when absent
    (models/rotations.py: swing-only for limbs, as positions cannot show a bone's roll).
    optional camera["image_size"] (width, height): sets the aspect ratio the features use (as live).
`make_batch` cuts random windows from clips, builds features with models/features.py exactly as the
runtime does, and the targets the heads are compared with. Losses are in metres (de-normalised with
each frame's world scale), so they read as errors in mm x 1e-3.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from liverig.core.skeleton import BONE_CHILDREN, BONE_PARENTS, JOINT_INDEX, MIRROR, NUM_JOINTS
from liverig.models import features as feat
from liverig.models.backends import matrix_to_rot6d
from liverig.models.lstm import LSTMConfig, LSTMModel
from liverig.models.rotations import joint_rotations
from liverig.models.stcnn import STCNN, STCNNConfig, rot6d_to_matrix
from liverig.models.training import recipes
from liverig.models.training.simulate import LIMBS, NoiseParams, augment, bursts, simulate, slow_noise

FEET = (
    (JOINT_INDEX["LeftFoot"], JOINT_INDEX["LeftToes"]),
    (JOINT_INDEX["RightFoot"], JOINT_INDEX["RightToes"]),
)
FEET_JOINTS = torch.tensor(FEET)  # (2 feet, foot + toes) for indexing (B, T, J, 3) tensors
ARRAYS = ("world", "image", "visibility", "truth", "root")
STILL_M = 0.003  # the `still` loss: frames whose truth joints move less than this per frame on average
# (models/evaluation/metrics.py's STILL_MM)


@dataclass
class LossWeights:
    joints: float = 1.0  # MPJPE
    velocity: float = 0.5
    acceleration: float = 0.5
    bones: float = 0.2  # bone lengths vs truth, and their frame-to-frame change vs the truth's
    rotation: float = 0.2  # 6D local rotations vs the truth's (models/rotations.py), squared Frobenius
    contact: float = 0.05  # BCE
    future: float = 0.5  # MPJPE of the joints 1..H frames ahead
    root: float = 0.5  # Hips displacement per frame
    skate: float = 0.0  # world speed of the feet while the truth's are planted (on the true root path)
    still: float = 0.0  # velocity error on frames where the truth holds still (jitter, as users see it)


def contact_labels(
    truth: np.ndarray,
    root: np.ndarray,
    up: np.ndarray | None = None,
    speed: float = 0.015,
    height: float = 0.05,
) -> np.ndarray:
    """Heuristic foot contacts (T, 2) from truth: the lower of foot/toes moves slower than `speed`
    m/frame and is within `height` m of the clip's floor (the 5th percentile of foot heights).

    Heights are measured along `up`, the world's up direction in the clip's (camera) frame
    (`up_direction`); +Y when None. A camera tilted by only 7° puts a foot 1 m further away 12 cm
    "higher" along its own Y, more than `height`, so camera Y is not good enough."""
    points = truth + root[:, None, :]
    heights = points @ (np.array([0.0, 1.0, 0.0]) if up is None else np.asarray(up, dtype=np.float64))
    labels = np.zeros((len(truth), 2), dtype=np.float32)
    floor = np.percentile(heights[:, [j for pair in FEET for j in pair]], 5)
    for side, pair in enumerate(FEET):
        foot = points[:, list(pair)]  # (T, 2, 3)
        v = np.linalg.norm(np.diff(foot, axis=0, prepend=foot[:1]), axis=-1).min(axis=-1)
        low = heights[:, list(pair)].min(axis=-1) < floor + height
        labels[:, side] = (v < speed) & low
    return labels


def up_direction(sample: dict) -> np.ndarray | None:
    """The world's up direction in a sample's camera frame: `up` if set (mirrored samples), else the
    camera rotation's second column (world -> camera rows, so this is R @ world up); None: +Y."""
    if sample.get("up") is not None:
        return np.asarray(sample["up"], dtype=np.float64)
    rotation = sample.get("camera", {}).get("rotation")
    return None if rotation is None else np.asarray(rotation, dtype=np.float64)[:, 1]


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


# ---------------------------------------------------------------------------------------------
# Data


def load_train_clips(split: str, clips: str = "registry") -> list:
    """The mocap clips of one split: "registry" (models/training/mocap.py CLIPS) or "corpus" (those
    plus the pinned repository files, `mocap.load_corpus`; the split kept by performer)."""
    from liverig.models.training.mocap import load_clips, load_corpus  # fetches on first use

    return load_corpus(split)[0] if clips == "corpus" else load_clips(split)


def load_realdet_split(split: str, holds: bool = False, clips: str = "registry") -> list[dict]:
    """Real-detector pairs of one split (`holds`: its held standing poses instead), [] when none are
    cached (or the generator is absent). `clips` "corpus": the corpus sequences
    (models/training/realdet.py --corpus) plus the registry clips' ones."""
    try:
        from liverig.models.training.realdet import corpus_root, holds_root, load_realdet
    except ImportError:
        return []
    pairs = load_realdet(split, holds_root() if holds else None)
    if clips == "corpus" and not holds:
        pairs += load_realdet(split, corpus_root())
    return pairs


def simulated(clip, rng: np.random.Generator, params: NoiseParams | None = None, aug: bool = True) -> dict:
    """One clip (models.training.mocap.Clip) augmented (or not) and seen through the detector simulator."""
    joints = augment(clip.joints, rng) if aug else clip.joints
    sample = simulate(joints, rng, params, fps=clip.fps)
    sample.update(name=clip.name, activity=clip.activity)
    return sample


def mirrored(sample: dict) -> dict:
    """The observation and truth of a sample mirrored left/right (x -> -x, image x -> 1 - x).

    A person filmed in a mirror: the detector is close enough to symmetric that this doubles the
    real-detector pairs without inventing an error the real detector would not make.
    """
    out = dict(sample)
    for key in ("world", "truth"):
        out[key] = sample[key][:, MIRROR] * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    image = sample["image"][:, MIRROR].copy()
    present = sample["visibility"].max(axis=-1) > 0
    image[present, :, 0] = 1.0 - image[present, :, 0]  # absent frames stay all zero
    out["image"] = image
    out["visibility"] = sample["visibility"][:, MIRROR]
    out["root"] = sample["root"] * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    up = up_direction(sample)
    out["up"] = None if up is None else up * np.array([-1.0, 1.0, 1.0])
    out.pop("contact", None)  # recomputed from the mirrored truth
    return out


def occlude(sample: dict, rng: np.random.Generator, rate_hz: float = 0.1, fps: float = 30.0) -> dict:
    """Synthetic occlusion bursts on an observation (as `simulate` makes them): a forearm or shin
    chain's visibility falls for 0.3-1.5 s while its position freezes or wanders off by ~15 cm."""
    p = NoiseParams()
    out = {k: (v.copy() if k in ("world", "image", "visibility") else v) for k, v in sample.items()}
    frames = len(out["world"])
    present = out["visibility"].max(axis=-1) > 0
    length = (int(p.occlusion_s[0] * fps), int(p.occlusion_s[1] * fps))
    for chain in LIMBS.values():
        for _ in range(rng.poisson(rate_hz / fps * frames)):
            start = int(rng.integers(0, frames))
            stop = min(frames, start + int(rng.integers(length[0], length[1] + 1)))
            span = np.arange(start, stop)[present[start:stop]]
            if len(span) == 0:
                continue
            low = rng.uniform(*p.occluded_visibility, (len(span), len(chain)))
            out["visibility"][np.ix_(span, chain)] = low
            if rng.random() < 0.5:
                out["world"][np.ix_(span, chain)] = out["world"][span[0], chain]
                out["image"][np.ix_(span, chain)] = out["image"][span[0], chain]
            else:
                wander = slow_noise(rng, (3,), len(span), 0.3 * fps) * p.occlusion_mm / 1000
                out["world"][np.ix_(span, chain)] += wander[:, None].astype(np.float32)
                out["image"][np.ix_(span, chain)] += 0.4 * wander[:, None, :2].astype(np.float32) * (1, -1)
    return out


def swap_sides(
    sample: dict,
    rng: np.random.Generator,
    rate_hz: float,
    fps: float = 30.0,
    frames: tuple[int, int] = (3, 10),
) -> dict:
    """Left/right swap bursts on an observation: the arms, the legs or both trade sides for a few
    frames (world, image and visibility alike), as the real detector does when it loses which way a
    tumbling person faces. The truth keeps its sides. The evaluation injects them to see who follows
    a swap; training adds them with --swap-hz (off in the shipped recipes: models/MODEL_CARD.md)."""
    if rate_hz <= 0:
        return sample
    out = {k: (v.copy() if k in ("world", "image", "visibility") else v) for k, v in sample.items()}
    for start, stop in bursts(rng, len(out["world"]), rate_hz / fps, frames):
        limbs = (("Arm",), ("Leg",), ("Arm", "Leg"))[int(rng.integers(3))]
        for limb in limbs:
            a, b = LIMBS["Left" + limb], LIMBS["Right" + limb]
            for key in ("world", "image", "visibility"):
                out[key][start:stop, a + b] = sample[key][start:stop, b + a]
    return out


def held(clip, rng: np.random.Generator, frames: int = 120):
    """A random pose of a clip held still for `frames` frames: the webcam user who stands still, whom
    a smoother must not shake (few frames of the mocap are still)."""
    t = int(rng.integers(len(clip.joints)))
    return replace(
        clip,
        name=f"{clip.name}_hold",
        activity="still",
        loop=False,
        joints=np.repeat(clip.joints[t : t + 1], frames, axis=0),
    )


def sim_pool(
    clips: list, rng: np.random.Generator, variants: int, holds: int = 0, params: NoiseParams | None = None
) -> list:
    """`variants` augmented, simulated copies of every clip, plus `holds` held poses."""
    pool = [simulated(c, rng, params) for c in clips for _ in range(variants)]
    if clips:
        pool += [simulated(held(clips[rng.integers(len(clips))], rng), rng, params) for _ in range(holds)]
    return pool


def real_pool(
    samples: list[dict], rng: np.random.Generator, occlusion_hz: float, swap_hz: float = 0.0
) -> list[dict]:
    out = []
    for s in samples:
        s = mirrored(s) if rng.random() < 0.5 else s
        out.append(swap_sides(occlude(s, rng, occlusion_hz), rng, swap_hz))
    return out


def fixed_sim_set(clips: list, seed: int, cameras: int) -> list[dict]:
    """Un-augmented clips, each through `cameras` seeded random cameras: a fixed evaluation set."""
    rng = np.random.default_rng(seed)
    return [simulated(c, rng, aug=False) for c in clips for _ in range(cameras)]


def aspect(sample: dict) -> float:
    width, height = sample.get("camera", {}).get("image_size", (1, 1))
    return width / height


def _padded(clip: dict, frames: int) -> dict:
    """Right-pad a clip shorter than `frames` with absent frames (zero observation, truth held).

    Right, not left: the network is causal, so frames after the clip cannot change its outputs, and
    the clip starts from zero history, as the node starts a person who comes into view (it resets
    the model then). The padded frames are masked out of the losses.
    """
    missing = frames - len(clip["truth"])
    if missing <= 0:
        return clip
    out = dict(clip)
    for key in ("world", "image", "visibility"):
        out[key] = np.concatenate([clip[key], np.zeros((missing, *clip[key].shape[1:]), clip[key].dtype)])
    for key in ("truth", "root", "contact", "rot6d"):
        if clip.get(key) is not None:
            out[key] = np.concatenate([clip[key], np.repeat(clip[key][-1:], missing, axis=0)])
    return out


def make_batch(
    clips: list[dict],
    batch: int,
    window: int,
    horizon: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> dict:
    """Random windows of `window` frames (+ `horizon` frames for the future targets) -> tensors.

    Clips are drawn with probabilities `weights` (uniform if None); a clip too short is right-padded
    with absent frames, which the `valid` mask keeps out of the losses.
    """
    out: dict[str, list] = {
        k: [] for k in ("features", "scale", "joints", "future", "root", "contact", "rot6d")
    }
    for _ in range(batch):
        clip = clips[rng.choice(len(clips), p=weights)]
        if clip.get("contact") is None:
            clip["contact"] = contact_labels(clip["truth"], clip["root"], up_direction(clip))
        clip = _padded(clip, window + horizon)
        start = rng.integers(0, len(clip["truth"]) - window - horizon + 1)
        sl = slice(start, start + window)
        features, scale = feat.normalise(
            clip["world"][sl], clip["image"][sl], clip["visibility"][sl], aspect(clip)
        )
        truth = clip["truth"][start : start + window + horizon]
        out["features"].append(features)
        out["scale"].append(scale)
        out["joints"].append(truth[:window])
        out["future"].append(np.stack([truth[k : k + window] for k in range(1, horizon + 1)], axis=1))
        out["root"].append(feat.root_displacement(clip["root"][max(start - 1, 0) : start + window])[-window:])
        out["contact"].append(clip["contact"][sl])
        rot = clip.get("rot6d")
        # a clip's own rotations if it has them, else computed from its truth
        out["rot6d"].append(rot[sl] if rot is not None else matrix_to_rot6d(joint_rotations(truth[:window])))
    tensors = {k: torch.as_tensor(np.stack(v), dtype=torch.float32) for k, v in out.items()}
    tensors["valid"] = tensors["features"][..., 0, -1]  # the `present` feature: (B, T)
    return tensors


def sequence_batch(sample: dict, horizon: int) -> dict:
    """A whole sequence as a batch of one (validation); the future targets past its end are the last
    frame held, which costs little on sequences of a few hundred frames."""
    clip = {k: np.concatenate([sample[k], np.repeat(sample[k][-1:], horizon, axis=0)]) for k in ARRAYS}
    clip["camera"] = sample.get("camera", {})
    return make_batch([clip], 1, len(sample["truth"]), horizon, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------
# Losses and steps


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.reshape(mask.shape + (1,) * (x.dim() - mask.dim())).expand_as(x)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def losses(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every loss term, unweighted, in metres where lengths are involved; absent frames masked out."""
    scale, valid = batch["scale"], batch["valid"]
    joints = feat.denormalise(out["joints"], scale, 2)  # (B, T, J, 3)
    future = feat.denormalise(out["future"], scale, 3)
    root = feat.denormalise(out["root"], scale, 1)
    truth = batch["joints"]
    both = valid[:, 1:] * valid[:, :-1]
    vel, vel_t = joints.diff(dim=1), truth.diff(dim=1)
    lengths = (joints[..., BONE_CHILDREN, :] - joints[..., BONE_PARENTS, :]).norm(dim=-1)  # (B, T, bones)
    lengths_t = (truth[..., BONE_CHILDREN, :] - truth[..., BONE_PARENTS, :]).norm(dim=-1)
    rot, rot_t = rot6d_to_matrix(out["rot6d"]), rot6d_to_matrix(batch["rot6d"])
    bce = F.binary_cross_entropy_with_logits(out["contact_logits"], batch["contact"], reduction="none")
    # the feet's world velocity: the true Hips' step (batch root[t + 1]) + the predicted joints' step
    feet_world = batch["root"][:, 1:, None, None, :] + vel[:, :, FEET_JOINTS]  # (B, T - 1, 2 feet, 2, 3)
    planted = both[..., None] * batch["contact"][:, 1:] * batch["contact"][:, :-1]  # (B, T - 1, 2)
    return {
        "joints": _masked_mean((joints - truth).norm(dim=-1), valid),
        "velocity": _masked_mean((vel - vel_t).norm(dim=-1), both),
        "acceleration": _masked_mean(
            (vel.diff(dim=1) - vel_t.diff(dim=1)).norm(dim=-1), both[:, 1:] * both[:, :-1]
        ),
        "bones": _masked_mean((lengths - lengths_t).abs(), valid)
        + _masked_mean((lengths.diff(dim=1) - lengths_t.diff(dim=1)).abs(), both),
        "rotation": _masked_mean(((rot - rot_t) ** 2).sum((-1, -2)), valid),
        "contact": _masked_mean(bce, valid),
        "future": _masked_mean((future - batch["future"]).norm(dim=-1), valid),
        "root": _masked_mean((root - batch["root"]).norm(dim=-1), valid),
        "skate": _masked_mean(feet_world.norm(dim=-1).mean(dim=-1), planted),
        "still": _masked_mean((vel - vel_t).norm(dim=-1), both * (vel_t.norm(dim=-1).mean(dim=-1) < STILL_M)),
    }


def train_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict, weights: LossWeights, schedule=None
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


@torch.no_grad()
def validate(model: torch.nn.Module, batches: list[dict], weights: LossWeights) -> dict[str, float]:
    """Frame-weighted mean of every loss term over whole validation sequences, plus MPJPE and
    acceleration error in mm for reading."""
    model.eval()
    sums: dict[str, float] = {}
    frames = 0.0
    for batch in batches:
        terms = losses(model(batch["features"]), batch)
        terms["total"] = sum(getattr(weights, k) * v for k, v in terms.items())
        n = float(batch["valid"].sum())
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        frames += n
    out = {k: v / max(frames, 1.0) for k, v in sums.items()}
    out["mpjpe_mm"] = 1000 * out["joints"]
    out["accel_mm"] = 1000 * out["acceleration"]
    return out


def warmup_cosine(opt: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to 0. The warm-up matters: the per-frame heads read all 22
    joints at once, and full-size Adam steps on hundreds of zero-initialised weights overshoot."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


# ---------------------------------------------------------------------------------------------
# Models


def build(arch: str, channels: int, hidden: int) -> torch.nn.Module:
    if arch == "stcnn":
        return STCNN(STCNNConfig(channels=channels))
    if arch == "lstm":
        return LSTMModel(LSTMConfig(hidden=hidden))
    raise ValueError(f"unknown arch {arch!r}")


def load_any(path: str | Path) -> torch.nn.Module:
    """A saved ST-CNN or LSTM (.pt), whichever the file holds."""
    blob = torch.load(str(path), map_location="cpu", weights_only=True)
    if blob.get("arch") == "lstm":
        from liverig.models.lstm import load

        return load(str(path))
    from liverig.models.stcnn import load

    return load(str(path))


def save_any(model: torch.nn.Module, path: str | Path, record: dict) -> None:
    """The weights, config and the training record (args, steps, time, validation) in one .pt."""
    blob = {"config": asdict(model.cfg), "model": model.state_dict(), "training": json.dumps(record)}
    if isinstance(model, LSTMModel):
        blob["arch"] = "lstm"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, str(path))


def contact_head_only(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Freeze everything but the contact rows of the per-frame head (rows: root 0-2, contact 3-4), so
    retraining the foot contacts leaves every other output of the network bit-identical."""
    for p in model.parameters():
        p.requires_grad_(False)
    head = model.frame_head
    rows = torch.zeros(head.out_features)
    rows[3:5] = 1.0
    head.weight.requires_grad_(True)
    head.bias.requires_grad_(True)
    head.weight.register_hook(lambda g: g * rows[:, None])
    head.bias.register_hook(lambda g: g * rows)
    return [head.weight, head.bias]


# ---------------------------------------------------------------------------------------------


@dataclass
class Data:
    """What one run trains and validates on."""

    sim_clips: list
    real: list[dict]
    val: list[dict]
    val_name: str
    # held standing poses (models/training/realdet.py --holds)
    real_holds: list[dict] = field(default_factory=list)


def load_data(
    kind: str, rng: np.random.Generator, val_cameras: int = 4, holds: bool = False, clips: str = "registry"
) -> Data:
    """What `--data kind` trains and validates on; `holds`: the realdet train holds too; `clips`:
    "registry" or "corpus" (`load_train_clips`)."""
    if kind == "dummy":
        sim = [dummy_clip(200, rng) for _ in range(4)]
        return Data([], sim, [dummy_clip(150, rng)], "dummy")
    sim_clips = load_train_clips("train", clips) if kind in ("sim", "both") else []
    real = load_realdet_split("train", clips=clips) if kind in ("realdet", "both") else []
    if kind in ("realdet", "both") and not real:
        raise SystemExit(
            "no real-detector train pairs cached yet: run `python -m liverig.models.training.realdet` first"
        )
    real_val = load_realdet_split("val", clips=clips) if kind != "sim" else []
    if real_val:
        real_holds = load_realdet_split("train", holds=True) if holds else []
        return Data(sim_clips, real, real_val, "realdet val", real_holds)
    val_clips = load_train_clips("val", clips)
    return Data(sim_clips, real, fixed_sim_set(val_clips, 1234, val_cameras), "sim val")


def without_source(data: Data, source: str) -> Data:
    """`data` less every clip and sequence of one motion source (clip names start with `source`_)."""

    def keep(name: str) -> bool:
        return not name.startswith(source + "_")

    return replace(
        data,
        sim_clips=[c for c in data.sim_clips if keep(c.name)],
        real=[r for r in data.real if keep(r.get("clip", r.get("name", "")))],
        val=[v for v in data.val if keep(v.get("clip", v.get("name", "")))],
        real_holds=[h for h in data.real_holds if keep(h.get("clip", h.get("name", "")))],
    )


# Options of the whole run that the command line hands to every stage of a recipe (after the stage's
# own, so they win): a leave-one-source-out run is the recipe less one source in every stage.
RUN_WIDE = ("exclude_source", "minutes", "threads")


def train_recipe(arch: str, out: str, stages: list[list[str]], extra: Sequence[str] = ()) -> dict:
    """Every stage of a recipe (`recipes.read_recipe`); the earlier stages' weights go next to `out`
    (*.stageN.pt). `extra`: train.py options given to every stage (RUN_WIDE, from the command line)."""
    previous: list[str] = []
    for n, stage in enumerate(stages, start=1):
        last = n == len(stages)
        target = out if last else str(Path(out).with_suffix(f".stage{n}.pt"))
        export = [] if last else ["--no-export"]
        record = main(["--arch", arch, *stage, *extra, *previous, "--out", target, *export])
        previous = ["--init", target]
    return record


def build_parser() -> argparse.ArgumentParser:
    """train.py's options: the command line's, and what a recipe's stages may set (recipes.py)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--recipe",
        metavar="NAME|PATH",
        help="run a recipe's every stage (configs/recipes/NAME.yaml: "
        f"{', '.join(recipes.available())}; shipped ~26, smooth ~32 min for the ST-CNN on this CPU) "
        "or a recipe file; needs --out",
    )
    parser.add_argument("--arch", choices=("stcnn", "lstm"), default="stcnn")
    parser.add_argument("--data", choices=("sim", "realdet", "both", "dummy"), default="sim")
    parser.add_argument(
        "--clips",
        choices=("registry", "corpus"),
        default="registry",
        help="the motion: the registry clips, or the extended corpus (docs/mocap.md) with its realdet "
        "--corpus sequences",
    )
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--minutes", type=float, default=30.0, help="safety stop (breaks reproducibility)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=121, help="frames per training window")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100, help="steps of linear learning-rate warm-up")
    parser.add_argument("--channels", type=int, default=32, help="ST-CNN channels per joint")
    parser.add_argument("--hidden", type=int, default=128, help="LSTM hidden size")
    parser.add_argument("--refresh", type=int, default=10, help="steps between fresh augmented pools")
    parser.add_argument("--variants", type=int, default=2, help="augmented copies of each clip per pool")
    parser.add_argument("--holds", type=int, default=4, help="held still poses per pool")
    parser.add_argument(
        "--real-holds",
        type=int,
        default=0,
        help="realdet held standing poses per pool "
        "(models/training/realdet.py --holds), drawn from those cached",
    )
    parser.add_argument("--real-fraction", type=float, default=0.5, help="--data both: share of realdet")
    parser.add_argument("--occlusion-hz", type=float, default=0.1, help="bursts per limb per s on realdet")
    parser.add_argument("--swap-hz", type=float, default=0.0, help="left/right swap bursts per s on realdet")
    parser.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="validate and keep an exponential moving "
        "average of the weights with this decay per step (e.g. 0.995); 0: the weights",
    )
    parser.add_argument("--loss", default="", help="loss weight overrides, e.g. acceleration=5,velocity=1")
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--init", help="start from these weights (.pt) instead of from scratch")
    parser.add_argument(
        "--only",
        choices=("contact",),
        help="train only this head (needs --init); every other output stays bit-identical",
    )
    parser.add_argument(
        "--exclude-source",
        default="",
        help="leave this motion source out of training and validation (a corpus key: acrnn, cmuamc, przestr, "
        "bvh11; clip names start with it), to test on it (evaluate --data corpus --source KEY)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="save the best weights here (.pt); the ST-CNN also as <out>.onnx")
    parser.add_argument("--no-export", action="store_true", help="skip the ONNX export")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.only and not args.init:
        parser.error("--only needs --init (the weights whose head to retrain)")
    if args.recipe:
        if not args.out:
            parser.error("--recipe needs --out")
        try:
            stages = recipes.read_recipe(args.recipe, parser, LossWeights.__dataclass_fields__)
        except recipes.RecipeError as error:
            parser.exit(2, f"{parser.prog}: {error}\n")
        extra = [
            arg
            for dest in RUN_WIDE
            if getattr(args, dest) != parser.get_default(dest)
            for arg in (f"--{dest.replace('_', '-')}", str(getattr(args, dest)))
        ]
        return train_recipe(args.arch, args.out, stages, extra)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    began = time.perf_counter()

    data = load_data(args.data, rng, holds=args.real_holds > 0, clips=args.clips)
    if args.exclude_source:  # leave one source out: none of its clips, simulated or filmed, nor in val
        data = without_source(data, args.exclude_source)
    model = load_any(args.init) if args.init else build(args.arch, args.channels, args.hidden)
    weights = LossWeights(**{k: float(v) for k, v in (kv.split("=") for kv in args.loss.split(",") if kv)})
    trainable = list(model.parameters())
    if args.only == "contact":  # the contact loss alone, on the contact rows alone
        weights = LossWeights(**{k: 1.0 if k == "contact" else 0.0 for k in asdict(weights)})
        trainable = contact_head_only(model)
    horizon = model.cfg.future
    val_batches = [sequence_batch(s, horizon) for s in data.val]
    # no weight decay when training a few rows: it would shrink the frozen rows of the same matrix
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0 if args.only else 1e-2)
    schedule = warmup_cosine(opt, args.steps, min(args.warmup, args.steps))
    arch = "lstm" if isinstance(model, LSTMModel) else "stcnn"
    print(
        f"{arch}: {sum(p.numel() for p in model.parameters()):,} parameters; data {args.data}: "
        f"{len(data.sim_clips)} sim clips, {len(data.real)} realdet sequences; validation on "
        f"{len(data.val)} {data.val_name} sequences; loss weights {asdict(weights)}",
        flush=True,
    )

    # With --ema the weights that are validated and kept are a moving average of the trained ones.
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema)) if args.ema else None
    kept = ema.module if ema is not None else model
    best = validate(model, val_batches, weights) if args.init else {"total": float("inf")}
    best_state, best_step, history = copy.deepcopy(model.state_dict()), 0, []
    sim, real, log, stopped = [], [], {}, None
    for step in range(args.steps):
        if step % args.refresh == 0:
            sim = sim_pool(data.sim_clips, rng, args.variants, args.holds)
            real = data.real
            if args.data != "dummy":
                holds = min(args.real_holds, len(data.real_holds))  # none: the rng draws as it always did
                picked = rng.choice(len(data.real_holds), holds, replace=False) if holds else []
                real = real_pool(
                    data.real + [data.real_holds[i] for i in picked], rng, args.occlusion_hz, args.swap_hz
                )
        pool = real if (not sim or (real and rng.random() < args.real_fraction)) else sim
        lengths = np.array([len(c["truth"]) for c in pool], dtype=np.float64)
        p = np.sqrt(lengths) / np.sqrt(lengths).sum()  # long clips more often, short ones still often
        batch = make_batch(pool, args.batch, args.window, horizon, rng, p)
        log = train_step(model, opt, batch, weights, schedule)
        if ema is not None:
            ema.update_parameters(model)
        last = step == args.steps - 1
        out_of_time = time.perf_counter() - began > 60 * args.minutes
        if (step + 1) % args.val_every == 0 or last or out_of_time:
            val = validate(kept, val_batches, weights)
            history.append(
                {"step": step + 1, "train": log["total"], **{"val_" + k: v for k, v in val.items()}}
            )
            mark = ""
            if val["total"] < best["total"]:
                best, best_state, best_step, mark = val, copy.deepcopy(kept.state_dict()), step + 1, " *"
            print(
                f"step {step + 1:5d} {time.perf_counter() - began:6.0f} s  train {log['total']:.4f} "
                f"(mpjpe {1000 * log['joints']:.1f} mm)  val {val['total']:.4f} "
                f"mpjpe {val['mpjpe_mm']:.1f} mm accel {val['accel_mm']:.2f} mm{mark}",
                flush=True,
            )
        if out_of_time and not last:
            stopped = step + 1
            print(f"--minutes {args.minutes} reached at step {stopped}: stopping early (not reproducible)")
            break
    model.load_state_dict(best_state)
    model.eval()
    record = {
        "command": "python -m liverig.models.training.train "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "args": vars(args),
        "arch": arch,
        "best_step": best_step,
        "stopped_early_at": stopped,
        "minutes": round((time.perf_counter() - began) / 60, 2),
        "best_val": best,
        "val_set": data.val_name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
        "data": {
            "sim_clips": [c.name for c in data.sim_clips],
            "realdet_train": [r.get("name", "?") for r in data.real],
            "val": len(data.val),
        },
    }
    print(f"best step {best_step}: val {best.get('total', float('nan')):.4f}; {record['minutes']} min")
    if args.out:
        save_any(model, args.out, record)
        print(f"saved {args.out}")
        if arch == "stcnn" and not args.no_export:
            from liverig.models.export import export_step

            onnx = Path(args.out).with_suffix(".onnx")
            meta = export_step(model, onnx)
            print(f"exported {onnx} + {onnx.with_suffix('.json')} ({meta['parameters']:,} parameters)")
    return {"log": log, "record": record, "model": model}


if __name__ == "__main__":
    main()
