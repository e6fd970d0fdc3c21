"""Independent reference computations the extractors are checked against (not the product's code)."""

from __future__ import annotations

import numpy as np
from scipy.signal import get_window


def reference_logmel(x, sr=16000, win=400, hop=160, n_fft=512, n_mels=64, fmin=125.0, fmax=7500.0, power=2,
                      offset=1e-6):
    """Independent computation: explicit loops, scipy's periodic Hann, HTK mel triangles in Hz."""
    window = get_window("hann", win, fftbins=True)
    n = 1 + (len(x) - win) // hop
    spec = np.array([np.abs(np.fft.rfft(x[i * hop : i * hop + win] * window, n_fft)) ** power for i in range(n)])
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft

    def mel(f):
        return 1127.0 * np.log(1 + f / 700.0)

    edges = np.linspace(mel(fmin), mel(fmax), n_mels + 2)
    fb = np.zeros((len(freqs), n_mels))
    for m in range(n_mels):
        for k, f in enumerate(freqs[1:], start=1):
            v = mel(f)
            if edges[m] < v <= edges[m + 1]:
                fb[k, m] = (v - edges[m]) / (edges[m + 1] - edges[m])
            elif edges[m + 1] < v < edges[m + 2]:
                fb[k, m] = (edges[m + 2] - v) / (edges[m + 2] - edges[m + 1])
    return np.log(spec @ fb + offset)
