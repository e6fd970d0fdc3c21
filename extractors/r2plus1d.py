"""R(2+1)D-18 (torchvision, Kinetics-400): 512-d per clip of 8 (or 16) frames (JMT's visual backbone).

Preprocessing of the weights (torchvision's VideoClassification preset): resize to 128 x 171, centre
crop 112 x 112, scale to [0, 1], normalise with the Kinetics mean/std. The output is the globally
pooled 512-d feature before the classifier. Clips of consecutive frames are batched across clips; a
clip's last partial group is padded by repeating its last frame.

``faces=True`` feeds the face stage's aligned crops (``face_size`` square, JMT uses 224) instead of whole
frames: no resize or centre crop then, and a group of frames is valid when most of its frames had a face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from extractors.base import Extractor, FaceCrop, Features, VideoSegment
from extractors.precision import PrecisionConfig
from extractors.registry import register_extractor
from extractors.weights import Weights, register_weights

if TYPE_CHECKING:
    from pathlib import Path

    import torch

WEIGHTS = register_weights(Weights(
    name="R2PLUS1D_18_KINETICS400_V1", files=("r2plus1d_18-91a641e6.pth",),
    sha256={"r2plus1d_18-91a641e6.pth": "91a641e6"},  # torchvision's published hash prefix
    source="https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth", kind="url",
    licence="BSD-3-Clause code; Kinetics-400 trained weights (research use)",
    preprocessing={"resize": [128, 171], "crop": [112, 112], "mean": [0.43216, 0.394666, 0.37645],
                   "std": [0.22803, 0.22145, 0.216989]},
    meta={"params": 31505325, "dataset": "Kinetics-400"},
))


@dataclass(frozen=True)
class R2Plus1DConfig(PrecisionConfig):
    weights: str = WEIGHTS.name  # or your own, registered with `pipeline models add NAME PATH --like ...`
    clip_frames: int = 8
    batch_clips: int = 32
    faces: bool = False  # aligned face crops from the face stage instead of whole frames
    face_size: int = 112


@register_extractor
class R2Plus1D(Extractor):
    name = "r2plus1d"
    version = "1"
    modality = "video"
    input = "frames"
    Config = R2Plus1DConfig
    wants_gpu = True
    weights_name = WEIGHTS.name

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.window_multiple = self.config.clip_frames  # windows hold whole clips
        if self.config.faces:
            self.input = "faces"

    @property
    def face_crop(self) -> FaceCrop:
        return FaceCrop(self.config.face_size)

    @property
    def feature_names(self) -> list[str]:
        return [f"r2p1d_{i:03d}" for i in range(512)]

    def batch_budget(self, device: str) -> float:
        return self.config.clip_frames * (128 if device == "cuda" else 32)  # whole clips per model call

    def setup(self, device: str = "cpu") -> None:
        import torch
        from torchvision.models.video import r2plus1d_18

        from extractors.torch_util import device_of, load_state

        self.device = device_of(device)
        model = r2plus1d_18(weights=None)
        load_state(self.weights_path() / WEIGHTS.files[0], model)  # user weights keep the file name
        self._fc = {f"fc.{k}": v.clone() for k, v in model.fc.state_dict().items()}  # kept for save_weights
        model.fc = torch.nn.Identity()
        self.model = model.eval().to(self.device)

    # -- fine-tuning (pipeline finetune): units, a differentiable embedding, the weights file -----------
    def train_units(self, seg: VideoSegment) -> list[tuple[np.ndarray, tuple[float, float]]]:
        """The clip's 8-frame groups that had a face (or all, on whole frames), with their time spans."""
        clips, times = self._clips(seg)
        return [(c, (a, b)) for c, (a, b, ok) in zip(clips, times) if ok]

    def trainable(self) -> torch.nn.Module:
        return self.model

    def embed(self, units: list[np.ndarray]) -> torch.Tensor:
        return self.model(self._transform(np.stack(units)))

    def save_weights(self, folder: Path) -> None:
        import torch

        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()} | self._fc
        torch.save(state, folder / WEIGHTS.files[0])

    def _clips(self, seg: VideoSegment) -> tuple[np.ndarray, list[tuple[float, float, bool]]]:
        k, n = self.config.clip_frames, len(seg.frames)
        found = np.ones(n, bool) if seg.found is None else seg.found
        groups, times = [], []
        for s in range(0, n, k):
            idx = np.minimum(np.arange(s, s + k), n - 1)
            groups.append(seg.frames[idx])
            valid = bool(found[s : s + k].mean() >= 0.5)
            times.append((float(seg.times[s]), float(seg.ends[min(s + k, n) - 1]), valid))
        return (np.stack(groups) if groups else np.zeros((0, k, 1, 1, 3), np.uint8)), times

    def _transform(self, clips: np.ndarray) -> torch.Tensor:  # [N, 3, T, 112, 112]
        import torch
        import torch.nn.functional as F

        p = WEIGHTS.preprocessing
        x = torch.from_numpy(clips).to(self.device).permute(0, 1, 4, 2, 3).float() / 255.0  # N T C H W
        n, t = x.shape[:2]
        if self.config.faces:  # already square, aligned crops
            mean = torch.tensor(p["mean"], device=x.device)[None, None, :, None, None]
            std = torch.tensor(p["std"], device=x.device)[None, None, :, None, None]
            return ((x - mean) / std).permute(0, 2, 1, 3, 4)
        x = F.interpolate(x.flatten(0, 1), size=tuple(p["resize"]), mode="bilinear", antialias=False,
                          align_corners=False)
        top, left = (p["resize"][0] - 112) // 2, (p["resize"][1] - 112) // 2
        x = x[:, :, top : top + 112, left : left + 112]
        mean = torch.tensor(p["mean"], device=x.device)[None, :, None, None]
        std = torch.tensor(p["std"], device=x.device)[None, :, None, None]
        return ((x - mean) / std).unflatten(0, (n, t)).permute(0, 2, 1, 3, 4)

    def compute(self, batch: Sequence[VideoSegment]) -> list[Features]:
        import torch

        from extractors.torch_util import inference

        self.ensure_setup()
        per_seg = [self._clips(seg) for seg in batch]
        all_clips = [c for clips, _ in per_seg for c in clips]
        feats = []
        with inference(self.device, self.config.precision):
            for i in range(0, len(all_clips), self.config.batch_clips):
                x = self._transform(np.stack(all_clips[i : i + self.config.batch_clips]))
                feats.append(self.model(x).float().cpu())
        flat = torch.cat(feats).numpy() if feats else np.zeros((0, 512), np.float32)
        out, pos = [], 0
        for clips, times in per_seg:
            values = flat[pos : pos + len(clips)]
            pos += len(clips)
            out.append(Features(values, [t[0] for t in times], [t[1] for t in times], [t[2] for t in times]))
        return out
