"""MATER (Ghaleb, Niehues, Asteriadis): one 6-layer transformer encoder per modality over window
embeddings with sinusoidal positions, mean pooling, two FC layers per modality, their linear outputs
averaged (the paper's Eq. 3).
``positions=False`` / ``attention=False`` give the paper's ablations (attention off = FFN-only layers).
Heads / FFN / dropout are not in the paper: Vaswani's defaults (8 heads, 2048) are used. Each window
embedding is l2-normalised as it comes from the store (the trainer does not z-score MATER's inputs)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from train.models.base import Model


@dataclass(frozen=True)
class MATERConfig:
    d: int = 512
    layers: int = 6
    heads: int = 8
    ffn: int = 2048
    dropout: float = 0.1
    positions: bool = True
    attention: bool = True
    hidden: int = 128


def vaswani_pe(t: int, d: int) -> Tensor:
    pos = torch.arange(t, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(t, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


class _FFNLayer(nn.Module):
    """An encoder layer without self-attention (ablation)."""

    def __init__(self, d: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.ff = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor, src_key_padding_mask: Tensor | None = None) -> Tensor:
        return self.norm(x + self.ff(x))


class Branch(nn.Module):
    def __init__(self, d_in: int, n_out: int, cfg: MATERConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(d_in, cfg.d) if d_in != cfg.d else nn.Identity()
        if cfg.attention:
            self.layers = nn.ModuleList(nn.TransformerEncoderLayer(cfg.d, cfg.heads, cfg.ffn, cfg.dropout,
                                                                   batch_first=True) for _ in range(cfg.layers))
        else:
            self.layers = nn.ModuleList(_FFNLayer(cfg.d, cfg.ffn, cfg.dropout) for _ in range(cfg.layers))
        self.head = nn.Sequential(nn.Linear(cfg.d, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, n_out))

    def pooled(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.inp(nn.functional.normalize(x, dim=-1))
        if self.cfg.positions:
            h = h + vaswani_pe(h.shape[1], h.shape[2]).to(h)
        pad = ~mask
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=pad)
        m = mask.float()[..., None]
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.head(self.pooled(x, mask))


class MATER(Model):
    fusion_rule = "mean of the two branches' linear outputs (Eq. 3)"
    def __init__(self, audio_dim: int, visual_dim: int, n_out: int, cfg: MATERConfig = MATERConfig()) -> None:
        super().__init__()
        self.audio, self.visual = Branch(audio_dim, n_out, cfg), Branch(visual_dim, n_out, cfg)

    def branches(self, audio: Tensor, visual: Tensor, mask_a: Tensor, mask_v: Tensor) -> dict[str, Tensor]:
        return {"audio": self.audio(audio, mask_a), "visual": self.visual(visual, mask_v)}

    def fused(self, audio: Tensor, visual: Tensor, mask_a: Tensor, mask_v: Tensor) -> Tensor:
        return torch.cat([self.audio.pooled(audio, mask_a), self.visual.pooled(visual, mask_v)], 1)

    def forward(self, audio: Tensor, visual: Tensor, mask_a: Tensor, mask_v: Tensor) -> Tensor:
        a, v = self.branches(audio, visual, mask_a, mask_v).values()
        return (a + v) / 2  # the paper's Eq. 3: the mean of the branches' linear outputs, then softmax / CE
