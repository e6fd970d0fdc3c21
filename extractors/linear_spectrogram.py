"""Linear-frequency log spectrogram (16 kHz, 25 ms / 10 ms by default): the input of spectrogram CNNs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from extractors import stft
from extractors.base import AudioSegment, Extractor, Features, positive
from extractors.registry import register_extractor


@dataclass(frozen=True)
class LinearSpectrogramConfig:
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    power: float = 2.0
    log_offset: float = 1e-6

    def __post_init__(self) -> None:
        positive(self, "win_ms", "hop_ms", "n_fft", "power", "log_offset")


@register_extractor
class LinearSpectrogram(Extractor):
    name = "linear_spectrogram"
    version = "1"
    modality = "audio"
    input = "audio"
    Config = LinearSpectrogramConfig

    @property
    def feature_names(self) -> list[str]:
        sr, n_fft = 16000, self.config.n_fft
        return [f"bin_{round(k * sr / n_fft)}hz" for k in range(n_fft // 2 + 1)]

    @property
    def rate(self) -> float:
        return 1000.0 / self.config.hop_ms

    def compute(self, batch: Sequence[AudioSegment]) -> list[Features]:
        out = []
        c = self.config
        for seg in batch:
            win, hop = round(seg.sample_rate * c.win_ms / 1000), round(seg.sample_rate * c.hop_ms / 1000)
            if c.n_fft < win:
                raise ValueError(f"linear_spectrogram: n_fft {c.n_fft} is shorter than the {win}-sample window")
            values = np.log(stft.magnitude(seg.samples, win, hop, c.n_fft, c.power) + c.log_offset)
            start, end = stft.frame_times(len(values), win, hop, seg.sample_rate, seg.t0)
            out.append(Features(values, start, end))
        return out
