"""liverig: webcam in, live avatar motion out (VMC, WebSocket, OSC, BVH, recordings).

The command line of `run_node.py` (a clone), `python -m liverig` and `liverig` (an install)."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # no probing noise when there is no webcam

EXAMPLES = """\
sources (--source):
  webcam:N          camera N (default: webcam:0, or the bundled clip when there is no webcam)
  video:PATH        a video file, paced at its own frame rate
  replay:PATH       a landmark recording made with --record-landmarks (skips perception)
  audio:PATH        a sound file (wav/flac/ogg): the audio-only avatar talks, blinks, breathes
  mic:N|mic:NAME|mic:default  a microphone by number, by (part of) its name, or the system's
                    default (also audio:mic): the same, live (docs/voice.md)

audio beside a camera (--audio SPEC: audio:PATH, mic:N, mic:NAME or mic:default): lip sync on the same clock

outputs (--out, repeatable; default: vmc://127.0.0.1:39539):
  vmc://HOST:PORT   VMC protocol performer (VSeeFace, VNyan, Warudo, EVMC4U, VMC4UE); port 39539
  ws://HOST:PORT    WebSocket server, msgpack frames (?format=json for JSON); off loopback it needs a
                    token: LIVERIG_WS_TOKEN=T in the environment (or bridges.websocket.token_file)
  osc://HOST:PORT   plain OSC, one address per bone (TouchDesigner, Max)
  page://HOST:PORT  a live page in your browser (http://HOST:PORT/): avatar, stats, controls (docs/page.md)
  bvh:PATH          BVH recording of the rig's motion
  record:PATH       the node's output per frame (JSON Lines: joints, timings)

examples:
  python run_node.py
  python run_node.py --source webcam:1 --out vmc://127.0.0.1:39539 --stats
  python run_node.py --out page://127.0.0.1:8766 --out vmc://127.0.0.1:39539   # open http://127.0.0.1:8766/
  python run_node.py --source video:clip.mp4 --out record:out.jsonl --record-landmarks lm.jsonl
  python run_node.py --source replay:lm.jsonl --out ws://127.0.0.1:8765 --out bvh:take.bvh
  python run_node.py --config configs/default.yaml --max-frames 300
  python run_node.py --source mic:default --out vmc://127.0.0.1:39539     # no camera: voice only
  python run_node.py --source webcam:0 --audio mic:default                # camera + lip sync
  python run_node.py calibrate body me.yaml       # then set motion.body.profile: me.yaml
  python run_node.py bench                        # latency, speed and memory, one table (--help)
  python run_node.py calibrate face face.yaml     # then set perception.face.calibration: face.yaml
  python run_node.py calibrate voice v.yaml       # then set voice.calibration: v.yaml
  python run_node.py calibrate --help             # body, face, voice, camera (same as --calibrate-body/-face)

File outputs (bvh:, record:, --record-landmarks) never replace an existing file unless --overwrite is
given, and write regular files only (never a device, FIFO or socket).

exit status: 0 done (also after Ctrl-C: the files are complete), 2 bad command line / config / spec
(one line says which), 1 runtime failure: a bad line in a replayed recording, or an output that
stopped mid-run (disk full, its file deleted; one line says which and what it kept, the other
outputs ran on), 130 Ctrl-C while the node is still starting.
"""


class OneLineParser(argparse.ArgumentParser):
    """Command-line mistakes get one line naming the culprit (and exit code 2), not the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from liverig.core.safe_io import output_refusal

    parser = OneLineParser(
        prog="run_node.py",
        description="Real-time motion capture node: estimates body pose from a webcam or video, "
        "smooths it with a learned streaming model and streams it to your avatar.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", metavar="SPEC", help="where frames come from (see below)")
    parser.add_argument(
        "--audio",
        metavar="SPEC",
        help="lip sync from a microphone or sound file beside the camera (see below)",
    )
    parser.add_argument(
        "--out",
        metavar="SPEC",
        action="append",
        default=[],
        help="where motion goes; repeat for several outputs (see below)",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: configs/default.yaml)")
    parser.add_argument(
        "--max-frames",
        metavar="N",
        type=int,
        help="stop after N frames (default: run until the source ends or Ctrl-C)",
    )
    parser.add_argument(
        "--record-landmarks",
        metavar="PATH",
        help="also write the raw landmark stream, for --source replay:PATH",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="let bvh:, record: and --record-landmarks replace existing files",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print FPS, dropped frames and per-stage p50/p99 ms live and at the end",
    )
    parser.add_argument(
        "--motion", choices=["stcnn", "one_euro", "raw"], help="override motion.method from the config"
    )
    parser.add_argument(
        "--calibrate-body",
        metavar="PATH",
        help="measure your bone lengths (stand in full view for a few seconds), write "
        "them to PATH as a body profile and stop; use it via motion.body.profile",
    )
    parser.add_argument(
        "--calibrate-face",
        metavar="PATH",
        help="measure your face (neutral, eyes shut, mouth open: follow the prompts), "
        "write it to PATH and stop; use it via perception.face.calibration",
    )
    args = parser.parse_args(argv)
    if args.max_frames is not None and args.max_frames <= 0:
        parser.error(f"--max-frames must be a positive number, got {args.max_frames}")
    calibrations = (("--calibrate-body", args.calibrate_body), ("--calibrate-face", args.calibrate_face))
    for option, path in calibrations:
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            parser.error(f"{option} {path}: cannot write into {folder}")
        refusal = output_refusal(path, args.overwrite)  # regular files; an old one only with --overwrite
        if refusal is not None:
            parser.error(f"{option} {refusal}")
    if args.calibrate_body is not None and args.calibrate_face is not None:
        parser.error("--calibrate-body and --calibrate-face: one calibration at a time")
    return args


_interrupted = False  # set by `_interrupt`: a Ctrl-C came


def _interrupt(signum, frame) -> None:
    """Ctrl-C: remembered, then raised as usual. Remembered because a library being imported may
    turn the KeyboardInterrupt into an error of its own (a C extension importing numpy reports an
    ImportError), which must not be reported as a broken install."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # one benchmark command: runtime/benchmark.py
        from liverig.runtime.benchmark import main as bench

        return bench(argv[1:])
    if argv[:1] == ["calibrate"]:
        return calibrate(argv[1:])
    args = parse_args(argv)
    from liverig.core.config import DEFAULT_CONFIG, ConfigError, load_config
    from liverig.runtime.node import StartupError, describe_outputs, open_node, run_loop
    from liverig.runtime.sources import SourceError

    try:
        config = load_config(args.config)
        if args.motion:
            config.motion.method = args.motion
        if args.calibrate_body:
            config.motion.body.profile = None  # measure afresh
        if args.calibrate_face:  # measure afresh, on every frame
            config.perception.face.enabled, config.perception.face.calibration = True, None
            config.perception.schedule = False
        node = open_node(
            config,
            args.source,
            args.out,
            args.record_landmarks,
            audio_spec=args.audio,
            overwrite=args.overwrite,
        )
    except (ConfigError, StartupError) as error:
        if _interrupted:  # the error is the Ctrl-C's doing
            raise KeyboardInterrupt from None
        key = getattr(error, "key", None)
        where = f"config {args.config or DEFAULT_CONFIG}: key '{key}': " if key else ""
        print(f"run_node.py: error: {where}{error}", file=sys.stderr)
        return 2
    for stop in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):  # stop like Ctrl-C: files stay valid
        if stop is not None:
            signal.signal(stop, signal.default_int_handler)
    print(
        f"liverig: {node.source.name} -> {describe_outputs(node)} "
        f"(motion: {config.motion.method}, rig: {config.retarget.rig})",
        file=sys.stderr,
    )
    if args.calibrate_body:
        print(
            "liverig: calibrating: stand where the camera sees all of you and move a little; it stops "
            "by itself (Ctrl-C stops early and saves the bones measured so far)",
            file=sys.stderr,
        )
    until = (lambda: node.motion.body.calibrated) if args.calibrate_body else None
    calibrator = None
    if args.calibrate_face:
        from liverig.calibration.face import FaceCalibrator

        face = next((part for part in node.parts if part.name == "face"), None)
        if face is None:
            print(
                "run_node.py: error: --calibrate-face needs camera or video frames (not a replay)",
                file=sys.stderr,
            )
            node.close()
            return 2
        calibrator = FaceCalibrator(
            config.perception.face.calibration_phase_s, say=lambda line: print(line, file=sys.stderr)
        )
        face.listener = calibrator
        until = lambda: calibrator.done  # noqa: E731
    try:
        stats = run_loop(node, args.max_frames, args.stats, until=until)
    except SourceError as error:  # e.g. a damaged line deep in a replayed recording
        print(f"run_node.py: error: {error} (the outputs up to it are complete)", file=sys.stderr)
        return 1
    if args.stats:
        stats.print_table()
        if node.scheduler is not None:
            print(f"liverig: {node.scheduler.line()}", file=sys.stderr)
    else:
        print(f"liverig: {stats.line()}", file=sys.stderr)
    if node.guard.replaced:
        print(
            f"liverig: {node.guard.replaced} non-finite or out-of-range values were held at their last "
            "good value before reaching the outputs",
            file=sys.stderr,
        )
    if node.failsafe.any_failed:
        for line in node.failsafe.failed.values():
            print(line.replace("liverig: ", "run_node.py: error: ", 1), file=sys.stderr)
        return 1
    if calibrator is not None:
        return write_face_calibration(calibrator, args.calibrate_face)
    return write_body_profile(node, args.calibrate_body) if args.calibrate_body else 0


CALIBRATE_HELP = """\
usage: run_node.py calibrate KIND PATH [node options]

Every calibration behind one entry; each writes a file the node then reads:
  body PATH     bone lengths: stand in full view for a second or two (then motion.body.profile: PATH)
  face PATH     neutral face, eyes shut, mouth open, a few seconds each, as prompted
                (then perception.face.calibration: PATH)
  voice PATH    silence, then A I U E O held ~1.5 s each, as prompted (--source mic:default or
                audio:PATH; then voice.calibration: PATH; calibrate voice --help for its options)
  camera GLOB   chessboard photos (or --webcam N): prints perception.horizontal_fov_deg
                (python -m liverig.calibration.camera --help for its options)
Node options (--source, --config, ...) pick the camera or clip to calibrate from, as for the node.
"""
CALIBRATIONS = {"body": "--calibrate-body", "face": "--calibrate-face"}


def calibrate(argv: list[str]) -> int:
    """`run_node.py calibrate KIND ...`: the body and face calibrations run the node with their
    --calibrate-* option; the camera's is calibration/camera.py."""
    if argv[:1] in (["-h"], ["--help"]):
        print(CALIBRATE_HELP, end="")
        return 0
    kind = argv[0] if argv else ""
    if kind == "camera":
        from liverig.calibration.camera import main as camera

        return camera(argv[1:])
    if kind not in CALIBRATIONS and kind != "voice":
        print(
            f"run_node.py calibrate: error: expected body, face, voice or camera, got {kind!r}",
            file=sys.stderr,
        )
        return 2
    if kind == "voice" and argv[1:2] in (["-h"], ["--help"]):
        from liverig.calibration.voice import main as voice

        return voice(argv[1:])
    if len(argv) < 2 or argv[1].startswith("-"):
        print(
            f"run_node.py calibrate: error: calibrate {kind} needs the file to write, e.g. "
            f"calibrate {kind} {kind}.yaml (see --help)",
            file=sys.stderr,
        )
        return 2
    if kind == "voice":  # the speaker's vowels from a microphone or a recording: calibration/voice.py
        from liverig.calibration.voice import main as voice

        return voice(argv[1:])
    return main([CALIBRATIONS[kind], argv[1], *argv[2:]])


def write_face_calibration(calibrator, path: str) -> int:
    """Save what the face calibration measured, or say which phase fell short."""
    from liverig.calibration.face import calibrate, save_calibration
    from liverig.runtime.face_calibration import CalibrationError

    unfinished = calibrator.unfinished()
    if unfinished is not None:
        print(
            f"run_node.py: error: the source ended during the '{unfinished}' phase of the face "
            "calibration; nothing written",
            file=sys.stderr,
        )
        return 1
    try:
        calibration = calibrate(calibrator.collected)
    except CalibrationError as error:
        print(f"run_node.py: error: {error}", file=sys.stderr)
        return 1
    save_calibration(path, calibration)
    print(
        f"liverig: wrote face calibration {path} (frames per phase: {calibration.frames}); use it via "
        "perception.face.calibration",
        file=sys.stderr,
    )
    return 0


def write_body_profile(node, path: str) -> int:
    """Save the bone lengths the run measured; say which bones it could not see."""
    from liverig.calibration.body import save_profile
    from liverig.runtime.body import BONE_NAMES

    lengths = node.motion.body.measured()
    missing = [name for name, value in zip(BONE_NAMES, lengths, strict=True) if math.isnan(value)]
    if len(missing) == len(lengths):
        print(
            "run_node.py: error: no bone was seen long enough to measure; body profile not written",
            file=sys.stderr,
        )
        return 1
    save_profile(path, lengths)
    unseen = f"; not seen (they keep the live estimate): {', '.join(missing)}" if missing else ""
    print(
        f"liverig: wrote body profile {path}: {len(lengths) - len(missing)}/{len(lengths)} bones{unseen}",
        file=sys.stderr,
    )
    return 0


def run() -> None:
    """The process entry: Ctrl-C handling around `main`, its exit status."""
    signal.signal(signal.SIGINT, _interrupt)
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C while starting (the loop handles its own): nothing to save yet
        print("liverig: interrupted while starting", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run()
