"""GRU baselines of Tran & Soleymani: early-fusion and late-fusion bidirectional GRUs (sized near
MulT BASE by default: 37.9 M and 38.6 M parameters on 512 + 17 inputs) and the single-layer GRU
probe (hidden 512, dropout 0.2) used to compare base features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from train.models.base import Model


@dataclass(frozen=True)
class GRUConfig:
    hidden: int = 768
    layers: int = 4
    dropout: float = 0.2
    bidirectional: bool = True


EF_BASE = GRUConfig(hidden=768, layers=4)
LF_BASE = GRUConfig(hidden=1664, layers=1)
PROBE = GRUConfig(hidden=512, layers=1, dropout=0.2, bidirectional=False)
SMALL_GRU = GRUConfig(hidden=64, layers=1)  # `--size small`: CPU smoke runs and demos


class _BiGRU(nn.Module):
    def __init__(self, d_in: int, cfg: GRUConfig) -> None:
        super().__init__()
        self.gru = nn.GRU(d_in, cfg.hidden, cfg.layers, batch_first=True, bidirectional=cfg.bidirectional,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.out_dim = cfg.hidden * (2 if cfg.bidirectional else 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.long().sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # h: [layers * dirs, B, H]
        dirs = 2 if self.gru.bidirectional else 1
        return self.drop(torch.cat([h[-d] for d in range(dirs, 0, -1)], dim=1))


class EFGRU(Model):
    """Early fusion: frame-wise concatenation of the modalities, one bidirectional GRU."""
    fusion_rule = 'per-frame concatenation before one bidirectional GRU'

    def __init__(self, audio_dim: int, visual_dim: int, n_out: int, cfg: GRUConfig = EF_BASE) -> None:
        super().__init__()
        self.rnn = _BiGRU(audio_dim + visual_dim, cfg)
        self.out = nn.Linear(self.rnn.out_dim, n_out)

    def fused(self, audio: Tensor, visual: Tensor, mask_a: Tensor, mask_v: Tensor) -> Tensor:
        return self.rnn(torch.cat([audio, visual], -1), mask_a | mask_v)

    def forward(self, audio: Tensor, visual: Tensor, mask_a: Tensor, mask_v: Tensor) -> Tensor:
        return self.out(self.fused(audio, visual, mask_a, mask_v))


class LFGRU(Model):
    """Late fusion: one bidirectional GRU per modality, final states concatenated."""
    fusion_rule = 'one bidirectional GRU per modality, final states concatenated'

    def __init__(self, audio_dim: int, visual_dim: int, n_out: int, cfg: GRUConfig = LF_BASE) -> None:
        super().__init__()
        self.a, self.v = _BiGRU(audio_dim, cfg), _BiGRU(visual_dim, cfg)
        self.out = nn.Linear(self.a.out_dim + self.v.out_dim, n_out)

    def fused(self, audio: Tensor, visual: Tensor, mask_a: Tensor, mask_v: Tensor) -> Tensor:
        return torch.cat([self.a(audio, mask_a), self.v(visual, mask_v)], 1)

    def forward(self, audio: Tensor, visual: Tensor, mask_a: Tensor, mask_v: Tensor) -> Tensor:
        return self.out(self.fused(audio, visual, mask_a, mask_v))


class GRUProbe(Model):
    """One modality, single-layer GRU (hidden 512, dropout 0.2): compares base features."""
    fusion_rule = 'none (one modality)'

    def __init__(self, d_in: int, n_out: int, cfg: GRUConfig = PROBE) -> None:
        super().__init__()
        self.rnn = _BiGRU(d_in, cfg)
        self.out = nn.Linear(self.rnn.out_dim, n_out)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.out(self.rnn(x, mask))
