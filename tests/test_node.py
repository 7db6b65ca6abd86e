"""The whole node through its command line: real clip, real PoseLandmarker, real files."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from liverig.runtime.assets import sample_path
from liverig.runtime.recording import read_json_lines, read_output_recording
from tests.node_support import ROOT, restore_sigint, run_node, start_node


def test_clip_runs_through_every_stage(clip_run):
    header, frames = read_output_recording(clip_run / "output.jsonl")
    assert header["joint_names"][0] == "Hips"
    assert len(frames) == 120  # not realtime: every frame of the clip, none dropped
    present = [f for f in frames if f["present"]]
    assert len(present) >= 100
    for frame in present:
        joints = np.asarray(frame["joints"])
        assert joints.shape == (22, 3) and np.all(np.isfinite(joints))
        # The recording is itself an output: it sees every stage before the bridges (the face part
        # included: it is on by default).
        stages = ["wait", "perception", "motion", "face_detector", "face", "retarget"]
        assert list(frame["stages_ms"]) == stages
        assert frame["latency_ms"] >= frame["stages_ms"]["perception"]
    # Head above the neck above the hips (canonical +Y is up).
    names = header["joint_names"]
    mean = np.mean([f["joints"] for f in present], axis=0)
    assert mean[names.index("Head"), 1] > mean[names.index("Neck"), 1] > mean[names.index("Hips"), 1]


def test_replay_reproduces_the_recorded_stream(clip_run, fast_config, tmp_path):
    result = run_node(
        "--source",
        f"replay:{clip_run / 'landmarks.jsonl'}",
        "--config",
        fast_config,
        "--record-landmarks",
        tmp_path / "again.jsonl",
        "--out",
        f"record:{tmp_path / 'output.jsonl'}",
        "--motion",
        "one_euro",
    )
    assert result.returncode == 0, result.stderr
    first_header, first = read_json_lines(clip_run / "landmarks.jsonl", "liverig-landmarks")
    second_header, second = read_json_lines(tmp_path / "again.jsonl", "liverig-landmarks")
    assert first_header == second_header
    assert first == second  # the landmark stream is reproduced exactly
    _, out_a = read_output_recording(clip_run / "output.jsonl")
    _, out_b = read_output_recording(tmp_path / "output.jsonl")
    assert [f["present"] for f in out_a] == [f["present"] for f in out_b]
    for a, b in zip(out_a, out_b, strict=True):
        # The recording rounds landmarks to 1e-6; the motion stage must give the same joints.
        np.testing.assert_allclose(a["joints"], b["joints"], atol=2e-5)
        np.testing.assert_allclose(a["root"], b["root"], atol=2e-4)


def _interrupted(clip_run, out, frames: int, *args: str):
    """Replay the clip into record:`out` with `args`, Ctrl-C once `frames` frames are recorded."""
    process = start_node(
        "--source", f"replay:{clip_run / 'landmarks.jsonl'}", "--out", f"record:{out}", *args, sigint=True
    )
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < frames):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()  # a node that ignored Ctrl-C must not outlive the test
        raise
    return process, stderr


def test_ctrl_c_during_body_calibration_saves_what_was_measured(clip_run, tmp_path):
    """The bundled clip shows a head and shoulders only: calibration never completes by itself, and
    Ctrl-C writes the bones it could measure."""
    from liverig.runtime.body import load_profile

    profile = tmp_path / "me.yaml"
    out = tmp_path / "output.jsonl"
    process, stderr = _interrupted(clip_run, out, 45, "--calibrate-body", str(profile))
    assert process.returncode == 0, stderr
    assert "wrote body profile" in stderr and "not seen" in stderr
    lengths = load_profile(profile)
    assert 0 < np.isfinite(lengths).sum() < len(lengths)  # the head's bones, not the legs


def test_ctrl_c_leaves_valid_recordings(clip_run, tmp_path):
    bvhio = pytest.importorskip("bvhio", reason="bvhio (dev extra) reads BVH files independently")
    out, bvh = tmp_path / "output.jsonl", tmp_path / "take.bvh"
    process, stderr = _interrupted(
        clip_run,
        out,
        10,
        "--record-landmarks",
        str(tmp_path / "lm.jsonl"),
        "--motion",
        "one_euro",
        "--out",
        f"bvh:{bvh}",
    )
    assert process.returncode == 0, stderr
    assert "interrupted" in stderr
    _, frames = read_output_recording(out)
    assert 9 <= len(frames) < 120  # stopped early (the replay is paced in real time)
    lines = out.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line complete: closed cleanly
    assert abs(bvhio.readAsBvh(str(bvh)).FrameCount - len(frames)) <= 1  # the BVH too, up to the last frame


@pytest.mark.parametrize("after_s", [1.0, 2.0])
def test_ctrl_c_while_starting_is_one_line_not_a_traceback(clip_run, tmp_path, after_s):
    """Ctrl-C may come while the node still imports and loads its models: it stops with one line
    (exit 130), or, once the loop runs, like any Ctrl-C (exit 0)."""
    process = start_node(
        "--source",
        f"replay:{clip_run / 'landmarks.jsonl'}",
        "--out",
        f"record:{tmp_path / 'o.jsonl'}",
        sigint=True,
    )
    time.sleep(after_s)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr
    assert (process.returncode, "interrupted while starting" in stderr) in ((130, True), (0, False)), stderr
    assert "interrupted" in stderr


def test_ctrl_c_that_a_library_turns_into_an_import_error_is_still_an_interrupt(clip_run, tmp_path):
    """A Ctrl-C landing inside a C extension's import comes out as that library's ImportError (numpy's
    C API does this), which the node would report as "onnxruntime is not installed". Here the
    onnxruntime on the path does exactly that: it sends itself Ctrl-C while importing and turns it
    into an ImportError. The node must still say it was interrupted (exit 130)."""
    fake = tmp_path / "site" / "onnxruntime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import os, signal, time\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "except BaseException as error:\n"
        "    raise ImportError('numpy.core.multiarray failed to import') from None\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    process = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_node.py"),
            "--source",
            f"replay:{clip_run / 'landmarks.jsonl'}",
            "--out",
            f"record:{tmp_path / 'o.jsonl'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        preexec_fn=restore_sigint,
    )
    assert process.returncode == 130, process.stderr
    assert process.stderr.strip() == "liverig: interrupted while starting"


def _camera_delivers() -> bool:
    import cv2

    capture = cv2.VideoCapture(0)
    try:
        return capture.isOpened() and capture.read()[0]
    finally:
        capture.release()


def test_without_a_webcam_the_node_plays_the_bundled_clip(tmp_path):
    """The README's first command: no --source and no camera (a server, CI) still shows the node
    working, on the bundled clip; and a bad --out is still the only line printed."""
    if _camera_delivers():
        pytest.skip("this machine has a webcam: the default source is the camera")
    out = tmp_path / "out.jsonl"
    result = run_node("--max-frames", "5", "--out", f"record:{out}", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "playing the bundled clip carphone.mp4 instead" in result.stderr
    assert len(read_output_recording(out)[1]) == 5
    _one_line_error(run_node("--out", "carrier-pigeon://home", timeout=60), "carrier-pigeon://home")


def _one_line_error(result, *needles):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("run_node.py: error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--source", "camera:0"], ["camera:0"]),
        (["--source", "video:/no/such/clip.mp4"], ["/no/such/clip.mp4"]),
        (["--source", "replay:/no/such/landmarks.jsonl"], ["/no/such/landmarks.jsonl"]),
        (["--out", "carrier-pigeon://home"], ["carrier-pigeon://home"]),
        (["--out", "record:"], ["record:"]),
        (["--config", "/no/such/config.yaml"], ["/no/such/config.yaml"]),
        (["--max-frames", "0"], ["--max-frames"]),
        (["--max-frames", "many"], ["--max-frames"]),
        (["--bogus-flag"], ["--bogus-flag"]),
        (["--calibrate-body", "/no/such/folder/me.yaml"], ["--calibrate-body", "/no/such/folder"]),
        (["--record-landmarks", ""], ["--record-landmarks"]),
        (["--out", "record:/no/such/folder/o.jsonl"], ["record:/no/such/folder/o.jsonl", "does not exist"]),
        (["--out", "bvh:take.bvh", "--out", "bvh:./take.bvh"], ["written by two outputs", "take.bvh"]),
        (["--out", "record:t.jsonl", "--record-landmarks", "t.jsonl"], ["written by two outputs", "t.jsonl"]),
    ],
)
def test_bad_command_lines_fail_at_startup(args, needles, clip_run):
    source = [] if "--source" in args else ["--source", f"replay:{clip_run / 'landmarks.jsonl'}"]
    _one_line_error(run_node(*source, *args, timeout=60), *needles)


@pytest.mark.parametrize(
    "yaml_text, needles",
    [
        ("motion:\n  methd: raw\n", ["motion.methd"]),
        ("perception: {model: enormous}\n", ["perception.model"]),
        ("retarget: {rig: no_such_rig}\n", ["retarget.rig", "no_such_rig"]),
        ("source: [1, 2]\n", ["source"]),
        ("motion: {method: raw\n", ["cannot read config"]),
        ("motion: {weights: /no/such/model.onnx}\n", ["motion.weights", "/no/such/model.onnx"]),
        (
            "motion: {body: {profile: /no/such/me.yaml}}\n",
            ["motion.body.profile", "body profile not found", "/no/such/me.yaml"],
        ),
        ("motion: {body: {calibration_frames: 0}}\n", ["motion.body.calibration_frames"]),
    ],
)
def test_bad_configs_name_the_key_and_file(yaml_text, needles, tmp_path, clip_run):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    result = run_node("--source", f"replay:{clip_run / 'landmarks.jsonl'}", "--config", config, timeout=60)
    _one_line_error(result, *needles)
    assert str(config) in result.stderr


def test_replay_of_a_non_recording_fails_cleanly(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello\n")
    _one_line_error(run_node("--source", f"replay:{bogus}", timeout=60), str(bogus))


def test_a_damaged_line_deep_in_a_replay_stops_cleanly_after_the_frames_before_it(
    clip_run, fast_config, tmp_path
):
    """Playback streams the file, so damage far into it is met mid-run: one line names the file and
    line, exit status 1 (a runtime failure), and every frame before it was processed and recorded."""
    lines = (clip_run / "landmarks.jsonl").read_text().splitlines()
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("\n".join([*lines[:41], "{cut", *lines[41:]]) + "\n")  # header + 40 frames first
    out = tmp_path / "o.jsonl"
    result = run_node(
        "--source", f"replay:{damaged}", "--config", fast_config, "--out", f"record:{out}", timeout=60
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("run_node.py: error:")]
    assert len(errors) == 1 and f"{damaged}:42: not a JSON object" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert len(read_output_recording(out)[1]) == 40


@pytest.mark.parametrize("flag", ["--record-landmarks", "--out"])
def test_writing_the_file_being_replayed_is_refused(flag, clip_run, tmp_path):
    """Playback reads the recording as it goes, so a recording or output onto it would destroy it."""
    played = tmp_path / "take.jsonl"
    played.write_bytes((clip_run / "landmarks.jsonl").read_bytes())
    target = str(played) if flag == "--record-landmarks" else f"record:{played}"
    result = run_node("--source", f"replay:{played}", flag, target, timeout=60)
    _one_line_error(result, str(played), "destroy")
    assert played.read_bytes() == (clip_run / "landmarks.jsonl").read_bytes()


def test_the_node_prints_only_its_own_lines(fast_config):
    """MediaPipe's harmless first-inference warnings (native code, fd 2) are filtered in a fresh
    process; what is left on stderr is liverig's own start and summary lines."""
    result = run_node(
        "--source",
        f"video:{sample_path('carphone.mp4')}",
        "--config",
        fast_config,
        "--max-frames",
        "10",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("liverig:") for line in lines), result.stderr


def test_help_explains_every_flag():
    result = run_node("--help", timeout=60)
    assert result.returncode == 0
    for flag in [
        "--source",
        "--out",
        "--config",
        "--max-frames",
        "--record-landmarks",
        "--stats",
        "--calibrate-body",
        "webcam:N",
        "video:PATH",
        "replay:PATH",
        "vmc://",
        "ws://",
        "osc://",
        "bvh:",
        "record:",
    ]:
        assert flag in result.stdout


def test_stats_table(clip_run, tmp_path):
    result = run_node(
        "--source",
        f"replay:{clip_run / 'landmarks.jsonl'}",
        "--stats",
        "--max-frames",
        "30",
        "--motion",
        "one_euro",
        "--out",
        f"record:{tmp_path / 'o.jsonl'}",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "30 frames" in result.stderr and "p99 ms" in result.stderr and "perception" in result.stderr


def test_port_in_use_and_unresolvable_host_fail_at_startup(clip_run):
    replay = f"replay:{clip_run / 'landmarks.jsonl'}"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_node("--source", replay, "--out", f"ws://127.0.0.1:{port}", timeout=60)
        _one_line_error(result, str(port))
    _one_line_error(
        run_node("--source", replay, "--out", "vmc://no-such-host.invalid:39539", timeout=60),
        "no-such-host.invalid",
    )
    _one_line_error(run_node("--source", replay, "--out", "ws://0.0.0.0:8765", timeout=60), "token")


def test_a_receiver_that_is_not_running_is_not_an_error(clip_run, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the node sends: nobody listens there
    result = run_node(
        "--source",
        f"replay:{clip_run / 'landmarks.jsonl'}",
        "--max-frames",
        "20",
        "--motion",
        "one_euro",
        "--out",
        f"vmc://127.0.0.1:{port}",
        "--out",
        f"osc://127.0.0.1:{port}",
        "--out",
        f"record:{tmp_path / 'o.jsonl'}",
    )
    assert result.returncode == 0, result.stderr
    assert len(read_output_recording(tmp_path / "o.jsonl")[1]) == 20


def test_a_failed_start_leaves_an_existing_recording_as_it_was(clip_run, tmp_path):
    """Outputs open last, files after the network ones: a start that fails on the motion weights, or
    on a port in use, does not truncate yesterday's recording of the same name, even with --overwrite."""
    old = tmp_path / "take.jsonl"
    old.write_text("precious\n")
    config = tmp_path / "bad.yaml"
    config.write_text("motion: {weights: /no/such/model.onnx}\n")
    replay = f"replay:{clip_run / 'landmarks.jsonl'}"
    _one_line_error(
        run_node("--source", replay, "--config", config, "--out", f"record:{old}", "--overwrite", timeout=60),
        "motion.weights",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_node(
            "--source",
            replay,
            "--out",
            f"record:{old}",
            "--record-landmarks",
            f"{old}2",
            "--out",
            f"ws://127.0.0.1:{port}",
            "--overwrite",
            timeout=60,
        )
        _one_line_error(result, str(port))
    assert old.read_text() == "precious\n" and not (tmp_path / "take.jsonl2").exists()


def test_weights_that_are_no_model_are_a_one_line_error(clip_run, tmp_path):
    """A damaged .onnx next to a good sidecar: onnxruntime's own error, named by the config key."""
    weights = tmp_path / "broken.onnx"
    weights.write_bytes(b"not a model")
    (tmp_path / "broken.json").write_text((ROOT / "models" / "weights" / "stcnn.json").read_text())
    config = tmp_path / "c.yaml"
    config.write_text(f"motion: {{weights: '{weights}'}}\n")
    result = run_node("--source", f"replay:{clip_run / 'landmarks.jsonl'}", "--config", config, timeout=60)
    _one_line_error(result, "motion.weights", str(config))
