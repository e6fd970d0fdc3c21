"""`pipeline pretrain`: masked-frame pretraining of MulT on a store, no labels needed (Tran & Soleymani).

Every window of every clip is a sample; 10 % of the clips (seeded) validate with static masks, and the
same masks are scored for the nearest-frame baseline (copy the closest unmasked frame). Loss:
L1 on the selected frames (zeroed, replaced and kept alike), audio + visual summed. Adam with a linear
schedule and 10 % warm-up. Writes ``pretrained.pt`` (model state + normalisation), which
``pipeline train --pretrained`` fine-tunes from."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from train import masking
from train.build import build
from train.config import TrainConfig
from train.data import Batch, StoreData
from train.models.mult import MulT
from train.optim import linear_warmup
from train.step import optimise
from train.trainer import device_for, save_atomic, seed_everything


def _loss(model: MulT, b: Batch, marks: np.ndarray, rng: np.random.Generator, device: torch.device) -> torch.Tensor:
    m = torch.from_numpy(marks)
    xa, xv = b.x["audio"], b.x["visual"]
    ca, cv = masking.apply([xa, xv], m, b.mask["audio"] | b.mask["visual"], rng)
    ra, rv = model.reconstruct(model(ca.to(device), cv.to(device)))
    sel = (m > 0).to(device)
    if not sel.any():
        return torch.zeros((), device=device, requires_grad=True)
    return F.l1_loss(ra[sel], xa.to(device)[sel]) + F.l1_loss(rv[sel], xv.to(device)[sel])


def _nearest_l1(b: Batch, marks: np.ndarray) -> float:
    """The nearest-frame baseline's loss on a batch, computed exactly as ``_loss`` computes the model's."""
    sel = marks > 0
    if not sel.any():
        return 0.0
    valid = (b.mask["audio"] | b.mask["visual"]).numpy()
    total = 0.0
    for x in (b.x["audio"].numpy(), b.x["visual"].numpy()):
        total += float(np.abs(masking.nearest_frame(x, marks, valid)[sel] - x[sel]).mean())
    return total


def _mean(pairs: list[tuple[float, int]]) -> float:
    """Mean over batches weighted by their masked frames; NaN when nothing was masked (0.0 would read as perfect)."""
    total = sum(w for _, w in pairs)
    return float(sum(v * w for v, w in pairs) / total) if total else math.nan


def pretrain(cfg: TrainConfig, log: Callable[[str], None] = print) -> Path:
    seed_everything(cfg.seed)
    device = device_for(cfg.device)
    data = StoreData(cfg.store, {"audio": cfg.audio, "visual": cfg.visual}, cfg.view, label=None,
                     window=cfg.window, all_windows=True, select=cfg.select, max_frame_gap=cfg.max_frame_gap)
    out = Path(cfg.out)  # after the store opened: a run that cannot read it leaves no folder behind
    out.mkdir(parents=True, exist_ok=True)
    n = len(data.clips)
    perm = np.random.default_rng(cfg.seed).permutation(n)
    val_clips, train_clips = perm[: max(1, n // 10)], perm[max(1, n // 10) :]
    data.fit_norm(train_clips)
    train_s, val_s = data.samples_of(train_clips), data.samples_of(val_clips)
    model = build(TrainConfig(**{**cfg.to_dict(), "model": "mult"}), data.dims, 0).to(device)
    log(f"pretraining MulT ({sum(p.numel() for p in model.parameters()):,} parameters) on {len(train_s)} windows")
    total = max(1, math.ceil(len(train_s) / cfg.batch_size)) * cfg.epochs
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = linear_warmup(opt, total, cfg.warmup)
    mcfg, history = masking.MaskConfig(), []
    for epoch in range(cfg.epochs):
        model.train()
        rng = np.random.default_rng([cfg.seed, epoch, 1])
        order = data.epoch_order(train_s, rng)
        losses = []
        for i in range(0, len(order), cfg.batch_size):
            b = data.batch(order[i : i + cfg.batch_size])
            marks = masking.draw((b.mask["audio"] | b.mask["visual"]).numpy(), mcfg, rng)  # dynamic
            loss_of = lambda b=b, marks=marks, rng=rng: _loss(model, b, marks, rng, device)  # noqa: E731
            losses.append(optimise(model, opt, sched, loss_of, cfg.grad_clip))
        model.eval()
        with torch.no_grad():
            vl, nl = [], []
            for i in range(0, len(val_s), 256):
                idx = val_s[i : i + 256]
                b = data.batch(idx)
                marks = masking.static((b.mask["audio"] | b.mask["visual"]).numpy(), idx, mcfg, cfg.seed)
                if not (marks > 0).any():  # nothing masked in this batch: no loss to score (not a loss of 0)
                    continue
                weight = int((marks > 0).sum())
                vl.append((float(_loss(model, b, marks, np.random.default_rng([cfg.seed, 7]), device)), weight))
                nl.append((_nearest_l1(b, marks), weight))
        history.append({"epoch": epoch + 1, "train_l1": float(np.mean(losses)), "val_l1": _mean(vl),
                        "val_l1_nearest_frame": _mean(nl), "val_masked_frames": sum(w for _, w in vl)})
        h = history[-1]
        log(f"  epoch {epoch + 1}/{cfg.epochs} train L1 {h['train_l1']:.4f} " + (
            f"val L1 {h['val_l1']:.4f} (nearest-frame baseline {h['val_l1_nearest_frame']:.4f})"
            if h["val_masked_frames"] else "val L1 not measured: no validation frame was masked (windows "
            "shorter than the 3-frame spans, or no valid frames); use longer clips or more of them"))
    path = out / "pretrained.pt"
    meta = {**{k: cfg.to_dict()[k] for k in ("model", "size", "audio", "visual", "window", "options")},
            "model": "mult", "dims": dict(data.dims)}  # fine-tuning refuses a checkpoint of other settings
    save_atomic({"model": model.state_dict(), "norm": data.norm_state(), "config": meta}, path)
    (out / "pretrain.json").write_text(json.dumps({"config": cfg.to_dict(), "history": history}, indent=1,
                                                  default=str))
    return path
