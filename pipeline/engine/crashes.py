"""A task whose workers died under it costs only the clip that killed them.

Dask runs a task again on another worker when its worker dies, and gives up after a few deaths
(``KilledWorker``). A native crash in a decoder or a model (a segfault, an abort), or a clip that takes its
worker past its memory limit, would then lose every clip of the task, on every rerun. Instead, a killed task of
several clips is split into one task per clip; a one-clip task that still kills its workers is recorded as a
failed row of that clip for each extractor it needed (the same as any broken clip: reported, retried by the
next run, `--allow-failures` exits 0), and the rest of the run goes on.
"""

from __future__ import annotations

from pipeline.shard.work import ShardTask
from stores import index
from stores.feature_store import FeatureStore


def killed_worker(exc: BaseException) -> bool:
    """Whether the task failed because its workers died (not because it raised)."""
    return type(exc).__name__ == "KilledWorker"


class CrashIsolation:
    def __init__(self, store: FeatureStore, run_id: str, first_free_shard: int) -> None:
        self.store, self.run_id, self.next_shard = store, run_id, first_free_shard
        self.failed_rows: list[dict] = []

    def handle(self, task: ShardTask, exc: BaseException) -> list[ShardTask] | None:
        """The tasks to run instead (one per clip), [] when the task was one clip (now failed rows), or None
        when ``exc`` is not a worker's death."""
        if not killed_worker(exc):
            return None
        if len(task.clips) > 1:
            out = []
            for clip in task.clips:
                out.append(ShardTask(self.next_shard, [clip], task.config))
                self.next_shard += 1
            return out
        (work,) = task.clips
        reason = (f"crashed the worker: every worker that ran this clip died ({exc.__class__.__name__}: a native crash "
                  "in decoding or an extractor, or the worker's memory limit); the other clips of its task were "
                  "stored. Re-encode the file (or raise the memory limit) and run again")
        rows = [{"clip_id": work.source.clip_id, "stage": "native", "view": "", "extractor": name,
                 "key": work.keys[name], "status": "failed", "reason": reason, "fingerprint": work.fingerprint,
                 "run_id": self.run_id} for name in work.native]
        if rows:
            index.commit(self.store.fs, rows, f"crashed-{self.run_id}-{task.shard}")
        self.failed_rows += rows
        return []
