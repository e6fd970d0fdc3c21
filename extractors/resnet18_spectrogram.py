"""ResNet-18 on log-mel spectrograms (JMT's audio backbone), from the user's checkpoint.

As in the JMT authors' code: torchvision ``resnet18`` with a 1-channel first convolution and the classifier
removed -> the 512-d pooled feature, one per ``window_s`` of audio, every ``hop_s``. The spectrogram: 64 mel
bands, ``win_ms`` window, ``hop_ms`` hop, ``n_fft`` DFT, power -> dB, normalised with their mean -14.8 / std
19.895. ``sample_rate=44100`` is the paper's front end (DFT 1024, 20 ms / 10 ms, 64 x 107 per 1.08 s): the
pipeline decodes audio once at 16 kHz, so it is upsampled with soxr first and the bands above 8 kHz hold
no energy (declared by the JMT presets). The checkpoint is a state dict of that network (``pipeline
models add``, or ``pipeline finetune``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from extractors import stft
from extractors.base import AudioSegment, Extractor, Features
from extractors.precision import PrecisionConfig
from extractors.registry import register_extractor
from extractors.weights import Weights, register_weights

if TYPE_CHECKING:
    from pathlib import Path

    import torch

WEIGHTS = register_weights(Weights(
    name="RESNET18_SPECTROGRAM_JMT", files=("resnet18_spectrogram.pth",), source="your JMT audio checkpoint",
    kind="manual", licence="the checkpoint's own",
    preprocessing={"n_mels": 64, "win_ms": 20, "hop_ms": 10, "db_mean": -14.8, "db_std": 19.895},
    meta={"dataset": "none published", "how": "fine-tune it on your corpus with `pipeline finetune "
          "resnet18_spectrogram --dataset aff-wild2 --root ... --name NAME` and run with --set "
          "resnet18_spectrogram.weights=NAME (or convert the authors' checkpoint to a state dict of torchvision "
          "resnet18 with a 1-channel conv1 and fc removed and `pipeline models add RESNET18_SPECTROGRAM_JMT FILE`)"},
))


def resnet18_1ch() -> torch.nn.Module:
    import torch
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    net.fc = torch.nn.Identity()
    return net


@dataclass(frozen=True)
class ResNet18SpecConfig(PrecisionConfig):
    weights: str = WEIGHTS.name
    window_s: float = 1.0
    hop_s: float = 1.0
    batch_windows: int = 64
    sample_rate: int = 16000  # 16000 (as decoded) or 44100 (JMT's paper: upsampled from the 16 kHz decode)
    n_fft: int = 512
    win_ms: float = 20.0
    hop_ms: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sample_rate not in (16000, 44100, 48000, 22050):
            raise ValueError(f"sample_rate must be 16000, 22050, 44100 or 48000, not {self.sample_rate}")
        if round(self.win_ms * self.sample_rate / 1000) > self.n_fft:
            raise ValueError(f"win_ms {self.win_ms} at {self.sample_rate} Hz is longer than n_fft {self.n_fft}")


@register_extractor
class ResNet18Spectrogram(Extractor):
    name = "resnet18_spectrogram"
    version = "1"
    modality = "audio"
    input = "audio"
    Config = ResNet18SpecConfig
    wants_gpu = True
    weights_name = WEIGHTS.name

    @property
    def feature_names(self) -> list[str]:
        return [f"rn18spec_{i:03d}" for i in range(512)]

    @property
    def rate(self) -> float:
        return 1.0 / self.config.hop_s

    def setup(self, device: str = "cpu") -> None:
        from extractors.torch_util import device_of, load_state

        self.device = device_of(device)
        self.model = load_state(self.weights_path() / WEIGHTS.files[0], resnet18_1ch()).eval().to(self.device)

    def spectrogram(self, x: np.ndarray) -> np.ndarray:
        """[frames, 64] of one window of 16 kHz samples, at the configured rate."""
        p, c = WEIGHTS.preprocessing, self.config
        sr = c.sample_rate
        if sr != 16000:
            import soxr

            x = soxr.resample(x.astype(np.float32), 16000, sr, quality="HQ")
        win, hop = round(c.win_ms * sr / 1000), round(c.hop_ms * sr / 1000)
        power = stft.magnitude(x, win, hop, c.n_fft) ** 2 @ stft.mel_filterbank(sr, c.n_fft, 64, 0.0, sr / 2)
        db = 10 * np.log10(np.maximum(power, 1e-10))
        return ((db - p["db_mean"]) / p["db_std"]).astype(np.float32)

    # -- fine-tuning (pipeline finetune) --------------------------------------------------------------
    def train_units(self, seg: AudioSegment) -> list[tuple[np.ndarray, tuple[float, float]]]:
        """One spectrogram per window, as ``compute`` cuts them, with its time span."""
        win, hop = round(self.config.window_s * 16000), round(self.config.hop_s * 16000)
        x = seg.samples if len(seg.samples) >= win else np.pad(seg.samples, (0, win - len(seg.samples)))
        return [(self.spectrogram(x[s : s + win]).T, (seg.t0 + s / 16000, seg.t0 + (s + win) / 16000))
                for s in range(0, len(x) - win + 1, hop)]

    def trainable(self) -> torch.nn.Module:
        return self.model

    def embed(self, units: list[np.ndarray]) -> torch.Tensor:
        import torch

        return self.model(torch.from_numpy(np.stack(units))[:, None].to(self.device))

    def save_weights(self, folder: Path) -> None:
        import torch

        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, folder / WEIGHTS.files[0])

    def compute(self, batch: Sequence[AudioSegment]) -> list[Features]:
        import torch

        from extractors.torch_util import inference

        self.ensure_setup()
        win, hop = round(self.config.window_s * 16000), round(self.config.hop_s * 16000)
        windows, spans = [], []
        for seg in batch:
            x = seg.samples if len(seg.samples) >= win else np.pad(seg.samples, (0, win - len(seg.samples)))
            starts = list(range(0, len(x) - win + 1, hop))
            spans.append(starts)
            windows += [self.spectrogram(x[s : s + win]).T for s in starts]  # [64 mels, frames]
        outs = []
        with inference(self.device, self.config.precision):
            for i in range(0, len(windows), self.config.batch_windows):
                t = torch.from_numpy(np.stack(windows[i : i + self.config.batch_windows]))[:, None].to(self.device)
                outs.append(self.model(t).float().cpu().numpy())
        values = np.concatenate(outs) if outs else np.zeros((0, 512), np.float32)
        results, pos = [], 0
        for seg, starts in zip(batch, spans):
            st = seg.t0 + np.array(starts) / 16000
            results.append(Features(values[pos : pos + len(starts)], st, st + self.config.window_s))
            pos += len(starts)
        return results
