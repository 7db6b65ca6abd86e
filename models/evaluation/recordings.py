"""Through the node: the realdet test sequences written as landmark replays for `run_node.py --source
replay:` (`write_replays`), and a node output recording (`--out record:`) scored against their truth
(`score_recording`), so the figures can be checked on what the node itself sends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liverig.core.skeleton import NUM_JOINTS
from liverig.models.evaluation.methods import _hold_gaps, raw
from liverig.models.evaluation.metrics import FPS, root_score, score
from liverig.models.evaluation.report import table


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
        np.savez_compressed(
            truth,
            truth=seq["truth"],
            root=seq["root"],
            present=seq["present"],
            world=world,
            fps=fps,
            activity=str(seq["activity"]),
            name=seq["name"],
            camera_rotation=seq["camera_rotation"],
        )
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
    seq = {
        "truth": truth["truth"],
        "root": truth["root"],
        "present": present,
        "activity": str(truth.get("activity", "?")),
    }
    if "camera_rotation" in truth:  # the world's up, for the contact labels behind the skate figures
        seq["camera"] = {"rotation": truth["camera_rotation"]}
    rows = [("node", score([joints], [seq]))]
    if "world" in truth:
        rows.insert(0, ("raw (truth file)", score([raw({**seq, "world": truth["world"]})], [seq])))
    text = f"{recording}: {int(present.sum())} of {T} frames scored\n\n" + table(rows)
    if np.isfinite(roots[present]).all():
        r = root_score([_hold_gaps(roots, present)], [seq], [joints])
        text += (
            f"\n\nroot: lateral error {r['lateral_error']:.1f} mm, accel {r['lateral_accel']:.2f} "
            f"mm/f², lag {r['lateral_lag']:.2f} f; depth error {r['depth_error']:.1f} mm, accel "
            f"{r['depth_accel']:.2f} mm/f², lag {r['depth_lag']:.2f} f; feet in contact, world "
            f"{r['world_skate']:.1f} cm/s (models/EVAL.md, Root)"
        )
    return text
