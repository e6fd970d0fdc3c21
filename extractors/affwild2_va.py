"""Aff-Wild2 frame-level valence/arousal targets as a stream, so the core stores and aligns them.

Input is the annotation file's text (read by the core; extractors never open files): a
``valence,arousal`` header, then one row per video frame; ``-5`` marks a frame without annotation,
which becomes an invalid frame (mask False), never a dropped one. Row ``i`` is video frame ``i``, at
``i / fps`` with fps from the container (the fps in file names is nominal).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from extractors.base import AnnotationSegment, Extractor, Features
from extractors.registry import register_extractor


@dataclass(frozen=True)
class AffWild2VAConfig:
    invalid_value: float = -5.0


@register_extractor
class AffWild2VA(Extractor):
    name = "affwild2_va"
    version = "1"
    modality = "video"
    input = "annotation"
    Config = AffWild2VAConfig

    @property
    def feature_names(self) -> list[str]:
        return ["valence", "arousal"]

    def compute(self, batch: Sequence[AnnotationSegment]) -> list[Features]:
        out = []
        for seg in batch:
            df = pd.read_csv(io.StringIO(seg.text), skipinitialspace=True)
            df.columns = [c.strip().lower() for c in df.columns]
            if list(df.columns[:2]) != ["valence", "arousal"]:
                raise ValueError(f"annotation header is {list(df.columns)}, expected valence,arousal")
            values = df[["valence", "arousal"]].to_numpy(np.float32, copy=True)
            valid = (values != self.config.invalid_value).all(axis=1) & np.isfinite(values).all(axis=1)
            values[~valid] = 0.0
            start = np.arange(len(values)) / seg.fps
            out.append(Features(values, start, start + 1.0 / seg.fps, valid))
        return out
