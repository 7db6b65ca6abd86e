"""The motion network: a causal spatio-temporal CNN over the 22-joint skeleton, with a light
hierarchical attention refinement, run one frame at a time.

Input: normalised per-frame features (models/features.py), (B, T, J, F). Every joint keeps its own
C-channel feature vector through the network (joints are an axis, not folded into channels):

    embed        per-joint linear F -> C (each joint its own weights: they see different data)
    STBlock x L  pre-norm residual:  h += W_out · gelu(TemporalConv(gelu(GraphConv(LN(h)))))
                 GraphConv     mixes each joint with its skeleton neighbours (symmetric-normalised
                               adjacency from PARENTS plus a learned residual adjacency, zero at start)
                 TemporalConv  causal dilated conv over time, kernel k, dilation d (VideoPose3D-style
                               1, 3, 9, 27 -> receptive field 1 + (k-1)·Σd = 81 frames); grouped by joint:
                               every joint has its own temporal filters, so parameters grow with J but
                               the per-frame cost is that of one shared filter
    Refine       at each frame: skeleton level = self-attention over the 22 joint tokens; detail
                 level = extremity tokens (head, hands, feet and their end sites) cross-attend to the
                 12 body tokens. Both residual with zero-initialised output projections, so an
                 untrained network is exactly the CNN.
    heads        per joint: residual over the input world joints (3), local rotation in 6D (6),
                 residuals of the joints 1..H frames ahead over the current prediction (3·H);
                 per frame (from all joints flattened): root displacement (3), foot contact logits (2)
    All head weights start at zero (rotation bias at the identity), so an untrained network returns its
    input joints.

Outputs (normalised units; models/features.denormalise turns lengths back into metres):
    joints          (B, T, J, 3)     root-relative, Hips exactly 0
    root            (B, T, 3)        camera-space Hips displacement since the previous frame
    rot6d           (B, T, J, 6)     each joint's rotation relative to its parent, relative to the rest
                                     pose, canonical axes; first two columns of the matrix (Zhou 2019)
    contact_logits  (B, T, 2)        left, right foot on the ground (sigmoid -> probability)
    future          (B, T, H, J, 3)  root-relative joints at t+1 .. t+H

Streaming: `step(x_t, state) -> (outputs, new_state)` is a pure function of explicit tensors. The state
is one shift buffer per temporal conv holding its last (k-1)·d inputs, (..., J, (k-1)·d, C); each step
concatenates the new frame and drops the oldest, so a step costs one frame whatever the window.
These are fixed-size FIFOs shifted by concat + slice, not ring buffers with a write index: the step
graph then needs no index state or scatter, and ONNX carries each buffer as a plain input/output.
Zero-filled state == the zero left-padding of `forward`, so step t equals forward(x[:, :t+1])[:, t]
from the very first frame. `step` accepts any leading dims; the exported graph (models/export.py) has
none: one person, features (J, F).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from liverig.core.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS
from liverig.models.features import NUM_FEATURES, STEP_OUTPUTS, WORLD

EXTREMITIES: tuple[str, ...] = (
    "Head",
    "HeadEnd",
    "LeftHand",
    "LeftHandEnd",
    "RightHand",
    "RightHandEnd",
    "LeftFoot",
    "LeftToes",
    "RightFoot",
    "RightToes",
)
EXTREMITY_INDEX = [JOINT_INDEX[n] for n in EXTREMITIES]
BODY_INDEX = [j for j in range(NUM_JOINTS) if j not in EXTREMITY_INDEX]
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass
class STCNNConfig:
    in_features: int = NUM_FEATURES
    channels: int = 32  # per joint
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 3, 9, 27)
    heads: int = 2  # attention heads in the refinement
    future: int = 3  # frames predicted ahead
    dropout: float = 0.0

    @property
    def receptive_field(self) -> int:
        return 1 + (self.kernel - 1) * sum(self.dilations)


def skeleton_adjacency() -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 of the undirected bone graph, (J, J)."""
    a = np.eye(NUM_JOINTS)
    for child, parent in enumerate(PARENTS):
        if parent >= 0:
            a[child, parent] = a[parent, child] = 1.0
    d = 1.0 / np.sqrt(a.sum(axis=1))
    return torch.tensor(a * d[:, None] * d[None, :], dtype=torch.float32)


def joint_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(..., J, K) @ per-joint (J, K, N) -> (..., J, N), as one batched matmul over joints (windows)."""
    lead, (j, k), n = x.shape[:-2], x.shape[-2:], weight.shape[-1]
    y = torch.bmm(x.reshape(-1, j, k).transpose(0, 1), weight)  # (J, M, N)
    return y.transpose(0, 1).reshape(*lead, j, n)


def joint_matvec(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The same product for one frame, (..., J, K) -> (..., J, N), with no transposes (the step graph)."""
    return torch.matmul(x.unsqueeze(-2), weight).squeeze(-2)


class GraphConv(nn.Module):
    """Each joint's new feature from itself and its (normalised) skeleton neighbourhood."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("adjacency", skeleton_adjacency())
        self.adjacency_residual = nn.Parameter(torch.zeros(NUM_JOINTS, NUM_JOINTS))
        self.proj = nn.Linear(2 * channels, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., J, C)
        neighbours = torch.matmul(self.adjacency + self.adjacency_residual, h)
        return self.proj(torch.cat([h, neighbours], dim=-1))


class TemporalConv(nn.Module):
    """Causal dilated convolution over time with separate filters per joint (groups = joints)."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.kernel, self.dilation = kernel, dilation
        self.history = (kernel - 1) * dilation  # frames of past input the state must hold
        fan_in = kernel * channels
        self.weight = nn.Parameter(torch.randn(NUM_JOINTS, fan_in, channels) / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(NUM_JOINTS, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, J, C), zero history before frame 0
        t, d = x.shape[1], self.dilation
        padded = F.pad(x, (0, 0, 0, 0, self.history, 0))
        taps = torch.cat([padded[:, i * d : i * d + t] for i in range(self.kernel)], dim=-1)  # (B, T, J, kC)
        return joint_matmul(taps, self.weight) + self.bias

    def step(self, x: torch.Tensor, buffer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (..., J, C), buffer (..., J, history, C) oldest first -> y (..., J, C), the shifted buffer.

        Time sits after the joint axis so the k taps are one strided slice that reshapes into each
        joint's (k·C) input row: the step graph needs no transposes.
        """
        window = torch.cat([buffer, x.unsqueeze(-2)], dim=-2)  # (..., J, history + 1, C)
        taps = window[..., :: self.dilation, :].flatten(-2)  # (..., J, k·C), oldest tap first
        return joint_matvec(taps, self.weight) + self.bias, window[..., 1:, :]


class STBlock(nn.Module):
    """Spatial graph conv, then causal temporal conv, then a pointwise projection; residual."""

    def __init__(self, cfg: STCNNConfig, dilation: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.channels)
        self.graph = GraphConv(cfg.channels)
        self.temporal = TemporalConv(cfg.channels, cfg.kernel, dilation)
        self.out = nn.Linear(cfg.channels, cfg.channels)
        self.drop = nn.Dropout(cfg.dropout)

    def _spatial(self, h: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.graph(self.norm(h)))

    def _finish(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return h + self.drop(self.out(F.gelu(y)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self._finish(h, self.temporal(self._spatial(h)))

    def step(self, h: torch.Tensor, buffer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, buffer = self.temporal.step(self._spatial(h), buffer)
        return self._finish(h, y), buffer


class Attention(nn.Module):
    """Multi-head attention of query tokens over key/value tokens; output projection starts at zero."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        assert channels % heads == 0
        self.heads = heads
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(channels, 2 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def _split(self, t: torch.Tensor) -> torch.Tensor:  # (..., N, C) -> (..., heads, N, C / heads)
        return t if self.heads == 1 else t.unflatten(-1, (self.heads, -1)).transpose(-3, -2)

    def _merge(self, t: torch.Tensor) -> torch.Tensor:  # (..., heads, N, C / heads) -> (..., N, C)
        return t if self.heads == 1 else t.transpose(-3, -2).flatten(-2)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:  # (..., N, C), (..., M, C)
        q = self._split(self.q(x))
        k, v = (self._split(t) for t in self.kv(context).chunk(2, dim=-1))
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        return self.proj(self._merge(attn @ v))


class Refine(nn.Module):
    """Hierarchical attention at one frame: whole skeleton, then extremities against the body."""

    def __init__(self, cfg: STCNNConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.norm_skeleton = nn.LayerNorm(c)
        self.skeleton = Attention(c, cfg.heads)
        self.norm_detail = nn.LayerNorm(c)
        self.norm_body = nn.LayerNorm(c)
        self.detail = Attention(c, cfg.heads)
        self.register_buffer("body_index", torch.tensor(BODY_INDEX), persistent=False)
        self.register_buffer("extremity_index", torch.tensor(EXTREMITY_INDEX), persistent=False)
        scatter = torch.zeros(NUM_JOINTS, len(EXTREMITY_INDEX))
        scatter[EXTREMITY_INDEX, range(len(EXTREMITY_INDEX))] = 1.0
        self.register_buffer("scatter", scatter, persistent=False)  # puts extremity updates back

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., J, C)
        tokens = self.norm_skeleton(h)
        h = h + self.skeleton(tokens, tokens)
        body = self.norm_body(h.index_select(-2, self.body_index))
        ends = self.norm_detail(h.index_select(-2, self.extremity_index))
        return h + torch.matmul(self.scatter, self.detail(ends, body))


class STCNN(nn.Module):
    def __init__(self, cfg: STCNNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or STCNNConfig()
        c, j = cfg.channels, NUM_JOINTS
        self.embed_weight = nn.Parameter(torch.randn(j, cfg.in_features, c) / math.sqrt(cfg.in_features))
        self.embed_bias = nn.Parameter(torch.zeros(j, c))
        self.blocks = nn.ModuleList(STBlock(cfg, d) for d in cfg.dilations)
        self.refine = Refine(cfg)
        self.norm = nn.LayerNorm(c)
        self.joint_head = nn.Linear(c, 3 + 6 + 3 * cfg.future)
        self.frame_head = nn.Linear(j * c, 3 + 2)
        for head in (self.joint_head, self.frame_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        with torch.no_grad():
            self.joint_head.bias[3:9] = torch.tensor(IDENTITY_6D)
        root_mask = torch.ones(j, 1)
        root_mask[0] = 0.0
        self.register_buffer("root_mask", root_mask, persistent=False)  # keeps the Hips at the origin

    def _embed(self, x: torch.Tensor, one_frame: bool) -> torch.Tensor:
        product = joint_matvec if one_frame else joint_matmul
        return product(x, self.embed_weight) + self.embed_bias

    def _heads(self, x: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: features (..., J, F), h: final joint features (..., J, C) -> outputs with shape (...)."""
        h = self.refine(h)
        h = self.norm(h)
        per_joint = self.joint_head(h)
        per_frame = self.frame_head(h.flatten(-2))
        joints = (x[..., WORLD] + per_joint[..., :3]) * self.root_mask
        future = per_joint[..., 9:].unflatten(-1, (self.cfg.future, 3))  # (..., J, H, 3)
        future = (joints.unsqueeze(-2) + future) * self.root_mask[:, None]
        return {
            "joints": joints,
            "root": per_frame[..., :3],
            "rot6d": per_joint[..., 3:9],
            "contact_logits": per_frame[..., 3:5],
            "future": future.transpose(-3, -2),  # (..., H, J, 3)
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Full window, the reference and the training path: features (B, T, J, F) -> (B, T, ...)."""
        h = self._embed(x, one_frame=False)
        for block in self.blocks:
            h = block(h)
        return self._heads(x, h)

    def initial_state(self, *batch: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        """Zero history, the state before the first frame; `batch` are leading dims (none: one person)."""
        return [torch.zeros(shape, dtype=dtype) for shape in self.state_shapes(*batch)]

    def state_shapes(self, *batch: int) -> list[tuple[int, ...]]:
        return [(*batch, NUM_JOINTS, b.temporal.history, self.cfg.channels) for b in self.blocks]

    def step(
        self, x: torch.Tensor, state: list[torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """One new frame: features (..., J, F) and state -> outputs (...) per frame, the next state."""
        h = self._embed(x, one_frame=True)
        new_state = []
        for block, buffer in zip(self.blocks, state, strict=True):
            h, buffer = block.step(h, buffer)
            new_state.append(buffer)
        return self._heads(x, h), new_state


def step_outputs(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The network's output dict as the exported graphs return it: STEP_OUTPUTS in order, the contact
    as a probability (models/features.py holds the order every backend reads)."""
    outputs = {**out, "contact": torch.sigmoid(out["contact_logits"])}
    return tuple(outputs[name] for name in STEP_OUTPUTS)


class StepGraph(nn.Module):
    """`STCNN.step` with flat tensor arguments and probabilities for contacts: what is exported to ONNX
    and what the torch backend runs, so both compute the same function."""

    def __init__(self, model: STCNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, new_state = self.model.step(features, list(state))
        return (*step_outputs(out), *new_state)


class WindowGraph(nn.Module):
    """`STCNN.forward` with the step graph's outputs: the full-window reference for export/benchmarks."""

    def __init__(self, model: STCNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return step_outputs(self.model(features))


def rot6d_to_matrix(r6: torch.Tensor) -> torch.Tensor:
    """6D rotation (..., 6) -> rotation matrix (..., 3, 3) by Gram-Schmidt (Zhou et al. 2019).

    The 6 numbers are the matrix's first two columns; the third is their cross product.
    """
    a1, a2 = r6[..., 0:3], r6[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> its first two columns (..., 6), the inverse of rot6d_to_matrix."""
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def save(model: STCNN, path: str) -> None:
    torch.save({"config": asdict(model.cfg), "model": model.state_dict()}, path)


def load(path: str, map_location: str = "cpu") -> STCNN:
    blob = torch.load(path, map_location=map_location, weights_only=True)
    cfg = dict(blob["config"])
    cfg["dilations"] = tuple(cfg["dilations"])
    model = STCNN(STCNNConfig(**cfg))
    model.load_state_dict(blob["model"])
    return model.eval()
