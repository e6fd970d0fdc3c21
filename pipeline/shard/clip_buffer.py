"""One clip's output, collected window by window, spilled to a local file when it grows large.

Held in memory, a long clip's values took a worker past 3 GB (extractors/features.py says why). Past
``spill_bytes`` the values go to a ``SpilledValues`` file and ``finish`` returns Features over it, so a
worker's memory does not grow with clip length.
"""

from __future__ import annotations

import numpy as np

from extractors.features import Features, SpilledValues

SPILL_BYTES = 64 << 20

class ClipBuffer:
    """Windows of one (clip, extractor) in time order; ``finish`` gives Features (spilled or not)."""

    def __init__(self, dim: int, spill_bytes: int | None = None) -> None:
        self.dim, self.spill_bytes = dim, SPILL_BYTES if spill_bytes is None else spill_bytes
        self.parts: list[Features] = []
        self.spilled: SpilledValues | None = None
        self.times: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.held = 0
        self.finite = True

    def add(self, out: Features) -> None:
        self.finite = self.finite and bool(np.isfinite(out.values).all())
        if self.spilled is None:
            self.parts.append(out)
            self.held += out.values.nbytes
            if self.held >= self.spill_bytes:
                self._spill()
            return
        self.spilled.append(out.values)
        self.times.append((out.start, out.end, out.mask, out.confidence))

    def _spill(self) -> None:
        self.spilled = SpilledValues(self.parts[0].values.shape[1] if self.parts else self.dim)
        for p in self.parts:
            self.spilled.append(p.values)
            self.times.append((p.start, p.end, p.mask, p.confidence))
        self.parts, self.held = [], 0

    def finish(self) -> Features:
        if self.spilled is None:
            return Features.concat(self.parts, self.dim)
        conf = [c for *_, c in self.times]
        return Features(self.spilled, np.concatenate([s for s, *_ in self.times]).astype(np.float64),
                       np.concatenate([e for _, e, *_ in self.times]).astype(np.float64),
                       np.concatenate([m for _, _, m, _ in self.times]).astype(bool),
                       np.concatenate(conf).astype(np.float32) if all(c is not None for c in conf) else None)

    def close(self) -> None:
        if self.spilled is not None:
            self.spilled.close()
