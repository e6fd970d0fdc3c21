"""openSMILE low-level descriptors: eGeMAPSv02 (25 LLDs, 10 ms hop) or ComParE_2016 (65 LLDs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from extractors.base import AudioSegment, Extractor, Features
from extractors.registry import register_extractor

FEATURE_SETS = ("eGeMAPSv02", "ComParE_2016")
_N_FEATURES = {"eGeMAPSv02": 25, "ComParE_2016": 65}


@dataclass(frozen=True)
class EGeMAPSConfig:
    feature_set: str = "eGeMAPSv02"

    def __post_init__(self) -> None:
        if self.feature_set not in FEATURE_SETS:
            raise ValueError(f"egemaps: feature_set must be one of {FEATURE_SETS}, got {self.feature_set!r}")


@register_extractor
class EGeMAPS(Extractor):
    name = "egemaps"
    version = "1"
    modality = "audio"
    input = "audio"
    Config = EGeMAPSConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._smile: Any = None
        self._names: list[str] | None = None

    @classmethod
    def runtime(cls) -> tuple[bool, str]:
        import importlib.util

        if importlib.util.find_spec("opensmile") is None:  # pragma: no cover - opensmile is a core dependency
            return False, "opensmile not installed; pip install opensmile"
        return True, "ok"

    def setup(self, device: str = "cpu") -> None:
        import opensmile

        self._smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, self.config.feature_set),
            feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
        )
        self._names = list(self._smile.feature_names)

    @property
    def feature_names(self) -> list[str]:
        if self._names is None:
            self.ensure_setup()
        assert self._names is not None and len(self._names) == _N_FEATURES[self.config.feature_set]
        return self._names

    @property
    def rate(self) -> float:
        return 100.0

    def compute(self, batch: Sequence[AudioSegment]) -> list[Features]:
        self.ensure_setup()
        out = []
        for seg in batch:
            df = self._smile.process_signal(np.asarray(seg.samples, np.float32), seg.sample_rate)
            values = df.to_numpy(np.float32, copy=True)
            start = df.index.get_level_values("start").total_seconds().to_numpy() + seg.t0
            end = df.index.get_level_values("end").total_seconds().to_numpy() + seg.t0
            finite = np.isfinite(values).all(axis=1)
            values[~finite] = 0.0
            out.append(Features(values, start, end, finite))
        return out
