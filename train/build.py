"""Model factory and the one place that knows how each model takes a batch."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from train.config import TrainConfig
from train.data import Batch
from train.models.base import Model
from train.models.gru import EF_BASE, EFGRU, LF_BASE, LFGRU, PROBE, SMALL_GRU, GRUProbe
from train.models.jmt import JMT, JMTConfig
from train.models.mater import MATER, MATERConfig
from train.models.mult import BASE, LARGE, MulT, MulTConfig
from train.models.tfn import TFN, TFNConfig

SMALL_MULT = MulTConfig(d=32, heads=4, layers=2)
MODEL_CLASSES: dict[str, type[Model]] = {"mult": MulT, "tfn": TFN, "ef_gru": EFGRU, "lf_gru": LFGRU,
                                         "gru_probe": GRUProbe, "jmt": JMT, "mater": MATER}


def _cfg(base: Any, options: dict) -> Any:  # a frozen dataclass
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"{type(base).__name__} has no option(s) {unknown}; options: {sorted(fields)}")
    return dataclasses.replace(base, **options)


def model_config(cfg: TrainConfig) -> Any | None:  # the model's frozen config, or None (classical models)
    """The model's configuration with ``cfg.options`` applied: unknown options fail here, before any work."""
    o = cfg.options
    small = cfg.size == "small"  # CPU smoke runs and demos: the GRU baselines shrink with MulT
    bases = {"mult": {"base": BASE, "large": LARGE, "small": SMALL_MULT}.get(cfg.size, BASE), "tfn": TFNConfig(),
             "ef_gru": SMALL_GRU if small else EF_BASE, "lf_gru": SMALL_GRU if small else LF_BASE,
             "gru_probe": dataclasses.replace(PROBE, hidden=SMALL_GRU.hidden) if small else PROBE,
             "jmt": JMTConfig(), "mater": MATERConfig()}
    if cfg.model not in bases:
        if o:
            raise ValueError(f"{cfg.model} takes no model options, got {sorted(o)}")
        return None
    return _cfg(bases[cfg.model], o)


def build(cfg: TrainConfig, dims: dict[str, int], n_out: int) -> nn.Module:
    a, v, mc = dims.get("audio", 0), dims.get("visual", 0), model_config(cfg)
    if cfg.model == "mult":
        return MulT(a, v, mc, n_out=n_out)
    if cfg.model == "tfn":
        return TFN(a, v, n_out, mc)
    if cfg.model == "ef_gru":
        return EFGRU(a, v, n_out, mc)
    if cfg.model == "lf_gru":
        return LFGRU(a, v, n_out, mc)
    if cfg.model == "gru_probe":
        return GRUProbe(dims[cfg.only or "audio"], n_out, mc)
    if cfg.model == "jmt":
        return JMT(a, v, dataclasses.replace(mc, targets=n_out))
    if cfg.model == "mater":
        return MATER(a, v, n_out, mc)
    raise ValueError(f"{cfg.model} is not a neural model")


def _pool(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    w = m.float()[..., None]
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


def branches(model: nn.Module, b: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    """The model's per-modality outputs on a batch (``Model.branches``; empty for most models)."""
    if not isinstance(model, Model) or "audio" not in b.x or "visual" not in b.x:
        return {}
    return model.branches(b.x["audio"].to(device), b.x["visual"].to(device), b.mask["audio"].to(device),
                          b.mask["visual"].to(device))


def forward(model: nn.Module, cfg: TrainConfig, b: Batch, device: torch.device,
            fused: bool = False) -> torch.Tensor:
    """Predictions [B, n_out] (clip level) or [B, T, n_out] (frame level); ``fused`` gives the
    fused representation instead (for the PCA plot)."""
    xa, xv = b.x.get("audio"), b.x.get("visual")
    ma, mv = b.mask.get("audio"), b.mask.get("visual")
    xa, xv, ma, mv = (t.to(device) if t is not None else None for t in (xa, xv, ma, mv))
    if cfg.model == "mult":
        h = model(xa, xv)
        joint = ma | mv
        return model.fused(h, joint) if fused else model.classify(h, joint)
    if cfg.model == "tfn":
        pa, pv = _pool(xa, ma), _pool(xv, mv)
        return model.fused(pa, pv) if fused else model(pa, pv)
    if cfg.model == "gru_probe":
        only = cfg.only or "audio"
        x, m = b.x[only].to(device), b.mask[only].to(device)
        return model.rnn(x, m) if fused else model(x, m)
    if fused:
        out = model.fused(xa, xv, ma, mv)
        return out.mean(1) if out.dim() == 3 else out
    return model(xa, xv, ma, mv)
