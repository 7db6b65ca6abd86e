"""Evaluate the motion models against the baselines: one command, one table, the same test sequences
for every method.

    python -m liverig.models.evaluation.evaluate --data sim  # simulated detector on the test clips
    python -m liverig.models.evaluation.evaluate --data realdet  # real PoseLandmarker on rendered test clips
    python -m liverig.models.evaluation.evaluate --data corpus --against NEW.onnx  # held-out performers,
                                                       # full body and webcam framing (heldout.py)
    python -m liverig.models.evaluation.evaluate --recording OUT.jsonl --truth T.npz  # score a node recording
    python -m liverig.models.evaluation.evaluate --write-replays DIR  # realdet test sequences as node replays

This file is the command line only; the evaluation lives beside it, one concern a file:
    data.py        the test sequences (and the tuning and validation sets)
    methods.py     the methods the tables compare, each a sequence -> joints, run causally
    metrics.py     the metrics, pure functions of a method's output and the truth
    tuning.py      the grid searches (One Euro, the root filter, the foot lock, the deadband)
    report.py      running every method, the markdown tables, models/EVAL.md
    recordings.py  through the node: test sequences out as replays, node recordings in, scored
    heldout.py     the corpus' held-out performers, per framing (--data corpus)

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
from pathlib import Path

from liverig.models.evaluation.recordings import score_recording, write_replays
from liverig.models.evaluation.report import EVAL_MD, ROOT, _shown, evaluate, write_section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=("sim", "realdet", "corpus"), default="sim")
    parser.add_argument(
        "--against", type=Path, help="--data corpus: other weights (.onnx), a row of their own"
    )
    parser.add_argument(
        "--source", default="", help="--data corpus: only this motion source's test sequences"
    )
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
    if args.data == "corpus":
        from liverig.models.evaluation.heldout import evaluate_heldout

        weights = {f"ST-CNN `{_shown(args.weights)}`": args.weights}
        if args.against:
            weights[f"ST-CNN `{_shown(args.against)}`"] = args.against
        text = evaluate_heldout(weights, args.source)
    else:
        text = evaluate(args.data, args.weights, args.lstm, args.smooth)
    print(text)
    if not args.no_write:
        write_section(args.data + (f"-{args.source}" if args.source else ""), text)
        print(f"\nwrote the {args.data} section of {EVAL_MD}")


if __name__ == "__main__":
    main()
