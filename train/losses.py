"""Losses: cross-entropy, 1 - CCC (population moments, as Lin defines it), L1, MSE; masks respected."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """1 - CCC per target dimension (last axis), summed over targets; frames with mask False ignored."""
    pred = pred.reshape(-1, pred.shape[-1]) if pred.dim() > 1 else pred[:, None]
    target = target.reshape(-1, target.shape[-1]) if target.dim() > 1 else target[:, None]
    if mask is not None:
        keep = mask.reshape(-1)
        pred, target = pred[keep], target[keep]
    px, ty = pred - pred.mean(0), target - target.mean(0)
    cov = (px * ty).mean(0)
    den = px.pow(2).mean(0) + ty.pow(2).mean(0) + (pred.mean(0) - target.mean(0)).pow(2)
    return (1 - 2 * cov / den.clamp_min(1e-8)).sum()


def loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:  # (pred, target, mask)
    if name == "ce":
        return lambda p, t, m=None: F.cross_entropy(p, t)
    if name == "ccc":
        return ccc_loss
    if name in ("l1", "mse"):
        base = F.l1_loss if name == "l1" else F.mse_loss

        def masked(p: torch.Tensor, t: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
            if m is None:
                return base(p.reshape(t.shape), t)
            return base(p[m], t[m])

        return masked
    raise ValueError(f"unknown loss {name!r}; choose ce, ccc, l1 or mse")
