"""What every stored entry must satisfy: one function, asked by `verify` of a stored entry and by the part
writer before it commits one, so a run never commits what its own `verify` would reject."""

from __future__ import annotations

import numpy as np

from extractors.features import SpilledValues, block_rows, blocks


def entry_problems(values: np.ndarray | SpilledValues, start: np.ndarray) -> list[str]:
    """The reasons an entry (values [T, D], frame start times [T]) cannot be stored; empty when sound."""
    out = []
    dim = values.shape[1] if len(values.shape) == 2 else 1
    if not all(np.isfinite(block).all() for _, block in blocks(values, block_rows(dim))):
        out.append("non-finite values")
    start = np.asarray(start, np.float64)
    if len(start) > 1 and (np.diff(start) < -1e-9).any():
        out.append("frame times go backwards")
    return out
