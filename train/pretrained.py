"""Which tensors of a pretraining checkpoint a fine-tuning run may load — or why it may not load any.

A checkpoint of another size or of other features used to load "2 of 242 tensors" (exit 0, a meaningless
"pretrained" row) or to fail deep inside with "operands could not be broadcast". Both are refused here, in
one line naming what differs, before any training."""

from __future__ import annotations

from typing import Any

import torch

from train.config import TrainConfig

# what must match between pretraining and fine-tuning (the model's shape and what feeds it)
MATCH = ("model", "size", "audio", "visual")  # options that change shapes show as shape clashes


def compatible_state(saved: dict[str, Any], model: torch.nn.Module, cfg: TrainConfig, dims: dict[str, int],
                     path: str) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors the model shares (same name and shape); a ValueError when they cannot be its."""
    meta = saved.get("config") or {}
    ours = cfg.to_dict()
    differ = [f"{k} {meta[k]!r} there, {ours[k]!r} here" for k in MATCH if k in meta and meta[k] != ours[k]]
    if meta.get("dims") and dict(meta["dims"]) != dict(dims):
        differ.append(f"feature dimensions {dict(meta['dims'])} there, {dict(dims)} here")
    own = model.state_dict()
    state = saved.get("model", {})
    clash = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if clash and not differ:
        differ.append(f"{len(clash)} tensors of other shapes (e.g. {clash[0]}: {tuple(state[clash[0]].shape)} "
                      f"there, {tuple(own[clash[0]].shape)} here)")
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not differ and len(usable) < len(state) // 2:
        differ.append(f"only {len(usable)} of its {len(state)} tensors belong to this {cfg.model}")
    if differ:
        raise ValueError(f"cannot fine-tune from {path}: it was pretrained with other settings ({'; '.join(differ)}); "
                         "pretrain again with this run's size and features, or fine-tune with the pretraining's")
    return usable
