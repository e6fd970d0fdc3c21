"""Log-mel filterbank energies (16 kHz, 25 ms / 10 ms by default)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from extractors import stft
from extractors.base import AudioSegment, Extractor, Features, positive
from extractors.registry import register_extractor


@dataclass(frozen=True)
class LogMelConfig:
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_mels: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    power: float = 2.0  # 1.0 = magnitude, 2.0 = power
    log_offset: float = 1e-6

    def __post_init__(self) -> None:
        positive(self, "win_ms", "hop_ms", "n_mels", "power", "log_offset")
        if not 0 <= self.fmin < self.fmax:
            raise ValueError(f"fmin and fmax must satisfy 0 <= fmin < fmax (Hz), got {self.fmin}, {self.fmax}")


@register_extractor
class LogMel(Extractor):
    name = "logmel"
    version = "1"
    modality = "audio"
    input = "audio"
    Config = LogMelConfig

    @property
    def feature_names(self) -> list[str]:
        return [f"mel_{i:02d}" for i in range(self.config.n_mels)]

    @property
    def rate(self) -> float:
        return 1000.0 / self.config.hop_ms

    def compute(self, batch: Sequence[AudioSegment]) -> list[Features]:
        return [self._one(seg) for seg in batch]

    def _one(self, seg: AudioSegment) -> Features:
        c = self.config
        win, hop = round(seg.sample_rate * c.win_ms / 1000), round(seg.sample_rate * c.hop_ms / 1000)
        n_fft = 1 << (win - 1).bit_length()
        fb = stft.mel_filterbank(seg.sample_rate, n_fft, c.n_mels, c.fmin, c.fmax)
        values = np.log(stft.magnitude(seg.samples, win, hop, n_fft, c.power, fb) + c.log_offset)
        start, end = stft.frame_times(len(values), win, hop, seg.sample_rate, seg.t0)
        return Features(values, start, end)
