"""Tensor Fusion Network, two modalities (Tran & Soleymani's baseline: TRILL vector + mean AUs).

Per-modality SubNet (BatchNorm -> Dropout -> 3 x Linear+ReLU), outer product of the 1-extended
vectors, then a 3-layer inference network (MMSA's corrected TFN; models.md section 4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from train.models.base import Model


@dataclass(frozen=True)
class TFNConfig:
    audio_hidden: int = 32
    visual_hidden: int = 32
    post_fusion: int = 128
    dropout: float = 0.3
    post_dropout: float = 0.5


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm that accepts a batch of one clip while training (a subset's last batch: 1 in 64 subsets at
    batch 64): it is normalised with the running statistics instead of failing ("Expected more than 1 value
    per channel"), and the running statistics are left as they are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False,
                                            0.0, self.eps)
        return super().forward(x)


class SubNet(nn.Sequential):
    def __init__(self, d_in: int, hidden: int, dropout: float) -> None:
        super().__init__(BatchNorm(d_in), nn.Dropout(dropout), nn.Linear(d_in, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())


class TFN(Model):
    fusion_rule = 'outer product of the 1-extended subnet outputs'
    pooled = True  # consumes clip-level vectors

    def __init__(self, audio_dim: int, visual_dim: int, n_out: int, cfg: TFNConfig = TFNConfig()) -> None:
        super().__init__()
        self.a, self.v = SubNet(audio_dim, cfg.audio_hidden, cfg.dropout), SubNet(visual_dim, cfg.visual_hidden,
                                                                                  cfg.dropout)
        prod = (cfg.audio_hidden + 1) * (cfg.visual_hidden + 1)
        self.post = nn.Sequential(nn.Dropout(cfg.post_dropout), nn.Linear(prod, cfg.post_fusion), nn.ReLU(),
                                  nn.Linear(cfg.post_fusion, cfg.post_fusion), nn.ReLU())
        self.out = nn.Linear(cfg.post_fusion, n_out)

    def fused(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        one = torch.ones(audio.shape[0], 1, dtype=audio.dtype, device=audio.device)
        a, v = torch.cat([one, self.a(audio)], 1), torch.cat([one, self.v(visual)], 1)
        return self.post(torch.bmm(a[:, :, None], v[:, None, :]).flatten(1))

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self.out(self.fused(audio, visual))
