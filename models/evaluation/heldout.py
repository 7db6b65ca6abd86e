"""Out of distribution: the corpus' held-out test split, per framing, through the node's motion stage.

    python -m liverig.models.evaluation.evaluate --data corpus [--weights W.onnx] [--against OTHER.onnx]

The test sequences are models/training/realdet.py `--corpus`'s test split: CMU performers (CMU 02,
the martial-arts performer) that no training or validation clip shows, on mannequin bodies of varied
proportions, filmed full body (2.5-5.5 m) and in the webcam framing (0.5-1.5 m, upper body). Each
framing is scored apart (models/evaluation/metrics.py `score`) for: raw, One Euro at its best setting
with lag <= 1 frame (grid-tuned on the corpus' realdet TRAIN sequences of the same framing: the
baseline's own criterion, never on the test), and each set of weights as the node runs them
(`methods.node_motion`: side guard, the network, glide, deadband, bone lengths). Every row is
computed in the same run on the same sequences. When the test sequences show both bodies a train
sequence shows and bodies none does (models/training/scenes.py BODIES, saved per sequence), the same
rows follow per kind (`_by_body`). The figures live in models/EVAL.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liverig.core.config import ShareConfig, load_config
from liverig.models.evaluation import report
from liverig.models.evaluation.methods import node_motion, one_euro, raw
from liverig.models.evaluation.metrics import score
from liverig.models.evaluation.tuning import tune_best

COLUMNS = report.COLUMNS[:6]  # the main table's columns, without skate and flips
FRAMINGS = ("full", "webcam")
# Camera distance bins (metres from the subject) of the breakdown, per framing: render.choose_camera
# films full body from 2.5-5.5 m, render.webcam_camera from 0.5-1.5 m (pushed back to fit the head).
DISTANCE_BINS = {"full": (2.5, 3.5, 4.5), "webcam": (0.5, 0.9, 1.2)}
TUNE_SEQUENCES = 60  # One Euro's grid search: this many train sequences per framing (seeded pick)


def corpus_sets() -> tuple[list[dict], list[dict]]:
    """(tune, test): the corpus' realdet train and test sequences (empty lists when not cached)."""
    from liverig.models.training.realdet import corpus_root, load_realdet

    return load_realdet("train", corpus_root()), load_realdet("test", corpus_root())


def _row(name: str, s: dict, raw_s: dict) -> str:
    cells = [f"{s[k]:.{d}f}" if np.isfinite(s[k]) else "–" for k, _, d in COLUMNS]
    gain = [f"{100 * (s[k] / raw_s[k] - 1):+.1f} %" for k in ("mpjpe", "pa_mpjpe")]
    return f"| {name} | " + " | ".join(cells + gain) + " |"


def evaluate_heldout(weights: dict[str, Path], source: str = "") -> str:
    """The markdown section: per framing, raw, One Euro (lag <= 1) and each named weights' row.
    `source`: leave-one-source-out, only the test sequences of that motion source (clip names start
    with it; weights trained with train.py --exclude-source), One Euro tuned without it."""
    from liverig.models.backends import load_model

    tune_all, test_all = corpus_sets()
    if source:
        test_all = [s for s in test_all if s["clip"].startswith(source + "_")]
        tune_all = [s for s in tune_all if not s["clip"].startswith(source + "_")]
    if not test_all:
        raise SystemExit(
            "no corpus test sequences cached: run `python -m liverig.models.training.realdet --corpus` first"
        )
    models = {name: load_model("onnxruntime", path) for name, path in weights.items()}
    performers = sorted({s["clip"].rsplit("_", 1)[0] for s in test_all})
    title = f"source `{source}` left out of training" if source else "corpus performers never trained on"
    lines = [
        f"## Held out: {title}, per framing",
        "",
        f"`python -m liverig.models.evaluation.evaluate --data corpus{f' --source {source}' * bool(source)}` "
        "(models/evaluation/heldout.py). Test: "
        f"{len(test_all)} real-PoseLandmarker sequences of the corpus test split ({', '.join(performers)}: "
        "performers no train or val clip shows), on the bodies and photo backdrops of "
        "models/training/scenes.py (test-only ones among them) or, in caches filmed before them, the "
        "mannequin before a sky. "
        "One Euro: its lowest-acceleration setting with lag <= 1 frame on the corpus train sequences of "
        "the same framing. Every row in the same run; weights as the node runs them (MotionStage, "
        "with configs/default.yaml's motion.share).",
        "",
    ]
    settings, preds = {}, {"raw": [raw(s) for s in test_all]}
    for framing in FRAMINGS:
        tune = [s for s in tune_all if s["framing"] == framing]
        test = [s for s in test_all if s["framing"] == framing]
        if not test:
            continue
        if len(tune) > TUNE_SEQUENCES:
            pick = np.random.default_rng(0).choice(len(tune), TUNE_SEQUENCES, replace=False)
            tune = [tune[i] for i in sorted(pick)]
        settings[framing] = tune_best(tune or test)
    preds["One Euro"] = [
        one_euro(s, settings[s["framing"]]["min_cutoff"], settings[s["framing"]]["beta"]) for s in test_all
    ]
    motion = load_config().motion
    alone = motion.model_copy(update={"share": ShareConfig(network=1.0)})
    for label, model in models.items():
        preds[label] = [node_motion(model, s) for s in test_all]
        if motion.share.network < 1:  # the default keeps a share: the network alone beside it
            preds[f"{label}, network alone (share 1)"] = [node_motion(model, s, alone) for s in test_all]
        print(f"{label} done", flush=True)
    for framing, best in settings.items():
        pick = [i for i, s in enumerate(test_all) if s["framing"] == framing]
        test = [test_all[i] for i in pick]
        one_euro_name = f"One Euro (lag<=1: {best['min_cutoff']:g} Hz, beta {best['beta']:g})"
        outputs = {(one_euro_name if k == "One Euro" else k): [v[i] for i in pick] for k, v in preds.items()}
        scores = {label: score(out, test) for label, out in outputs.items()}
        frames = sum(len(s["truth"]) for s in test)
        lines += [
            f"### {framing} framing: {len(test)} sequences, {frames} frames",
            "",
            "| method | " + " | ".join(c[1] for c in COLUMNS) + " | MPJPE vs raw | PA vs raw |",
            "|" + "---|" * (len(COLUMNS) + 3),
            *(_row(k, v, scores["raw"]) for k, v in scores.items()),
            "",
            *_by_body(test, outputs),
        ]
    lines += breakdown(test_all, tune_all, preds, next(iter(models), ""))
    return "\n".join(lines)


def _distance_bin(seq: dict) -> str:
    """'full 3.5-4.5 m': the framing and the camera distance bin the sequence falls in."""
    edges = DISTANCE_BINS.get(seq["framing"], (0.0,))
    d = float(seq["camera"]["distance_m"])
    lo = max([e for e in edges if e <= d], default=0.0)
    hi = min([e for e in edges if e > d], default=None)
    return f"{seq['framing']} {lo:g}{f'-{hi:g}' if hi is not None else '+'} m"


def breakdown(test: list[dict], tune: list[dict], preds: dict[str, list], label: str) -> list[str]:
    """Issue 18's per-group figures: the first weights against raw (MPJPE, PA-MPJPE) and against One
    Euro (acceleration) per framing and camera distance, per body (marked when no training sequence
    shows that body) and per motion source; every group is scored on the predictions already made."""
    if not label:
        return []
    trained_bodies = {s.get("body", "mannequin") for s in tune}
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(test):
        body = s.get("body", "mannequin")
        unseen = " (never trained on)" if body not in trained_bodies else ""
        for key in (
            f"distance: {_distance_bin(s)}",
            f"body: {body}{unseen}",
            f"source: {s['clip'].split('_', 1)[0]}",
        ):
            groups.setdefault(key, []).append(i)
    lines = [
        f"### Breakdown: {label} per camera distance, body and motion source",
        "",
        "| group | sequences | frames | MPJPE raw / ours mm | vs raw | PA raw / ours mm | vs raw "
        "| accel One Euro / ours mm/f² | vs One Euro |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(groups):
        pick = groups[key]
        seqs = [test[i] for i in pick]
        s = {k: score([preds[k][i] for i in pick], seqs) for k in ("raw", "One Euro", label)}
        ours, base, smooth = s[label], s["raw"], s["One Euro"]
        lines.append(
            f"| {key} | {len(seqs)} | {int(ours['frames'])} "
            f"| {base['mpjpe']:.1f} / {ours['mpjpe']:.1f} "
            f"| {100 * (ours['mpjpe'] / base['mpjpe'] - 1):+.1f} % "
            f"| {base['pa_mpjpe']:.1f} / {ours['pa_mpjpe']:.1f} "
            f"| {100 * (ours['pa_mpjpe'] / base['pa_mpjpe'] - 1):+.1f} % "
            f"| {smooth['accel']:.2f} / {ours['accel']:.2f} | {ours['accel'] / smooth['accel']:.2f}x |"
        )
    return [*lines, ""]


def _by_body(test: list[dict], outputs: dict[str, list]) -> list[str]:
    """The same rows on the test sequences whose body (models/training/scenes.py BODIES) no train
    sequence shows, and on the rest; nothing when the sequences do not have both kinds (caches
    filmed before bodies and scenes are all "mannequin")."""
    from liverig.models.training.scenes import BODY_INDEX

    held = [BODY_INDEX[s["body"]].split != "train" if s.get("body") in BODY_INDEX else False for s in test]
    groups = {
        "bodies never trained on": np.flatnonzero(held),
        "bodies trained on": np.flatnonzero(~np.array(held)),
    }
    if any(len(idx) == 0 for idx in groups.values()):
        return []
    lines = ["| method, test bodies | " + " | ".join(c[1] for c in COLUMNS) + " | MPJPE vs raw | PA vs raw |"]
    lines.append("|" + "---|" * (len(COLUMNS) + 3))
    for group, idx in groups.items():
        subset = [test[i] for i in idx]
        raw_s = score([outputs["raw"][i] for i in idx], subset)
        for label, out in outputs.items():
            s = score([out[i] for i in idx], subset)
            lines.append(_row(f"{label}, {group} ({len(idx)} seq.)", s, raw_s))
    return [*lines, ""]
