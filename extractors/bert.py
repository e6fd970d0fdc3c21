"""BERT (transformers ``BertModel`` + its tokenizer from a local folder): one 768-d vector per clip,
from the manifest's ``transcript`` column (Babaali & Shayaninasab's text branch).

``pooling``: ``pooler`` (tanh(Linear(h[CLS])), the layer before BERT's classifier), ``cls`` (h[CLS]) or
``mean`` (masked mean of the last layer). The vector spans the whole clip [0, duration)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from extractors.base import Extractor, Features, TextSegment
from extractors.precision import PrecisionConfig
from extractors.registry import register_extractor
from extractors.weights import Weights, register_weights

WEIGHTS = register_weights(Weights(
    name="BERT_BASE_UNCASED", files=("config.json", "vocab.txt", "model.safetensors"),
    source="google-bert/bert-base-uncased", kind="huggingface", licence="Apache-2.0",
    preprocessing={"tokenizer": "WordPiece, lower case", "max_length": 512}, meta={"hidden": 768},
))


@dataclass(frozen=True)
class BertConfig(PrecisionConfig):
    weights: str = WEIGHTS.name
    pooling: str = "pooler"
    max_length: int = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pooling not in ("pooler", "cls", "mean"):
            raise ValueError(f"bert: pooling must be pooler, cls or mean, not {self.pooling!r}")


@register_extractor
class Bert(Extractor):
    name = "bert"
    version = "1"
    modality = "text"
    input = "text"
    Config = BertConfig
    wants_gpu = True
    weights_name = WEIGHTS.name

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._dim: int | None = None

    @property
    def feature_names(self) -> list[str]:
        if self._dim is None:
            self._dim = int(self.weights_config().get("hidden_size", WEIGHTS.meta["hidden"]))
        return [f"bert_{i:03d}" for i in range(self._dim)]

    def setup(self, device: str = "cpu") -> None:
        from transformers import BertModel, BertTokenizerFast

        from extractors.torch_util import device_of

        self.device = device_of(device)
        folder = str(self.weights_path())
        self.tokenizer = BertTokenizerFast.from_pretrained(folder)
        self.model = BertModel.from_pretrained(folder, use_safetensors=True).eval().to(self.device)
        self._dim = self.model.config.hidden_size

    # -- fine-tuning (pipeline finetune): one unit per transcript ------------------------------------
    def train_units(self, seg: TextSegment) -> list[tuple[str, tuple[float, float]]]:
        return [(seg.text, (0.0, max(seg.duration, 1e-3)))] if seg.text.strip() else []

    def trainable(self) -> Any:
        return self.model

    def embed(self, units: list[str]) -> Any:
        enc = self.tokenizer(units, padding=True, truncation=True, max_length=self.config.max_length,
                             return_tensors="pt").to(self.device)
        out = self.model(**enc)
        if self.config.pooling == "pooler":
            return out.pooler_output
        if self.config.pooling == "cls":
            return out.last_hidden_state[:, 0]
        m = enc["attention_mask"][..., None].float()
        return (out.last_hidden_state * m).sum(1) / m.sum(1)

    def save_weights(self, folder: Any) -> None:
        self.model.save_pretrained(str(folder), safe_serialization=True)

    def compute(self, batch: Sequence[TextSegment]) -> list[Features]:
        from extractors.torch_util import inference

        self.ensure_setup()
        enc = self.tokenizer([s.text for s in batch], padding=True, truncation=True,
                             max_length=self.config.max_length, return_tensors="pt").to(self.device)
        with inference(self.device, self.config.precision):
            out = self.model(**enc)
            if self.config.pooling == "pooler":
                vec = out.pooler_output
            elif self.config.pooling == "cls":
                vec = out.last_hidden_state[:, 0]
            else:
                m = enc["attention_mask"][..., None].float()
                vec = (out.last_hidden_state * m).sum(1) / m.sum(1)
        vec = vec.float().cpu().numpy()
        return [Features(vec[i : i + 1], [0.0], [max(s.duration, 1e-3)]) for i, s in enumerate(batch)]
