"""TRILL and TRILL-distilled (tensorflow-hub SavedModels from a local folder): one vector per 200 ms.

As Tran & Soleymani: 16 kHz audio cut into consecutive non-overlapping 3,200-sample (200 ms) segments (the
last may be shorter), each passed to the module as ``module(samples=..., sample_rate=16000)`` and its
output averaged over the module's time axis -> 5 Hz. ``trill``: ``embedding`` (512-d) or ``layer19``
(12,288-d); ``trill_distilled``: ``embedding`` (2,048-d). ``trill_clip``: the whole clip passed to the module
at once and its output averaged -> one vector per clip (Tran & Soleymani's TFN baseline; a store can hold it
beside the 5 Hz ``trill`` stream MulT reads). TensorFlow is an optional extra
(``pip install affect-pipeline[tf]``). The module runs in its own process (extractors/tf_server.py):
TensorFlow in the same process as torch/triton or openSMILE crashes it, so a worker may run TRILL next to
any other extractor.
"""

from __future__ import annotations

import atexit
import os
import struct
import subprocess
import sys
import threading
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


@dataclass(frozen=True)
class TrillConfig:
    weights: str = TRILL.name
    layer: str = "embedding"  # embedding | layer19
    segment_s: float = 0.2


@dataclass(frozen=True)
class TrillClipConfig:
    weights: str = TRILL.name
    layer: str = "embedding"
    pooled: bool = True  # the whole clip in one call: one vector per clip


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
        self._pipe = threading.Lock()

    @classmethod
    def runtime(cls) -> tuple[bool, str]:
        import importlib.util

        # find_spec, not import: listing extractors must not pay TensorFlow's import (seconds, log noise)
        if not all(importlib.util.find_spec(m) for m in ("tensorflow", "tensorflow_hub")):
            return False, "TensorFlow not installed: pip install 'affect-pipeline[tf]'"
        return True, "ok"

    @property
    def feature_names(self) -> list[str]:
        return [f"{self.name}_{i:05d}" for i in range(self._sizes[self.config.layer])]

    @property
    def rate(self) -> float:
        return 1.0 / self._segment_s

    @property
    def _segment_s(self) -> float:
        return getattr(self.config, "segment_s", 0.2)

    @property
    def _step(self) -> int:
        """Samples per call to the module; 0 = the whole clip (``pooled``)."""
        return 0 if getattr(self.config, "pooled", False) else round(self._segment_s * 16000)

    def setup(self, device: str = "cpu") -> None:
        step = self._step
        self.module = subprocess.Popen(
            [sys.executable, "-m", "extractors.tf_server", str(self.weights_path()), self.config.layer, str(step)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
        )
        if self.module.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"{self.name}: the TensorFlow process failed to load {self.weights_path()} "
                               "(is `affect-pipeline[tf]` installed?)")
        atexit.register(self.module.kill)

    def compute(self, batch: Sequence[AudioSegment]) -> list[Features]:
        self.ensure_setup()
        out = []
        for seg in batch:
            x = np.ascontiguousarray(seg.samples, dtype="<f4")
            with self._pipe:  # one request/response at a time: tasks in other threads share this process
                self.module.stdin.write(struct.pack("<q", len(x)) + x.tobytes())
                self.module.stdin.flush()
                head = self.module.stdout.read(16)
                if len(head) < 16:
                    raise RuntimeError(f"{self.name}: the TensorFlow process died")
                rows, cols = struct.unpack("<qq", head)
                vecs = np.frombuffer(self.module.stdout.read(4 * rows * cols), dtype="<f4").reshape(rows, cols)
            step = self._step or max(1, len(x))
            starts = np.arange(0, max(1, len(x)), step)
            ends = np.minimum(starts + step, max(len(x), 1)) / 16000
            out.append(Features(vecs.astype(np.float32), seg.t0 + starts / 16000, seg.t0 + ends))
        return out


@register_extractor
class TrillClip(Trill):
    name = "trill_clip"
    Config = TrillClipConfig


@register_extractor
class TrillDistilled(Trill):
    name = "trill_distilled"
    Config = TrillDistilledConfig
    weights_name = TRILL_DISTILLED.name
    _sizes = TRILL_DISTILLED.meta
