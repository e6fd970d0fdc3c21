"""The trainer's chunk-aware shuffle: a permutation, few parts per stretch, and linear-ish in the samples."""

from __future__ import annotations

import time

import numpy as np

from train.data import chunk_aware_order


def test_an_epoch_is_a_permutation_that_visits_parts_block_by_block():
    rng = np.random.default_rng(0)
    parts = rng.integers(0, 50, size=5000)
    samples = np.arange(5000) * 3
    order = chunk_aware_order(samples, parts, np.random.default_rng(1), block=4)
    assert sorted(order.tolist()) == samples.tolist()
    seq = parts[order // 3]
    # consecutive stretches: each part appears in exactly one stretch of <= 4 distinct parts
    changes = [i for i in range(1, len(seq)) if len(set(seq[max(0, i - 1) : i + 1])) > 1]
    assert len(changes) > 49  # shuffled within blocks, so parts interleave inside a block
    seen, blocks, current = set(), [], set()
    for p in seq:
        if p not in current and len(current) == 4:
            blocks.append(current)
            current = set()
        assert p in current or p not in seen, "a part came back after its block"
        current.add(p)
        seen.add(p)
    assert max(len(b) for b in [*blocks, current]) <= 4
    again = chunk_aware_order(samples, parts, np.random.default_rng(1), block=4)
    assert (again == order).all()  # same seed, same epoch
    assert not (chunk_aware_order(samples, parts, np.random.default_rng(2), block=4) == order).all()


def test_ordering_cost_grows_about_linearly_with_the_samples():
    def cost(n: int) -> float:
        parts = np.arange(n) // 8  # parts of 8 clips: the worst case for the old per-block scan
        t = time.perf_counter()
        chunk_aware_order(np.arange(n), parts, np.random.default_rng(0))
        return time.perf_counter() - t

    cost(1000)
    small, big = min(cost(40_000) for _ in range(3)), min(cost(400_000) for _ in range(3))
    assert big < 25 * small, (small, big)  # 10x the samples; the old code took ~300x (17.8 s at 400 k)
    assert big < 2.0
