"""Training and evaluation: the metrics on hand-made cases, a deterministic training run, and the
shipped weights (ONNX == torch, and better than the raw detector on a simulated test clip)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from liverig.core.fetch import FetchError  # noqa: E402
from liverig.core.skeleton import JOINT_INDEX, MIRROR, rest_pose  # noqa: E402
from liverig.models.backends import load_model  # noqa: E402
from liverig.models.evaluation import methods, metrics, report, tuning  # noqa: E402
from liverig.models.evaluation.data import SEED  # noqa: E402
from liverig.models.training import train  # noqa: E402
from tests.motion_support import sample  # noqa: E402

torch.set_num_threads(1)
WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "weights" / "stcnn.onnx"
SHIPPED = [WEIGHTS, WEIGHTS.with_name("stcnn_smooth.onnx")]  # the default and the smoother alternative


def moving_pose(frames: int = 240, seed: int = 0) -> np.ndarray:
    """The rest pose with every joint swinging smoothly (sums of sines), root-relative, (T, 22, 3)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 30.0
    shape = (1, 22, 3)
    motion = sum(
        rng.uniform(0.02, 0.08, shape)
        * np.sin(2 * np.pi * rng.uniform(0.3, 2.0, shape) * t + rng.uniform(0, 6.3, shape))
        for _ in range(3)
    )
    x = rest_pose()[None] + motion
    return x - x[:, :1]


def test_known_lag_is_measured():
    truth = moving_pose()
    valid = np.ones(len(truth), dtype=bool)
    for shift in (0, 1, 3, 5):
        pred = np.concatenate([np.repeat(truth[:1], shift, axis=0), truth[: len(truth) - shift]])
        lag = metrics.lag_frames(metrics.lag_correlation(pred, truth, valid))
        assert abs(lag - shift) < 0.2, (shift, lag)


def test_constant_offset_and_similarity_transform():
    truth = moving_pose()
    offset = np.array([0.03, -0.04, 0.0])  # 5 cm
    assert np.allclose(metrics.mpjpe(truth + offset, truth), 0.05)
    assert np.allclose(metrics.pa_mpjpe(truth + offset, truth), 0.0, atol=1e-9)
    c, s = np.cos(0.4), np.sin(0.4)
    rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    moved = 0.9 * truth @ rotation.T + offset  # scaled, turned and shifted: PA-MPJPE removes all three
    assert metrics.mpjpe(moved, truth).mean() > 0.02
    assert np.allclose(metrics.pa_mpjpe(moved, truth), 0.0, atol=1e-9)
    assert np.allclose(metrics.accel_error(truth + offset, truth), 0.0, atol=1e-12)


def test_bone_cv():
    angles = np.linspace(0, 3, 50)
    yaw = [np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]) for a in angles]
    turning = np.stack([rest_pose() @ r for r in yaw])
    assert metrics.bone_cv(turning) == pytest.approx(0.0, abs=1e-9)  # a rigid body keeps its bones
    breathing = turning * np.where(np.arange(50) % 2, 1.1, 0.9)[:, None, None]  # every bone +-10 %
    assert metrics.bone_cv(breathing) == pytest.approx(10.0)


def test_swapped_limb_is_a_flip():
    truth = np.repeat(rest_pose()[None], 30, axis=0)
    pred = truth.copy()
    arm = [JOINT_INDEX[n] for n in ("LeftLowerArm", "LeftHand", "LeftHandEnd")]
    other = [MIRROR[j] for j in arm]
    pred[10:17, arm + other] = truth[10:17, other + arm]  # 7 frames with the arms swapped
    assert metrics.flips(truth, truth).sum() == 0
    assert metrics.flips(pred, truth).sum() == 7
    assert np.flatnonzero(metrics.flips(pred, truth)).tolist() == list(range(10, 17))


def observed(pose: np.ndarray, visibility: np.ndarray) -> dict:
    """A sequence in simulate()'s layout whose observation is the truth itself, standing at 3 m."""
    f32, root = np.float32, np.tile([0.0, 0.0, -3.0], (len(pose), 1))
    return {
        "world": pose.astype(f32),
        "image": pose[..., :2].astype(f32),
        "truth": pose.astype(f32),
        "visibility": visibility.astype(f32),
        "root": root.astype(f32),
    }


def test_swap_bursts_trade_sides_in_the_observation_only():
    pose = moving_pose(300)
    sample = observed(pose, np.random.default_rng(3).uniform(0.5, 1, (300, 22)))
    state = np.random.default_rng(9)
    assert train.swap_sides(sample, state, rate_hz=0.0) is sample  # off: untouched, no randomness used
    assert state.random() == np.random.default_rng(9).random()
    out = train.swap_sides(sample, np.random.default_rng(4), rate_hz=2.0)
    assert out["truth"] is sample["truth"] and np.array_equal(sample["world"], pose.astype(np.float32))
    swapped = metrics.flips(out["world"].astype(np.float64), pose)  # frames where a limb pair traded sides
    changed = np.any(out["world"] != sample["world"], axis=(1, 2))
    assert 0 < swapped.sum() == changed.sum() < 300  # ~2 bursts of 3-10 frames per second
    for key in ("image", "visibility"):  # every channel trades sides in the same frames
        assert np.array_equal(np.any(out[key] != sample[key], axis=tuple(range(1, out[key].ndim))), changed)
    limbs = [j for chain in train.LIMBS.values() for j in chain]
    others = np.setdiff1d(np.arange(22), limbs)
    assert np.array_equal(out["world"][:, others], sample["world"][:, others])  # torso and head stay


def test_swap_line_counts_who_follows_injected_swaps():
    seq = observed(moving_pose(300), np.ones((300, 22)))
    line = report.swap_line(
        [seq], {"raw": methods.raw, "keeps sides": lambda s: s["truth"].astype(np.float64)}
    )
    followed = int(line.split("raw ")[1].split()[0])
    assert followed > 0 and "keeps sides 0 (0.0 mm)" in line


def test_occlusion_line_sees_a_frozen_limb_jump_back_and_a_filled_one_not():
    seq = observed(moving_pose(300), np.ones((300, 22)))
    injected = train.occlude(seq, np.random.default_rng(SEED), report.OCCLUDE_TEST_HZ)
    bursts = metrics.occlusion_bursts(seq, injected)
    assert bursts and all(np.all(injected["visibility"][a:b, c] <= 0.4) for c, a, b in bursts)
    truth = seq["truth"].astype(np.float64)
    raw = metrics.occlusion_scores([methods.raw(injected)], [injected], [bursts])
    filled = metrics.occlusion_scores([truth], [injected], [bursts])
    assert raw["hidden"] > 20 and raw["jump"] > 20 and raw["jumps"] > 0  # mm: held or wandered, then back
    assert filled["hidden"] == 0.0 and filled["jump"] == 0.0
    line = report.occlusion_line([seq], {"raw": methods.raw}, {"raw": [methods.raw(seq)]})
    assert f"| raw | {raw['hidden']:.1f} | 0.0 |" in line


def test_still_jitter_and_score():
    truth = np.repeat(rest_pose()[None], 60, axis=0)
    rng = np.random.default_rng(0)
    noisy = truth + rng.normal(0, 0.002, truth.shape)
    seq = {"truth": truth, "root": np.zeros((60, 3)), "world": noisy, "visibility": np.ones((60, 22))}
    s = metrics.score([noisy], [seq])
    assert s["still_frames"] == 59 and s["jitter"] > 1.0  # mm/frame
    assert metrics.score([truth], [seq])["jitter"] == 0.0
    smooth = methods.one_euro(seq, 0.5, 0.0)
    assert metrics.score([smooth], [seq])["jitter"] < s["jitter"] / 2


def test_two_training_steps_are_deterministic():
    argv = [
        "--data",
        "dummy",
        "--steps",
        "2",
        "--batch",
        "2",
        "--window",
        "41",
        "--val-every",
        "1",
        "--seed",
        "3",
    ]
    first = train.main(argv)["model"].state_dict()
    second = train.main(argv)["model"].state_dict()
    assert first.keys() == second.keys()
    for k in first:
        assert torch.equal(first[k], second[k]), k
    changed = train.main([*argv[:-1], "4"])["model"].state_dict()
    assert any(not torch.equal(first[k], changed[k]) for k in first)


def test_ema_keeps_the_moving_average_of_the_trained_weights(monkeypatch):
    trajectory, train_step = [], train.train_step

    def recorded(model, *args, **kwargs):
        out = train_step(model, *args, **kwargs)
        trajectory.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return out

    monkeypatch.setattr(train, "train_step", recorded)
    result = train.main(
        [
            "--data",
            "dummy",
            "--steps",
            "4",
            "--batch",
            "2",
            "--window",
            "41",
            "--val-every",
            "1",
            "--seed",
            "3",
            "--ema",
            "0.5",
        ]
    )
    best = result["record"]["best_step"]
    assert best > 1  # else the average would be the trained weights themselves
    expected = trajectory[0]  # the average starts as a copy of the first step's weights
    for weights in trajectory[1:best]:
        expected = {n: 0.5 * expected[n] + 0.5 * weights[n] for n in expected}
    kept = dict(result["model"].named_parameters())
    for n in expected:
        torch.testing.assert_close(kept[n], expected[n])
    assert any(not torch.equal(kept[n], trajectory[best - 1][n]) for n in expected)


def test_training_only_the_contact_head_leaves_every_other_weight_alone(tmp_path):
    from liverig.models.stcnn import STCNN

    model = STCNN()
    trainable = train.contact_head_only(model)
    out = model(torch.randn(1, 9, 22, model.cfg.in_features))
    sum(v.sum() for v in out.values()).backward()  # a loss on every output
    head = model.frame_head
    assert trainable == [head.weight, head.bias]
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("frame_head."))
    assert torch.count_nonzero(head.weight.grad[:3]) == 0 and torch.count_nonzero(head.bias.grad[:3]) == 0
    assert torch.count_nonzero(head.weight.grad[3:5]) > 0  # only the contact rows get a gradient

    argv = ["--data", "dummy", "--steps", "3", "--batch", "2", "--window", "41", "--val-every", "1"]
    start = tmp_path / "start.pt"
    train.main([*argv, "--out", str(start), "--no-export"])
    before = train.load_any(start).state_dict()
    after = train.main([*argv, "--init", str(start), "--only", "contact"])["model"].state_dict()
    for k in before:  # whichever step validation kept, nothing but the contact rows can differ
        same = before[k][[0, 1, 2]] if k.startswith("frame_head.") else before[k]
        assert torch.equal(same, after[k][[0, 1, 2]] if k.startswith("frame_head.") else after[k]), k


@pytest.fixture(scope="module")
def test_clip() -> dict:
    """A real TEST-split clip (CMU 01_01, jumps and turns) seen through the detector simulator."""
    from liverig.models.training.mocap import load_clips

    try:
        clip = next(c for c in load_clips("test") if c.name == "cmu_01_01")
    except FetchError as error:
        pytest.skip(f"mocap sources unavailable: {error}")
    return train.simulated(clip, np.random.default_rng(5), aug=False)


@pytest.mark.parametrize("weights", SHIPPED, ids=lambda p: p.stem)
def test_shipped_onnx_step_equals_torch_step(test_clip, weights):
    onnx, ref = load_model("onnxruntime", weights), load_model("torch", weights)
    a = train.aspect(test_clip)
    worst = 0.0
    for t in range(120):
        args = (test_clip["world"][t], test_clip["image"][t], test_clip["visibility"][t], a)
        x, y = onnx.step(*args), ref.step(*args)
        for name in ("joints", "root", "rot6d", "contact", "future"):
            worst = max(worst, float(np.abs(getattr(x, name) - getattr(y, name)).max()))
    assert worst < 1e-4


def test_the_networks_share_keeps_that_much_of_its_correction_over_a_light_one_euro(test_clip):
    """motion.share (runtime/learned_motion.py): 1 is the network's output, 0 the detector's joints
    through the light One Euro exactly, anything between the same mix of the two, frame for frame."""
    from liverig.core.config import OneEuroConfig, ShareConfig, load_config
    from liverig.runtime.learned_motion import LearnedSmoother
    from liverig.runtime.one_euro import OneEuroFilter

    model = load_model("onnxruntime", SHIPPED[0])
    motion = load_config().motion
    light = OneEuroConfig(min_cutoff=3.0, beta=2.0)

    def run(share: float) -> np.ndarray:
        config = motion.model_copy(update={"share": ShareConfig(network=share, detector=light)})
        smoother = LearnedSmoother(config, model)
        smoother.reset()
        return np.stack(
            [smoother(methods.frame_sample(test_clip, t, test_clip["world"][t])).joints for t in range(90)]
        )

    network, detector, mixed = run(1.0), run(0.0), run(0.3)
    one_euro = OneEuroFilter(light.min_cutoff, light.beta, light.d_cutoff)
    expected = np.stack([one_euro(test_clip["world"][t], t / 30.0) for t in range(90)])
    np.testing.assert_allclose(detector, expected, atol=1e-12)
    np.testing.assert_allclose(mixed, detector + 0.3 * (network - detector), atol=1e-9)
    assert np.abs(network - detector).max() > 0.01  # the two differ by centimetres: the mix is no no-op


def test_the_share_is_tuned_on_lag_and_smoothness_first(test_clip, monkeypatch):
    """tuning.tune_share: the network alone (share 1) is tried first; a setting that lags more than a
    frame or has more than SHARE_ACCEL_MARGIN more acceleration error than the network alone is never
    chosen however accurate; among the rest, the lowest MPJPE + PA-MPJPE wins."""
    model = load_model("onnxruntime", SHIPPED[0])
    seq = {k: v[:150] if isinstance(v, np.ndarray) else v for k, v in test_clip.items()}
    seq["observed_root"] = seq["root"]
    monkeypatch.setattr(tuning, "SHARES", (0.5, 1.0))
    monkeypatch.setattr(tuning, "SHARE_DETECTORS", ((0.05, 0.0), (4.0, 3.0)))  # 0.05 Hz: nearly frozen
    best, tried = tuning.tune_share([seq], model)
    assert [c.network for c, _, _ in tried] == [1.0, 0.5, 0.5]
    alone = tried[0][1]["full"]
    for _, scores, total in tried:
        s = scores["full"]
        ok = s["lag"] <= 1 and s["accel"] <= (1 + tuning.SHARE_ACCEL_MARGIN) * alone["accel"]
        assert total["total"] == (s["mpjpe"] + s["pa_mpjpe"] if ok else float("inf"))
    assert tried[1][1]["full"]["mpjpe"] > alone["mpjpe"]  # half of a nearly frozen filter: far worse
    assert best.detector.min_cutoff != 0.05 or best.network == 1.0
    assert best == min(tried, key=lambda t: t[2]["total"])[0]


@pytest.mark.parametrize("weights", SHIPPED, ids=lambda p: p.stem)
def test_shipped_model_beats_raw_observations(test_clip, weights):
    seq = {k: v[:300] if isinstance(v, np.ndarray) else v for k, v in test_clip.items()}
    ours = metrics.score([methods.run_backend(load_model("onnxruntime", weights), seq)], [seq])
    raw = metrics.score([methods.raw(seq)], [seq])
    assert ours["mpjpe"] < raw["mpjpe"] - 2.0
    assert ours["accel"] < raw["accel"] * 0.9


def test_recipe_runs_every_stage_in_one_command(tmp_path):
    from liverig.models.training import train

    tiny = "  - {data: dummy, steps: 1, batch: 2, window: 40, val_every: 1}\n"
    (tmp_path / "base.yaml").write_text("stages:\n" + tiny + tiny)
    (tmp_path / "top.yaml").write_text("after: base\nstages:\n" + tiny)
    out = tmp_path / "w.pt"
    train.main(
        ["--recipe", str(tmp_path / "top.yaml"), "--out", str(out)]
    )  # base's two stages, then one more
    assert (tmp_path / "w.stage1.pt").exists() and (tmp_path / "w.stage2.pt").exists()
    assert out.exists() and out.with_suffix(".onnx").exists()
    assert not (tmp_path / "w.stage1.onnx").exists()  # only the final weights are exported
    record = json.loads(torch.load(out, weights_only=False)["training"])
    assert record["args"]["init"] == str(tmp_path / "w.stage2.pt")  # each stage starts from the last
    assert record["args"]["steps"] == 1 and record["args"]["val_every"] == 1  # the recipe's options


def test_a_recipe_run_hands_its_run_wide_options_to_every_stage(tmp_path):
    """--recipe with --exclude-source (leave one source out) and --minutes: every stage runs with them,
    so a leave-one-source-out run is the recipe less that source throughout."""
    from liverig.models.training import train

    tiny = "  - {data: dummy, steps: 1, batch: 2, window: 40, val_every: 1}\n"
    (tmp_path / "r.yaml").write_text("stages:\n" + tiny + tiny)
    out = tmp_path / "w.pt"
    train.main(
        [
            "--recipe",
            str(tmp_path / "r.yaml"),
            "--out",
            str(out),
            "--exclude-source",
            "acrnn",
            "--minutes",
            "5",
        ]
    )
    for path in (tmp_path / "w.stage1.pt", out):
        args = json.loads(torch.load(path, weights_only=False)["training"])["args"]
        assert args["exclude_source"] == "acrnn" and args["minutes"] == 5.0 and args["steps"] == 1


def test_the_shipped_recipes_are_the_documented_commands():
    """configs/recipes/*.yaml give train.py exactly the stages models/MODEL_CARD.md and train.py's
    docstring document (the commands the shipped weights were trained with)."""
    from liverig.models.training import recipes

    loss = "acceleration=10,velocity=2,rotation=0.2"
    shipped = [
        ["--data", "sim", "--steps", "800", "--lr", "2e-3", "--loss", loss],
        [
            "--data",
            "both",
            "--steps",
            "1000",
            "--lr",
            "1e-3",
            "--warmup",
            "50",
            "--real-fraction",
            "0.6",
            "--loss",
            loss,
        ],
    ]
    smooth = [
        "--data",
        "both",
        "--steps",
        "500",
        "--lr",
        "5e-4",
        "--warmup",
        "30",
        "--real-fraction",
        "0.6",
        "--loss",
        "acceleration=60,velocity=6,rotation=0.2",
    ]
    parser, terms = train.build_parser(), train.LossWeights.__dataclass_fields__
    assert recipes.available() == ["corpus", "shipped", "smooth"]  # corpus: issue 18, not shipped
    assert recipes.read_recipe("shipped", parser, terms) == shipped
    assert recipes.read_recipe("smooth", parser, terms) == [*shipped, smooth]


@pytest.mark.parametrize(
    "text, says",
    [
        (
            "stages:\n  - {data: sim, stepz: 5}\n",
            "stage 1: key 'stepz': not a recipe setting (no such option",
        ),
        ("stages:\n  - {data: nowhere}\n", "key 'data': 'nowhere' is not one of sim, realdet, both, dummy"),
        ("stages:\n  - {steps: 1}\n  - {steps: many}\n", "stage 2: key 'steps': 'many' is not int"),
        ("stages:\n  - {lr: .nan}\n", "key 'lr': 'nan' is not a finite number"),
        ("stages:\n  - {steps: true}\n", "key 'steps': a number or a word, not True"),
        ("stages:\n  - {loss: {acceleraton: 10}}\n", "key 'loss': 'acceleraton' is not a loss term"),
        ("stages:\n  - {loss: 'velocity=fast'}\n", "key 'loss': 'velocity': 'fast' is not a finite number"),
        ("stages:\n  - {out: x.pt}\n", "key 'out': not a recipe setting (set by the command line"),
        ("stages: []\n", "key 'stages': a list of at least one stage"),
        ("stagez:\n  - {steps: 1}\n", "key 'stagez': not a recipe key"),
        ("- {steps: 1}\n", "the top level must be a mapping"),
        ("after: bad\nstages:\n  - {steps: 1}\n", "key 'after': recipe 'bad' comes round again"),
        ("after: absent\nstages:\n  - {steps: 1}\n", "key 'after': no recipe 'absent'"),
        ("stages:\n  - {data: [sim\n", "not valid YAML"),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_file_and_key(tmp_path, capsys, text, says):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as stop:
        train.main(["--recipe", str(path), "--out", str(tmp_path / "w.pt")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and says in err, err
    assert not list(tmp_path.glob("w*"))  # nothing trained


def test_a_missing_recipe_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        train.main(["--recipe", "no_such_recipe", "--out", str(tmp_path / "w.pt")])
    err = capsys.readouterr().err
    assert (
        stop.value.code == 2
        and err.count("\n") == 1
        and "recipe not found" in err
        and "no_such_recipe" in err
    )


def test_calibration_takes_are_other_views_of_the_same_person():
    seqs = [{"name": n} for n in ("a_s0_c0", "a_s0_c1", "a_s1_c0", "b", "b", "lonely")]
    assert [methods.calibration_take(i, seqs) for i in range(len(seqs))] == [1, 0, 2, 4, 3, 5]


def test_rotation_scores_are_zero_for_the_truth_and_not_for_a_frozen_pose(test_clip):
    from liverig.models.rotations import joint_rotations

    seq = {k: v[:120] if isinstance(v, np.ndarray) else v for k, v in test_clip.items()}
    truth = joint_rotations(seq["truth"])
    perfect = metrics.rotation_scores([truth], [seq])
    assert all(value < 1e-6 for value in perfect.values())
    frozen = metrics.rotation_scores([np.broadcast_to(truth[:1], truth.shape)], [seq])
    assert frozen["angle"] > 1.0 and frozen["change"] > 0.1 and frozen["legs"] > 1.0


def test_contact_labels_measure_height_along_the_worlds_up():
    """A camera looking down 15° at someone in a long stance, the right foot planted 1.5 m further
    from the camera than the left, then lifted: along camera Y the far foot seems 39 cm up even while
    planted; along the world's up it is on the floor, and only the lift counts."""
    frames = 90
    c, s_ = np.cos(np.radians(15.0)), np.sin(np.radians(15.0))
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, c, -s_], [0.0, s_, c]])  # world -> camera rows, looking down
    world = np.repeat(rest_pose()[None], frames, axis=0)
    world[:, :, 1] -= world[0, :, 1].min()  # standing on the floor, y = 0
    right = [JOINT_INDEX["RightFoot"], JOINT_INDEX["RightToes"]]
    world[:, right, 2] -= 1.5  # planted 1.5 m further away
    world[45:, right, 1] += 0.2  # then lifted
    world[:, :, 2] -= 3.0  # all of it 3 m in front of the camera
    camera = (world - np.array([0.0, 1.5, 0.0])) @ rotation.T
    root = camera[:, 0]
    up = train.up_direction({"camera": {"rotation": rotation}})
    np.testing.assert_allclose(up, rotation[:, 1])
    level = train.contact_labels(camera - root[:, None], root, up)
    along_camera_y = train.contact_labels(camera - root[:, None], root)
    assert level[:, 0].all() and level[:45, 1].all() and not level[46:, 1].any()
    assert not along_camera_y[:45, 1].any()  # the planted far foot, called lifted


def test_the_evaluations_foot_lock_restarts_when_the_person_reappears():
    """`foot_locked` runs runtime.feet.FootLock as the node does: through each run of detected frames,
    reset in between (so a foot held before the gap is not held after it), gaps holding the last pose."""
    from liverig.core.config import FeetConfig
    from liverig.runtime.feet import FootLock

    rng = np.random.default_rng(3)
    frames = 40
    joints = moving_pose(frames)
    root = np.array([0.0, 0.9, -3.0]) + rng.normal(0.0, 0.01, (frames, 3))
    contact = np.ones((frames, 2))
    present = np.ones(frames, dtype=bool)
    present[18:22] = False
    seq = {"truth": joints, "present": present}
    config = FeetConfig(lock=True)
    out = methods.foot_locked(joints, root, contact, seq, config)
    for run in (slice(0, 18), slice(22, frames)):
        lock = FootLock(config)
        expected = [
            lock(sample(t / metrics.FPS, joints[t], root=root[t], contact=contact[t])).joints
            for t in range(run.start, run.stop)
        ]
        np.testing.assert_allclose(out[run], expected, atol=1e-12)
    np.testing.assert_array_equal(out[18:22], np.repeat(out[17:18], 4, axis=0))
    assert np.abs(out - joints).max() > 1e-3  # the feet were held


def test_a_delayed_truth_has_the_accel_error_of_its_delay():
    """`delayed_truth_accel`: no delay, no error; one whole frame late, exactly the error of the truth
    shifted by one frame; half a frame, half of that (the interpolation is linear)."""
    truth = moving_pose(120)
    seq = {"truth": truth, "present": np.ones(len(truth), dtype=bool)}
    assert metrics.delayed_truth_accel([seq], 0.0) == 0.0
    shifted = np.concatenate([truth[:1], truth[:-1]])
    one = metrics.accel_error(shifted, truth)[np.ones(len(truth) - 2, dtype=bool)].mean() * 1000
    assert metrics.delayed_truth_accel([seq], 1.0) == pytest.approx(one)
    assert metrics.delayed_truth_accel([seq], 0.5) == pytest.approx(one / 2)


def test_the_skate_loss_is_the_planted_feets_world_speed():
    """`skate`: the Hips drift 1 cm a frame while the feet stay planted in the world (so they move
    back in the root-relative frame): the truth's own joints cost nothing; feet that also slide by
    1 cm a frame in the world cost 1 cm."""
    frames = 30
    root = np.array([0.0, 0.9, -3.0]) + np.arange(frames)[:, None] * np.array([0.01, 0.0, 0.0])
    truth = (root[0] + rest_pose())[None] - root[:, None]  # in the world, all but the Hips stay put
    truth[:, 0] = 0.0  # root-relative: the Hips at the origin
    feet = [j for pair in train.FEET for j in pair]
    assert np.allclose(np.diff(root[:, None] + truth[:, feet], axis=0), 0.0)  # planted in the world
    clip = {
        "world": truth,
        "image": np.zeros((frames, 22, 2)),
        "visibility": np.ones((frames, 22)),
        "truth": truth,
        "root": root,
        "contact": np.ones((frames, 2), dtype=np.float32),
    }
    batch = train.make_batch([clip], 1, frames, 1, np.random.default_rng(0))
    per_joint = batch["scale"][..., None, None]
    out = {
        "joints": batch["joints"] / per_joint,
        "future": batch["future"] / per_joint[..., None],
        "root": torch.zeros(1, frames, 3),
        "rot6d": batch["rot6d"],
        "contact_logits": torch.zeros(1, frames, 2),
    }
    assert train.losses(out, batch)["skate"].item() == pytest.approx(0.0, abs=1e-6)
    sliding = batch["joints"].clone()
    sliding[:, :, feet, 0] += torch.arange(frames, dtype=torch.float32)[None, :, None] * 0.01
    out["joints"] = sliding / per_joint
    assert train.losses(out, batch)["skate"].item() == pytest.approx(0.01, rel=1e-4)


def test_the_evaluations_unseen_legs_restart_when_the_person_reappears():
    """`stood` runs runtime.unseen.UnseenLegs as the node does: legs unseen for over a second stand;
    after a gap the count starts again."""
    from liverig.runtime.feet import LEGS

    frames = 120
    joints = moving_pose(frames)
    visibility = np.ones((frames, 22))
    visibility[:, [j for leg in LEGS for j in leg]] = 0.0  # the legs never in view
    present = np.ones(frames, dtype=bool)
    present[60:62] = False
    seq = {"truth": joints, "present": present, "visibility": visibility}
    out = methods.stood(joints, seq)
    np.testing.assert_array_equal(out[:30], joints[:30])  # the first second: the network's legs
    assert np.abs(out[50:60] - joints[50:60]).max() > 0.01  # standing by then
    np.testing.assert_array_equal(out[62:92], joints[62:92])  # the person lost and back: a new second


def test_jump_heights_find_each_jump_and_the_share_the_root_keeps():
    """Two 30 cm jumps; a root that reaches half the height, two frames late, keeps 50 % of each."""
    frames = 150
    height = np.zeros(frames)
    for start in (30, 90):
        height[start : start + 20] = 0.3 * np.sin(np.linspace(0, np.pi, 20))
    truth = np.zeros((frames, 3))
    truth[:, 1], truth[:, 2] = height, 3.0
    late_and_low = truth.copy()
    late_and_low[2:, 1] = 0.5 * height[:-2]
    seq = {"root": truth, "present": np.ones(frames, dtype=bool)}
    heights = metrics.jump_heights([late_and_low], [seq])
    np.testing.assert_allclose(heights[:, 0], height.max(), rtol=1e-9)
    np.testing.assert_allclose(heights[:, 1] / heights[:, 0], 0.5, rtol=1e-9)
    assert "2 in the test clips" in report.jump_line([seq], {"half": [late_and_low]})
    assert "half 50 % on average" in report.jump_line([seq], {"half": [late_and_low]})
    hop = {"root": truth * [1, 0.2, 1], "present": seq["present"]}  # 6 cm: under the 10 cm of a jump
    assert not len(metrics.jump_heights([hop["root"]], [hop]))


def test_lagged_differences_look_back_within_the_sequence():
    """`_lagged_differences`: column k-1 holds x[t - k] - x[t], the first frame standing in before it."""
    x = np.array([1.0, 2.0, 4.0, 7.0])
    out = tuning._lagged_differences(x, 3)
    np.testing.assert_array_equal(out[:, 0], [0.0, -1.0, -2.0, -3.0])  # x[t-1] - x[t]
    np.testing.assert_array_equal(out[:, 1], [0.0, -1.0, -3.0, -5.0])  # x[t-2] - x[t]


def test_the_linear_filter_bound_leaves_the_truth_alone_and_smooths_noise():
    """`linear_filter_bound`: fitted on the truth itself, the best filter is no filter (accel error 0);
    fitted on noisy copies, it cuts the accel error well below the noise's and pays for it in lag."""
    rng = np.random.default_rng(3)
    seqs = [
        {"truth": moving_pose(150, seed), "root": np.zeros((150, 3)), "present": np.ones(150, dtype=bool)}
        for seed in range(4)
    ]
    truths = [s["truth"] for s in seqs]
    exact = tuning.linear_filter_bound(truths[:2], seqs[:2], truths[2:], seqs[2:])
    assert exact["accel"] == pytest.approx(0.0, abs=1e-9)
    noisy = [t + rng.normal(0.0, 0.01, t.shape) for t in truths]
    before = metrics.score(noisy[2:], seqs[2:])
    after = tuning.linear_filter_bound(noisy[:2], seqs[:2], noisy[2:], seqs[2:])
    assert after["accel"] < 0.5 * before["accel"]
    assert after["lag"] > before["lag"] + 0.5


def test_one_euro_at_equal_lag_is_the_smoothest_setting_no_later_than_ours():
    grid = [{"accel": 20.0, "lag": 0.2}, {"accel": 15.0, "lag": 0.4}, {"accel": 10.0, "lag": 0.9}]
    assert tuning.one_euro_at_lag(grid, 0.45)["accel"] == 15.0
    assert tuning.one_euro_at_lag(grid, 1.0)["accel"] == 10.0
    assert tuning.one_euro_at_lag(grid, 0.1)["lag"] == 0.2  # none that early: the earliest there is


def test_real_holds_join_each_realdet_pool(monkeypatch):
    """`--real-holds K`: every pool refresh adds K distinct held poses, drawn from those cached, to the
    real-detector pairs; without the flag none join."""
    rng = np.random.default_rng(0)
    moving = [train.dummy_clip(60, rng) for _ in range(3)]
    holds = [{**train.dummy_clip(30, rng), "name": f"hold{i}"} for i in range(5)]
    data = train.Data([], moving, [train.dummy_clip(50, rng)], "dummy val", holds)
    monkeypatch.setattr(train, "load_data", lambda *args, **kwargs: data)
    pools = []
    monkeypatch.setattr(train, "real_pool", lambda samples, *args: pools.append(samples) or samples)
    argv = [
        "--data",
        "realdet",
        "--steps",
        "4",
        "--refresh",
        "2",
        "--batch",
        "2",
        "--window",
        "41",
        "--val-every",
        "4",
    ]
    train.main([*argv, "--real-holds", "2"])
    assert len(pools) == 2
    for pool in pools:
        names = [s.get("name") for s in pool[len(moving) :]]
        assert pool[: len(moving)] == moving and len(names) == 2 and len(set(names)) == 2
        assert all(n.startswith("hold") for n in names)
    pools.clear()
    train.main(argv)
    assert all(pool == moving for pool in pools)


def test_leaving_a_source_out_drops_its_clips_from_every_pool():
    """train.py --exclude-source KEY: no clip of that source is simulated, filmed or validated on."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)

    def seq(clip: str) -> dict:
        return {**train.dummy_clip(20, rng), "clip": clip, "name": clip + "_s0_c0"}

    data = train.Data(
        [SimpleNamespace(name="acrnn_salsa_01"), SimpleNamespace(name="przestr_05_01")],
        [seq("acrnn_salsa_01"), seq("cmuamc_03_01")],
        [seq("acrnn_indian_04"), seq("przestr_08_01")],
        "realdet val",
        [seq("acrnn_salsa_02")],
    )
    kept = train.without_source(data, "acrnn")
    assert [c.name for c in kept.sim_clips] == ["przestr_05_01"]
    assert [s["clip"] for s in kept.real] == ["cmuamc_03_01"]
    assert [s["clip"] for s in kept.val] == ["przestr_08_01"] and kept.real_holds == []
    assert len(train.without_source(data, "acrn").real) == 2  # a whole key, not a prefix of one


def test_the_corpus_recipe_trains_on_the_corpus_in_every_stage():
    from liverig.models.training import recipes

    stages = recipes.read_recipe("corpus", train.build_parser(), train.LossWeights.__dataclass_fields__)
    assert [s[s.index("--data") + 1] for s in stages] == ["sim", "both"]
    assert all(s[s.index("--clips") + 1] == "corpus" for s in stages)


def test_the_held_out_table_scores_each_framing_through_the_node(test_clip, monkeypatch):
    """evaluate --data corpus (heldout.py): one table per framing, raw's gain 0, the weights' row
    the score of the node's own motion stage on exactly those sequences; --source keeps only that
    source's test sequences."""
    from liverig.models.evaluation import heldout

    def cut(name: str, framing: str, a: int) -> dict:
        s = {k: v[a : a + 90] if isinstance(v, np.ndarray) else v for k, v in test_clip.items()}
        return {
            **s,
            "clip": name,
            "framing": framing,
            "present": np.ones(90, bool),
            "observed_root": s["root"],
        }

    test = [cut("cmuamc_02_01", "full", 0), cut("acrnn_martial_03", "webcam", 90)]
    tune = [cut("przestr_05_01", f, 30) for f in ("full", "webcam")]
    monkeypatch.setattr(heldout, "corpus_sets", lambda: (tune, test))
    text = heldout.evaluate_heldout({"ours": WEIGHTS})
    assert "### full framing: 1 sequences, 90 frames" in text and "### webcam framing" in text
    raw_rows = [line for line in text.splitlines() if line.startswith("| raw |")]
    assert len(raw_rows) == 2 and all(row.endswith("| +0.0 % | +0.0 % |") for row in raw_rows)
    ours = metrics.score([methods.node_motion(load_model("onnxruntime", WEIGHTS), test[0])], [test[0]])
    row = next(line for line in text.splitlines() if line.startswith("| ours |"))
    assert row.split(" | ")[1] == f"{ours['mpjpe']:.1f}"
    only = heldout.evaluate_heldout({"ours": WEIGHTS}, source="acrnn")
    assert "### webcam framing" in only and "### full framing" not in only


def test_the_held_out_table_splits_bodies_never_trained_on(test_clip, monkeypatch):
    """With test sequences of both kinds of body (models/training/scenes.py BODIES: a test-only body
    and a train body), each framing's table is followed by the same rows per kind, each row the
    score of exactly that kind's sequences; caches without body names get no such rows."""
    from liverig.models.evaluation import heldout

    def cut(body: str, a: int) -> dict:
        s = {k: v[a : a + 90] if isinstance(v, np.ndarray) else v for k, v in test_clip.items()}
        return {
            **s,
            "clip": "cmuamc_02_01",
            "framing": "full",
            "present": np.ones(90, bool),
            "observed_root": s["root"],
            "body": body,
        }

    test = [cut("petite_woman", 0), cut("average_man", 90)]
    monkeypatch.setattr(heldout, "corpus_sets", lambda: ([cut("average_man", 30)], test))
    text = heldout.evaluate_heldout({"ours": WEIGHTS})
    lines = text.splitlines()
    never = next(line for line in lines if line.startswith("| ours, bodies never trained on (1 seq.) |"))
    seen = next(line for line in lines if line.startswith("| ours, bodies trained on (1 seq.) |"))
    model = load_model("onnxruntime", WEIGHTS)
    for line, seq in ((never, test[0]), (seen, test[1])):
        expected = metrics.score([methods.node_motion(model, seq)], [seq])
        assert line.split(" | ")[1] == f"{expected['mpjpe']:.1f}"
    raw_never = next(line for line in lines if line.startswith("| raw, bodies never trained on"))
    assert raw_never.endswith("| +0.0 % | +0.0 % |")
    for s in test:
        s["body"] = "mannequin"
    assert "bodies never trained on" not in heldout.evaluate_heldout({"ours": WEIGHTS})
