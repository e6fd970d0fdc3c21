"""One optimisation step, shared by training and masked-frame pretraining, so both clip and schedule alike."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch


def optimise(model: torch.nn.Module, opt: torch.optim.Optimizer, sched: object, loss_of: Callable[[], torch.Tensor],
             grad_clip: float, autocast_device: str | None = None) -> float:
    """Compute the loss (under bf16 autocast on ``autocast_device`` when given), back-propagate, clip the
    gradient norm at ``grad_clip``, step the optimiser and the per-step schedule; returns the loss."""
    amp = torch.autocast(autocast_device, dtype=torch.bfloat16) if autocast_device else contextlib.nullcontext()
    with amp:
        loss = loss_of()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    sched.step()
    return float(loss.detach())
