"""Framing, STFT and mel filterbank shared by the spectral extractors.

Frame convention (no centring, like Kaldi and VGGish): frame ``i`` covers samples
``[i*hop, i*hop + win)``; its start time is ``t0 + i*hop/sr`` and its end ``start + win/sr``. A clip
shorter than one window is zero-padded to one frame; a trailing partial window is dropped.
"""

from __future__ import annotations

import numpy as np


def frame_count(n_samples: int, win: int, hop: int) -> int:
    return 1 if n_samples <= win else 1 + (n_samples - win) // hop


def frames(samples: np.ndarray, win: int, hop: int) -> np.ndarray:
    """[T, win] strided view of the signal (a copy only when padding is needed)."""
    x = np.asarray(samples, dtype=np.float32)
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    n = frame_count(len(x), win, hop)
    return np.lib.stride_tricks.as_strided(x, (n, win), (x.strides[0] * hop, x.strides[0]), writeable=False)


def periodic_hann(win: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)).astype(np.float32)


def magnitude(samples: np.ndarray, win: int, hop: int, n_fft: int, power: float = 1.0,
              project: np.ndarray | None = None, block: int = 4096) -> np.ndarray:
    """|STFT| ** power as [T, n_fft//2 + 1] (periodic Hann window), then ``@ project`` if given.

    Computed ``block`` frames at a time: the complex spectrum of a 10-minute clip is never held whole
    (it took a worker ~500 MB), and every row is the same as computed at once."""
    f = frames(samples, win, hop)
    hann = periodic_hann(win)
    out = np.empty((len(f), n_fft // 2 + 1 if project is None else project.shape[1]), np.float32)
    for lo in range(0, len(f), block):
        mag = np.abs(np.fft.rfft(f[lo:lo + block] * hann, n=n_fft, axis=1)).astype(np.float32)
        if power != 1.0:
            mag **= power
        out[lo:lo + block] = mag if project is None else mag @ project
    return out


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale (the one VGGish and TRILL use)."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """[n_fft//2 + 1, n_mels] triangular filters, equally spaced on the HTK mel scale."""
    if not 0 <= fmin < fmax <= sr / 2:
        raise ValueError(f"mel band edges must satisfy 0 <= fmin < fmax <= {sr / 2}; got {fmin}, {fmax}")
    bins_mel = hz_to_mel(np.linspace(0, sr / 2, n_fft // 2 + 1))
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    up = (bins_mel[:, None] - lower) / (center - lower)
    down = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(up, down))
    weights[0, :] = 0.0  # the DC bin carries no band energy (as in VGGish's mel_features)
    return weights.astype(np.float32)


def frame_times(n_frames: int, win: int, hop: int, sr: int, t0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    start = t0 + np.arange(n_frames) * hop / sr
    return start, start + win / sr
