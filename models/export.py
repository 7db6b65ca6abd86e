"""Export the motion network's STEP function to ONNX, with a JSON sidecar the runtime needs.

    python -m liverig.models.export --weights W.pt --out models/weights/stcnn.onnx [--window]

Without --weights a seeded untrained model is exported (valid, returns its input joints). The step
graph is for one person (no batch axis), has static shapes and carries the streaming state explicitly:

    inputs   features      (22, F)         float32, models/features.py (F = 10)
             state_<i>     (22, H_i, C)    float32, i = 0 .. L-1, H_i = (kernel-1)·dilation_i,
                                           oldest frame first; zeros before the first frame
    outputs  joints        (22, 3)         root-relative joints, normalised (x world scale = metres)
             root          (3,)            Hips displacement since the previous frame, normalised
             rot6d         (22, 6)         local joint rotations, 6D (models/stcnn.py)
             contact       (2,)            left, right foot contact probabilities
             future        (3, 22, 3)      root-relative joints at t+1..t+3, normalised
             state_<i>_out (22, H_i, C)    the state to feed with the next frame

With the default config (C = 32, dilations 1, 3, 9, 27) H = 2, 6, 18, 54. `--window` also writes
`<out stem>_window.onnx`: the full-window forward over a fixed window of receptive-field frames,
features (1, T, 22, F) -> the same five outputs with (1, T) in front (the slow reference, for benchmarks).

The sidecar `<out stem>.json` records the feature normalisation constants (the runtime refuses a
model whose constants differ from models/features.py), the receptive field, the model config, and
every input/output name and shape.
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from liverig.core.skeleton import JOINT_NAMES, NUM_JOINTS
from liverig.models import features as feat
from liverig.models.stcnn import STCNN, STCNNConfig, StepGraph, WindowGraph, load

FORMAT = "liverig-stcnn-step/1"
OPSET = 17


def feature_constants() -> dict:
    """What models/features.py normalises with; a model trained with other constants is refused."""
    return {
        "names": list(feat.FEATURE_NAMES),
        "world_torso_clip": list(feat.WORLD_TORSO_CLIP),
        "default_world_torso": feat.DEFAULT_WORLD_TORSO,
        "image_torso_clip": list(feat.IMAGE_TORSO_CLIP),
        "reference_image_torso": feat.REFERENCE_IMAGE_TORSO,
    }


def metadata(model: STCNN) -> dict:
    """The sidecar: everything a runtime needs besides the graph itself."""
    cfg = model.cfg
    j, h = NUM_JOINTS, cfg.future
    state = [
        {
            "input": f"state_{i}",
            "output": f"state_{i}_out",
            "shape": list(shape),
            "layout": "joint, frame, channel",
        }
        for i, shape in enumerate(model.state_shapes())
    ]
    outputs = {  # scaled: multiply by the world scale (models/features.py) for metres
        "joints": {"shape": [j, 3], "scaled": True, "meaning": "root-relative joints, canonical axes"},
        "root": {"shape": [3], "scaled": True, "meaning": "camera-space Hips displacement since last frame"},
        "rot6d": {"shape": [j, 6], "scaled": False, "meaning": "rotation vs parent and rest pose, 6D"},
        "contact": {"shape": [2], "scaled": False, "meaning": "left, right foot contact probability"},
        "future": {"shape": [h, j, 3], "scaled": True, "meaning": "root-relative joints at t+1..t+H"},
    }
    return {
        "format": FORMAT,
        "opset": OPSET,
        "config": asdict(cfg),
        "receptive_field": cfg.receptive_field,
        "parameters": sum(p.numel() for p in model.parameters()),
        "joint_names": list(JOINT_NAMES),
        "features": feature_constants(),
        "inputs": {"features": {"shape": [j, cfg.in_features]}},
        "outputs": outputs,
        "state": state,
        "output_order": list(feat.STEP_OUTPUTS) + [s["output"] for s in state],
    }


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str]) -> None:
    # The TorchScript exporter needs no onnxscript; its deprecation warning is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            do_constant_folding=True,
        )


def export_step(model: STCNN, out: str | Path) -> dict:
    """Write the step graph to `out` and its sidecar next to it; returns the sidecar."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    meta = metadata(model)
    features = torch.zeros(NUM_JOINTS, model.cfg.in_features)
    state = tuple(model.initial_state())
    names = [s["input"] for s in meta["state"]]
    _export(StepGraph(model), (features, *state), out, ["features", *names], meta["output_order"])
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def window_path(step_path: str | Path) -> Path:
    step_path = Path(step_path)
    return step_path.with_name(step_path.stem + "_window.onnx")


def export_window(model: STCNN, out: str | Path, frames: int | None = None) -> Path:
    """Write the full-window forward over `frames` (default: the receptive field) frames."""
    out = Path(out)
    model = model.float().eval()
    frames = frames or model.cfg.receptive_field
    x = torch.zeros(1, frames, NUM_JOINTS, model.cfg.in_features)
    _export(WindowGraph(model), (x,), out, ["features"], list(feat.STEP_OUTPUTS))
    return out


def untrained(seed: int = 0, cfg: STCNNConfig | None = None) -> STCNN:
    torch.manual_seed(seed)
    return STCNN(cfg).eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", help="a .pt saved by models.stcnn.save (default: seeded, untrained)")
    parser.add_argument("--out", default="models/weights/stcnn.onnx")
    parser.add_argument("--window", action="store_true", help="also export the full-window graph")
    args = parser.parse_args(argv)
    model = load(args.weights) if args.weights else untrained()
    meta = export_step(model, args.out)
    print(
        f"step graph {args.out}: {meta['parameters']:,} parameters, receptive field "
        f"{meta['receptive_field']} frames, sidecar {Path(args.out).with_suffix('.json')}"
    )
    if args.window:
        print(f"window graph {export_window(model, window_path(args.out))}")


if __name__ == "__main__":
    main()
