"""The Parquet index: one row per (clip, stage, view, extractor) outcome, committed after its arrays.

The index is the set of Parquet files under ``<store>/index/``. Each file is written to a temporary
name and renamed into place, so a file is either absent or complete; a row in it is the *commit* of
the arrays it points to, which were fully written before. The live index is the union of all files,
keeping for each (clip_id, stage, view, extractor) the row with the largest ``committed_at``.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stores.fs import StoreFS, write_table

SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("stage", pa.string()),  # "native" | "aligned"
        ("view", pa.string()),  # "" for native, e.g. "5hz" for aligned
        ("extractor", pa.string()),
        ("key", pa.string()),  # cache key: media fingerprint + segment + extractor (+ alignment)
        ("status", pa.string()),  # "ok" | "failed" | "excluded"
        ("reason", pa.string()),
        ("part", pa.string()),  # path of the part group, relative to the store root
        ("offset", pa.int64()),
        ("length", pa.int64()),
        ("dim", pa.int32()),
        ("fingerprint", pa.string()),  # media content fingerprint
        ("duration", pa.float64()),  # clip duration (container or end - start): sets the aligned length
        ("audio_duration", pa.float64()),
        ("video_duration", pa.float64()),
        ("seconds", pa.float64()),  # extractor compute time spent on this clip
        ("valid", pa.float64()),  # share of the entry's frames whose mask is True (faces found, etc.)
        ("committed_at", pa.int64()),  # ns since epoch
        ("run_id", pa.string()),
    ]
)
ENTRY = ["clip_id", "stage", "view", "extractor"]
INDEX_DIR = "index"


def empty() -> pd.DataFrame:
    return SCHEMA.empty_table().to_pandas()


def commit(fs: StoreFS, rows: list[dict], name: str) -> str:
    """Write rows as ``index/<name>.parquet`` atomically; an existing file wins (idempotent re-runs)."""
    path = f"{INDEX_DIR}/{name}.parquet"
    if fs.exists(path):
        return path
    now = time.time_ns()
    full = [{**{f.name: None for f in SCHEMA}, "committed_at": now, **r} for r in rows]
    table = pa.Table.from_pylist(full, schema=SCHEMA)
    fs.write_atomic(path, lambda f: write_table(table, f))
    return path


def conform(table: pa.Table) -> pa.Table:
    """A table read from any version of the store, in today's schema (columns added since are null)."""
    for f in SCHEMA:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(len(table), f.type))
    return table.select(SCHEMA.names).cast(SCHEMA)


def commit_table(fs: StoreFS, table: pa.Table, name: str) -> str:
    """``commit`` for rows already in an Arrow table with the index schema (no Python object per row)."""
    path = f"{INDEX_DIR}/{name}.parquet"
    if not fs.exists(path):
        fs.write_atomic(path, lambda f: write_table(conform(table), f))
    return path


def files(fs: StoreFS) -> list[str]:
    return sorted(p for p in fs.ls(INDEX_DIR) if p.endswith(".parquet"))


def read_table(fs: StoreFS, paths: list[str] | None = None, batch: int = 256,
               columns: list[str] | None = None, parts: list[str] | None = None) -> pa.Table:
    """Every row of the index files (``columns`` of them, or all), as one Arrow table. Read ``batch`` files at
    a time and packed into contiguous columns: a run leaves one small file per task until compaction, and
    thousands of tiny tables cost the driver several times their data in memory. ``parts``: only the rows
    that point into these parts."""
    paths = files(fs) if paths is None else paths
    filters = [("part", "in", list(parts))] if parts is not None else None
    schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
    packed = []
    for i in range(0, len(paths), batch):
        tables = []
        for p in paths[i : i + batch]:
            try:
                tables.append(conform(fs.read_parquet(p, filters)).select(schema.names))
            except FileNotFoundError:  # compacted away by a concurrent reader's run: already merged
                continue
        if tables:
            packed.append(pa.concat_tables(tables).combine_chunks())
    return pa.concat_tables(packed).combine_chunks() if packed else schema.empty_table()


def resolve_table(table: pa.Table) -> pa.Table:
    """The live rows of ``table``: the newest per entry, in commit order. Computed on integer codes of the
    entry columns (no Python object per row), so resolving a 1.1 M-clip index costs a few arrays of int64."""
    n = table.num_rows
    if n == 0:
        return table
    code = np.zeros(n, dtype=np.int64)
    for name in ENTRY:
        enc = pc.dictionary_encode(pc.fill_null(table[name], "")).combine_chunks()
        code = code * max(1, len(enc.dictionary)) + enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    committed = pc.fill_null(table["committed_at"], 0).to_numpy().astype(np.int64)
    row = np.arange(n)
    order = np.lexsort((row, committed, code))  # by entry, then commit time, then position: the last is newest
    last = np.append(code[order][1:] != code[order][:-1], True)
    keep = order[last]
    keep = keep[np.lexsort((keep, committed[keep]))]
    return table.take(pa.array(keep))


def load(fs: StoreFS) -> pd.DataFrame:
    return resolve_table(read_table(fs)).to_pandas()


def compact_table(fs: StoreFS) -> pa.Table:
    """Merge every index file into one holding only live rows; returns the live rows (Arrow: no pandas copy).

    Safe under a crash at any point: the merged file is committed before the files it replaces are
    removed, and duplicates of the same row resolve to the same entry.
    """
    paths = files(fs)
    live = resolve_table(read_table(fs, paths))
    if len(paths) <= 1:
        return live
    name = f"{INDEX_DIR}/compacted-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
    fs.write_atomic(name, lambda f: write_table(live, f))
    for p in paths:
        fs.rm(p)
    return live


def compact_store(url: str) -> int:
    """``compact_table`` as a cluster task (reading thousands of small files is work for a worker, not for
    the driver's memory); returns the number of live rows."""
    return compact_table(StoreFS(url)).num_rows


def live_parts(fs: StoreFS) -> set[str]:
    """The parts the live rows point to, reading only the columns that decide it."""
    live = resolve_table(read_table(fs, columns=[*ENTRY, "part", "committed_at"]))
    return set(live["part"].drop_null().unique().to_pylist())


def compact(fs: StoreFS) -> pd.DataFrame:
    """``compact_table`` as a DataFrame."""
    return compact_table(fs).to_pandas()
