"""Keep only some clips in a store: the manifest rule's other half.

The manifest accumulates: each run merges its clips into it (its rows win), because the store holds the
features of every clip any run extracted. Naming the same files under other ids (a folder run, then a CSV
with labels) therefore leaves both sets of ids; ``prune`` keeps the clips a dataset names now and drops the
rest from the manifest and the index. Arrays are not copied: entries of kept clips that share an array with
a dropped one (a result reused under another id) keep it; arrays no entry points to any more are removed.
"""

from __future__ import annotations

import time
import uuid

import pyarrow as pa
import pyarrow.compute as pc

from stores import index
from stores.feature_store import FeatureStore
from stores.fs import write_table


def prune(store: FeatureStore, keep: set[str]) -> tuple[int, int, int]:
    """Drop every clip not in ``keep``; returns (clips dropped from the manifest, index entries dropped, parts
    removed). The caller holds the store's lock. Crash-safe: the new index file is committed before the old
    ones go, and a half-done prune is finished by running it again."""
    ids = pa.array(sorted(keep), pa.string())
    manifest = store.fs.read_parquet("manifest.parquet") if store.fs.exists("manifest.parquet") else None
    dropped_clips = 0
    if manifest is not None:
        kept = manifest.filter(pc.is_in(manifest["clip_id"], ids))
        dropped_clips = manifest.num_rows - kept.num_rows
        if dropped_clips:
            store.fs.write_parquet("manifest.parquet", kept)
    paths = index.files(store.fs)
    live = index.resolve_table(index.read_table(store.fs, paths))
    kept_rows = live.filter(pc.is_in(live["clip_id"], ids))
    dropped_rows = live.num_rows - kept_rows.num_rows
    if dropped_rows:
        name = f"{index.INDEX_DIR}/compacted-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        store.fs.write_atomic(name, lambda f: write_table(kept_rows, f))
        for p in paths:
            store.fs.rm(p)
    removed = store.garbage_collect(set(kept_rows["part"].drop_null().unique().to_pylist()))
    return dropped_clips, dropped_rows, removed
