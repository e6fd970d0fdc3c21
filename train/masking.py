"""Masked-frame pretraining masks (Tran & Soleymani): spans of 3 frames covering 15 % of the valid
frames; of the selected frames 80 % are zeroed, 10 % replaced by a random frame, 10 % kept. Audio and
video share the positions. Training draws masks dynamically; validation uses static masks, fixed per
sample index, identical in every epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ZERO, RANDOM, KEEP = 1, 2, 3


@dataclass(frozen=True)
class MaskConfig:
    rate: float = 0.15
    span: int = 3
    p_zero: float = 0.8
    p_random: float = 0.1


def draw(valid: np.ndarray, cfg: MaskConfig, rng: np.random.Generator) -> np.ndarray:
    """[B, T] int8: 0 = not selected, else ZERO / RANDOM / KEEP. Spans never overlap or cross padding."""
    out = np.zeros(valid.shape, np.int8)
    for b, row in enumerate(valid):
        n = int(row.sum())
        expected = cfg.rate * n / cfg.span
        k = int(expected) + int(rng.random() < expected - int(expected))  # exact rate in expectation
        k = min(k, n // cfg.span)
        if k == 0:
            continue
        free = n - cfg.span * k  # stars and bars: uniform non-overlapping span positions
        offsets = np.sort(rng.choice(free + k, size=k, replace=False))
        starts = offsets - np.arange(k) + np.arange(k) * cfg.span
        positions = np.flatnonzero(row)
        for s in starts:
            idx = positions[s : s + cfg.span]
            u = rng.random(len(idx))
            out[b, idx] = np.where(u < cfg.p_zero, ZERO, np.where(u < cfg.p_zero + cfg.p_random, RANDOM, KEEP))
    return out


def static(valid: np.ndarray, index: np.ndarray, cfg: MaskConfig, seed: int) -> np.ndarray:
    """Validation masks: a function of (seed, sample index) only, hence the same in every epoch."""
    return np.concatenate([draw(valid[i : i + 1], cfg, np.random.default_rng([seed, int(j)]))
                           for i, j in enumerate(index)]) if len(index) else np.zeros(valid.shape, np.int8)


def apply(xs: list[torch.Tensor], marks: torch.Tensor, valid: torch.Tensor,
          rng: np.random.Generator) -> list[torch.Tensor]:
    """Corrupt each modality's x [B, T, D] where marked, with the same positions in every modality.

    RANDOM frames of sample b all become one valid frame of one other sample of the batch (Tran &
    Soleymani's released code: one random frame of one random other utterance per sample), and the
    audio and the video take that frame from the same sample and time, so a replaced position stays
    an audio-visual pair. A batch of one sample takes another valid frame of itself."""
    outs = [x.clone() for x in xs]
    for out in outs:
        out[marks == ZERO] = 0.0
    bsz = marks.shape[0]
    ok = valid.numpy() if isinstance(valid, torch.Tensor) else np.asarray(valid)
    for b in np.flatnonzero((marks == RANDOM).any(1).numpy()):
        others = [o for o in range(bsz) if o != b and ok[o].any()] or [b]
        src_b = others[int(rng.integers(len(others)))]
        frames = np.flatnonzero(ok[src_b])
        src_t = int(frames[int(rng.integers(len(frames)))])
        where = marks[b] == RANDOM
        for x, out in zip(xs, outs):
            out[b, where] = x[src_b, src_t]
    return outs


def nearest_frame(x: np.ndarray, marks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The baseline pretraining has to beat: every selected frame of x [B, T, D] replaced by the nearest
    (in time; the earlier on a tie) valid frame that was not selected. A model that only interpolates
    its neighbours scores this; beating it means the model uses context and the other modality."""
    out = x.copy()
    for b in range(x.shape[0]):
        sel = np.flatnonzero(marks[b] > 0)
        known = np.flatnonzero(valid[b] & (marks[b] == 0))
        if not len(sel) or not len(known):
            continue
        right = np.clip(np.searchsorted(known, sel), 0, len(known) - 1)
        left = np.clip(right - 1, 0, len(known) - 1)
        nearest = np.where(np.abs(known[left] - sel) <= np.abs(known[right] - sel), known[left], known[right])
        out[b, sel] = x[b, nearest]
    return out
