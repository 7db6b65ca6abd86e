"""The LSTM baseline: a causal recurrent model of about the ST-CNN's size, same features in, same heads out.

It exists to answer one question honestly: does the ST-CNN's structure (per-joint channels, skeleton
graph convolutions, dilated causal convolutions over a fixed 81-frame window) beat a plain recurrent
network trained the same way (models/training/train.py --arch lstm) on the same data?

    features (B, T, 22, F) -> flatten joints -> Linear(22·F, H) -> GELU -> LSTM(H, H, layers) -> LayerNorm
    heads (zero-initialised, so an untrained network returns its input joints, like the ST-CNN):
        joints  residual over the input world joints (22·3), Hips kept at 0
        rot6d   (22·6, bias at the identity), future (H_f·22·3 over the current joints),
        root    (3), contact_logits (2)

Outputs are the ST-CNN's dict (models/stcnn.py), so the training losses and the evaluation treat both
alike. Being recurrent it is causal by construction: forward over a whole sequence equals stepping it
frame by frame; its memory is unbounded, where the ST-CNN sees exactly the last 81 frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from liverig.core.skeleton import NUM_JOINTS
from liverig.models.features import NUM_FEATURES, WORLD
from liverig.models.stcnn import IDENTITY_6D


@dataclass
class LSTMConfig:
    in_features: int = NUM_FEATURES
    hidden: int = 128
    layers: int = 2
    future: int = 3  # frames predicted ahead, as the ST-CNN


class LSTMModel(nn.Module):
    def __init__(self, cfg: LSTMConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or LSTMConfig()
        j, h = NUM_JOINTS, cfg.hidden
        self.embed = nn.Linear(j * cfg.in_features, h)
        self.lstm = nn.LSTM(h, h, num_layers=cfg.layers, batch_first=True)
        self.norm = nn.LayerNorm(h)
        self.joint_head = nn.Linear(h, j * (3 + 6 + 3 * cfg.future))
        self.frame_head = nn.Linear(h, 3 + 2)
        for head in (self.joint_head, self.frame_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        with torch.no_grad():
            self.joint_head.bias.view(j, -1)[:, 3:9] = torch.tensor(IDENTITY_6D)
        root_mask = torch.ones(j, 1)
        root_mask[0] = 0.0
        self.register_buffer("root_mask", root_mask, persistent=False)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """features (B, T, J, F) -> the ST-CNN's output dict; `state` continues an earlier call."""
        b, t = x.shape[:2]
        h, new_state = self.lstm(F.gelu(self.embed(x.flatten(-2))), state)
        h = self.norm(h)
        per_joint = self.joint_head(h).unflatten(-1, (NUM_JOINTS, -1))  # (B, T, J, 9 + 3H)
        per_frame = self.frame_head(h)
        joints = (x[..., WORLD] + per_joint[..., :3]) * self.root_mask
        future = per_joint[..., 9:].unflatten(-1, (self.cfg.future, 3))
        future = (joints.unsqueeze(-2) + future) * self.root_mask[:, None]
        self.last_state = new_state
        return {
            "joints": joints,
            "root": per_frame[..., :3],
            "rot6d": per_joint[..., 3:9],
            "contact_logits": per_frame[..., 3:5],
            "future": future.transpose(-3, -2),
        }


def save(model: LSTMModel, path: str, **extra) -> None:
    torch.save({"arch": "lstm", "config": asdict(model.cfg), "model": model.state_dict(), **extra}, path)


def load(path: str, map_location: str = "cpu") -> LSTMModel:
    blob = torch.load(path, map_location=map_location, weights_only=True)
    model = LSTMModel(LSTMConfig(**blob["config"]))
    model.load_state_dict(blob["model"])
    return model.eval()
