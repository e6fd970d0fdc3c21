"""ResNet-18 on log-mel spectrograms (JMT's audio backbone), from the user's checkpoint.

As in the JMT authors' code: torchvision ``resnet18`` with a 1-channel first convolution and the classifier
removed -> the 512-d pooled feature, one per ``window_s`` (1 s) of audio, every ``hop_s``. The spectrogram
is the 16 kHz equivalent of theirs: 64 mel bands, 20 ms window, 10 ms hop, power -> dB, normalised with
their mean -14.8 / std 19.895. The checkpoint is a state dict of that network (``pipeline models add``)."""

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
    import torch

WEIGHTS = register_weights(Weights(
    name="RESNET18_SPECTROGRAM_JMT", files=("resnet18_spectrogram.pth",), source="your JMT audio checkpoint",
    kind="manual", licence="the checkpoint's own",
    preprocessing={"n_mels": 64, "win_ms": 20, "hop_ms": 10, "db_mean": -14.8, "db_std": 19.895},
    meta={"how": "train JMT's audio backbone (or convert the authors' checkpoint to a state dict of "
                 "torchvision resnet18 with a 1-channel conv1 and fc removed), then "
                 "`pipeline models add RESNET18_SPECTROGRAM_JMT FILE`"},
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
        p = WEIGHTS.preprocessing
        power = stft.magnitude(x, 320, 160, 512) ** 2 @ stft.mel_filterbank(16000, 512, 64, 0.0, 8000.0)
        db = 10 * np.log10(np.maximum(power, 1e-10))
        return ((db - p["db_mean"]) / p["db_std"]).astype(np.float32)

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
