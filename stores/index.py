"""The Parquet index: one row per (clip, stage, view, extractor) outcome, committed after its arrays.

The index is the set of Parquet files under ``<store>/index/``. Each file is written to a temporary
name and renamed into place, so a file is either absent or complete; a row in it is the *commit* of
the arrays it points to, which were fully written before. The live index is the union of all files,
keeping for each (clip_id, stage, view, extractor) the row with the largest ``committed_at``.
"""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stores.fs import StoreFS

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
    fs.write_atomic(path, lambda f: pq.write_table(table, f, compression="zstd"))
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
        fs.write_atomic(path, lambda f: pq.write_table(conform(table), f, compression="zstd"))
    return path


def files(fs: StoreFS) -> list[str]:
    return sorted(p for p in fs.ls(INDEX_DIR) if p.endswith(".parquet"))


def read_all(fs: StoreFS, paths: list[str] | None = None, batch: int = 256) -> pd.DataFrame:
    """Every row of the index files. Read ``batch`` files at a time and packed into contiguous columns: a
    run leaves one small file per task until compaction, and thousands of tiny tables cost the driver
    several times their data in memory."""
    paths = files(fs) if paths is None else paths
    packed = []
    for i in range(0, len(paths), batch):
        tables = []
        for p in paths[i : i + batch]:
            try:
                tables.append(conform(fs.read_parquet(p)))
            except FileNotFoundError:  # compacted away by a concurrent reader's run: already merged
                continue
        if tables:
            packed.append(pa.concat_tables(tables).combine_chunks())
    if not packed:
        return empty()
    return pa.concat_tables(packed).to_pandas()


def resolve(df: pd.DataFrame) -> pd.DataFrame:
    """The live index: the newest row per entry."""
    if df.empty:
        return df.reset_index(drop=True)
    df = df.sort_values("committed_at", kind="stable")
    return df.drop_duplicates(ENTRY, keep="last").reset_index(drop=True)


def load(fs: StoreFS) -> pd.DataFrame:
    return resolve(read_all(fs))


def compact(fs: StoreFS) -> pd.DataFrame:
    """Merge every index file into one holding only live rows; returns the live index.

    Safe under a crash at any point: the merged file is committed before the files it replaces are
    removed, and duplicates of the same row resolve to the same entry.
    """
    paths = files(fs)
    live = resolve(read_all(fs, paths))
    if len(paths) <= 1:
        return live
    table = pa.Table.from_pandas(live, schema=SCHEMA, preserve_index=False)
    name = f"{INDEX_DIR}/compacted-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
    fs.write_atomic(name, lambda f: pq.write_table(table, f, compression="zstd"))
    for p in paths:
        fs.rm(p)
    return live
