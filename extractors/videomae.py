"""VideoMAE (transformers ``VideoMAEModel`` from a local folder): a mean-pooled 768-d vector per group of
``num_frames`` consecutive frames (VideoMAE has no CLS token; Babaali & Shayaninasab's video branch).

Preprocessing of the weights (VideoMAEImageProcessor): shorter side resized to the model's image size,
centre crop, scale to [0, 1], ImageNet mean/std. Groups are batched across clips; a clip's last partial
group repeats its last frame. The clip vector is the mean over groups (the trainer's pooled vector)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from extractors.base import Extractor, Features, VideoSegment
from extractors.precision import PrecisionConfig
from extractors.registry import register_extractor
from extractors.weights import Weights, register_weights

if TYPE_CHECKING:
    import torch

WEIGHTS = register_weights(Weights(
    name="VIDEOMAE_BASE", files=("config.json", "model.safetensors"), source="MCG-NJU/videomae-base",
    kind="huggingface", licence="CC-BY-NC-4.0",
    preprocessing={"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "size": 224}, meta={"hidden": 768},
))


@dataclass(frozen=True)
class VideoMAEConfig(PrecisionConfig):
    weights: str = WEIGHTS.name
    batch_groups: int = 8


@register_extractor
class VideoMAE(Extractor):
    name = "videomae"
    version = "1"
    modality = "video"
    input = "frames"
    Config = VideoMAEConfig
    wants_gpu = True
    weights_name = WEIGHTS.name

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = self.weights_config()
        self.window_multiple = int(cfg.get("num_frames", 16))
        self._dim = int(cfg.get("hidden_size", 768))
        self.image_size = int(cfg.get("image_size", 224))

    @property
    def feature_names(self) -> list[str]:
        return [f"videomae_{i:03d}" for i in range(self._dim)]

    def setup(self, device: str = "cpu") -> None:
        from transformers import VideoMAEModel

        from extractors.torch_util import device_of

        self.device = device_of(device)
        model = VideoMAEModel.from_pretrained(str(self.weights_path()), use_safetensors=True)
        self.model = model.eval().to(self.device)

    def _transform(self, groups: np.ndarray) -> torch.Tensor:  # [N, T, 3, S, S]
        import torch
        import torch.nn.functional as F

        s = self.image_size
        x = torch.from_numpy(groups).to(self.device).permute(0, 1, 4, 2, 3).float() / 255.0
        n, t, _, h, w = x.shape
        scale = s / min(h, w)
        x = F.interpolate(x.flatten(0, 1), size=(max(s, round(h * scale)), max(s, round(w * scale))),
                          mode="bilinear", align_corners=False)
        top, left = (x.shape[2] - s) // 2, (x.shape[3] - s) // 2
        x = x[:, :, top : top + s, left : left + s]
        p = WEIGHTS.preprocessing
        mean = torch.tensor(p["mean"], device=x.device)[None, :, None, None]
        std = torch.tensor(p["std"], device=x.device)[None, :, None, None]
        return ((x - mean) / std).unflatten(0, (n, t))

    # -- fine-tuning (pipeline finetune): 16-frame groups, mirrored half the time while training (Babaali's) --
    def _groups(self, seg: VideoSegment) -> list[tuple[np.ndarray, tuple[float, float]]]:
        k, n = self.window_multiple, len(seg.frames)
        return [(seg.frames[np.minimum(np.arange(s, s + k), n - 1)],
                 (float(seg.times[s]), float(seg.ends[min(s + k, n) - 1]))) for s in range(0, n, k)]

    def train_units(self, seg: VideoSegment) -> list[tuple[np.ndarray, tuple[float, float]]]:
        return self._groups(seg)

    def trainable(self) -> Any:
        return self.model

    def embed(self, units: list[np.ndarray]) -> Any:
        import torch

        x = self._transform(np.stack(units))
        if self.model.training:  # horizontal mirroring with probability 0.5 per group
            flip = torch.rand(len(x)) < 0.5
            x[flip] = x[flip].flip(-1)
        return self.model(pixel_values=x).last_hidden_state.mean(1)

    def save_weights(self, folder: Any) -> None:
        self.model.save_pretrained(str(folder), safe_serialization=True)

    def compute(self, batch: Sequence[VideoSegment]) -> list[Features]:
        from extractors.torch_util import inference

        self.ensure_setup()
        groups, spans = [], []
        for seg in batch:
            got = self._groups(seg)
            groups += [g for g, _ in got]
            spans.append([sp for _, sp in got])
        outs = []
        with inference(self.device, self.config.precision):
            for i in range(0, len(groups), self.config.batch_groups):
                h = self.model(pixel_values=self._transform(np.stack(groups[i : i + self.config.batch_groups])))
                outs.append(h.last_hidden_state.mean(1).float().cpu().numpy())
        values = np.concatenate(outs) if outs else np.zeros((0, self._dim), np.float32)
        results, pos = [], 0
        for sp in spans:
            results.append(Features(values[pos : pos + len(sp)], [a for a, _ in sp], [b for _, b in sp]))
            pos += len(sp)
        return results
