"""Consolidation: many small parts (one per task) become few large ones, so a store of N clips is not O(N) files.

A task writes a part of its own 1-16 clips (disjoint writes, idempotent retries). After the tasks, small
parts of one (stage, view, extractor) are merged into parts of about ``TARGET_BYTES`` — each a handful
of files, its chunks packed in one shard per array. A merge is write-then-commit like any part: the
merged part is written under ``.tmp/`` and renamed, then the index rows that point into it are committed
(newer rows win), and only then are the small parts unreferenced and garbage-collected. A crash at any
point leaves either the old rows (and an orphan merged part, removed later) or the new ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from extractors.base import Features
from pipeline import cache_key
from stores.feature_store import FeatureStore

TARGET_BYTES = 64 << 20  # uncompressed values per merged part
ROW_FIELDS = ["clip_id", "stage", "view", "extractor", "key", "status", "reason", "part", "offset", "length", "dim",
              "fingerprint", "duration", "audio_duration", "video_duration", "seconds", "run_id"]


@dataclass(frozen=True)
class Merge:
    store: str
    stage: str
    view: str
    extractor: str
    sources: tuple[str, ...]  # the small parts, in order
    rows: tuple[dict, ...]  # their live rows, in the order of the merged part

    @property
    def part_id(self) -> str:
        return "m" + cache_key.part_id("merge", self.sources)[:23]


def plan_merges(store: FeatureStore, live: pd.DataFrame, target_bytes: int = TARGET_BYTES) -> list[Merge]:
    """Merges of small parts, at most ``target_bytes`` each; parts already half the target stay as they are."""
    ok = live[live["status"] == "ok"].copy()
    if ok.empty:
        return []
    ok["nbytes"] = ok["length"].astype(np.int64) * ok["dim"].astype(np.int64) * 4
    per_part = ok.groupby("part")["nbytes"].sum()
    small = ok[ok["part"].map(per_part) < target_bytes // 2]
    merges = []
    for (stage, view, ext), rows in small.groupby(["stage", "view", "extractor"], sort=True):
        parts = sorted(rows["part"].unique())
        conf = {p: store.has_array(p, "confidence") for p in parts}  # merge like with like
        for has_conf in (False, True):
            group: list[str] = []
            size = 0
            for p in (p for p in parts if conf[p] == has_conf):
                if group and size + per_part[p] > target_bytes:
                    merges += _merge(store, stage, view, ext, group, rows)
                    group, size = [], 0
                group.append(p)
                size += int(per_part[p])
            merges += _merge(store, stage, view, ext, group, rows)
    return merges


def _merge(store: FeatureStore, stage: str, view: str, ext: str, group: list[str], rows: pd.DataFrame) -> list[Merge]:
    if len(group) < 2:
        return []
    mine = rows[rows["part"].isin(group)].sort_values(["part", "offset"])
    records = tuple({k: _plain(v) for k, v in r.items()} for r in mine[ROW_FIELDS].to_dict("records"))
    return [Merge(store.url, str(stage), str(view), str(ext), tuple(group), records)]


def _plain(v: object) -> object:
    """A plain Python value for a row (pandas reads a null string column back as NaN)."""
    if isinstance(v, np.generic):
        v = v.item()
    if v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return v


def merge(m: Merge) -> list[dict]:
    """The task (runs on a worker): write the merged part; returns the index rows that point into it."""
    store = FeatureStore(m.store)
    items: list[tuple[str, Features]] = []
    dtype = "float32"
    for part in m.sources:
        values = store.array(f"{part}/values")[:]
        times = store.array(f"{part}/times")[:]
        mask = store.array(f"{part}/mask")[:]
        conf = store.array(f"{part}/confidence")[:] if store.has_array(part, "confidence") else None
        dtype = str(values.dtype)
        for r in (r for r in m.rows if r["part"] == part):
            lo, hi = int(r["offset"]), int(r["offset"]) + int(r["length"])
            items.append((r["clip_id"], Features(values[lo:hi], times[lo:hi, 0], times[lo:hi, 1], mask[lo:hi],
                                                 None if conf is None else conf[lo:hi])))
    attrs = store.part_attrs(m.sources[0])
    for k in ("clip_ids", "offsets", "lengths"):
        attrs.pop(k, None)
    attrs["merged_from"] = len(m.sources)
    rel, spans = store.write_part(m.stage, m.view, m.extractor, m.part_id, items, dtype, attrs)
    return [{**r, "part": rel, "offset": off, "length": length} for r, (off, length) in zip(m.rows, spans)]
