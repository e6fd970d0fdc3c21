"""Submits tasks through a bounded window and keeps the run alive: lost workers, signals, progress.

The driver never holds more than a few tasks per worker slot: tasks are built lazily from an iterator
and submitted as earlier ones finish, so its memory does not grow with the corpus. While waiting it
watches the cluster: lost jobs are replaced (dask-jobqueue, with a cap), and when no worker has been
there for ``no_workers_timeout`` seconds the run stops with a clear message instead of waiting forever.

The cluster is asked about its workers once a second, not on every poll: on a cluster of hundreds of
workers each answer lists all of them, and the scheduler that makes it also schedules the tasks.

The main loop never blocks on a future: results are fetched in the background (``as_completed`` with
results), because a finished task's result can be lost with its worker before the driver reads it, and a
blocking ``result()`` would then wait for a recomputation that needs the very replacements this loop submits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rich.console import Console

from pipeline.runtime.cluster import Session
from pipeline.runtime.progress import RunProgress
from pipeline.runtime.stop import StopSignals

GRACE_S = 10.0


class NoWorkers(Exception):
    """No worker for longer than the cluster's no-workers timeout."""


class Dispatcher:
    def __init__(self, session: Session, console: Console, stop: StopSignals, progress: RunProgress,
                 per_slot: int = 2, poll_s: float = 0.2, grace_s: float = GRACE_S) -> None:
        self.session, self.console, self.stop, self.progress = session, console, stop, progress
        self.per_slot, self.poll_s, self.grace_s = per_slot, poll_s, grace_s
        self.in_flight_max = 0  # the largest number of tasks submitted at once (tests check the bound)
        self._warned: set[str] = set()
        self._workers_seen = -1
        self._slots = 0

    def run(self, fn: Callable[[Any], Any], items: Iterable[Any], key: Callable[[Any], str],
            on_done: Callable[[Any, Any], None], on_error: Callable[[Any, BaseException], Iterable[Any] | None],
            resources: dict | None = None) -> None:
        """Run ``fn(item)`` for every item; returns when all are done, raises NoWorkers, or returns early on a stop
        request (``self.stop.requested``) after the grace period. Items that ``on_error`` returns are run too,
        before the rest and one at a time, each alone on the cluster (a task split after its workers died: the
        clip that kills a worker then takes no other clip's task with it)."""
        from distributed import as_completed

        self._requeued: list[Any] = []  # items on_error handed back: run before the source's next ones
        source: Iterator[Any] = iter(items)
        pending: dict[Any, Any] = {}  # future -> item
        ac = as_completed(with_results=True, raise_errors=False)
        self._exhausted = False
        last_check, no_workers_since = 0.0, None
        self._slots = self.session.slots()
        while True:
            if self._requeued and not self.stop.requested:
                if not pending:  # alone on the cluster: nothing else can die with it, nor be killed by it
                    item = self._requeued.pop(0)
                    fut = self.session.client.submit(fn, item, key=key(item), pure=False, resources=resources)
                    pending[fut] = item
                    ac.add(fut)
            elif not self._exhausted and not self.stop.requested:
                window = max(2, self.per_slot * self._slots)
                while len(pending) < window:
                    item = next(source, None)
                    if item is None:
                        self._exhausted = True
                        break
                    fut = self.session.client.submit(fn, item, key=key(item), pure=False, resources=resources)
                    pending[fut] = item
                    ac.add(fut)
                self.in_flight_max = max(self.in_flight_max, len(pending))
            if not pending and not self._requeued and (self._exhausted or self.stop.requested):
                return
            if self.stop.requested:
                self._drain_for_grace(ac, pending, on_done, on_error)
                return
            for fut, result in ac.next_batch(block=False) if ac.count() else []:
                self._finish(pending.pop(fut), result, on_done, on_error)
            self.progress.tick()
            now = time.monotonic()
            if now - last_check >= 1.0:
                last_check = now
                no_workers_since = self._watch(no_workers_since, now)
            time.sleep(self.poll_s)

    def _finish(self, item: Any, result: Any, on_done: Callable, on_error: Callable) -> None:
        """``result`` as ``as_completed(raise_errors=False)`` gives it: the value, the (type, exception,
        traceback) of a task that failed for good, or the CancelledError of a cancelled one."""
        if isinstance(result, tuple) and len(result) == 3 and isinstance(result[1], BaseException):
            result = result[1]
        if isinstance(result, BaseException):
            again = on_error(item, result)
            if again and not self.stop.requested:
                self._requeued.extend(again)
        else:
            on_done(item, result)

    def _drain_for_grace(self, ac: Any, pending: dict, on_done: Callable, on_error: Callable) -> None:
        """Collect what finishes within the grace period; the rest is abandoned (its commits are idempotent)."""
        deadline = time.monotonic() + self.grace_s
        while pending and time.monotonic() < deadline:
            for fut, result in ac.next_batch(block=False) if ac.count() else []:
                self._finish(pending.pop(fut), result, on_done, on_error)
            time.sleep(self.poll_s)
        if pending:
            self.session.client.cancel(list(pending))

    def _watch(self, since: float | None, now: float) -> float | None:
        """Replace lost jobs; warn (once each) about addresses reachable from other machines; refresh the
        task slots; raise NoWorkers after the timeout without any worker."""
        workers = self.session.workers()
        self._slots = self.session.slots(workers)
        self._warn_exposure(workers)
        replaced = self.session.replace_lost_jobs()
        if replaced:
            s = self.session
            self.console.print(f"{replaced} worker job(s) lost; submitted replacements "
                               f"({s.resubmitted} of at most {s.max_resubmissions} for this run)", highlight=False)
        if workers:
            return None
        if since is None:
            return now
        timeout = self.session.cfg.no_workers_timeout
        if now - since > timeout:
            extra = ""
            if self.session.cfg.mode == "jobqueue":
                extra = (f"; {self.session.resubmitted} replacement job(s) were submitted "
                         f"(max_resubmissions: {self.session.max_resubmissions})")
            raise NoWorkers(f"no Dask worker for {timeout:g} s (no_workers_timeout in the cluster file){extra}")
        return since

    def _warn_exposure(self, workers: dict[str, dict]) -> None:
        """Checked whenever the number of workers changes: new workers may bind other addresses."""
        if len(workers) == self._workers_seen:
            return
        self._workers_seen = len(workers)
        for line in self.session.exposure_warnings(workers):
            if line not in self._warned:
                self._warned.add(line)
                self.console.print(f"warning: {line}", highlight=False, markup=False)
