"""Consolidation: many small parts (one per task) become few large ones, so a store of N clips is not O(N) files.

A task writes a part of its own 1-16 clips (disjoint writes, idempotent retries). After the tasks, small
parts of one (stage, view, extractor) are merged into parts of about ``TARGET_BYTES`` — each a handful
of files, its chunks packed in one shard per array. A merge is write-then-commit like any part: the
merged part is written under ``.tmp/`` and renamed, then the task commits the index rows that point into it
(newer rows win), and only then are the small parts unreferenced and garbage-collected. A crash at any
point leaves either the old rows (and an orphan merged part, removed later) or the new ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from extractors.base import Features
from stores import cache_key, index, verify
from stores.feature_store import FeatureStore
from stores.verify import PartCheck

TARGET_BYTES = 64 << 20  # uncompressed values per merged part


@dataclass(frozen=True)
class Merge:
    """One merge task: small parts of one (stage, view, extractor) and their live index rows, as an Arrow table
    (a compact columnar copy of just these rows: the driver builds one per task as it submits it)."""

    store: str
    stage: str
    view: str
    extractor: str
    sources: tuple[str, ...]  # the small parts, in order
    rows: pa.Table | None = None  # their live rows, in the order of the merged part

    @property
    def part_id(self) -> str:
        return "m" + cache_key.part_id("merge", self.sources)[:23]

    @property
    def index_name(self) -> str:
        return f"merge-{self.stage}-{self.view or 'native'}-{self.extractor}-{self.part_id}"


def plan_merges(store: FeatureStore, live: pd.DataFrame, target_bytes: int = TARGET_BYTES) -> list[Merge]:
    """Merges of small parts, at most ``target_bytes`` each; parts already half the target stay as they are.
    Without rows: the merge task reads its own (``merge``), so the driver never holds the index's rows."""
    return merges_of(store, part_bytes(live), target_bytes)


def part_bytes(live: pd.DataFrame) -> dict[tuple[str, str, str, str], int]:
    """Uncompressed values of the ok rows per (stage, view, extractor, part)."""
    ok = live[live["status"] == "ok"]
    if ok.empty:
        return {}
    nbytes = ok["length"].astype(np.int64) * ok["dim"].astype(np.int64) * 4
    sums = nbytes.groupby([ok["stage"], ok["view"], ok["extractor"], ok["part"]]).sum()
    return {tuple(str(x) for x in k): int(v) for k, v in sums.items()}


def merges_of(store: FeatureStore, per_part: dict[tuple[str, str, str, str], int],
              target_bytes: int = TARGET_BYTES) -> list[Merge]:
    """``plan_merges`` from bytes per part: the parts under half the target, grouped like with like."""
    small: dict[tuple[str, str, str], list[str]] = {}
    for (stage, view, ext, part), size in sorted(per_part.items()):
        if size < target_bytes // 2:
            small.setdefault((stage, view, ext), []).append(part)
    merges = []
    for (stage, view, ext), parts in small.items():
        conf = {p: store.has_array(p, "confidence") for p in parts}  # merge like with like
        for has_conf in (False, True):
            group: list[str] = []
            size = 0
            for p in (p for p in parts if conf[p] == has_conf):
                nbytes = per_part[(stage, view, ext, p)]
                if group and size + nbytes > target_bytes:
                    merges += _merge(store, stage, view, ext, group)
                    group, size = [], 0
                group.append(p)
                size += nbytes
            merges += _merge(store, stage, view, ext, group)
    return merges


def _merge(store: FeatureStore, stage: str, view: str, ext: str, group: list[str]) -> list[Merge]:
    return [Merge(store.url, str(stage), str(view), str(ext), tuple(group))] if len(group) >= 2 else []


def with_rows(merges: list[Merge], live: pa.Table) -> Iterator[Merge]:
    """Each merge with its rows (from the live index table), in the order of the merged part, one at a time."""
    ok = live.filter(pc.equal(live["status"], "ok"))
    parts = ok["part"].to_pandas()
    at = parts.groupby(parts, sort=False).indices
    offsets = ok["offset"].to_numpy()
    for m in merges:
        pos = np.concatenate([at[p] for p in m.sources])
        src = np.concatenate([np.full(len(at[p]), i) for i, p in enumerate(m.sources)])
        yield replace(m, rows=ok.take(pa.array(pos[np.lexsort((offsets[pos], src))])))


def slim(live: pa.Table) -> pd.DataFrame:
    """The columns ``plan_merges`` reads, as a DataFrame (not the keys, fingerprints and reasons)."""
    return live.select(["stage", "view", "extractor", "status", "part", "length", "dim"]).to_pandas()


def write_merged(m: Merge) -> tuple[str, list[tuple[int, int]]]:
    """Write the merged part (write-then-rename; a retry finds it committed); returns its path and spans."""
    store = FeatureStore(m.store)
    rows = m.rows.to_pydict()
    items: list[tuple[str, Features]] = []
    dtype = "float32"
    for part in m.sources:
        values = store.array(f"{part}/values")[:]
        times = store.array(f"{part}/times")[:]
        mask = store.array(f"{part}/mask")[:]
        conf = store.array(f"{part}/confidence")[:] if store.has_array(part, "confidence") else None
        dtype = str(values.dtype)
        for clip, p, off, n in zip(rows["clip_id"], rows["part"], rows["offset"], rows["length"]):
            if p == part:
                lo, hi = int(off), int(off) + int(n)
                items.append((clip, Features(values[lo:hi], times[lo:hi, 0], times[lo:hi, 1], mask[lo:hi],
                                             None if conf is None else conf[lo:hi])))
    attrs = store.part_attrs(m.sources[0])
    for k in ("clip_ids", "offsets", "lengths"):
        attrs.pop(k, None)
    attrs["merged_from"] = len(m.sources)
    return store.write_part(m.stage, m.view, m.extractor, m.part_id, items, dtype, attrs)


def commit_merged(m: Merge, rel: str, spans: list[tuple[int, int]]) -> str:
    """Commit the rows that point into the merged part (newer rows win over the small parts' rows)."""
    offsets, lengths = zip(*spans) if spans else ((), ())
    t = m.rows
    for name, col in (("part", pa.array([rel] * len(t), pa.string())), ("offset", pa.array(offsets, pa.int64())),
                      ("length", pa.array(lengths, pa.int64())),
                      ("committed_at", pa.array([time.time_ns()] * len(t), pa.int64()))):
        t = t.set_column(t.schema.get_field_index(name), name, col)
    return index.commit_table(FeatureStore(m.store).fs, t, m.index_name)


def plan_store_merges(url: str, target_bytes: int = TARGET_BYTES) -> list[Merge]:
    """``plan_merges`` as a cluster task, from the index columns it needs: the driver never loads the live
    index of a large store (the merge tasks read their own rows, ``merge``)."""
    store = FeatureStore(url)
    live = index.resolve_table(index.read_table(store.fs, columns=[*index.ENTRY, "status", "part", "length", "dim",
                                                                   "committed_at"]))
    return plan_merges(store, slim(live), target_bytes)


def pending(store: FeatureStore, target_bytes: int = TARGET_BYTES) -> bool:
    """Whether the store has consolidation left to do: several index files (a run stopped before compacting)
    or merges ``plan_merges`` would plan. Streams the one compacted file (its rows are live) into bytes per
    part, so an unchanged re-run of a large store decides this without holding the index's rows."""
    paths = index.files(store.fs) if store.fs.exists(index.INDEX_DIR) else []
    if len(paths) != 1:
        return len(paths) > 1
    group = ["stage", "view", "extractor", "part"]
    per_part: dict[tuple[str, str, str, str], int] = {}
    for t in store.fs.iter_parquet(paths[0], [*group, "status", "length", "dim"]):
        t = index.conform(t)
        t = t.filter(pc.equal(t["status"], "ok"))
        nbytes = pc.multiply(pc.cast(t["length"], pa.int64()), pc.multiply(pc.cast(t["dim"], pa.int64()), 4))
        sums = t.select(group).append_column("nbytes", nbytes).group_by(group).aggregate([("nbytes", "sum")])
        for row in sums.to_pylist():
            g = tuple(row[c] for c in group)
            if None not in g:  # as pandas' groupby in ``part_bytes``: rows without a part are not merged
                per_part[g] = per_part.get(g, 0) + (row["nbytes_sum"] or 0)
    return bool(merges_of(store, per_part, target_bytes))


def sound(m: Merge) -> Merge | None:
    """The merge without its damaged sources: a part with a missing, truncated or corrupt chunk (zarr would
    read it as zeros, and the merged part would carry fresh checksums over them) stays as it is, its rows
    pointing at it, for ``verify`` to report and ``--repair`` to redo. None when fewer than two remain."""
    rows = m.rows.to_pylist()
    damaged = {p.part for p in verify.check_parts([PartCheck(m.store, part, [r for r in rows if r["part"] == part])
                                                   for part in m.sources])}
    if not damaged:
        return m
    keep = tuple(p for p in m.sources if p not in damaged)
    if len(keep) < 2:
        return None
    return replace(m, sources=keep, rows=m.rows.filter(pc.is_in(m.rows["part"], pa.array(keep, pa.string()))))


def merge(m: Merge) -> int:
    """The task (runs on a worker): check the sources, write the merged part, then commit its rows; returns
    the rows moved. A merge planned without rows reads them from the index (only rows of its own parts)."""
    if m.rows is None:
        m = next(with_rows([m], index.resolve_table(index.read_table(FeatureStore(m.store).fs, parts=m.sources))))
    checked = sound(m)
    if checked is None:
        return 0
    m = checked
    rel, spans = write_merged(m)
    commit_merged(m, rel, spans)
    return len(spans)
