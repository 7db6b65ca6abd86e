"""Lip-sync accuracy and latency on real speech with time-aligned phones, speakers held out.

    python -m liverig.models.evaluation.voice_eval  every figure of docs/voice.md ("Accuracy", "Latency")

For each speaker group (models/training/voice_data.py) a classifier is trained on the OTHER groups
(models/training/voice_train.py) and the streaming lip sync (runtime/lipsync.py: gate + classifier +
mouth) is run hop by hop over the held-out group's clips. Scored per 10 ms hop against the phone
labels, over the hops labelled silence, A, I, U, E, O or closed (other consonants are not scored):

- the confusion matrix and balanced accuracy (mean recall over the 7 classes; chance = 1/7),
- the mouth-open onset and offset error (ms): the labels' speech runs (gaps under 100 ms merged)
  against the runs where the node's mouth is open (any of A..O above 0.05), each onset matched to
  the nearest predicted one within 250 ms (unmatched ones are counted as misses),
- the same for the loudness-only baseline: the mouth opens with loudness above the same noise floor
  and margin, and always says A (what a volume-driven lip sync does),
- latency: the compute per hop (median, p99, one core) and the added latency from the end of a hop
  to the avatar's frame (the wait for the next video frame at 30 fps plus the compute).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from liverig.calibration.voice import build_profile, context_cepstra
from liverig.models.training.voice_data import GROUPS, Clip, load_clips, load_noises
from liverig.models.training.voice_nonspeech import impacts, music
from liverig.models.training.voice_train import train
from liverig.runtime.lipsync import CLASSES, HOP, SAMPLE_RATE, SCORED, LipSync, VisemeModel, features_of
from liverig.runtime.voice_profile import VOWELS, VoiceProfile, VoiceProfileError

MERGE_GAP_HOPS = 10  # gaps shorter than 100 ms inside speech do not close the mouth's run
MATCH_HOPS = 25  # an onset is matched within 250 ms
OPEN = 0.05  # the mouth counts as open above this
TRIAL = 2  # hops of the optional onset trial (voice.trial_s: 0.02) measured beside the default
CALIBRATION_RUNS = 3  # per vowel: the held-out speaker's first labelled runs of it calibrate
CALIBRATION_SILENCE_HOPS = 100  # and their first labelled silence hops (1 s)


def runs(mask: np.ndarray, merge: int = MERGE_GAP_HOPS) -> list[tuple[int, int]]:
    """(start, end) hop indices of True runs, gaps shorter than `merge` hops filled."""
    mask = mask.astype(bool).copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    spans = list(zip(edges[::2], edges[1::2], strict=True))
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] < merge:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def timing_errors(
    truth: list[tuple[int, int]], predicted: list[tuple[int, int]], which: int
) -> tuple[list, int]:
    """Signed errors (ms, predicted - truth) of run starts (which=0) or ends (1), and the misses."""
    errors, misses = [], 0
    candidates = np.array([p[which] for p in predicted]) if predicted else np.zeros(0)
    for run in truth:
        if len(candidates) == 0:
            misses += 1
            continue
        nearest = candidates[np.argmin(np.abs(candidates - run[which]))]
        if abs(nearest - run[which]) <= MATCH_HOPS:
            errors.append(float(nearest - run[which]) * HOP / SAMPLE_RATE * 1000)
        else:
            misses += 1
    return errors, misses


def run_clip(lipsync: LipSync, clip: Clip) -> dict[str, np.ndarray]:
    lipsync.reset()
    results = lipsync.feed(clip.audio)
    n = min(len(results), len(clip.labels))
    results = results[:n]
    predicted = np.array([CLASSES.index(r.viseme) for r in results])
    mouth = np.array([max(r.expressions[k] for k in "AIUEO") for r in results])
    loud = np.array([r.loudness_db > r.floor_db + lipsync.margin_db for r in results])
    # The baseline's mouth: loudness-driven openness through the same attack/release.
    level = np.array(
        [
            np.clip((r.loudness_db - r.floor_db - lipsync.margin_db) / lipsync.loud_range_db, 0, 1)
            for r in results
        ]
    )
    smooth, value = np.zeros(n), 0.0
    for t, target in enumerate(level):
        rate = lipsync._attack if target > value else lipsync._release
        value += rate * (target - value)
        smooth[t] = value
    baseline = np.where(loud, CLASSES.index("A"), 0)
    return {
        "labels": clip.labels[:n],
        "predicted": predicted,
        "baseline": baseline,
        "mouth": mouth,
        "baseline_mouth": smooth,
    }


def calibration_hops(clips: list[Clip]) -> tuple[VoiceProfile | None, list[np.ndarray]]:
    """A held-out speaker's profile from their first CALIBRATION_RUNS labelled runs of each vowel and
    their first labelled silence (as `calibrate voice` measures a user: calibration/voice.py
    `build_profile`), and per clip the mask of the hops it used, which are then left out of the
    scoring. None when a vowel is never labelled (no profile can be made)."""
    masks = [np.zeros(len(c.labels), bool) for c in clips]
    vowels: dict[str, list[np.ndarray]] = {v: [] for v in VOWELS}
    silence: list[np.ndarray] = []
    louds: list[np.ndarray] = []
    taken = dict.fromkeys(VOWELS, 0)
    quiet = 0
    for clip, mask in zip(clips, masks, strict=True):
        mfcc, loudness = features_of(clip.audio)
        cepstra = context_cepstra(mfcc)
        labels = clip.labels[: len(mfcc)]
        for name in VOWELS:
            for start, end in runs(labels == CLASSES.index(name), merge=0):
                if taken[name] < CALIBRATION_RUNS and end - start >= 2:
                    taken[name] += 1
                    mask[start:end] = True
                    vowels[name].append(cepstra[start:end])
                    louds.append(loudness[start:end])
        hops = np.flatnonzero(labels == 0)[: CALIBRATION_SILENCE_HOPS - quiet]
        quiet += len(hops)
        mask[hops] = True
        silence.append(loudness[hops])
    try:
        profile = build_profile(
            np.concatenate(silence),
            {k: np.concatenate(v) if v else np.zeros((0, 13)) for k, v in vowels.items()},
            np.concatenate(louds),
        )
    except VoiceProfileError:
        return None, masks
    return profile, masks


def calibrated_rows(model: VisemeModel, clips: list[Clip]) -> dict[str, object] | None:
    """Without and with the held-out speaker's calibration, over the hops it did not use: the
    labels and predictions (calibration hops marked 'other', which is not scored) and the onset and
    offset errors over the speech runs that hold no calibration hop."""
    profile, masks = calibration_hops(clips)
    if profile is None:
        return None
    out: dict[str, object] = {"calibration_hops": int(sum(m.sum() for m in masks)), "profile": profile}
    for key, lipsync in (("without", LipSync(model)), ("with", LipSync(model, profile=profile))):
        labels, predicted, timing = [], [], {"on": [], "off": [], "on_miss": 0, "off_miss": 0}
        for clip, mask in zip(clips, masks, strict=True):
            o = run_clip(lipsync, clip)
            n = len(o["labels"])
            labels.append(np.where(mask[:n], CLASSES.index("other"), o["labels"]))
            predicted.append(o["predicted"])
            truth = [r for r in runs(o["labels"] != 0) if not mask[r[0] : r[1]].any()]
            predicted_runs = runs(o["mouth"] > OPEN)
            for which, name in ((0, "on"), (1, "off")):
                errors, misses = timing_errors(truth, predicted_runs, which)
                timing[name] += errors
                timing[name + "_miss"] += misses
        out[key] = (np.concatenate(labels), np.concatenate(predicted), timing)
    return out


def confusion(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Rows: true class (SCORED), columns: predicted class (CLASSES)."""
    matrix = np.zeros((len(SCORED), len(CLASSES)), dtype=int)
    for t, p in zip(labels, predicted, strict=True):
        if t < len(SCORED):
            matrix[t, p] += 1
    return matrix


def balanced_accuracy(matrix: np.ndarray) -> float:
    totals = matrix.sum(axis=1)
    recalls = [matrix[k, k] / totals[k] for k in range(len(SCORED)) if totals[k] > 0]
    return float(np.mean(recalls))


def format_confusion(matrix: np.ndarray) -> str:
    lines = [
        "| true \\ predicted | " + " | ".join(CLASSES) + " | recall |",
        "|---" * (len(CLASSES) + 2) + "|",
    ]
    for k, name in enumerate(SCORED):
        total = max(matrix[k].sum(), 1)
        cells = " | ".join(str(v) for v in matrix[k])
        lines.append(f"| {name} | {cells} | {matrix[k, k] / total:.2f} |")
    return "\n".join(lines)


def latency(
    model: VisemeModel, audio: np.ndarray, fps: float = 30.0, profile: VoiceProfile | None = None
) -> dict[str, float]:
    """Compute per hop (ms, median and p99) and the added latency from a hop's end to the frame that
    carries it: hops arrive every 10 ms, frames every 1/fps s; a hop waits for the next frame, then
    the frame's hops are computed."""
    lipsync = LipSync(model, profile=profile)
    costs = []
    for start in range(0, len(audio) - HOP, HOP):
        began = time.perf_counter()
        lipsync.feed(audio[start : start + HOP])
        costs.append((time.perf_counter() - began) * 1000)
    costs = np.array(costs[5:])
    hop_ends = np.arange(1, 3001) * HOP / SAMPLE_RATE * 1000
    frame_times = np.ceil(hop_ends * fps / 1000 - 1e-9) * 1000 / fps
    per_frame = np.median(costs) * (1000 / fps) / (HOP / SAMPLE_RATE * 1000)  # the hops a frame carries
    added = frame_times - hop_ends + per_frame
    return {
        "hop_median_ms": float(np.median(costs)),
        "hop_p99_ms": float(np.percentile(costs, 99)),
        "added_median_ms": float(np.median(added)),
        "added_max_ms": float(np.max(added)),
    }


def print_calibration(calibrated: dict[str, dict | None]) -> None:
    print("\n## Per-speaker vowel calibration (held-out speaker's own hops; those used are not scored)\n")
    print(
        f"Calibrated from the speaker's first {CALIBRATION_RUNS} labelled runs of each vowel and first "
        f"{CALIBRATION_SILENCE_HOPS} silence hops; onsets over the speech runs holding none of them.\n"
    )
    print(
        "| held out | calibration hops | hops scored | balanced accuracy without -> with | "
        "onset median without -> with | offset median without -> with | onsets matched |"
    )
    print("|---|---|---|---|---|---|---|")
    pooled: dict[str, tuple[list, list, dict]] = {
        key: ([], [], {"on": [], "off": [], "on_miss": 0}) for key in ("without", "with")
    }
    for group, rows in calibrated.items():
        if rows is None:
            print(f"| {group} | - | - | no profile: a vowel is never labelled | | | |")
            continue
        cells = {}
        for key in ("without", "with"):
            labels, predicted, timing = rows[key]
            pooled[key][0].append(labels)
            pooled[key][1].append(predicted)
            for name in ("on", "off", "on_miss"):
                pooled[key][2][name] += timing[name]
            matched = f"{len(timing['on'])}/{len(timing['on']) + timing['on_miss']}"
            ba = balanced_accuracy(confusion(labels, predicted))
            cells[key] = (f"{ba:.3f}", _median(timing["on"]), _median(timing["off"]), matched)
        scored = int((rows["without"][0] < len(SCORED)).sum())
        columns = " | ".join(f"{cells['without'][i]} -> {cells['with'][i]}" for i in range(4))
        print(f"| {group} | {rows['calibration_hops']} | {scored} | {columns} |")
    if not pooled["without"][0]:
        return
    cells, matrix = {}, None
    for key in ("without", "with"):
        labels, predicted = np.concatenate(pooled[key][0]), np.concatenate(pooled[key][1])
        timing = pooled[key][2]
        matrix = confusion(labels, predicted)
        matched = f"{len(timing['on'])}/{len(timing['on']) + timing['on_miss']}"
        ba = balanced_accuracy(matrix)
        cells[key] = (f"{ba:.3f}", _median(timing["on"]), _median(timing["off"]), matched)
    columns = " | ".join(f"{cells['without'][i]} -> {cells['with'][i]}" for i in range(4))
    print(f"| **pooled** | | {int(matrix.sum())} | {columns} |")
    print("\nConfusion with calibration, pooled:\n")
    print(format_confusion(matrix))


def _median(errors: list[float]) -> str:
    return f"{np.median(errors):+.0f}" if errors else "-"


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    clips = load_clips()
    pooled: dict[str, list] = {k: [] for k in ("labels", "predicted", "baseline")}
    timing = {k: [] for k in ("on", "off", "base_on", "base_off", "trial_on", "trial_off")}
    missed = {k: 0 for k in timing}
    calibrated: dict[str, dict | None] = {}
    print("## Accuracy (speaker groups held out)\n")
    print("| held out | hops scored | balanced accuracy | loudness baseline |\n|---|---|---|---|")
    for group in GROUPS:
        model = train([c for c in clips if c.group != group])
        lipsync = LipSync(model)
        outs = [run_clip(lipsync, c) for c in clips if c.group == group]
        # The same lip sync with the onset trial (voice.trial_s: 0.02).
        tried = [run_clip(LipSync(model, trial_hops=TRIAL), c)["mouth"] for c in clips if c.group == group]
        labels = np.concatenate([o["labels"] for o in outs])
        predicted = np.concatenate([o["predicted"] for o in outs])
        baseline = np.concatenate([o["baseline"] for o in outs])
        for key, value in (("labels", labels), ("predicted", predicted), ("baseline", baseline)):
            pooled[key].append(value)
        for o, with_trial in zip(outs, tried, strict=True):
            truth = runs(o["labels"] != 0)
            for key, mouth in (("", o["mouth"]), ("base_", o["baseline_mouth"]), ("trial_", with_trial)):
                predicted_runs = runs(mouth > OPEN)
                for which, name in ((0, "on"), (1, "off")):
                    errors, misses = timing_errors(truth, predicted_runs, which)
                    timing[key + name] += errors
                    missed[key + name] += misses
        calibrated[group] = calibrated_rows(model, [c for c in clips if c.group == group])
        ba = balanced_accuracy(confusion(labels, predicted))
        bb = balanced_accuracy(confusion(labels, baseline))
        print(f"| {group} | {int((labels < len(SCORED)).sum())} | {ba:.3f} | {bb:.3f} |")
    labels, predicted, baseline = (np.concatenate(pooled[k]) for k in ("labels", "predicted", "baseline"))
    matrix = confusion(labels, predicted)
    print(
        f"| **all (pooled)** | {int(matrix.sum())} | **{balanced_accuracy(matrix):.3f}** | "
        f"{balanced_accuracy(confusion(labels, baseline)):.3f} |"
    )
    print(f"\nchance: {1 / len(SCORED):.3f} (7 classes)\n\nConfusion, pooled over the held-out groups:\n")
    print(format_confusion(matrix))
    print("\n## Mouth-open timing (ms; predicted minus labelled; |median| and median of |error|)\n")
    print("| | onsets | onset median | onset median abs | offsets | offset median | offset median abs |")
    print("|---|---|---|---|---|---|---|")
    for name, prefix in (
        ("lip sync", ""),
        ("lip sync, onset trial", "trial_"),
        ("loudness baseline", "base_"),
    ):
        on, off = np.array(timing[prefix + "on"]), np.array(timing[prefix + "off"])
        print(
            f"| {name} | {len(on)} matched, {missed[prefix + 'on']} missed | {np.median(on):+.0f} | "
            f"{np.median(np.abs(on)):.0f} | {len(off)} matched, {missed[prefix + 'off']} missed | "
            f"{np.median(off):+.0f} | {np.median(np.abs(off)):.0f} |"
        )
    print_calibration(calibrated)
    shipped = VisemeModel.load()
    print("\n## Real noise (shipped weights; never trained on)\n")
    print("Each sound 3 times at a peak of -6 dBFS, 0.5 s of -60 dBFS hiss around each; hops with the")
    print("mouth open (any of A..O above 0.05) and the largest mouth value; the same with the onset")
    print("trial; and the hops a loudness-driven mouth (above the floor by the margin) would open.\n")
    print("| sound | seconds | mouth open | max | with onset trial | loudness baseline |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, noise in load_noises().items():
        hiss = lambda: rng.normal(0, 10 ** (-60 / 20), SAMPLE_RATE // 2)  # noqa: E731
        loud = noise / (np.abs(noise).max() + 1e-12) * 0.5
        audio = np.concatenate([hiss(), loud, hiss(), loud, hiss(), loud, hiss()])
        lipsync = LipSync(shipped)
        results = lipsync.feed(audio)
        mouth = np.array([max(r.expressions[k] for k in "AIUEO") for r in results])
        loud = np.mean([r.loudness_db > r.floor_db + lipsync.margin_db for r in results])
        trial_results = LipSync(shipped, trial_hops=TRIAL).feed(audio)
        tried = np.array([max(r.expressions[k] for k in "AIUEO") for r in trial_results])
        print(
            f"| {name} | {len(audio) / SAMPLE_RATE:.1f} | {np.mean(mouth > OPEN):.0%} | {mouth.max():.2f} | "
            f"{np.mean(tried > OPEN):.0%} | {loud:.0%} |"
        )
    print("\n## Rendered music and impacts (shipped weights; soundfont, seeds training never draws)\n")
    print(
        "Same scoring; 4 s each from models/training/voice_nonspeech.py with generators seeded 2000.. "
        "(training"
    )
    print("draws from seed 17): the same instruments and drums as in training, not the same clips.\n")
    print("| kind | clips | mouth open (mean) | mouth open (worst clip) | loudness baseline |")
    print("|---|---|---|---|---|")
    for kind, render in (("music", music), ("impacts", impacts)):
        opens, louds = [], []
        for seed in range(2000, 2008):
            sound = render(np.random.default_rng(seed), 4.0)
            audio = np.concatenate([hiss(), sound / (np.abs(sound).max() + 1e-12) * 0.5, hiss()])
            lipsync = LipSync(shipped)
            results = lipsync.feed(audio)
            opens.append(np.mean([max(r.expressions[k] for k in "AIUEO") > OPEN for r in results]))
            louds.append(np.mean([r.loudness_db > r.floor_db + lipsync.margin_db for r in results]))
        worst, loud = np.max(opens), np.mean(louds)
        print(f"| {kind} | {len(opens)} | {np.mean(opens):.0%} | {worst:.0%} | {loud:.0%} |")
    speech = np.concatenate([c.audio for c in clips]).astype(np.float64)
    figures = latency(shipped, speech)
    profile = next((p for p in calibrated.values() if p is not None), None)
    profile = profile["profile"] if profile is not None else None
    print("\n## Latency (shipped weights, one hop at a time)\n")
    print(
        f"compute per hop: median {figures['hop_median_ms']:.3f} ms, p99 {figures['hop_p99_ms']:.3f} ms; "
        f"added latency from a hop's end to its video frame (30 fps): median "
        f"{figures['added_median_ms']:.1f} ms, max {figures['added_max_ms']:.1f} ms"
    )
    if profile is not None:
        tuned = latency(shipped, speech, profile=profile)
        print(
            f"with a voice profile (voice.calibration): median {tuned['hop_median_ms']:.3f} ms, "
            f"p99 {tuned['hop_p99_ms']:.3f} ms per hop"
        )


if __name__ == "__main__":
    main()
