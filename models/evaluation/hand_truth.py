"""Finger angles with ground truth: a skinned hand posed with known finger bends, rendered, measured.

    python -m liverig.models.evaluation.hand_truth [--poses 24] [--model full]

The rendered person of the real-detector data (models/training/render.py: mannequin-x's skinned wooden
mannequin, Apache-2.0) has 15 finger joints per hand. Its left hand is posed by bending each finger
joint about its hinge by a known angle (random, within the joint limits; the first pose is the open
hand), rendered close up from a few cameras, and run through the hands part's own detection
(runtime/hands.py, whole frame). The truth is what the same angle definition (runtime/fingers.py)
gives on the posed mesh's own joints and fingertips, so the error is the detector's and the angle
reading's, not a convention mismatch. Reported: the mean absolute bend error per joint (degrees),
per finger and overall, over every pose and camera where the hand was found, and how often it was,
next to a constant guess (every joint at its mean true bend over the same renders).

Needs Mesa's EGL (Debian libegl1, libegl-mesa0, libgl1-mesa-dri) and moderngl, as models/training/render.py.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from liverig.core.config import HandsConfig
from liverig.core.types import Observation, Timing
from liverig.models.training.render import Mannequin, Renderer, make_camera
from liverig.runtime.fingers import (
    _AXES,
    CHAINS,
    DISTAL_PRIOR,
    FINGERS,
    SEGMENTS,
    bend_degrees,
    finger_rotations,
)
from liverig.runtime.hands import HandsPart

SIDE = "Left"
# The mannequin's joint names per finger (MediaPipe's order of the chain: base, middle, end).
JOINTS = {
    finger: [f"L_{'Pinky' if finger == 'Little' else finger}{k}" for k in (1, 2, 3)] for finger in FINGERS
}
# Cameras around the left hand's knuckles: above and in front, above, below the palm, in front.
CAMERAS = ((0.0, 0.30, 0.20), (0.0, 0.35, 0.05), (0.05, -0.25, 0.25), (0.0, 0.05, 0.35))


@dataclass
class Result:
    errors: np.ndarray  # (found, 5 fingers, 3 segments) |measured - true| bend, degrees
    found: int
    tried: int
    true_bends: np.ndarray  # (found, 5, 3)
    measured_bends: np.ndarray  # (found, 5, 3)

    @property
    def constant_errors(self) -> np.ndarray:
        """|error| of the baseline: every joint at its mean true bend over these renders (a guess
        that knows the poses' average, so a fair bar for the measured angles to beat)."""
        return np.abs(self.true_bends - self.true_bends.mean(axis=0))

    def lines(self) -> list[str]:
        out = [f"hand found in {self.found} of {self.tried} renders"]
        if self.found:
            for f, finger in enumerate(FINGERS):
                row = "  ".join(f"{s} {self.errors[:, f, k].mean():5.1f}" for k, s in enumerate(SEGMENTS))
                mean, const = self.errors[:, f].mean(), self.constant_errors[:, f].mean()
                out.append(f"  {finger:7s} {row}   finger {mean:5.1f}, constant {const:5.1f}")
            out.append(
                f"  mean finger-joint bend error: {self.errors.mean():.1f} deg (median "
                f"{np.median(self.errors):.1f}; true bends 0..{self.true_bends.max():.0f} deg)"
            )
            out.append(
                f"  constant guess (each joint at its mean true bend): {self.constant_errors.mean():.1f} deg"
            )
        return out


def _turn(axis: np.ndarray, degrees: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(axis * np.radians(degrees)).as_matrix()


def posed_hand(man: Mannequin, bends: dict[str, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Transforms (54, 3, 4) with the left hand's fingers bent (degrees per joint about the finger's
    hinge), and the true 21 hand landmarks (wrist, joints, fingertips) of that posed mesh."""
    ix = man.index
    transforms = np.zeros((len(man.names), 3, 4))
    transforms[:, :, :3] = np.eye(3)
    points = np.zeros((21, 3))
    points[0] = man.bind[ix("L_Wrist")]
    for finger, chain in CHAINS.items():
        rest, bend = _AXES[SIDE][finger]
        hinge = np.cross(rest, bend)
        names = JOINTS[finger]
        rotation, offset = np.eye(3), np.zeros(3)  # the parent's transform (the hand: identity)
        for k, name in enumerate(names):
            j = ix(name)
            pivot = man.bind[j]
            moved_pivot = rotation @ pivot + offset
            rotation = rotation @ _turn(hinge, bends[finger][k])
            offset = moved_pivot - rotation @ pivot
            transforms[j] = np.concatenate([rotation, offset[:, None]], axis=1)
            points[chain[k]] = moved_pivot
        # Fingertip: the distal segment's vertex furthest along it, carried by the distal transform.
        distal = man.vertices[man.dominant == ix(names[2])]
        direction = man.bind[ix(names[2])] - man.bind[ix(names[1])]
        tip = distal[np.argmax(distal @ direction)]
        points[chain[3]] = rotation @ tip + offset
    return transforms, points


# A finger's joints curl together (the tendons couple them): a pose is one curl fraction per finger,
# times these full-curl bends (degrees per joint, within the joint limits).
FULL_CURL = {"Thumb": (35.0, 45.0, 55.0)} | {f: (75.0, 95.0, 65.0) for f in FINGERS[1:]}


def random_bends(rng: np.random.Generator) -> dict[str, list[float]]:
    """One random curl fraction per finger (0: straight, 1: a fist's)."""
    return {f: [float(rng.uniform(0.0, 1.0)) * b for b in FULL_CURL[f]] for f in FINGERS}


def evaluate(poses: int = 24, model: str = "full", seed: int = 0) -> Result:
    rng = np.random.default_rng(seed)
    man = Mannequin.load()
    centre = man.bind[man.index("L_Middle1")]
    part = HandsPart(HandsConfig(model=model))
    errors, truths, measures, tried, clock = [], [], [], 0, 0.0
    try:
        with Renderer(man) as renderer:
            for p in range(poses):
                bends = {f: [0.0, 0.0, 0.0] for f in FINGERS} if p == 0 else random_bends(rng)
                transforms, truth_points = posed_hand(man, bends)
                truth = finger_rotations(truth_points, SIDE)
                true_bends = np.array([[bend_degrees(truth, SIDE, f, s) for s in SEGMENTS] for f in FINGERS])
                for position in CAMERAS:
                    renderer.set_camera(make_camera(centre + np.array(position), centre, 40.0), centre)
                    image = renderer.render(transforms)
                    size = (image.shape[1], image.shape[0])
                    tried += 1
                    # A still: a blank frame first, so the VIDEO-mode tracker lets go of the last
                    # render's hand and the palm detector finds this one afresh.
                    nobody = Observation.absent(0, clock, Timing(0.0), size)
                    part.detect(np.zeros_like(image), nobody, clock + 1.0)
                    clock += 10.0
                    seen = part.detect(image, nobody, clock)
                    if not seen:
                        continue
                    hand = max(seen.values(), key=lambda h: h.score)  # the label may say Right
                    measured = finger_rotations(hand.shape, SIDE, distal_prior=DISTAL_PRIOR)
                    if measured is None:
                        continue
                    got = np.array([[bend_degrees(measured, SIDE, f, s) for s in SEGMENTS] for f in FINGERS])
                    errors.append(np.abs(got - true_bends))
                    truths.append(true_bends)
                    measures.append(got)
    finally:
        part.close()
    shape = (-1, len(FINGERS), 3)
    arrays = [np.array(values).reshape(shape) for values in (errors, truths, measures)]
    return Result(arrays[0], len(errors), tried, arrays[1], arrays[2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.models.evaluation.hand_truth", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--poses", type=int, default=24, help="hand poses (x 4 cameras); the first is open")
    parser.add_argument("--model", choices=["full", "lite"], default="full")
    args = parser.parse_args(argv)
    result = evaluate(args.poses, args.model)
    print(
        f"Finger angles against a rendered skinned hand ({args.model} model, {args.poses} poses x "
        f"{len(CAMERAS)} cameras):"
    )
    for line in result.lines():
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
