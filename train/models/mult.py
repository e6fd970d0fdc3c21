"""Two-modality MulT as adapted by Tran & Soleymani, with masked-frame pretraining heads.

Facts (../shared/reference/models.md sections 1-3): bias-free kernel-1 Conv1d projections; cross-modal
encoders A->V (query visual, key/value audio) and V->A in which *every* layer attends to the low-level
(embedded) source sequence; pre-LN layers whose query, key and value share one LayerNorm; FFN = 4 x
width; scaled tensor2tensor sinusoidal positions that skip all-zero frames; a final LayerNorm per
encoder; a self-attention encoder over the concatenation (visual-query stream first); residual
reconstruction heads for audio and visual, and the fine-tuning residual block. BASE (288, 12 heads,
6 layers) has 38,375,665 parameters and LARGE (384, 12, 8) 89,250,961 with 512-d audio and 17-d AUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.models.base import Model


@dataclass(frozen=True)
class MulTConfig:
    d: int = 288  # per modality; the self-attention encoder runs at 2d
    heads: int = 12
    layers: int = 6
    attn_dropout: float = 0.1  # self-attention encoder
    attn_dropout_cross: float = 0.0
    relu_dropout: float = 0.1
    res_dropout: float = 0.1
    embed_dropout: float = 0.25
    out_dropout: float = 0.0
    causal: bool = True  # the authors' code masks the future (attn_mask=True)


BASE = MulTConfig()
LARGE = MulTConfig(d=384, heads=12, layers=8)


def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """tensor2tensor variant: [sin block | cos block]; position 0 (padding) gets a zero vector."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / max(1, half - 1)))
    angles = positions.float()[..., None] * freq
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb * (positions != 0).float()[..., None]


def _positions(x: torch.Tensor) -> torch.Tensor:
    """[T, B] positions t+1, or 0 where the frame's first channel is exactly 0 (padding, zeroed frames)."""
    t = torch.arange(1, x.shape[0] + 1, device=x.device)[:, None].expand(x.shape[0], x.shape[1])
    return torch.where(x[:, :, 0] == 0, torch.zeros_like(t), t)


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=attn_dropout)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.ln0, self.ln1 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.relu_dropout, self.res_dropout = relu_dropout, res_dropout
        for lin in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        residual = x
        x = self.ln0(x)
        if kv is None:
            x, _ = self.attn(x, x, x, attn_mask=mask, need_weights=False)
        else:
            k = self.ln0(kv[0])
            v = self.ln0(kv[1])
            x, _ = self.attn(x, k, v, attn_mask=mask, need_weights=False)
        x = residual + F.dropout(x, self.res_dropout, self.training)
        residual = x
        x = F.dropout(F.relu(self.fc1(self.ln1(x))), self.relu_dropout, self.training)
        return residual + F.dropout(self.fc2(x), self.res_dropout, self.training)


class Encoder(nn.Module):
    """Self-attention (``source=None``) or cross-modal encoder; inputs time-first [T, B, d]."""

    def __init__(self, d: int, heads: int, layers: int, attn_dropout: float, cfg: MulTConfig) -> None:
        super().__init__()
        self.d, self.cfg = d, cfg
        self.layers = nn.ModuleList(EncoderLayer(d, heads, attn_dropout, cfg.relu_dropout, cfg.res_dropout)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = math.sqrt(self.d) * x + sinusoidal(_positions(x), self.d).to(x.dtype)
        return F.dropout(x, self.cfg.embed_dropout, self.training)

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        mask = None
        if self.cfg.causal:
            tq, tk = x.shape[0], (source if source is not None else x).shape[0]
            mask = torch.triu(torch.full((tq, tk), float("-inf"), device=x.device), 1 + abs(tk - tq))
        h = self._embed(x)
        kv = (self._embed(source), self._embed(source)) if source is not None else None  # K, V: own dropout
        for layer in self.layers:
            h = layer(h, kv, mask)  # every layer attends to the same low-level source
        return self.norm(h)


class MulT(Model):
    """Outputs ``h`` [B, T, 2d]; ``reconstruct`` gives the pretraining outputs, ``classify`` the head."""
    fusion_rule = 'cross-modal transformers A->V, V->A, then self-attention; last states concatenated'

    def __init__(self, audio_dim: int, visual_dim: int, cfg: MulTConfig = BASE, n_out: int = 0) -> None:
        super().__init__()
        d, D = cfg.d, 2 * cfg.d
        self.cfg = cfg
        self.proj_a = nn.Conv1d(audio_dim, d, 1, bias=False)
        self.proj_v = nn.Conv1d(visual_dim, d, 1, bias=False)
        self.v_with_a = Encoder(d, cfg.heads, cfg.layers, cfg.attn_dropout_cross, cfg)  # A -> V
        self.a_with_v = Encoder(d, cfg.heads, cfg.layers, cfg.attn_dropout_cross, cfg)  # V -> A
        self.mem = Encoder(D, cfg.heads, cfg.layers, cfg.attn_dropout, cfg)
        self.proj1, self.proj2 = nn.Linear(D, D), nn.Linear(D, D)  # fine-tuning residual block
        self.proj1_a, self.proj2_a, self.out_a = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, audio_dim)
        self.proj1_v, self.proj2_v, self.out_v = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, visual_dim)
        self.head = nn.Linear(D, n_out) if n_out else None

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        a = self.proj_a(audio.transpose(1, 2)).permute(2, 0, 1)  # [T, B, d]
        v = self.proj_v(visual.transpose(1, 2)).permute(2, 0, 1)
        h = torch.cat([self.v_with_a(v, a), self.a_with_v(a, v)], dim=2)
        return self.mem(h).transpose(0, 1)  # [B, T, 2d]

    def reconstruct(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ra = self.out_a(self.proj2_a(F.relu(self.proj1_a(h))) + h)
        rv = self.out_v(self.proj2_v(F.relu(self.proj1_v(h))) + h)
        return ra, rv

    def classify(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last valid time step -> residual block -> linear head."""
        last = (mask.long().sum(1) - 1).clamp_min(0)
        z = h[torch.arange(h.shape[0]), last]
        z = self.proj2(F.dropout(F.relu(self.proj1(z)), self.cfg.out_dropout, self.training)) + z
        return self.head(z)

    def fused(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        last = (mask.long().sum(1) - 1).clamp_min(0)
        return h[torch.arange(h.shape[0]), last]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
