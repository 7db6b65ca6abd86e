"""One interface to run the motion network frame by frame, whatever runs it.

    model = load_model("onnxruntime", "models/weights/stcnn.onnx")
    out = model.step(world, image, visibility, aspect=width / height)   # once per frame
    model.reset()                                                      # a new person / source

Backends (all compute the same function; tests hold them to each other within 1e-4):
    "onnxruntime"  the default: the exported step graph (models/export.py) on one CPU thread; this path
                   imports only numpy and onnxruntime, so a user's install needs no torch
    "torch"        the reference: the .pt weights through models.stcnn (torch is a dev extra)
    "tensorrt"     GPU: the same ONNX graph through onnxruntime's TensorrtExecutionProvider; raises
                   BackendUnavailable when that provider or a GPU is missing
    "cuda"         GPU: the torch reference on an NVIDIA GPU (a CUDA build of torch), the whole step
                   captured once as a CUDA graph, so a frame costs one launch and one copy back

Feature normalisation and de-normalisation (models/features.py) happen here, so every backend sees
exactly what training saw. The streaming state (the temporal convolutions' shift buffers) lives in the
backend object as arrays; `reset` zeroes it, which is the zero history the network was trained with.
A person not in view is stepped as zeros with visibility 0 (that is what `normalise` makes of it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liverig.core.skeleton import NUM_JOINTS
from liverig.models import features as feat

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = PROJECT_ROOT / "models" / "weights" / "stcnn.onnx"
BACKENDS = ("onnxruntime", "torch", "tensorrt", "cuda")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (missing package, provider or GPU); the message says why."""


@dataclass
class ModelOutput:
    joints: np.ndarray  # (22, 3) metres, root-relative (Hips at 0), canonical axes
    root: np.ndarray  # (3,) metres: camera-space Hips displacement since the previous frame
    rot6d: np.ndarray  # (22, 6) each joint's rotation relative to its parent and the rest pose, 6D
    contact: np.ndarray  # (2,) left, right foot contact probabilities
    future: np.ndarray  # (3, 22, 3) metres, root-relative joints 1, 2, 3 frames ahead


def rot6d_to_matrix(r6: np.ndarray) -> np.ndarray:
    """6D rotations (..., 6) -> matrices (..., 3, 3), numpy twin of models.stcnn.rot6d_to_matrix for the
    runtime (Gram-Schmidt on the first two columns, the third is their cross product)."""
    a1, a2 = r6[..., 0:3], r6[..., 3:6]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-12)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=-1, keepdims=True), 1e-12)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-1)


def matrix_to_rot6d(matrices: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> 6D (..., 6), the first two columns: the inverse of
    rot6d_to_matrix (numpy twin of models.stcnn.matrix_to_rot6d)."""
    return np.concatenate([matrices[..., :, 0], matrices[..., :, 1]], axis=-1)


def check_features(meta: dict) -> None:
    """Refuse a model exported with feature constants other than the ones this code normalises with."""
    mine = {
        "names": list(feat.FEATURE_NAMES),
        "world_torso_clip": list(feat.WORLD_TORSO_CLIP),
        "default_world_torso": feat.DEFAULT_WORLD_TORSO,
        "image_torso_clip": list(feat.IMAGE_TORSO_CLIP),
        "reference_image_torso": feat.REFERENCE_IMAGE_TORSO,
    }
    if meta.get("features") != mine:
        raise ValueError(f"model features {meta.get('features')} differ from models/features.py {mine}")


class StreamingModel:
    """Base: normalise a frame, run one network step on the backend, scale the outputs to metres."""

    name = "base"

    def __init__(self, state_shapes: list[tuple[int, ...]]) -> None:
        self.state_shapes = [tuple(s) for s in state_shapes]
        self.reset()

    def reset(self) -> None:
        """Forget all history: zero state, as before the first frame."""
        self._state = [np.zeros(s, dtype=np.float32) for s in self.state_shapes]

    def _run(self, features: np.ndarray) -> list[np.ndarray]:
        """features (J, F) float32 -> the five normalised outputs, valid until the next call (a backend
        may reuse its buffers); advances self._state."""
        raise NotImplementedError

    def step(
        self, world: np.ndarray, image: np.ndarray, visibility: np.ndarray, aspect: float = 1.0
    ) -> ModelOutput:
        """One frame: world (22,3) m, image (22,2) normalised, visibility (22,); aspect = width / height."""
        features, scale = feat.normalise(world, image, visibility, aspect)
        joints, root, rot6d, contact, future = self._run(features)
        s = float(scale)
        return ModelOutput(
            joints=joints * s, root=root * s, rot6d=rot6d.copy(), contact=contact.copy(), future=future * s
        )  # scaling copies the others


class OnnxRuntimeModel(StreamingModel):
    """The exported step graph in ONNX Runtime, one thread, state fed back every call."""

    name = "onnxruntime"
    providers: tuple = ("CPUExecutionProvider",)

    def __init__(self, path: str | Path = DEFAULT_WEIGHTS) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable("onnxruntime is not installed (pip install onnxruntime)") from e
        path = Path(path).with_suffix(".onnx")
        sidecar = path.with_suffix(".json")
        if not path.exists() or not sidecar.exists():
            raise FileNotFoundError(f"need {path} and its sidecar {sidecar}: see models/export.py")
        self.meta = json.loads(sidecar.read_text())
        check_features(self.meta)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one small graph per frame: threads cost more than they give
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = self._session(ort, str(path), options)
        self._state_inputs = [s["input"] for s in self.meta["state"]]
        self._output_names = list(feat.STEP_OUTPUTS) + [s["output"] for s in self.meta["state"]]
        self._bindings = None  # made on the first step (see _bind)
        super().__init__([tuple(s["shape"]) for s in self.meta["state"]])

    def _session(self, ort, path: str, options):
        return ort.InferenceSession(path, options, providers=list(self.providers))

    def reset(self) -> None:
        """Zero both state buffers in place: the bindings point at them."""
        if not hasattr(self, "_buffers"):
            shapes = self.state_shapes
            self._buffers = tuple([np.zeros(s, dtype=np.float32) for s in shapes] for _ in range(2))
        for buffer in (*self._buffers[0], *self._buffers[1]):
            buffer.fill(0.0)
        self._turn = 0
        self._state = self._buffers[0]

    def _bind(self) -> tuple:
        """Two IO bindings over fixed buffers, one per direction: the state one step writes is the
        state the next step reads (ping-pong), so no state is allocated or copied per frame
        (~0.05 ms of a ~0.5 ms step, models/bench.py)."""
        self._features = np.zeros(self.session.get_inputs()[0].shape, dtype=np.float32)
        self._outputs = {
            o.name: np.zeros(o.shape, dtype=np.float32)
            for o in self.session.get_outputs()
            if o.name in feat.STEP_OUTPUTS
        }
        bindings = []
        for turn in (0, 1):
            binding = self.session.io_binding()
            binding.bind_cpu_input("features", self._features)
            outputs = [self._outputs[name] for name in feat.STEP_OUTPUTS] + self._buffers[1 - turn]
            for name, array in zip(self._state_inputs, self._buffers[turn], strict=True):
                binding.bind_cpu_input(name, array)
            for name, array in zip(self._output_names, outputs, strict=True):
                binding.bind_output(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
            bindings.append(binding)
        return tuple(bindings)

    def _run(self, features: np.ndarray) -> list[np.ndarray]:
        if self._bindings is None:
            self._bindings = self._bind()
        self._features[...] = features
        self.session.run_with_iobinding(self._bindings[self._turn])
        self._turn = 1 - self._turn
        self._state = self._buffers[self._turn]
        return [self._outputs[name] for name in feat.STEP_OUTPUTS]  # reused next step: `step` copies them out


class TensorRTModel(OnnxRuntimeModel):
    """The same graph through onnxruntime's TensorRT provider (fp32, so it matches the reference)."""

    name = "tensorrt"

    def _session(self, ort, path: str, options):
        if "TensorrtExecutionProvider" not in ort.get_available_providers():
            raise BackendUnavailable(
                "onnxruntime has no TensorrtExecutionProvider here: install onnxruntime-gpu built with "
                "TensorRT (and the tensorrt package), on a machine with an NVIDIA GPU"
            )
        cache = Path(path).with_suffix(".trtcache")
        providers = [
            (
                "TensorrtExecutionProvider",
                {
                    "trt_fp16_enable": False,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                },
            ),
            "CUDAExecutionProvider",
            "CPUExecutionProvider",
        ]
        session = ort.InferenceSession(path, options, providers=providers)
        if session.get_providers()[0] != "TensorrtExecutionProvider":
            raise BackendUnavailable(f"TensorRT provider failed to start; got {session.get_providers()}")
        return session

    def _run(self, features: np.ndarray) -> list[np.ndarray]:
        """Plain feeds and fetches: the provider moves the data to and from the GPU itself."""
        feeds = {"features": features, **dict(zip(self._state_inputs, self._state, strict=True))}
        result = self.session.run(self._output_names, feeds)
        self._state = result[len(feat.STEP_OUTPUTS) :]
        return result[: len(feat.STEP_OUTPUTS)]


class TorchModel(StreamingModel):
    """The PyTorch reference: the same step function the ONNX graph was exported from."""

    name = "torch"

    def __init__(self, path: str | Path) -> None:
        try:
            import torch

            from liverig.models.stcnn import StepGraph, load
        except ImportError as e:
            raise BackendUnavailable("the torch backend needs torch (pip install 'liverig[dev]')") from e
        self._torch = torch
        self.model = load(str(Path(path).with_suffix(".pt")))
        self.graph = StepGraph(self.model)
        super().__init__(self.model.state_shapes())

    def _run(self, features: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            result = self.graph(torch.from_numpy(features), *(torch.from_numpy(s) for s in self._state))
        result = [r.numpy() for r in result]
        self._state = result[len(feat.STEP_OUTPUTS) :]
        return result[: len(feat.STEP_OUTPUTS)]


class CudaGraphModel(TorchModel):
    """The torch reference on the GPU. A step is ~100 tiny kernels whose launches would cost more than
    their work, so it is captured once as a CUDA graph over fixed buffers (features in, state fed back
    in place, outputs packed into one tensor) and replayed per frame: one copy in, one launch, one copy
    out. fp32 throughout (no TF32), so it matches the CPU backends."""

    name = "cuda"

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        torch = self._torch
        if not torch.cuda.is_available():
            raise BackendUnavailable("the cuda backend needs a CUDA build of torch and an NVIDIA GPU")
        torch.backends.cuda.matmul.allow_tf32 = False
        self.model.to("cuda").eval()
        self._features = torch.zeros((NUM_JOINTS, feat.NUM_FEATURES), device="cuda")
        self._state_gpu = [torch.zeros(s, device="cuda") for s in self.state_shapes]
        with torch.inference_mode():
            side = torch.cuda.Stream()  # warm-up off the default stream, as capture requires
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    self.graph(self._features, *self._state_gpu)
            torch.cuda.current_stream().wait_stream(side)
            self._cuda_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._cuda_graph):
                result = self.graph(self._features, *self._state_gpu)
                for state, new in zip(self._state_gpu, result[len(feat.STEP_OUTPUTS) :], strict=True):
                    state.copy_(new)
                self._packed = torch.cat([r.reshape(-1) for r in result[: len(feat.STEP_OUTPUTS)]])
        self._shapes = [tuple(r.shape) for r in result[: len(feat.STEP_OUTPUTS)]]
        self._splits = np.cumsum([int(np.prod(shape)) for shape in self._shapes])[:-1]
        self._host = torch.empty(self._packed.shape, pin_memory=True)
        self.reset()

    def reset(self) -> None:
        super().reset()
        for state in getattr(self, "_state_gpu", ()):
            state.zero_()

    def _run(self, features: np.ndarray) -> list[np.ndarray]:
        self._features.copy_(self._torch.from_numpy(features))
        self._cuda_graph.replay()
        self._host.copy_(self._packed)  # synchronous: waits for the replay
        parts = np.split(self._host.numpy(), self._splits)
        return [part.reshape(shape) for part, shape in zip(parts, self._shapes, strict=True)]


def load_model(backend: str = "onnxruntime", weights: str | Path = DEFAULT_WEIGHTS) -> StreamingModel:
    """A StreamingModel on `backend`. `weights` names the model by path; the suffix picks the file each
    backend reads (.onnx + .json for onnxruntime/tensorrt, .pt for torch/cuda), so one path serves all."""
    weights = Path(weights)
    if not weights.is_absolute() and not weights.exists():
        weights = PROJECT_ROOT / weights
    if backend == "onnxruntime":
        return OnnxRuntimeModel(weights)
    if backend == "tensorrt":
        return TensorRTModel(weights)
    if backend == "torch":
        return TorchModel(weights)
    if backend == "cuda":
        return CudaGraphModel(weights)
    raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
