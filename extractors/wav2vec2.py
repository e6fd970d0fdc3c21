"""wav2vec2 (transformers ``Wav2Vec2Model`` from a local folder): 768-d at 50 Hz, layer selectable.

Frame ``i`` covers ``[0.02 i, 0.02 i + 0.025)`` s (conv strides 320 samples, receptive field 400).
``pooled=True`` gives one mean-pooled clip vector (wav2vec2 has no CLS token; Babaali & Shayaninasab's
utterance vector). Clips are batched with an attention mask when the model supports one
(``feat_extract_norm == "layer"``); group-norm models (wav2vec2-base) see each clip unpadded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from extractors.base import AudioSegment, Extractor, Features
from extractors.precision import PrecisionConfig
from extractors.registry import register_extractor
from extractors.weights import Weights, register_weights

WEIGHTS = register_weights(Weights(
    name="WAV2VEC2_BASE", files=("config.json", "preprocessor_config.json", "model.safetensors"),
    source="facebook/wav2vec2-base", kind="huggingface", licence="Apache-2.0",
    preprocessing={"sample_rate": 16000, "normalize": "per-utterance zero mean, unit variance"},
    meta={"hidden": 768, "hop_s": 0.02, "receptive_s": 0.025},
))


@dataclass(frozen=True)
class Wav2Vec2Config(PrecisionConfig):
    weights: str = WEIGHTS.name
    layer: int = -1  # hidden_states index: -1 = last layer, 0 = the CNN features after projection
    pooled: bool = False
    batch_seconds: float = 60.0


@register_extractor
class Wav2Vec2(Extractor):
    name = "wav2vec2"
    version = "1"
    modality = "audio"
    input = "audio"
    Config = Wav2Vec2Config
    wants_gpu = True
    weights_name = WEIGHTS.name

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._dim: int | None = None

    @property
    def feature_names(self) -> list[str]:
        if self._dim is None:
            self._dim = int(self.weights_config().get("hidden_size", WEIGHTS.meta["hidden"]))
        return [f"w2v_{i:03d}" for i in range(self._dim)]

    @property
    def rate(self) -> float:
        return 50.0

    def batch_budget(self, device: str) -> float:
        return self.config.batch_seconds

    def setup(self, device: str = "cpu") -> None:
        from transformers import Wav2Vec2Model

        from extractors.torch_util import device_of

        self.device = device_of(device)
        folder = self.weights_path()
        self.model = Wav2Vec2Model.from_pretrained(str(folder), use_safetensors=True).eval().to(self.device)
        pre = folder / "preprocessor_config.json"
        self.normalize = json.loads(pre.read_text()).get("do_normalize", True) if pre.exists() else True
        self.masked = self.model.config.feat_extract_norm == "layer"
        self._dim = self.model.config.hidden_size

    def _prep(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        if self.normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        return x if len(x) >= 400 else np.pad(x, (0, 400 - len(x)))

    # -- fine-tuning (pipeline finetune): one unit per utterance, capped at 10 s as Babaali's ------------
    def train_units(self, seg: AudioSegment) -> list[tuple[np.ndarray, tuple[float, float]]]:
        x = self._prep(seg.samples[: 10 * 16000])
        return [(x, (seg.t0, seg.t0 + len(x) / 16000))]

    def trainable(self) -> Any:
        return self.model

    def embed(self, units: list[np.ndarray]) -> Any:
        """The mean of the chosen layer's states over each utterance's own frames (as ``pooled`` extracts)."""
        import torch

        n = max(len(u) for u in units)
        x, mask = torch.zeros(len(units), n), torch.zeros(len(units), n, dtype=torch.long)
        for j, u in enumerate(units):
            x[j, : len(u)], mask[j, : len(u)] = torch.from_numpy(u), 1
        last = self.config.layer == -1  # last_hidden_state is hidden_states[-1]; training-mode layer drop can leave
        out = self.model(x.to(self.device), attention_mask=mask.to(self.device) if self.masked else None,
                         output_hidden_states=not last)  # some transformers versions without hidden_states
        h = out.last_hidden_state if last else out.hidden_states[self.config.layer]
        frames = self.model._get_feat_extract_output_lengths(mask.sum(1)).to(h.device)
        keep = (torch.arange(h.shape[1], device=h.device)[None] < frames[:, None]).float()[..., None]
        return (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)

    def save_weights(self, folder: Any) -> None:
        self.model.save_pretrained(str(folder), safe_serialization=True)

    def compute(self, batch: Sequence[AudioSegment]) -> list[Features]:
        import torch

        from extractors.torch_util import inference

        self.ensure_setup()
        xs = [self._prep(s.samples) for s in batch]
        groups = [list(range(len(xs)))] if self.masked else [[i] for i in range(len(xs))]
        hidden: dict[int, np.ndarray] = {}
        with inference(self.device, self.config.precision):
            for g in groups:
                n = max(len(xs[i]) for i in g)
                x = torch.zeros(len(g), n)
                mask = torch.zeros(len(g), n, dtype=torch.long)
                for j, i in enumerate(g):
                    x[j, : len(xs[i])] = torch.from_numpy(xs[i])
                    mask[j, : len(xs[i])] = 1
                out = self.model(x.to(self.device), attention_mask=mask.to(self.device) if self.masked else None,
                                 output_hidden_states=True)
                h = out.hidden_states[self.config.layer].float().cpu().numpy()
                for j, i in enumerate(g):
                    frames = int(self.model._get_feat_extract_output_lengths(torch.tensor(len(xs[i]))))
                    hidden[i] = h[j, :frames]
        results = []
        for i, seg in enumerate(batch):
            h = hidden[i]
            if self.config.pooled:
                results.append(Features(h.mean(0, keepdims=True), [seg.t0], [seg.t0 + len(seg.samples) / 16000]))
                continue
            start = seg.t0 + np.arange(len(h)) * 0.02
            results.append(Features(h, start, start + 0.025))
        return results
