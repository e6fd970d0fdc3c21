"""Cross-clip batching: extractor inputs from several clips go into one ``compute`` call.

Items are queued with a size (frames or seconds) and sent when the budget is reached, so a model is
fed full batches however short the clips are. If a batch fails, its items are retried one by one so
that one bad clip fails alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from extractors.base import Extractor, Features


class Batcher:
    def __init__(
        self,
        extractor: Extractor,
        budget: float,
        size: Callable[[Any], float],
        on_result: Callable[[str, Any, Features, float], None],
        on_error: Callable[[str, BaseException], None],
    ) -> None:
        self.extractor = extractor
        self.budget = budget
        self.size = size
        self.on_result = on_result
        self.on_error = on_error
        self.queue: list[Any] = []
        self.queued = 0.0
        self.calls = 0
        self.seconds = 0.0

    def add(self, item: Any) -> None:
        self.queue.append(item)
        self.queued += self.size(item)
        if self.queued >= self.budget:
            self.flush()

    def flush(self) -> None:
        items, self.queue, self.queued = self.queue, [], 0.0
        if not items:
            return
        try:
            outs, dt = self._call(items)
        except Exception:  # noqa: BLE001 - a failing batch is retried item by item to find the culprit
            for item in items:  # isolate the culprit
                try:
                    (out,), dt = self._call([item])
                except Exception as exc:  # noqa: BLE001 - any extractor failure becomes a failed row
                    self.on_error(item.clip_id, exc)
                    continue
                self.on_result(item.clip_id, item, out, dt)
            return
        total = sum(self.size(i) for i in items) or 1.0
        for item, out in zip(items, outs):
            self.on_result(item.clip_id, item, out, dt * self.size(item) / total)

    def _call(self, items: list[Any]) -> tuple[list[Features], float]:
        t = time.perf_counter()
        outs = self.extractor.compute(items)
        dt = time.perf_counter() - t
        self.calls += 1
        self.seconds += dt
        if len(outs) != len(items):
            raise RuntimeError(f"{self.extractor.name}.compute returned {len(outs)} results for {len(items)} inputs")
        return outs, dt
