"""Per-frame cost of the streaming step on every available backend vs recomputing the whole window.

    python -m liverig.models.bench [--weights W.pt] [--steps 1000] [--threads 1]

GPU rows (tensorrt, cuda) appear where their backend can run and say why they are skipped elsewhere.

Without --weights a seeded untrained model (same architecture and cost) is used. The model is exported
to a temporary folder (step graph + full-window graph), then all methods are timed side by side in
rounds (50 consecutive frames of each method per round), so load from other processes hits them alike.
Printed per method: median and p99 milliseconds per frame, and for the full-window rows the ratio
full / step of the same backend. "step" rows time `StreamingModel.step`, what the node pays per frame
(feature normalisation + network step + scaling); "net" times the bare ONNX Runtime run of the step
graph on its bound buffers (models/backends.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from liverig.core.skeleton import NUM_JOINTS
from liverig.models import backends, export
from liverig.models import features as feat
from liverig.models.stcnn import STCNNConfig, WindowGraph, load, save


def _frames(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plausible-looking random walk of joints, so the feature path does real work."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.3, (NUM_JOINTS, 3))
    world = base + np.cumsum(rng.normal(0, 0.005, (n, NUM_JOINTS, 3)), axis=0)
    image = 0.5 + 0.2 * world[..., :2] * np.array([1, -1])
    visibility = rng.uniform(0.3, 1.0, (n, NUM_JOINTS))
    return world, image, visibility


def measure(
    methods: dict[str, Callable[[int], object]], steps: int, warmup: int, block: int = 50
) -> dict[str, np.ndarray]:
    """Side-by-side timing in rounds: each round runs `block` consecutive frames of every method in
    turn (consecutive, as in the node, so each keeps its caches warm). Returns ms per call."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for call in methods.values():
        for i in range(warmup):
            call(i)
    for start in range(0, steps, block):
        for name, call in methods.items():
            for i in range(start, min(start + block, steps)):
                t0 = time.perf_counter()
                call(warmup + i)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: np.array(t) for name, t in times.items()}


def run(
    weights: str | None = None,
    *,
    channels: int = STCNNConfig.channels,
    heads: int = STCNNConfig.heads,
    steps: int = 1000,
    warmup: int = 100,
    threads: int = 1,
    quiet: bool = False,
) -> dict[str, np.ndarray]:
    """Times every method side by side (ms per call, by method name) and prints them unless quiet."""
    say = (lambda *a: None) if quiet else print
    torch.set_num_threads(threads)

    model = load(weights) if weights else export.untrained(cfg=STCNNConfig(channels=channels, heads=heads))
    rf = model.cfg.receptive_field
    n_params = sum(p.numel() for p in model.parameters())
    world, image, vis = _frames(max(warmup + steps, rf))  # the window needs rf frames
    window = torch.from_numpy(feat.normalise(world[:rf], image[:rf], vis[:rf])[0])[None]

    with tempfile.TemporaryDirectory() as tmp:
        pt, onnx_path = Path(tmp) / "stcnn.pt", Path(tmp) / "stcnn.onnx"
        save(model, str(pt))
        export.export_step(model, onnx_path)
        export.export_window(model, export.window_path(onnx_path))
        runners = {name: backends.load_model(name, onnx_path) for name in ("torch", "onnxruntime")}
        for gpu in ("tensorrt", "cuda"):
            try:
                runners[gpu] = backends.load_model(gpu, onnx_path)
            except backends.BackendUnavailable as e:
                say(f"{gpu}: skipped ({e})")

        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        window_session = ort.InferenceSession(
            str(export.window_path(onnx_path)), options, providers=["CPUExecutionProvider"]
        )
        net_model = backends.load_model("onnxruntime", onnx_path)  # its own buffers: "net" runs one
        net_model.step(world[0], image[0], vis[0])  # binding over and over, which would garble a stream
        window_graph = WindowGraph(model).eval()

        def window_torch(_: int) -> None:
            with torch.inference_mode():
                window_graph(window)

        methods: dict[str, Callable[[int], object]] = {
            f"{name} step": (lambda i, r=r: r.step(world[i], image[i], vis[i])) for name, r in runners.items()
        }
        methods["onnxruntime net"] = lambda _: net_model.session.run_with_iobinding(net_model._bindings[0])
        methods["features only"] = lambda i: feat.normalise(world[i], image[i], vis[i])
        methods[f"torch full window ({rf} frames)"] = window_torch
        methods[f"onnxruntime full window ({rf} frames)"] = lambda _: window_session.run(
            None, {"features": window.numpy()}
        )
        if "cuda" in runners:  # the window on the GPU, from host features to host outputs like a step
            cuda_graph = WindowGraph(runners["cuda"].model).eval()

            def window_cuda(_: int) -> None:
                with torch.inference_mode():
                    [r.cpu() for r in cuda_graph(window.cuda())]

            methods[f"cuda full window ({rf} frames)"] = window_cuda
        times = measure(methods, steps, warmup)

    say(
        f"STCNN {n_params:,} parameters, channels {model.cfg.channels}, dilations {model.cfg.dilations}, "
        f"receptive field {rf} frames; {steps} timed steps after {warmup} warm-up, torch threads "
        f"{threads}, onnxruntime intra_op 1"
    )
    if "cuda" in runners:
        say(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    say(f"{'method':<36} {'median ms':>10} {'p99 ms':>10} {'full/step':>10}")
    for name, t in times.items():
        ratio = ""
        if "full window" in name:
            backend = name.split()[0]
            ratio = f"{np.median(t) / np.median(times[f'{backend} step']):.1f}x"
        say(f"{name:<36} {np.median(t):>10.3f} {np.percentile(t, 99):>10.3f} {ratio:>10}")

    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", help=".pt from models.stcnn.save (default: seeded, untrained)")
    parser.add_argument("--channels", type=int, default=STCNNConfig.channels, help="untrained model only")
    parser.add_argument("--heads", type=int, default=STCNNConfig.heads, help="untrained model only")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (onnxruntime always uses 1)")
    args = parser.parse_args(argv)
    run(
        args.weights,
        channels=args.channels,
        heads=args.heads,
        steps=args.steps,
        warmup=args.warmup,
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
