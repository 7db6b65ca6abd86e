"""What MediaPipe BlazePose would report for a known motion: a calibrated observation simulator.

A motion model trained on made-up noise did not transfer to the real detector (see the project
notes): the synthetic noise was ~9x jerkier, while BlazePose's real error is slow, structured and
mostly along the camera axis. This simulator imitates the measured error instead. Measured on real
BlazePose output for a rendered person with known truth (camera-aligned, hip-centred, 30 fps):

    RMS error per camera axis   x 53 mm, y 56 mm, depth 118 mm
    per-joint mean offset       69 mm (norm of each joint's mean error over a sequence)
    skeleton scale              0.905 x the true size
    acceleration error          12 mm/frame^2 (the truth's own: 2.3)

`simulate` places a random pinhole camera around the subject, expresses the truth in the
camera-aligned canonical frame (the frame MediaPipe's world landmarks live in, after
`skeleton.landmarks_to_joints`) and corrupts it with, per sequence:

  - scale          a global factor ~ N(scale_mean, scale_std)
  - offset         a fixed per-joint offset ~ N(0, offset_mm) per camera axis
  - drift          slow error of every bone vector, proportional to its length and mostly along the
                   depth axis (drift_rel), accumulated down the tree, so a wrong torso lean moves
                   the arms and head with it and errors grow towards the hands and feet; low-pass
                   (Gaussian) with a correlation time drawn from drift_tau_s
  - jitter         small white noise (jitter_mm)
  - occlusion      bursts (occlusion_rate_hz per limb, occlusion_s long) in which a forearm or shin
                   chain's visibility falls and its position freezes or wanders off (occlusion_mm)
  - swaps          rare, short left/right swaps of the arms or legs (swap_rate_hz, swap_frames)
  - visibility     high when seen, lower for the far-side limbs in a side view, low out of frame

Hips, Spine, Chest and Neck are recomputed from the noisy hip and shoulder joints, and everything
is re-centred on the hips, exactly as `landmarks_to_joints` builds them from landmarks. The image
landmarks share part of the 3D error (image_share) plus pixel jitter.

`measure_noise` computes the four figures above. With the defaults, pooled over the four long
real clips (>= 300 frames) and 8 random cameras each (`python -m liverig.models.training.simulate`,
checked to 20 %
in tests/test_simulate.py): x 50, y 53, depth 114 mm; offset 70 mm; scale 0.912; acceleration
error 11.8 mm/frame^2 (the clips' own: 7.0). Depth error comes mostly from the drift (107 mm alone),
x and y from the offsets and the scale; the acceleration error almost only from the jitter. On
clips of a few seconds the drift has no time to average out, so their per-joint offset is larger.
The exact definitions behind the measured figures are assumed to be those of `measure_noise`:
errors hip-aligned but not scale-aligned, over all joints but the hips, scale a least-squares fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from liverig.core.skeleton import JOINT_INDEX, LIMB_PAIRS, NUM_JOINTS, PARENTS, bone_lengths, mirror_joints
from liverig.models.training.mocap import derive_torso, floor_height

TARGETS = {
    "rms_x_mm": 53.0,
    "rms_y_mm": 56.0,
    "rms_z_mm": 118.0,
    "offset_mm": 69.0,
    "scale": 0.905,
    "accel_mm": 12.0,
}

J = JOINT_INDEX
LIMBS = {  # the joints an occlusion burst or a swap affects (core/skeleton.py LIMB_PAIRS)
    side + limb: chain
    for limb, pair in zip(("Arm", "Leg"), LIMB_PAIRS, strict=True)
    for side, chain in zip(("Left", "Right"), pair, strict=True)
}
LEFT = np.array(["Left" in n for n in JOINT_INDEX])
RIGHT = np.array(["Right" in n for n in JOINT_INDEX])


@dataclass
class NoiseParams:
    """Every knob of the simulator; defaults reproduce the measured BlazePose figures (docstring)."""

    # camera
    image_size: tuple[int, int] = (640, 480)
    fov_deg: tuple[float, float] = (50.0, 75.0)  # horizontal field of view
    distance_m: tuple[float, float] = (2.5, 5.0)  # from the subject's mean position
    height_m: tuple[float, float] = (0.8, 1.8)  # camera above the floor
    azimuth_deg: tuple[float, float] = (-180.0, 180.0)  # 0: in front of the first frame's facing
    # error of the 3D (world) landmarks, camera axes (x, y, depth)
    scale_mean: float = 0.905
    scale_std: float = 0.03
    offset_mm: tuple[float, float, float] = (30.0, 25.0, 40.0)
    drift_rel: tuple[float, float, float] = (0.08, 0.03, 0.26)  # x bone length, per bone
    drift_tau_s: tuple[float, float] = (0.5, 2.0)
    jitter_mm: tuple[float, float, float] = (2.5, 2.5, 3.5)
    # occlusion bursts and swaps
    occlusion_rate_hz: float = 0.03  # per limb
    occlusion_s: tuple[float, float] = (0.3, 1.5)
    occlusion_mm: float = 150.0  # size of the wrong position when it wanders rather than freezes
    swap_rate_hz: float = 0.01  # per sequence
    swap_frames: tuple[int, int] = (2, 8)
    # visibility
    far_side_visibility: float = 0.55  # a far-side limb in a full side view
    occluded_visibility: tuple[float, float] = (0.05, 0.4)
    # image landmarks
    image_share: float = 0.4  # part of the 3D error (x, y) the image landmarks share
    image_jitter_px: float = 1.0


# ---------------------------------------------------------------------------------------------
# Camera


def random_camera(joints: np.ndarray, rng: np.random.Generator, p: NoiseParams) -> dict:
    """A pinhole camera looking at the subject from a random azimuth, distance and height.

    When the subject wanders, the camera backs off by the radius of its path, so it stays in front.
    """
    hips = joints[:, J["Hips"]]
    ground = hips[:, [0, 2]]
    centre = 0.5 * (ground.min(axis=0) + ground.max(axis=0))
    wander = np.linalg.norm(ground - centre, axis=1).max()
    azimuth = np.radians(rng.uniform(*p.azimuth_deg))
    distance = rng.uniform(*p.distance_m) + wander
    height = rng.uniform(*p.height_m)
    fov = rng.uniform(*p.fov_deg)
    x, z = centre + distance * np.array([np.sin(azimuth), np.cos(azimuth)])
    position = np.array([x, height, z])
    target = np.array([centre[0], np.median(hips[:, 1]), centre[1]])
    back = (position - target) / np.linalg.norm(position - target)  # camera +Z
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    width, _ = p.image_size
    return {
        "position": position,
        "rotation": np.stack([right, up, back]),  # world -> camera (rows)
        "azimuth_deg": float(np.degrees(azimuth)),
        "distance_m": float(distance),
        "height_m": float(height),
        "fov_deg": float(fov),
        "focal_px": float(0.5 * width / np.tan(np.radians(fov) / 2)),
        "image_size": p.image_size,
    }


def project(points_cam: np.ndarray, camera: dict) -> np.ndarray:
    """Camera-space points (canonical axes, subject at -Z) -> normalised image coordinates."""
    width, height = camera["image_size"]
    f = camera["focal_px"]
    depth = np.maximum(-points_cam[..., 2], 1e-3)
    u = width / 2 + f * points_cam[..., 0] / depth
    v = height / 2 - f * points_cam[..., 1] / depth
    return np.stack([u / width, v / height], axis=-1)


# ---------------------------------------------------------------------------------------------
# Noise


def slow_noise(rng: np.random.Generator, shape: tuple, frames: int, tau_frames: float) -> np.ndarray:
    """Unit-variance Gaussian-filtered noise (frames, *shape) with autocorrelation exp(-(lag/tau)^2)."""
    sigma = max(tau_frames / 2.0, 0.5)
    pad = int(4 * sigma) + 1
    white = rng.standard_normal((frames + 2 * pad, *shape))
    smooth = gaussian_filter1d(white, sigma, axis=0, mode="wrap")[pad : pad + frames]
    return smooth * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)


def _accumulate(bone_noise: np.ndarray) -> np.ndarray:
    """Per-bone noise (T, J, 3) (indexed by child joint) -> per-joint noise summed down the tree."""
    out = np.zeros_like(bone_noise)
    for j in range(1, NUM_JOINTS):
        out[:, j] = out[:, PARENTS[j]] + bone_noise[:, j]
    return out


def bursts(rng: np.random.Generator, frames: int, rate_per_frame: float, length: tuple[int, int]) -> list:
    """Poisson-timed (start, stop) frame spans."""
    count = rng.poisson(rate_per_frame * frames)
    starts = rng.integers(0, max(frames, 1), size=count)
    return [(int(s), int(min(frames, s + rng.integers(length[0], length[1] + 1)))) for s in starts]


def simulate(
    joints: np.ndarray, rng: np.random.Generator, params: NoiseParams | None = None, fps: float = 30.0
) -> dict:
    """Simulated BlazePose observation of a canonical world clip (T, 22, 3).

    Returns world (T,22,3) noisy, hip-centred, camera-aligned; image (T,22,2) normalised; visibility
    (T,22); truth (T,22,3) hip-centred in the same camera-aligned frame; root (T,3) the true hips in
    camera space; camera (dict). Arrays are float32.
    """
    p = params or NoiseParams()
    joints = np.asarray(joints, dtype=np.float64)
    T = len(joints)
    camera = random_camera(joints, rng, p)
    cam = (joints - camera["position"]) @ camera["rotation"].T
    root = cam[:, J["Hips"]]
    truth = cam - root[:, None]

    # 3D error in camera axes, metres.
    offset = rng.standard_normal((NUM_JOINTS, 3)) * np.array(p.offset_mm) / 1000
    tau = rng.uniform(*p.drift_tau_s) * fps
    lengths = np.concatenate([[0.0], np.median(bone_lengths(truth), axis=0)])  # indexed by child joint
    drift = _accumulate(slow_noise(rng, (NUM_JOINTS, 3), T, tau) * np.array(p.drift_rel) * lengths[:, None])
    jitter = rng.standard_normal((T, NUM_JOINTS, 3)) * np.array(p.jitter_mm) / 1000
    obs = truth + offset + drift + jitter

    # Visibility: seen / far side of a side view / out of frame.
    visibility = 1.0 - np.abs(rng.normal(0.0, 0.01, (T, NUM_JOINTS)))
    across = (
        truth[:, J["LeftUpperLeg"]]
        - truth[:, J["RightUpperLeg"]]
        + truth[:, J["LeftUpperArm"]]
        - truth[:, J["RightUpperArm"]]
    )
    side = across[:, 2] / np.maximum(np.linalg.norm(across, axis=1), 1e-9)  # +1: left side to camera
    far = 1.0 - (1.0 - p.far_side_visibility) * np.clip(np.stack([-side, side], 1), 0, 1)
    visibility[:, LEFT] *= far[:, :1]
    visibility[:, RIGHT] *= far[:, 1:]

    # Occlusion bursts: a limb chain's visibility falls; its position freezes or wanders off.
    frames_per = (max(1, int(p.occlusion_s[0] * fps)), max(1, int(p.occlusion_s[1] * fps)))
    for chain in LIMBS.values():
        for start, stop in bursts(rng, T, p.occlusion_rate_hz / fps, frames_per):
            low = rng.uniform(*p.occluded_visibility, size=(stop - start, len(chain)))
            visibility[start:stop, chain] = low
            if rng.random() < 0.5:
                obs[start:stop, chain] = obs[start, chain]
            else:
                wander = slow_noise(rng, (3,), stop - start, 0.3 * fps) * p.occlusion_mm / 1000
                obs[start:stop, chain] += wander[:, None]

    # Rare left/right swaps of the arms or legs.
    for start, stop in bursts(rng, T, p.swap_rate_hz / fps, p.swap_frames):
        limb = ("Arm", "Leg")[int(rng.random() < 0.7)]
        a, b = LIMBS["Left" + limb], LIMBS["Right" + limb]
        obs[start:stop, a + b] = obs[start:stop, b + a]
        visibility[start:stop, a + b] = visibility[start:stop, b + a]

    # Image landmarks share part of the error; the torso joints are the same mixes of them as in 3D.
    image = project(root[:, None] + truth + p.image_share * (obs - truth), camera)
    image = derive_torso(image + rng.normal(0.0, p.image_jitter_px, image.shape) / np.array(p.image_size))
    outside = np.any((image < 0.0) | (image > 1.0), axis=-1)
    visibility[outside] = np.minimum(visibility[outside], rng.uniform(0.01, 0.1, outside.sum()))
    world = derive_torso(obs)  # MediaPipe's world frame: hip-centred, scaled
    world = (world - world[:, :1]) * rng.normal(p.scale_mean, p.scale_std)

    f32 = np.float32
    return {
        "world": world.astype(f32),
        "image": image.astype(f32),
        "visibility": visibility.astype(f32),
        "truth": truth.astype(f32),
        "root": root.astype(f32),
        "camera": camera,
    }


# ---------------------------------------------------------------------------------------------
# Measuring


def measure_noise(obs_world: np.ndarray, truth: np.ndarray) -> dict:
    """The figures the simulator is calibrated to, for hip-centred camera-aligned (T, 22, 3) metres.

    rms_{x,y,z}_mm: RMS error per camera axis; offset_mm: mean over joints of the norm of each
    joint's mean error; scale: least-squares size factor (obs ~ scale * truth), robust to noise,
    while bone_ratio, the mean bone length ratio, grows with noise; accel_mm: mean norm of the error's second
    difference (mm/frame^2); truth_accel_mm the same for the truth itself. Hips excluded.
    """
    obs = np.asarray(obs_world, dtype=np.float64) - obs_world[:, :1]
    ref = np.asarray(truth, dtype=np.float64) - truth[:, :1]
    err = (obs - ref)[:, 1:] * 1000
    accel = np.linalg.norm(np.diff(err, 2, axis=0), axis=-1)
    rms = np.sqrt((err**2).mean(axis=(0, 1)))
    return {
        "rms_x_mm": float(rms[0]),
        "rms_y_mm": float(rms[1]),
        "rms_z_mm": float(rms[2]),
        "offset_mm": float(np.linalg.norm(err.mean(axis=0), axis=-1).mean()),
        "scale": float((obs * ref).sum() / (ref * ref).sum()),
        "bone_ratio": float(bone_lengths(obs).mean() / bone_lengths(ref).mean()),
        "accel_mm": float(accel.mean()),
        "truth_accel_mm": float(np.linalg.norm(np.diff(ref[:, 1:], 2, axis=0), axis=-1).mean() * 1000),
        "mpjpe_mm": float(np.linalg.norm(err, axis=-1).mean()),
    }


def pooled_noise(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """measure_noise over several sequences, each weighted by its frame count."""
    stats = [(measure_noise(o, t), len(o)) for o, t in pairs]
    total = sum(n for _, n in stats)
    out = {}
    for key in stats[0][0]:
        if key.startswith("rms"):
            out[key] = float(np.sqrt(sum(s[key] ** 2 * n for s, n in stats) / total))
        else:
            out[key] = float(sum(s[key] * n for s, n in stats) / total)
    return out


# ---------------------------------------------------------------------------------------------
# Augmentation


# Bone factor groups: bones that share one random factor (left and right alike, the torso line
# as one, so the derived Spine/Chest/Neck stay where landmarks_to_joints would put them).
_GROUPS = {
    "torso": ["Spine", "Chest", "Neck"],
    "shoulders": ["LeftUpperArm", "RightUpperArm"],
    "hips": ["LeftUpperLeg", "RightUpperLeg"],
    "head": ["Head"],
    "nose": ["HeadEnd"],
    "upper_arm": ["LeftLowerArm", "RightLowerArm"],
    "forearm": ["LeftHand", "RightHand"],
    "hand": ["LeftHandEnd", "RightHandEnd"],
    "thigh": ["LeftLowerLeg", "RightLowerLeg"],
    "shin": ["LeftFoot", "RightFoot"],
    "foot": ["LeftToes", "RightToes"],
}
# The tree augmentation walks: the shoulders hang from the Neck (their mid-point), not the Chest.
AUG_PARENTS = PARENTS.copy()
AUG_PARENTS[[J["LeftUpperArm"], J["RightUpperArm"]]] = J["Neck"]


def rebuild(joints: np.ndarray, bone_vectors: np.ndarray) -> np.ndarray:
    """Re-accumulate joints (T, J, 3) from the root and new bone vectors (T, J, 3) down AUG_PARENTS."""
    out = np.empty_like(joints)
    out[:, 0] = joints[:, 0]
    for j in range(1, NUM_JOINTS):
        out[:, j] = out[:, AUG_PARENTS[j]] + bone_vectors[:, j]
    return out


def _bones(joints: np.ndarray) -> np.ndarray:
    vec = joints - joints[:, AUG_PARENTS.clip(0)]
    vec[:, 0] = 0.0
    return vec


def mirror(joints: np.ndarray) -> np.ndarray:
    """Mirror a canonical clip through the x = 0 plane, swapping left and right."""
    return mirror_joints(np.asarray(joints)).astype(np.asarray(joints).dtype)


def scale_bones(joints: np.ndarray, factors: dict[str, float]) -> np.ndarray:
    """Scale bone groups (see _GROUPS) by the given factors, keeping the root path and the floor."""
    vec = _bones(joints)
    for group, factor in factors.items():
        vec[:, [J[n] for n in _GROUPS[group]]] *= factor
    out = rebuild(joints, vec)
    out[..., 1] -= floor_height(out) - floor_height(joints)
    return out


def change_speed(joints: np.ndarray, speed: float) -> np.ndarray:
    """Play a clip `speed` times faster at the same fps.

    Positions are interpolated linearly, then every bone gets back the length interpolated from
    its neighbouring frames (a chord is shorter than the arc a limb swings along).
    """
    T = len(joints)
    t_new = np.arange(0.0, T - 1 + 1e-9, speed)
    i0 = np.clip(np.floor(t_new).astype(int), 0, max(T - 2, 0))
    i1 = np.minimum(i0 + 1, T - 1)
    w = (t_new - i0)[:, None]
    lerp = joints[i0] * (1 - w[..., None]) + joints[i1] * w[..., None]
    lengths = np.linalg.norm(_bones(joints), axis=-1)
    target = lengths[i0] * (1 - w) + lengths[i1] * w
    vec = _bones(lerp)
    norm = np.linalg.norm(vec, axis=-1)
    vec *= np.where(norm > 1e-9, target / np.maximum(norm, 1e-9), 1.0)[..., None]
    return rebuild(lerp, vec)


def augment(
    joints: np.ndarray,
    rng: np.random.Generator,
    speed: tuple[float, float] = (0.7, 1.3),
    bone_scale: float = 0.06,
    height_scale: float = 0.08,
) -> np.ndarray:
    """A random variant of a world clip: speed 0.7-1.3, bone lengths, height, mirror, yaw.

    Bone groups are scaled by exp(N(0, bone_scale)) and the whole body (and its path) by
    exp(N(0, height_scale)); mirroring with probability 1/2; yaw uniform about the first hips.
    """
    x = change_speed(np.asarray(joints, dtype=np.float64), rng.uniform(*speed))
    x = scale_bones(x, {g: float(np.exp(rng.normal(0.0, bone_scale))) for g in _GROUPS})
    x = x * np.exp(rng.normal(0.0, height_scale))
    if rng.random() < 0.5:
        x = mirror(x)
    pivot = x[0, 0] * [1.0, 0.0, 1.0]
    yaw = Rotation.from_euler("y", rng.uniform(-np.pi, np.pi))
    return (yaw.apply((x - pivot).reshape(-1, 3)).reshape(x.shape) + pivot).astype(np.float32)


# ---------------------------------------------------------------------------------------------


def calibration_report(seeds: int = 8, min_frames: int = 300) -> dict:
    """Pooled simulator statistics on the long real clips (all splits), `seeds` cameras each."""
    from liverig.models.training.mocap import load_clips  # fetches on first use

    clips = [c for c in load_clips("all") if len(c.joints) >= min_frames]
    pairs = []
    for k in range(seeds):
        rng = np.random.default_rng(k)
        for c in clips:
            sim = simulate(c.joints, rng, fps=c.fps)
            pairs.append((sim["world"], sim["truth"]))
    return pooled_noise(pairs)


def main() -> None:
    stats = calibration_report()
    for key, value in stats.items():
        target = TARGETS.get(key)
        note = f"target {target:g} ({100 * (value / target - 1):+.0f} %)" if target else ""
        print(f"{key:15s} {value:8.3f}  {note}")


if __name__ == "__main__":
    main()
