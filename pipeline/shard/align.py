"""Alignment of native-rate streams to one common rate (CMU-MultimodalSDK-style average collapse).

Window ``k`` of a clip covers clip time ``[k/rate, (k+1)/rate)``; a clip of duration ``d`` has
``ceil(d * rate)`` windows. A native frame with interval ``[start, end)`` contributes to every window
it overlaps (a zero-length frame to the window containing ``start``). The aligned value of a window
is the unweighted mean of the *valid* native frames contributing to it; a window with none is
invalid (mask False, values 0). ``method="subsample"`` instead takes one native frame per window (the
valid frame covering the window's start, else the first valid one starting inside it), as Tran &
Soleymani subsample 30 Hz OpenFace output to 5 Hz. Optional seed filters, recorded in the view's attributes: frames
with confidence below ``min_confidence`` are invalid; a clip whose audio and video durations differ
by more than ``max_duration_gap`` seconds is excluded with its reason in the index.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from extractors.base import Features
from extractors.features import block_rows, blocks, take
from stores.views import DEFAULT_RATE, view_name

_EPS = 1e-9


@dataclass(frozen=True)
class AlignConfig:
    rate: float = DEFAULT_RATE
    min_confidence: float | None = None
    max_duration_gap: float | None = 1.0
    method: str = "mean"  # mean (average collapse) | subsample (one native frame per window)

    def __post_init__(self) -> None:
        if self.method not in ("mean", "subsample"):
            raise ValueError(f"alignment method must be mean or subsample, not {self.method!r}")
        if not self.rate > 0:
            raise ValueError(f"alignment rate must be > 0 Hz, got {self.rate}")
        if self.max_duration_gap is not None and self.max_duration_gap < 0:
            raise ValueError("max_duration_gap must be >= 0 seconds (or None to disable)")

    @property
    def view(self) -> str:
        return view_name(self.rate)

    def key_fields(self) -> dict:
        """What the aligned cache key and the view's attributes record; the default method is left out so
        stores aligned before the option existed keep their keys."""
        d = dataclasses.asdict(self)
        if d["method"] == "mean":
            del d["method"]
        return d


def aligned_length(duration: float, rate: float) -> int:
    return max(0, math.ceil(duration * rate - 1e-6))


def clip_duration(audio_duration: float, video_duration: float) -> float:
    known = [d for d in (audio_duration, video_duration) if d is not None and np.isfinite(d)]
    return max(known) if known else 0.0


def exclusion_reason(audio_duration: float, video_duration: float, cfg: AlignConfig) -> str | None:
    """Why a clip is excluded from the aligned view, or None."""
    if cfg.max_duration_gap is None:
        return None
    if not (np.isfinite(audio_duration) and np.isfinite(video_duration)):
        return None
    gap = abs(audio_duration - video_duration)
    if gap > cfg.max_duration_gap:
        return (
            f"align: audio lasts {audio_duration:.2f}s but video {video_duration:.2f}s "
            f"(gap {gap:.2f}s > {cfg.max_duration_gap:g}s tolerance; raise --max-duration-gap to keep it)"
        )
    return None


def align(feat: Features, duration: float, cfg: AlignConfig) -> Features:
    """Average the valid native frames inside each target window (values in memory or spilled)."""
    r = cfg.rate
    n_windows = aligned_length(duration, r)
    dim = feat.values.shape[1]
    valid = feat.mask.copy()
    if cfg.min_confidence is not None and feat.confidence is not None:
        valid &= feat.confidence >= cfg.min_confidence
    frames = np.flatnonzero(valid)
    if cfg.method == "subsample":
        return _subsample(feat, frames, n_windows, r)
    k0 = np.floor(feat.start[frames] * r + _EPS).astype(np.int64)
    k1 = np.maximum(k0, np.ceil(feat.end[frames] * r - _EPS).astype(np.int64) - 1)
    counts = k1 - k0 + 1
    rows = np.repeat(k0, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    cols = np.repeat(frames, counts)
    keep = (rows >= 0) & (rows < n_windows)
    w = sparse.csc_matrix(
        (np.ones(int(keep.sum()), np.float64), (rows[keep], cols[keep])), shape=(n_windows, len(feat.values))
    )
    n = np.asarray(w.sum(axis=1)).reshape(-1)
    values = np.zeros((n_windows, dim), np.float32)
    # frame blocks, each summed in float64 over the windows it touches: no float64 copy of a long clip
    for lo, block in blocks(feat.values, block_rows(dim)):
        sub = w[:, lo:lo + len(block)]
        if sub.nnz:
            k0, k1 = int(sub.indices.min()), int(sub.indices.max()) + 1
            values[k0:k1] += (sub[k0:k1] @ block.astype(np.float64)).astype(np.float32)
    ok = n > 0
    values[ok] /= n[ok, None].astype(np.float32)
    start = np.arange(n_windows) / r
    return Features(values, start, start + 1 / r, ok)


def _subsample(feat: Features, frames: np.ndarray, n_windows: int, r: float) -> Features:
    frames = frames[np.argsort(feat.start[frames], kind="stable")]
    vs, ve = feat.start[frames], feat.end[frames]
    t = np.arange(n_windows) / r
    i = np.searchsorted(vs, t + _EPS, side="right") - 1  # last valid frame starting at or before t_k
    cover = (i >= 0) & (ve[np.maximum(i, 0)] > t + _EPS) if len(vs) else np.zeros(n_windows, bool)
    j = np.searchsorted(vs, t - _EPS, side="left")  # first valid frame starting at or after t_k
    inside = (j < len(vs)) & (vs[np.minimum(j, max(len(vs) - 1, 0))] < t + 1 / r - _EPS) if len(vs) else cover
    pick = np.where(cover, i, np.where(inside, j, -1))
    ok = pick >= 0
    values = np.zeros((n_windows, feat.values.shape[1]), np.float32)
    values[ok] = take(feat.values, frames[pick[ok]])
    return Features(values, t, t + 1 / r, ok)
