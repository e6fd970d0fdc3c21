"""Planning: which (clip, extractor) results are missing, from the manifest and the live index.

This is where the cache lives: an entry is reused when its stored key equals the key the current
media, segment and configuration produce. Failed entries are retried; excluded ones are kept.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from extractors import registry
from pipeline import cache_key
from pipeline.config import ExtractConfig
from pipeline.decode import ClipSource


@dataclass
class ClipWork:
    source: ClipSource
    fingerprint: str
    keys: dict[str, str]  # extractor -> native key
    native: list[str]  # extractors to run
    align: list[str]  # extractors to (re-)align
    stored: dict[str, dict] = field(default_factory=dict)  # extractor -> live native row, for align-only work


@dataclass
class Plan:
    run_id: str
    clips: int
    work: list[ClipWork]
    cached: dict[str, int]  # extractor -> clips whose native result is reused
    descriptions: dict[str, dict]

    @property
    def native_calls(self) -> dict[str, int]:
        out = {n: 0 for n in self.descriptions}
        for w in self.work:
            for n in w.native:
                out[n] += 1
        return out


def _opt(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def _path(p: object) -> str | None:
    return None if p is None or (isinstance(p, float) and np.isnan(p)) or p == "" else str(p)


def _fingerprint(src: ClipSource, mode: str = "content") -> str:
    try:
        return cache_key.media_fingerprint(src.media_path, src.audio_path, src.annotation_path, mode)
    except OSError:
        return ""  # unreadable: the task reports why, as a failed row


def make_plan(cfg: ExtractConfig, manifest: pd.DataFrame, live: pd.DataFrame) -> Plan:
    exts = {name: registry.create(name, overrides) for name, overrides in cfg.extractors.items()}
    descriptions = {name: e.describe() for name, e in exts.items()}
    face = dataclasses.asdict(cfg.face)
    align = dataclasses.asdict(cfg.align)
    sources = [
        ClipSource(str(r.clip_id), str(r.media_path), _path(r.audio_path), _opt(r.start), _opt(r.end),
                   _path(getattr(r, "annotation_path", None)), _path(getattr(r, "transcript", None)))
        for r in manifest.itertuples(index=False)
    ]
    with ThreadPoolExecutor(16) as pool:
        fingerprints = list(pool.map(lambda src: _fingerprint(src, cfg.fingerprint), sources))
    native_live = live[live["stage"] == "native"]
    native_rows = _by_entry(native_live)
    aligned_rows = _by_entry(live[(live["stage"] == "aligned") & (live["view"] == cfg.align.view)])
    cached = {n: 0 for n in exts}
    work = []
    for src, fp in zip(sources, fingerprints):
        keys, native, to_align, stored = {}, [], [], {}
        for name, ext in exts.items():
            extra = face if ext.input == "faces" else src.text if ext.input == "text" else None
            k = cache_key.native_key(fp, src.start, src.end, ext.fingerprint(), extra)
            keys[name] = k
            row = native_rows.get((src.clip_id, name))
            hit = not cfg.force and fp and row is not None and row[:2] == (k, "ok")
            if not hit:
                native.append(name)
                to_align.append(name)
                continue
            cached[name] += 1
            arow = aligned_rows.get((src.clip_id, name))
            akey = cache_key.aligned_key(k, align)
            if arow is None or arow[0] != akey or arow[1] not in ("ok", "excluded"):
                to_align.append(name)
                stored[name] = native_live.iloc[row[2]].to_dict()  # only for the few that need re-aligning
        if native or to_align:
            work.append(ClipWork(src, fp, keys, native, to_align, stored))
    return Plan(uuid.uuid4().hex[:12], len(sources), work, cached, descriptions)


def _by_entry(rows: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str, int]]:
    """(clip_id, extractor) -> (key, status, position in ``rows``): tuples, not a dict per row (a re-run of
    1.1 M clips looks up every entry)."""
    return dict(zip(zip(rows["clip_id"], rows["extractor"]),
                    zip(rows["key"], rows["status"], range(len(rows)))))


MAX_AUTO_SHARD = 16


def auto_shard_size(clips: int, slots: int, per_slot: int = 4) -> int:
    """Clips per task: enough tasks for ``per_slot`` per worker slot (so no core idles at the end), at most 16."""
    return max(1, min(MAX_AUTO_SHARD, math.ceil(clips / max(1, slots * per_slot))))


def shards(plan: Plan, size: int) -> list[list[ClipWork]]:
    """Group clips into tasks; clips of the same file sit together (segments of one long video)."""
    ordered = sorted(plan.work, key=lambda w: (w.source.media_path, w.source.start or 0.0))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]
