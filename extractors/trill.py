"""TRILL and TRILL-distilled (tensorflow-hub SavedModels from a local folder): one vector per 200 ms.

As Tran & Soleymani: 16 kHz audio cut into consecutive non-overlapping 3,200-sample (200 ms) segments (the
last may be shorter), each passed to the module as ``module(samples=..., sample_rate=16000)`` and its
output averaged over the module's time axis -> 5 Hz. ``trill``: ``embedding`` (512-d) or ``layer19``
(12,288-d); ``trill_distilled``: ``embedding`` (2,048-d). TensorFlow is an optional extra
(``pip install affect-pipeline[tf]``); torch is imported first, because importing TensorFlow before
torch can crash the process (triton), so TRILL and torch extractors share a worker safely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from extractors.base import AudioSegment, Extractor, Features
from extractors.registry import register_extractor
from extractors.weights import Weights, register_weights

TRILL = register_weights(Weights(
    name="TRILL_V3", files=("saved_model.pb", "variables"), kind="tfhub",
    source="https://tfhub.dev/google/nonsemantic-speech-benchmark/trill/3", licence="Apache-2.0",
    preprocessing={"sample_rate": 16000, "segment_s": 0.2}, meta={"embedding": 512, "layer19": 12288},
))
TRILL_DISTILLED = register_weights(Weights(
    name="TRILL_DISTILLED_V3", files=("saved_model.pb", "variables"), kind="tfhub",
    source="https://tfhub.dev/google/nonsemantic-speech-benchmark/trill-distilled/3", licence="Apache-2.0",
    preprocessing={"sample_rate": 16000, "segment_s": 0.2}, meta={"embedding": 2048},
))


def import_tensorflow():  # noqa: ANN201 - the tensorflow module
    """torch and triton first, then TensorFlow: triton loaded after TensorFlow segfaults the process (torch
    and transformers import triton lazily, so it is imported here, before TensorFlow, when present)."""
    import importlib

    for module in ("torch", "triton"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    import tensorflow as tf

    return tf


@dataclass(frozen=True)
class TrillConfig:
    weights: str = TRILL.name
    layer: str = "embedding"  # embedding | layer19
    segment_s: float = 0.2


@dataclass(frozen=True)
class TrillDistilledConfig:
    weights: str = TRILL_DISTILLED.name
    layer: str = "embedding"
    segment_s: float = 0.2


@register_extractor
class Trill(Extractor):
    name = "trill"
    version = "1"
    modality = "audio"
    input = "audio"
    Config = TrillConfig
    weights_name = TRILL.name
    _sizes = TRILL.meta

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        if self.config.layer not in self._sizes:
            raise ValueError(f"{self.name}: layer must be one of {sorted(self._sizes)}, not {self.config.layer!r}")
        self.module = None

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import tensorflow_hub  # noqa: F401
        except ImportError:
            return False, "TensorFlow not installed: pip install 'affect-pipeline[tf]'"
        return super().available()

    @property
    def feature_names(self) -> list[str]:
        return [f"{self.name}_{i:05d}" for i in range(self._sizes[self.config.layer])]

    @property
    def rate(self) -> float:
        return 1.0 / self.config.segment_s

    def setup(self, device: str = "cpu") -> None:
        import_tensorflow()
        import tensorflow_hub as hub

        self.module = hub.load(str(self.weights_path()))

    def compute(self, batch: Sequence[AudioSegment]) -> list[Features]:
        tf = import_tensorflow()
        self.ensure_setup()
        step = round(self.config.segment_s * 16000)
        out = []
        for seg in batch:
            starts = np.arange(0, max(1, len(seg.samples)), step)
            vecs = []
            for s in starts:
                chunk = tf.constant(seg.samples[s : s + step], dtype=tf.float32)
                emb = self.module(samples=chunk, sample_rate=16000)[self.config.layer].numpy()
                vecs.append(emb.reshape(-1, emb.shape[-1]).mean(axis=0))
            ends = np.minimum(starts + step, max(len(seg.samples), 1)) / 16000
            out.append(Features(np.stack(vecs), seg.t0 + starts / 16000, seg.t0 + ends))
        return out


@register_extractor
class TrillDistilled(Trill):
    name = "trill_distilled"
    Config = TrillDistilledConfig
    weights_name = TRILL_DISTILLED.name
    _sizes = TRILL_DISTILLED.meta
