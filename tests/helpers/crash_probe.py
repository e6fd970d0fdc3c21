"""A test extractor whose worker dies for real on one clip: SIGSEGV to its own process, as a native crash.

Workers import this module when they unpickle the probe's config (it is named by module in the task), so it
registers itself there as it does in the driver that imports it first.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from extractors.base import AudioSegment, Extractor, Features
from extractors.registry import register_extractor


@dataclass(frozen=True)
class CrashProbeConfig:
    crash_on: str = "crash"  # a clip whose id contains this kills its worker


@register_extractor
class CrashProbe(Extractor):
    name = "crash_probe"
    modality = "audio"
    input = "audio"
    Config = CrashProbeConfig
    dim = 1
    rate = 1.0
    feature_names = ["samples"]

    def compute(self, batch: Sequence[AudioSegment]) -> list[Features]:
        if any(self.config.crash_on in seg.clip_id for seg in batch):
            os.kill(os.getpid(), signal.SIGSEGV)
        return [Features(np.full((1, 1), len(seg.samples), np.float32), [seg.t0], [seg.t0 + 1.0]) for seg in batch]
