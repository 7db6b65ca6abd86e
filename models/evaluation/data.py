"""The evaluation's sequences: (tune, val, test) sets, the same for every method.

Test sequences. sim: the test clips (models/training/mocap.py) un-augmented, each seen by CAMERAS seeded
random cameras through models/training/simulate.py, plus a 3 s hold of each clip's middle pose ("still":
the user who stands still; the mocap has almost no still frames, and jitter is what users see there).
realdet: the cached real-detector test sequences (models/training/realdet.py), and the held standing
poses (`realdet_holds`, models/training/realdet.py `--holds`).
"""

from __future__ import annotations

import numpy as np

from liverig.models.training.train import fixed_sim_set, held, load_realdet_split, simulated

CAMERAS = 8  # simulated cameras per test clip
SEED = 2024  # the fixed test cameras; training never sees this seed's draws (test clips are unseen)


def realdet_holds(split: str = "test") -> list[dict]:
    """The held standing poses of one split (models/training/realdet.py `--holds`), [] when not generated."""
    from liverig.models.training.realdet import holds_root, load_realdet

    return load_realdet(split, holds_root())


def sim_sets() -> tuple[list[dict], list[dict], list[dict]]:
    """(tune, val, test) simulated sets: train / val / test clips, un-augmented, seeded cameras, each
    with a 3 s hold of every clip's middle pose (activity "still")."""
    from liverig.models.training.mocap import load_clips

    def with_holds(split: str, seed: int, cameras: int) -> list[dict]:
        clips = load_clips(split)
        rng = np.random.default_rng(seed + 1)
        holds = [
            simulated(held(c, np.random.default_rng(k), 90), rng, aug=False)
            for k, c in enumerate(clips)
            for _ in range(max(1, cameras // 2))
        ]
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
