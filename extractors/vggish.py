"""VGGish in PyTorch, loading the released AudioSet checkpoint (torchvggish's conversion).

Front end exactly as the TF release: 16 kHz, |STFT| with a 25 ms periodic Hann window and 10 ms hop
(FFT 512), 64 HTK mel bands 125-7500 Hz, log(mel + 0.01), examples of 96 frames (0.96 s). Outputs the
128-d embedding (pre-activation, as TF; optional PCA + 8-bit quantisation like the released AudioSet
features) or ``mode="conv"``: the 512-d last convolutional block, spatially averaged — the only VGGish
feature that exists for MATER's 0.25 s / 0.5 s windows (``window_s``/``hop_s``). In conv mode an example
holds only the STFT frames that lie inside its window (48 frames = 0.495 s for 0.5 s), so windows with
hop = window do not overlap and each aligns to exactly one window of the same rate, as in MATER; the
embedding keeps the release's 96 frames (0.975 s of audio per 0.96 s hop). A clip shorter than one
example is zero-padded to one.
"""

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
    name="VGGISH_AUDIOSET", files=("vggish-10086976.pth", "vggish_pca_params-970ea276.pth"),
    sha256={"vggish-10086976.pth": "10086976", "vggish_pca_params-970ea276.pth": "970ea276"},
    source="https://github.com/harritaylor/torchvggish/releases/download/v0.1/", kind="manual",
    licence="Apache-2.0 (tensorflow/models research/audioset)",
    preprocessing={"sample_rate": 16000, "win_ms": 25, "hop_ms": 10, "n_fft": 512, "n_mels": 64, "fmin": 125,
                   "fmax": 7500, "log_offset": 0.01, "example_frames": 96},
    meta={"how": "download vggish-10086976.pth and vggish_pca_params-970ea276.pth from the torchvggish v0.1 "
                 "release into one folder, then `pipeline models add VGGISH_AUDIOSET FOLDER`"},
))


def log_mel(x: np.ndarray, sr: int = 16000) -> np.ndarray:
    """[T, 64] VGGish log-mel frames (frame t covers [10 t, 10 t + 25) ms)."""
    spec = stft.magnitude(x, 400, 160, 512)
    return np.log(spec @ stft.mel_filterbank(sr, 512, 64, 125.0, 7500.0) + 0.01).astype(np.float32)


def vggish_net() -> torch.nn.Module:  # with torchvggish's parameter names
    from torch import nn

    class VGGish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            c = 1
            for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                    c = v
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                            nn.ReLU(True), nn.Linear(4096, 128), nn.ReLU(True))

        def forward(self, x: torch.Tensor, mode: str = "embedding") -> torch.Tensor:
            x = self.features(x)
            if mode == "conv":
                return x.mean(dim=(2, 3))
            x = x.permute(0, 2, 3, 1).flatten(1)  # TF's (H, W, C) order
            return self.embeddings[:5](x)  # the 128-d layer before its ReLU, as in TF

    return VGGish()


@dataclass(frozen=True)
class VGGishConfig(PrecisionConfig):
    weights: str = WEIGHTS.name
    mode: str = "embedding"  # embedding (128) | conv (512)
    window_s: float = 0.96
    hop_s: float = 0.96
    pca: bool = False
    batch_examples: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("embedding", "conv"):
            raise ValueError(f"vggish: mode must be embedding or conv, not {self.mode!r}")
        if self.mode == "embedding" and abs(self.window_s - 0.96) > 1e-6:
            raise ValueError("vggish: the 128-d embedding needs 0.96 s examples; use mode=conv for other windows")


@register_extractor
class VGGish(Extractor):
    name = "vggish"
    version = "1"
    modality = "audio"
    input = "audio"
    Config = VGGishConfig
    wants_gpu = True
    weights_name = WEIGHTS.name

    @property
    def feature_names(self) -> list[str]:
        n = 512 if self.config.mode == "conv" else 128
        return [f"vggish_{i:03d}" for i in range(n)]

    @property
    def rate(self) -> float:
        return 1.0 / self.config.hop_s

    def setup(self, device: str = "cpu") -> None:
        import torch

        from extractors.torch_util import device_of, load_state

        self.device = device_of(device)
        folder = self.weights_path()
        self.model = load_state(folder / WEIGHTS.files[0], vggish_net()).eval().to(self.device)
        if self.config.pca:
            p = torch.load(folder / WEIGHTS.files[1], map_location="cpu", weights_only=True)
            self.pca = (np.asarray(p["pca_eigen_vectors"], np.float32), np.asarray(p["pca_means"], np.float32))

    def describe(self) -> dict:
        out = super().describe()
        if self.config.mode == "conv":  # conv examples were 0.515 s for 0.5 s windows before: re-extract
            out["examples"] = "inside_window"
        return out

    @property
    def example_frames(self) -> int:
        """STFT frames (25 ms, 10 ms hop) per example: 96 for the embedding, those inside the window in conv."""
        if self.config.mode == "embedding":
            return 96
        return max(16, int((self.config.window_s - 0.025) / 0.01 + 1e-6) + 1)  # 16: the four 2x pools

    def examples(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, frames, 64] examples and their start times (s)."""
        c = self.config
        n_frames, hop = self.example_frames, max(1, round(c.hop_s * 100))
        need = (n_frames - 1) * 160 + 400
        mel = log_mel(np.pad(x, (0, max(0, need - len(x)))))
        starts = np.arange(0, len(mel) - n_frames + 1, hop)
        return np.stack([mel[s : s + n_frames] for s in starts]), starts / 100.0

    def compute(self, batch: Sequence[AudioSegment]) -> list[Features]:
        import torch

        from extractors.torch_util import inference

        self.ensure_setup()
        per = [self.examples(s.samples) for s in batch]
        flat = np.concatenate([e for e, _ in per])
        outs = []
        with inference(self.device, self.config.precision):
            for i in range(0, len(flat), self.config.batch_examples):
                x = torch.from_numpy(flat[i : i + self.config.batch_examples])[:, None].to(self.device)
                outs.append(self.model(x, self.config.mode).float().cpu().numpy())
        values = np.concatenate(outs)
        if self.config.pca and self.config.mode == "embedding":
            vecs, means = self.pca
            values = np.clip((values - means.reshape(1, -1)) @ vecs.T, -2.0, 2.0)
            values = np.round((values + 2.0) * 255.0 / 4.0)
        results, pos = [], 0
        span = (self.example_frames - 1) * 0.01 + 0.025
        for seg, (ex, starts) in zip(batch, per):
            results.append(Features(values[pos : pos + len(ex)], seg.t0 + starts, seg.t0 + starts + span))
            pos += len(ex)
        return results
