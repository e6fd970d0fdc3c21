"""What an extractor returns: ``Features``, whose values live in memory or, for a long clip, in a file.

One type for both (the worker's spill buffer, the alignment and the store's writer all take it): a 10-minute
720p clip gives ~18,000 HOG frames of 24 KB (~440 MB), so past a threshold the worker spills the values to an
anonymous temporary file (removed by the OS even if the worker is killed) and they are read back in row
blocks; times, masks and confidences (a few bytes per frame) stay in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np

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



@dataclass
class Features:
    """One clip's (or one window's) output: ``values[T, D]`` with per-frame times and validity.

    ``mask`` False marks a frame that exists but carries no valid measurement (no face, silence
    the extractor rejects, ...); such frames are stored, never dropped. ``confidence`` is optional
    and feeds the alignment's confidence filter.
    """

    values: np.ndarray | SpilledValues  # in memory, or spilled to a temporary file (a long clip)
    start: np.ndarray
    end: np.ndarray
    mask: np.ndarray | None = None
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.values, SpilledValues):
            self.values = np.asarray(self.values, dtype=np.float32)
        if len(self.values.shape) != 2:
            raise ValueError(f"Features.values must be [T, D], got shape {self.values.shape}")
        n = len(self.values)
        self.start = np.asarray(self.start, dtype=np.float64).reshape(n)
        self.end = np.asarray(self.end, dtype=np.float64).reshape(n)
        self.mask = np.ones(n, bool) if self.mask is None else np.asarray(self.mask, bool).reshape(n)
        if self.confidence is not None:
            self.confidence = np.asarray(self.confidence, np.float32).reshape(n)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def spilled(self) -> bool:
        """True when the values live in a temporary file (read them with ``blocks`` or ``take``)."""
        return isinstance(self.values, SpilledValues)

    @staticmethod
    def concat(parts: Sequence[Features], dim: int) -> Features:
        """Join the windows of one clip in time order (an empty list gives a [0, dim] result)."""
        if not parts:
            return Features(np.zeros((0, dim), np.float32), np.zeros(0), np.zeros(0))
        conf = None
        if all(p.confidence is not None for p in parts):
            conf = np.concatenate([p.confidence for p in parts])
        return Features(
            np.concatenate([p.values for p in parts]),
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.end for p in parts]),
            np.concatenate([p.mask for p in parts]),
            conf,
        )
