"""Joint Multimodal Transformer (Waligora et al.), frame-level valence/arousal.

L2-normalised audio and visual features; a joint stream J = Linear(cat(visual, audio)); three post-LN
encoders (visual, audio, joint; no positions, no dropout); six cross-attentions (each stream queries
the other two) -> concatenation (6 x d) -> Linear(6d, 1024) -> per-target heads 1024 -> 128 -> 1; CCC
loss. Where the paper and the authors' code differ (models.md section 5.2) both are options:
``attention="sigmoid"`` is the paper's Eq. 2, ``"softmax"`` the code; ``shared_cross=True`` is the
code's three weight sets keyed by query stream, False the paper's six."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.models.base import Model


@dataclass(frozen=True)
class JMTConfig:
    d: int = 512
    heads: int = 1
    layers: int = 1
    attention: str = "softmax"  # "softmax" (code) | "sigmoid" (paper)
    shared_cross: bool = True
    dropout: float = 0.0
    targets: int = 2


def attention_rule(cfg: JMTConfig) -> str:
    """Where which attention function applies, in words (a preset's paper spec compares it with Eq. 2)."""
    cross = "sigmoid scaled by 1/sqrt(d)" if cfg.attention == "sigmoid" else "scaled softmax"
    return f"encoders: scaled softmax; cross-attentions: {cross}"


class Cross(nn.Module):
    """Q from one stream, K/V from another; softmax or sigmoid attention weights."""

    def __init__(self, d: int, heads: int, attention: str) -> None:
        super().__init__()
        if attention not in ("softmax", "sigmoid"):
            raise ValueError(f"JMT attention must be softmax or sigmoid, not {attention!r}")
        self.mha, self.attention, self.heads = nn.MultiheadAttention(d, heads, batch_first=True), attention, heads

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        if self.attention == "softmax":
            return self.mha(q, kv, kv, need_weights=False)[0]
        d = q.shape[-1]
        w_q, w_k, w_v = self.mha.in_proj_weight.split(d)
        b_q, b_k, b_v = self.mha.in_proj_bias.split(d)
        qh, kh, vh = (F.linear(t, w, b).unflatten(-1, (self.heads, -1)).transpose(1, 2)
                      for t, w, b in ((q, w_q, b_q), (kv, w_k, b_k), (kv, w_v, b_v)))
        attn = torch.sigmoid(qh @ kh.transpose(-1, -2) / (qh.shape[-1] ** 0.5))
        return self.mha.out_proj((attn @ vh).transpose(1, 2).flatten(2))


class JMT(Model):
    fusion_rule = 'joint stream + six cross-attentions, concatenated -> FC 1024 -> FC 128 -> 1 per target'
    frame_level = True

    def __init__(self, audio_dim: int, visual_dim: int, cfg: JMTConfig = JMTConfig()) -> None:
        super().__init__()
        d = cfg.d
        self.in_a = nn.Linear(audio_dim, d) if audio_dim != d else nn.Identity()
        self.in_v = nn.Linear(visual_dim, d) if visual_dim != d else nn.Identity()
        self.joint = nn.Linear(2 * d, d)

        def encoder() -> nn.TransformerEncoder:
            layer = nn.TransformerEncoderLayer(d, cfg.heads, dim_feedforward=d, dropout=cfg.dropout,
                                               batch_first=True, norm_first=False)
            return nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)

        self.enc_v, self.enc_a, self.enc_j = encoder(), encoder(), encoder()
        n_cross = 3 if cfg.shared_cross else 6
        self.cross = nn.ModuleList(Cross(d, cfg.heads, cfg.attention) for _ in range(n_cross))
        self.shared = cfg.shared_cross
        self.fuse = nn.Linear(6 * d, 1024)
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(1024, 128), nn.ReLU(), nn.Dropout(cfg.dropout),
                                                 nn.Linear(128, 1)) for _ in range(cfg.targets))

    def fused(self, audio: torch.Tensor, visual: torch.Tensor, mask_a: torch.Tensor | None = None,
              mask_v: torch.Tensor | None = None) -> torch.Tensor:
        a = self.in_a(F.normalize(audio, dim=-1))
        v = self.in_v(F.normalize(visual, dim=-1))
        j = self.joint(torch.cat([v, a], -1))
        v, a, j = self.enc_v(v), self.enc_a(a), self.enc_j(j)
        pairs = [(v, a), (v, j), (a, v), (a, j), (j, v), (j, a)]  # query stream first
        outs = [self.cross[i // 2 if self.shared else i](q, kv) for i, (q, kv) in enumerate(pairs)]
        return self.fuse(torch.cat(outs, -1))

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, mask_a: torch.Tensor | None = None,
              mask_v: torch.Tensor | None = None) -> torch.Tensor:
        z = self.fused(audio, visual)
        return torch.cat([h(z) for h in self.heads], -1)  # [B, T, targets]
