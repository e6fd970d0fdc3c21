"""Optimisers and learning-rate schedules the papers use, chosen by the training config.

Adam with BERT's linear warm-up/decay (MulT, Tran & Soleymani), SGD with momentum (JMT), and
reduce-on-plateau of the validation score (MATER). One ``Schedule`` object hides whether a schedule
steps per batch or per epoch, and its state goes into the full-state checkpoint."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from train.config import OPTIMIZERS, SCHEDULES


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS}")


def linear_warmup(opt: torch.optim.Optimizer, total: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` of the steps, then linear decay to 0 (BERT's warmup_linear)."""
    warm = max(1, int(warmup * total))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))


class Schedule:
    """``step()`` after every batch, ``epoch_end(score)`` after every validation (higher score = better)."""

    def __init__(self, name: str, opt: torch.optim.Optimizer, total_steps: int, warmup: float = 0.1,
                 patience: int = 5, factor: float = 0.1) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; choose from {SCHEDULES}")
        self.name = name
        self.inner: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        if name == "warmup_linear":
            self.inner = linear_warmup(opt, total_steps, warmup)
        elif name == "plateau":
            self.inner = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=factor,
                                                                    patience=patience)

    def step(self) -> None:
        if self.name == "warmup_linear":
            self.inner.step()

    def epoch_end(self, score: float) -> None:
        if self.name == "plateau" and score == score:  # NaN (no validation clips) leaves the rate alone
            self.inner.step(score)

    def state_dict(self) -> dict:
        return self.inner.state_dict() if self.inner is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.inner is not None:
            self.inner.load_state_dict(state)
