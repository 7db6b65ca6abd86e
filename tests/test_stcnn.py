"""The motion network: streaming step == full-window recompute, causality, export and backends agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from liverig.core.skeleton import NUM_JOINTS  # noqa: E402
from liverig.models import backends, export  # noqa: E402
from liverig.models import features as feat  # noqa: E402
from liverig.models.stcnn import (  # noqa: E402
    STCNN,
    STCNNConfig,
    StepGraph,
    WindowGraph,
    load,
    matrix_to_rot6d,
    rot6d_to_matrix,
    save,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent


def randomised(model: STCNN, seed: int = 0, std: float = 0.1) -> STCNN:
    """Perturb every parameter, so zero-initialised heads and attention take part in the comparison."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return model.eval()


def random_features(frames: int, batch: tuple[int, ...] = (), seed: int = 0) -> np.ndarray:
    """Features of a random-walk observation, with a stretch where nobody is in view."""
    rng = np.random.default_rng(seed)
    shape = (*batch, frames, NUM_JOINTS)
    world = rng.normal(0, 0.3, shape[:-1] + (1, 1)) + np.cumsum(rng.normal(0, 0.02, shape + (3,)), -3)
    world = world + rng.normal(0, 0.3, (NUM_JOINTS, 3))
    image = rng.uniform(0.2, 0.8, shape + (2,))
    visibility = rng.uniform(0, 1, shape)
    visibility[..., frames // 3 : frames // 3 + 5, :] = 0.0
    return feat.normalise(world, image, visibility, aspect=16 / 9)[0]


@pytest.fixture(scope="module")
def model32() -> STCNN:
    torch.manual_seed(0)
    return randomised(STCNN())


def test_size_and_receptive_field():
    model = STCNN()
    n = sum(p.numel() for p in model.parameters())
    assert 200_000 <= n <= 1_000_000, n
    assert model.cfg.receptive_field == 81
    assert model.state_shapes() == [(22, h, 32) for h in (2, 6, 18, 54)]


def test_step_equals_full_window_from_the_first_frame():
    torch.manual_seed(1)
    model = randomised(STCNN().double(), seed=1)
    frames = model.cfg.receptive_field + 40
    x = torch.from_numpy(random_features(frames, batch=(2,), seed=1)).double()
    with torch.no_grad():
        full = model(x)
        state = model.initial_state(2, dtype=torch.float64)
        for t in range(frames):
            out, state = model.step(x[:, t], state)
            for name, value in out.items():
                err = (value - full[name][:, t]).abs().max().item()
                assert err < 1e-8, (name, t, err)


def test_causal_and_receptive_field_is_finite(model32):
    rf = model32.cfg.receptive_field
    x = torch.from_numpy(random_features(2 * rf + 10, seed=2))[None]
    t0 = 30
    y = x.clone()
    y[:, t0] += torch.randn_like(y[:, t0])
    with torch.no_grad():
        a, b = model32(x), model32(y)
    for name in a:
        assert torch.equal(a[name][:, :t0], b[name][:, :t0]), name  # the past does not see the future
    assert not torch.allclose(a["joints"][:, t0], b["joints"][:, t0])
    assert not torch.allclose(a["joints"][:, t0 + rf - 1], b["joints"][:, t0 + rf - 1])
    for name in a:  # beyond the receptive field the change is forgotten
        assert torch.allclose(a[name][:, t0 + rf :], b[name][:, t0 + rf :], atol=1e-6), name


def test_untrained_model_returns_its_input():
    model = STCNN().eval()
    x = torch.from_numpy(random_features(20, seed=3))[None]
    with torch.no_grad():
        out = model(x)
    assert torch.allclose(out["joints"], x[..., :3], atol=1e-6)
    assert torch.allclose(out["future"], x[:, :, None, :, :3].expand_as(out["future"]), atol=1e-6)
    eye = rot6d_to_matrix(out["rot6d"])
    assert torch.allclose(eye, torch.eye(3).expand_as(eye), atol=1e-6)
    assert torch.equal(out["contact_logits"], torch.zeros_like(out["contact_logits"]))
    assert torch.equal(out["joints"][..., 0, :], torch.zeros_like(out["joints"][..., 0, :]))


def test_rot6d_is_a_rotation_and_round_trips():
    r6 = torch.randn(100, 6, dtype=torch.float64)
    m = rot6d_to_matrix(r6)
    eye = torch.eye(3, dtype=torch.float64).expand_as(m)
    assert torch.allclose(m.transpose(-1, -2) @ m, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(m), torch.ones(100, dtype=torch.float64))
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(m)), m, atol=1e-12)
    np.testing.assert_allclose(backends.rot6d_to_matrix(r6.numpy()), m.numpy(), atol=1e-12)


def test_features_shapes_absence_and_scale():
    rng = np.random.default_rng(4)
    world, image, vis = (
        rng.normal(0, 0.3, (5, 22, 3)),
        rng.uniform(0, 1, (5, 22, 2)),
        rng.uniform(0, 1, (5, 22)),
    )
    vis[2] = 0.0
    f, scale = feat.normalise(world, image, vis)
    assert f.shape == (5, 22, feat.NUM_FEATURES) and f.dtype == np.float32 and scale.shape == (5,)
    assert not f[2].any() and scale[2] == feat.DEFAULT_WORLD_TORSO
    one, one_scale = feat.normalise(world[1], image[1], vis[1])
    np.testing.assert_array_equal(one, f[1])
    assert one_scale == scale[1]
    # Scale-free within the clip range: a bigger body (and a bigger picture of it) gives the same features.
    body = np.zeros((22, 3))
    body[6], body[10], body[14], body[18] = (0.2, 0.5, 0), (-0.2, 0.5, 0), (0.1, 0, 0), (-0.1, 0, 0)
    body[1:] += rng.normal(0, 0.05, (21, 3))
    img = 0.5 + 0.3 * body[:, :2] * (1, -1)
    a, sa = feat.normalise(body, img, np.ones(22))
    b, sb = feat.normalise(1.2 * body, 0.5 + 1.2 * (img - 0.5), np.ones(22))
    np.testing.assert_allclose(a[..., :6], b[..., :6], atol=1e-5)
    np.testing.assert_allclose(sb / sa, 1.2, rtol=1e-5)
    disp = feat.root_displacement(np.cumsum(np.ones((4, 3)), axis=0))
    np.testing.assert_array_equal(disp, [[0, 0, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1]])


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model32) -> Path:
    out = tmp_path_factory.mktemp("weights") / "stcnn.onnx"
    save(model32, str(out.with_suffix(".pt")))
    export.export_step(model32, out)
    export.export_window(model32, export.window_path(out))
    return out


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_sidecar_describes_the_graph(exported):
    import onnx

    meta = json.loads(exported.with_suffix(".json").read_text())
    graph = onnx.load(str(exported))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.graph.input}
    shapes.update({v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.graph.output})
    assert shapes["features"] == meta["inputs"]["features"]["shape"] == [22, feat.NUM_FEATURES]
    for s in meta["state"]:
        assert shapes[s["input"]] == shapes[s["output"]] == s["shape"]
    for name, spec in meta["outputs"].items():
        assert shapes[name] == spec["shape"]
    assert [o.name for o in graph.graph.output] == meta["output_order"]
    assert meta["receptive_field"] == 81
    backends.check_features(meta)


def test_onnxruntime_step_matches_torch_step(exported, model32):
    session = _session(exported)
    meta = json.loads(exported.with_suffix(".json").read_text())
    graph = StepGraph(model32)
    x = random_features(120, seed=5)
    state_t = model32.initial_state()
    state_o = [np.zeros(s["shape"], np.float32) for s in meta["state"]]
    with torch.no_grad():
        for t in range(len(x)):
            ref = graph(torch.from_numpy(x[t]), *state_t)
            state_t = list(ref[5:])
            feeds = {"features": x[t], **{s["input"]: v for s, v in zip(meta["state"], state_o, strict=True)}}
            got = session.run(meta["output_order"], feeds)
            state_o = got[5:]
            for name, r, g in zip(meta["output_order"], ref, got, strict=True):
                np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=0, err_msg=f"{name} at {t}")


def test_onnxruntime_window_matches_torch_forward(exported, model32):
    rf = model32.cfg.receptive_field
    x = random_features(rf, seed=6)[None]
    got = _session(export.window_path(exported)).run(None, {"features": x})
    with torch.no_grad():
        ref = WindowGraph(model32)(torch.from_numpy(x))
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=0)


def _observations(frames: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    world = rng.normal(0, 0.3, (NUM_JOINTS, 3)) + np.cumsum(rng.normal(0, 0.01, (frames, NUM_JOINTS, 3)), 0)
    image = 0.5 + 0.3 * world[..., :2] * (1, -1) + rng.normal(0, 0.01, (frames, NUM_JOINTS, 2))
    vis = rng.uniform(0.2, 1, (frames, NUM_JOINTS))
    world[40:45], image[40:45], vis[40:45] = 0.0, 0.0, 0.0  # nobody in view
    return world, image, vis


def test_backends_agree_and_reset(exported):
    runners = [backends.load_model("torch", exported), backends.load_model("onnxruntime", exported)]
    world, image, vis = _observations(100)
    first, kept = [], []
    for t in range(len(world)):
        a, b = (r.step(world[t], image[t], vis[t], aspect=4 / 3) for r in runners)
        for name in feat.STEP_OUTPUTS:
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-4, rtol=0, err_msg=name)
        if t < 3:
            first.append(b)
            kept.append({name: getattr(b, name).copy() for name in feat.STEP_OUTPUTS})
    # ONNX Runtime writes into the same bound buffers every step: what it returned earlier stays put.
    for output, values in zip(first, kept, strict=True):
        for name in feat.STEP_OUTPUTS:
            np.testing.assert_array_equal(getattr(output, name), values[name], err_msg=name)
    assert b.joints.shape == (22, 3) and b.root.shape == (3,) and b.rot6d.shape == (22, 6)
    assert b.contact.shape == (2,) and b.future.shape == (3, 22, 3)
    assert ((b.contact >= 0) & (b.contact <= 1)).all()
    for r in runners:
        r.reset()
        for t in range(3):
            np.testing.assert_allclose(
                r.step(world[t], image[t], vis[t], 4 / 3).joints, first[t].joints, atol=1e-4
            )


def test_untrained_backend_passes_world_joints_through(tmp_path):
    out = tmp_path / "stcnn.onnx"
    export.export_step(export.untrained(), out)
    model = backends.load_model("onnxruntime", out)
    world, image, vis = _observations(3)
    got = model.step(world[1], image[1], vis[1])
    np.testing.assert_allclose(got.joints, world[1] - world[1, :1], atol=1e-5)
    np.testing.assert_allclose(got.contact, 0.5)


def test_runtime_path_does_not_import_torch(exported):
    code = (
        "import sys, numpy as np\n"
        "from models.backends import load_model\n"
        f"m = load_model('onnxruntime', {str(exported)!r})\n"
        "o = m.step(np.random.rand(22, 3), np.random.rand(22, 2), np.ones(22))\n"
        "assert o.joints.shape == (22, 3)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_backend_errors_are_clear(exported, tmp_path):
    with pytest.raises(ValueError, match="unknown backend"):
        backends.load_model("tpu", exported)
    with pytest.raises(FileNotFoundError, match="sidecar"):
        backends.load_model("onnxruntime", tmp_path / "missing.onnx")
    meta = json.loads(exported.with_suffix(".json").read_text())
    meta["features"]["default_world_torso"] = 0.7
    with pytest.raises(ValueError, match="features"):
        backends.check_features(meta)


@pytest.mark.parametrize("backend, tolerance", [("tensorrt", 1e-3), ("cuda", 1e-4)])
def test_gpu_backend_matches_onnxruntime(exported, backend, tolerance):
    """Each GPU backend against the CPU graph, frame by frame (skipped, with the reason, where it cannot
    run). The second pass follows a reset: the state kept on the GPU must be zeroed too."""
    try:
        gpu = backends.load_model(backend, exported)
    except backends.BackendUnavailable as e:
        pytest.skip(f"{backend} backend unavailable: {e}")
    cpu = backends.load_model("onnxruntime", exported)
    world, image, vis = _observations(60)
    for run in range(2):
        for t in range(len(world)):
            a, b = gpu.step(world[t], image[t], vis[t]), cpu.step(world[t], image[t], vis[t])
            for name in feat.STEP_OUTPUTS:
                np.testing.assert_allclose(
                    getattr(a, name),
                    getattr(b, name),
                    atol=tolerance,
                    rtol=0,
                    err_msg=f"{name} frame {t} run {run}",
                )
        gpu.reset()
        cpu.reset()


def test_cuda_backend_says_why_without_a_gpu(exported):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: test_gpu_backend_matches_onnxruntime[cuda] runs instead")
    with pytest.raises(backends.BackendUnavailable, match="NVIDIA GPU"):
        backends.load_model("cuda", exported)


def test_export_cli(tmp_path):
    out = tmp_path / "w" / "stcnn.onnx"
    export.main(["--out", str(out), "--window"])
    assert out.exists() and out.with_suffix(".json").exists() and export.window_path(out).exists()


def test_config_round_trip(tmp_path):
    model = randomised(STCNN(STCNNConfig(channels=16, dilations=(1, 3, 9), heads=1)))
    save(model, str(tmp_path / "m.pt"))
    again = load(str(tmp_path / "m.pt"))
    assert again.cfg == model.cfg and again.cfg.receptive_field == 27
    x = torch.from_numpy(random_features(30, seed=8))[None]
    with torch.no_grad():
        assert torch.equal(model(x)["joints"], again(x)["joints"])


def test_train_smoke_one_step(tmp_path, capsys):
    from liverig.models.training import train

    out = tmp_path / "w.pt"
    log = train.main(["--steps", "1", "--batch", "2", "--window", "40", "--out", str(out)])["log"]
    assert set(log) >= {
        "total",
        "joints",
        "velocity",
        "acceleration",
        "bones",
        "rotation",
        "contact",
        "future",
    }
    assert all(np.isfinite(v) for v in log.values())
    export.export_step(load(str(out)), tmp_path / "w.onnx")
    world, image, vis = _observations(1)
    got = backends.load_model("onnxruntime", tmp_path / "w.onnx").step(world[0], image[0], vis[0])
    assert np.isfinite(got.joints).all()


def test_losses_vanish_for_perfect_predictions():
    from liverig.models.training import train

    rng = np.random.default_rng(9)
    clip = train.dummy_clip(80, rng)
    clip["world"] = clip["truth"]
    batch = train.make_batch([clip], batch=2, window=30, horizon=3, rng=rng)
    scale = batch["scale"]
    perfect = {
        "joints": batch["joints"] / scale[..., None, None],
        "future": batch["future"] / scale[..., None, None, None],
        "root": batch["root"] / scale[..., None],
        "rot6d": batch["rot6d"],
        "contact_logits": (batch["contact"] * 2 - 1) * 50,
    }
    terms = train.losses(perfect, batch)
    # `skate` is an absolute speed, not a difference from the truth: the truth's own "planted" feet
    # (the contact heuristic allows 1.5 cm a frame) score what they move (tests/test_train_eval.py)
    skate = terms.pop("skate").item()
    assert 0 < skate < 0.015
    for name, value in terms.items():
        assert value.item() < 1e-5, name
