"""Automatic task sizes taper at the end of a run, so the workers run out of work together."""

from __future__ import annotations

import dataclasses
import heapq
import math

import numpy as np
import pytest

from pipeline.engine.plan import auto_shard_size, shard_sizes


def _makespan(sizes: list[int], slots: int) -> int:
    """Dask's order here: tasks in submission order, each to the slot that frees first (a clip = 1 time unit)."""
    free = [0] * slots
    for n in sizes:
        heapq.heappush(free, heapq.heappop(free) + n)
    return max(free)


@pytest.mark.parametrize("clips,slots", [(128, 2), (64, 2), (8, 1), (1000, 2), (20_000, 64), (1_100_000, 512),
                                         (37, 3), (3, 4)])
def test_sizes_cover_every_clip_taper_and_leave_a_short_tail(clips, slots):
    size = auto_shard_size(clips, slots)
    sizes = list(shard_sizes(clips, size, slots))
    assert sum(sizes) == clips and min(sizes) >= 1
    assert sizes == sorted(sizes, reverse=True)  # full-size tasks first, then shrinking ones
    assert _makespan(sizes, slots) <= math.ceil(clips / slots) + 1  # the idle tail is at most one clip
    added = len(sizes) - math.ceil(clips / size)
    assert added <= slots * (math.log2(size) + 1)  # tapering adds about log2(size) tasks per slot, no more


def test_tapering_shortens_the_idle_tail_of_clips_of_unequal_cost():
    """The case it is for: 128 clips on 2 slots in 16-clip tasks, clips' costs varying (lengths, a busy core)."""
    fixed, tapered = list(shard_sizes(128, 16)), list(shard_sizes(128, 16, 2))
    assert fixed == [16] * 8 and tapered == [16] * 7 + [8, 4, 2, 1, 1]
    rng = np.random.default_rng(0)

    def idle(sizes: list[int], cost: np.ndarray) -> float:  # how long one slot waits for the other at the end
        free, lo = [0.0, 0.0], 0
        for n in sizes:
            heapq.heappush(free, heapq.heappop(free) + float(cost[lo : lo + n].sum()))
            lo += n
        return max(free) - min(free)

    costs = [rng.lognormal(0.0, 0.3, 128) for _ in range(200)]
    assert np.mean([idle(tapered, c) for c in costs]) < np.mean([idle(fixed, c) for c in costs]) / 3


def test_a_size_the_user_gave_is_kept_to_the_end():
    assert list(shard_sizes(10, 3)) == [3, 3, 3, 1]


def test_the_run_report_measures_the_end_of_run_tail():
    from pipeline.engine.run import RunReport
    from pipeline.shard.task import ShardResult

    report = RunReport("r", 4, 4, {})
    for worker, ended in (("tcp://a", 10.0), ("tcp://b", 11.0), ("tcp://a", 12.5), ("", 99.0)):  # "": in-process
        report.add(ShardResult(0, 1, {}, {}, {}, worker=worker, ended_at=ended))
    assert report.tail_s == 1.5  # b idled from 11.0 until a's last task ended at 12.5
    assert "_last_end" not in dataclasses.asdict(report)
