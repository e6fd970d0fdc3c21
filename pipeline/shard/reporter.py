"""A worker's progress notes: how far into a clip a task is, sent as Dask events the driver subscribes to.

A single 10-minute video then moves the driver's numbers long before its task ends
(pipeline/runtime/progress.py shows them).
"""

from __future__ import annotations

import time

TOPIC = "affect-progress"


class Reporter:
    """Worker side: sends at most one progress event per ``every`` seconds (and one per finished clip)."""

    def __init__(self, shard: int, every: float = 1.0) -> None:
        self.shard, self.every, self._last = shard, every, 0.0
        try:
            from distributed import get_worker

            self._worker = get_worker()
        except (ImportError, ValueError):  # not inside a Dask worker (tests calling the task directly)
            self._worker = None

    @property
    def worker(self) -> str:
        """The worker's address ("" outside a Dask worker)."""
        return self._worker.address if self._worker is not None else ""

    def report(self, clip: str, at: float, of: float, force: bool = False) -> None:
        if self._worker is None:
            return
        now = time.monotonic()
        if force or now - self._last >= self.every:
            self._last = now
            self._worker.log_event(TOPIC, {"shard": self.shard, "clip": clip, "at": float(at), "of": float(of)})
