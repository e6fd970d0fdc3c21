"""One clip's output, collected window by window, spilled to a local file when it grows large.

A 10-minute 720p clip gives ~18,000 HOG frames of 24 KB (~440 MB): held in memory, concatenated,
cast and encoded, it took a worker past 3 GB. Past ``spill_bytes`` the values go to an anonymous
temporary file (removed by the OS even if the worker is killed) and are read back in row blocks by
the alignment and the part writer, so a worker's memory does not grow with clip length. Times, masks
and confidences (a few bytes per frame) stay in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np

from extractors.base import Features

SPILL_BYTES = 64 << 20
BLOCK_BYTES = 16 << 20


class SpilledValues:
    """``values[T, D]`` float32 in a temporary file; read rows ``[lo, hi)`` back with ``rows``."""

    dtype = np.dtype(np.float32)

    def __init__(self, dim: int) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="affect-clip-")
        self.n, self.dim = 0, dim

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.dim)

    @property
    def nbytes(self) -> int:
        return self.n * self.dim * 4

    def __len__(self) -> int:
        return self.n

    def append(self, values: np.ndarray) -> None:
        self.file.seek(0, 2)
        np.ascontiguousarray(values, np.float32).tofile(self.file)
        self.n += len(values)

    def rows(self, lo: int, hi: int) -> np.ndarray:
        lo, hi = max(0, lo), min(self.n, hi)
        self.file.seek(lo * self.dim * 4)
        return np.fromfile(self.file, np.float32, max(0, hi - lo) * self.dim).reshape(-1, self.dim)

    def close(self) -> None:
        self.file.close()


@dataclass
class Spilled:
    """A clip's Features whose values live in a SpilledValues file (same fields as Features)."""

    values: SpilledValues
    start: np.ndarray
    end: np.ndarray
    mask: np.ndarray
    confidence: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)


def block_rows(dim: int, itemsize: int = 8) -> int:
    """Rows per block so that one block (as float64) stays near BLOCK_BYTES."""
    return max(1, BLOCK_BYTES // max(1, dim * itemsize))


def blocks(values: np.ndarray | SpilledValues, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) blocks of in-memory or spilled values."""
    for lo in range(0, len(values), rows):
        yield lo, values.rows(lo, min(len(values), lo + rows)) if isinstance(values, SpilledValues) else values[
            lo:lo + rows]


def take(values: np.ndarray | SpilledValues, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` for spilled values too, reading each block once."""
    if not isinstance(values, SpilledValues):
        return values[idx]
    out = np.zeros((len(idx), values.dim), np.float32)
    for lo, block in blocks(values, block_rows(values.dim, 4)):
        sel = np.flatnonzero((idx >= lo) & (idx < lo + len(block)))
        out[sel] = block[idx[sel] - lo]
    return out


class ClipBuffer:
    """Windows of one (clip, extractor) in time order; ``finish`` gives Features or Spilled."""

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

    def finish(self) -> Features | Spilled:
        if self.spilled is None:
            return Features.concat(self.parts, self.dim)
        conf = [c for *_, c in self.times]
        return Spilled(self.spilled, np.concatenate([s for s, *_ in self.times]).astype(np.float64),
                       np.concatenate([e for _, e, *_ in self.times]).astype(np.float64),
                       np.concatenate([m for _, _, m, _ in self.times]).astype(bool),
                       np.concatenate(conf).astype(np.float32) if all(c is not None for c in conf) else None)

    def close(self) -> None:
        if self.spilled is not None:
            self.spilled.close()
