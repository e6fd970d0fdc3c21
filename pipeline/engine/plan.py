"""Planning: which (clip, extractor) results are missing, from the manifest and the live index.

This is where the cache lives: an entry is reused when its stored key equals the key the current
media, segment and configuration produce. Failed entries are retried; excluded ones are kept.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.engine.config import ExtractConfig
from pipeline.media.decode import ClipSource
from pipeline.media.face import face_key
from pipeline.media.orientation import ORIENTATION_KEY
from pipeline.shard.work import ClipWork
from stores import cache_key, index
from stores.fs import StoreFS
from stores.live_lookup import ALIGNED, KEY_CHARS, NATIVE, LiveLookup


class WorkList:
    """The clips that need work, as columns: a few dozen bytes per clip instead of one object each.

    ``ClipWork`` objects are built only when a task is built (``shards``), so the driver's memory does not
    grow by an object per clip of a 1.1 M-clip corpus. The manifest frame is shared, not copied.
    """

    def __init__(self, manifest: pd.DataFrame, names: list[str], ext_fps: dict[str, str], extras: dict[str, Any],
                 stored_rows: pa.Table | None = None) -> None:
        self.manifest, self.names, self.ext_fps, self.extras = manifest, names, ext_fps, extras
        # the index rows of stored results that tasks re-align or reuse (positions in ``stored``)
        self.stored_rows = index.SCHEMA.empty_table() if stored_rows is None else stored_rows
        k = len(names)
        self.pos = np.zeros(0, dtype=np.int64)  # manifest row of each clip
        self.fps = np.zeros(0, dtype=FP_DTYPE)  # media fingerprint (32 hex characters)
        self.native, self.align = np.zeros((0, k), dtype=bool), np.zeros((0, k), dtype=bool)  # [clip, extractor]
        self.stored = np.zeros((0, k), dtype=np.int64)  # row in stored_rows, or -1
        self._room = (self.pos, self.fps, self.native, self.align, self.stored)  # the arrays these are views of

    def __len__(self) -> int:
        return len(self.pos)

    def __bool__(self) -> bool:
        return len(self.pos) > 0

    def reserve(self, n: int) -> None:
        """Room for ``n`` clips, as zeroed arrays the system maps lazily: pages no clip reaches cost no memory,
        and appending never copies what is there (no concatenation of the chunks at the end)."""
        k = len(self.names)
        self._room = (np.zeros(n, np.int64), np.zeros(n, FP_DTYPE), np.zeros((n, k), bool), np.zeros((n, k), bool),
                      np.zeros((n, k), np.int64))
        self._set(0)

    def append(self, pos: np.ndarray, fps: np.ndarray, native: np.ndarray, align: np.ndarray,
               stored: np.ndarray) -> None:
        """Add planned clips (manifest rows, fingerprints, [clip, extractor] masks, stored rows)."""
        n, m = len(self), len(pos)
        if n + m > len(self._room[0]):
            old = (self.pos, self.fps, self.native, self.align, self.stored)
            self.reserve(max(2 * n, n + m))
            for room, v in zip(self._room, old):
                room[:n] = v
        for room, v in zip(self._room, (pos, fps, native, align, stored)):
            room[n : n + m] = v
        self._set(n + m)

    def _set(self, n: int) -> None:
        self.pos, self.fps, self.native, self.align, self.stored = (a[:n] for a in self._room)

    def keep(self, mask: np.ndarray) -> WorkList:
        """The same list without the clips where ``mask`` is False."""
        out = WorkList(self.manifest, self.names, self.ext_fps, self.extras, self.stored_rows)
        out.pos, out.fps, out.native = self.pos[mask], self.fps[mask], self.native[mask]
        out.align, out.stored = self.align[mask], self.stored[mask]
        return out

    def clip_ids(self) -> np.ndarray:
        return self.manifest["clip_id"].to_numpy()[self.pos]

    def native_calls(self) -> dict[str, int]:
        return {n: int(self.native[:, j].sum()) for j, n in enumerate(self.names)}

    def order(self) -> np.ndarray:
        """Indices sorted by (media file, start), ties in manifest order: segments of one long video sit
        together. The manifest is ranked once in Arrow (integers only: no copy of its paths per clip); a
        manifest already in that order (the corpus adapters sort it) costs no sort of the work list."""
        rank = manifest_rank(self.manifest)
        if rank is None:
            return np.argsort(self.pos, kind="stable")
        return np.argsort(rank[self.pos], kind="stable")

    def build(self, idx: np.ndarray) -> list[ClipWork]:
        """ClipWork objects for the clips at ``idx`` (a task's worth)."""
        out = []
        for i, src in zip(idx, clip_sources(self.manifest.iloc[self.pos[idx]])):
            fp = self.fps[i].decode()
            keys = {n: cache_key.native_key(fp, src.start, src.end, self.ext_fps[n], _extra(self.extras[n], src))
                    for n in self.names}
            stored = {n: self.stored_rows.slice(int(self.stored[i, j]), 1).to_pylist()[0]
                      for j, n in enumerate(self.names) if self.stored[i, j] >= 0}
            out.append(ClipWork(src, fp, keys, [n for j, n in enumerate(self.names) if self.native[i, j]],
                                [n for j, n in enumerate(self.names) if self.align[i, j]], stored))
        return out

    def __iter__(self) -> Iterator[ClipWork]:
        for lo in range(0, len(self), CHUNK):
            yield from self.build(np.arange(lo, min(len(self), lo + CHUNK)))


def manifest_rank(manifest: pd.DataFrame) -> np.ndarray | None:
    """Each manifest row's rank by (media_path, start), ties in row order; None when the rows are already in
    that order."""
    start = pd.to_numeric(manifest["start"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
    t = pa.table({"m": pa.array(manifest["media_path"], pa.string()), "s": start})
    idx = pc.sort_indices(t, [("m", "ascending"), ("s", "ascending")]).to_numpy()  # a stable sort
    if not len(idx) or bool((idx == np.arange(len(idx))).all()):
        return None
    rank = np.empty(len(idx), dtype=np.int64)
    rank[idx] = np.arange(len(idx))
    return rank


@dataclass
class Plan:
    run_id: str
    clips: int
    work: WorkList
    cached: dict[str, int]  # extractor -> clips whose native result is reused
    descriptions: dict[str, dict]

    @property
    def native_calls(self) -> dict[str, int]:
        return self.work.native_calls()


def _opt(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def _path(p: object) -> str | None:
    return None if p is None or (isinstance(p, float) and np.isnan(p)) or p == "" else str(p)


SOURCE_COLUMNS = ("clip_id", "media_path", "audio_path", "start", "end", "annotation_path", "transcript",
                  "subject_position")  # what ``clip_sources`` reads of a manifest row


def clip_sources(manifest: pd.DataFrame) -> list[ClipSource]:
    """What decoding needs of each manifest row (the plan's tasks, `pipeline finetune`)."""
    return [ClipSource(str(r.clip_id), str(r.media_path), _path(r.audio_path), _opt(r.start), _opt(r.end),
                       _path(getattr(r, "annotation_path", None)), _path(getattr(r, "transcript", None)),
                       _subject(getattr(r, "subject_position", None)))
            for r in manifest.itertuples(index=False)]


def _subject(side: Any) -> str | None:
    return side if side in ("left", "right") else None


def _extra(kind: Any, src: ClipSource) -> Any:
    """What besides media, segment and config a result depends on: the transcript for text extractors; for
    faces extractors the face stage's settings and, in two-subject videos, which subject's face."""
    if kind == "text":
        return src.text
    if isinstance(kind, dict) and src.subject and "detector" in kind:  # the face stage's key
        return {**kind, "subject": src.subject}
    return kind


def _fingerprint(src: ClipSource, mode: str = "content") -> str:
    try:
        return cache_key.media_fingerprint(src.media_path, src.audio_path, src.annotation_path, mode)
    except OSError:
        return ""  # unreadable: the task reports why, as a failed row


FP_DTYPE = f"S{KEY_CHARS}"  # media fingerprints are 32 hex characters, as keys (cache_key)
CHUNK = 8192  # manifest rows planned at a time: per-clip Python objects never outlive their chunk


def make_plan(cfg: ExtractConfig, manifest: pd.DataFrame, fs: StoreFS | None) -> Plan:
    """Which entries need work, planned ``CHUNK`` manifest rows at a time against the store's live index
    (``fs``; None: no store yet). The index is read as compact columns (``LiveLookup``), not as rows."""
    # the columns tasks read, not the corpus' own (speaker, labels, a VoxCeleb2 manifest's three path
    # columns): a selection, not a copy; once the caller lets go of the full manifest, the rest is freed
    manifest = manifest[[c for c in manifest.columns if c in SOURCE_COLUMNS]]
    exts = {name: s.create() for name, s in cfg.specs.items()}
    names = list(exts)
    descriptions = {name: e.describe() for name, e in exts.items()}
    align = cfg.align.key_fields()
    ext_fps = {n: e.fingerprint() for n, e in exts.items()}
    extras = {n: face_key(cfg.face) if e.input == "faces" else "text" if e.input == "text"
              else dict(ORIENTATION_KEY) if e.input == "frames" else None
              for n, e in exts.items()}
    clip_ids = pa.array(manifest["clip_id"], pa.string()) if len(manifest) else pa.array([], pa.string())
    live = LiveLookup(fs, clip_ids, names, cfg.align.view)
    cached = {n: 0 for n in names}
    work = WorkList(manifest, names, ext_fps, extras)
    work.reserve(len(manifest))
    with ThreadPoolExecutor(16) as pool:
        for lo in range(0, len(manifest), CHUNK):
            sources = clip_sources(manifest.iloc[lo : lo + CHUNK])
            fps = list(pool.map(lambda src: _fingerprint(src, cfg.fingerprint), sources))
            n = len(sources)
            native, to_align = np.zeros((n, len(names)), bool), np.zeros((n, len(names)), bool)
            stored = np.full((n, len(names)), -1, dtype=np.int64)
            readable = np.asarray([bool(fp) for fp in fps], dtype=bool)  # once per chunk, not per extractor
            for j, name in enumerate(names):
                keys = [cache_key.native_key(fp, s.start, s.end, ext_fps[name], _extra(extras[name], s))
                        for s, fp in zip(sources, fps)]
                kb = np.asarray(keys, dtype=f"S{KEY_CHARS}")
                row = live.rows(NATIVE, j, lo, lo + n)
                # excluded (the clip lacks the extractor's modality) is an answer too: kept, not retried
                hit = live.matches(row, kb, ("ok", "excluded")) & readable & (not cfg.force)
                # the same result stored under another clip id (e.g. a CSV manifest naming the clips of an
                # earlier folder run differently): reused, never recomputed; the task commits it under this id
                other = np.full(n, -1, dtype=np.int64)
                miss = ~hit & readable
                if miss.any() and not cfg.force:
                    other[miss] = live.find_key(j, kb[miss])
                moved = ~hit & (other >= 0)
                row[moved] = other[moved]
                native[:, j] = to_align[:, j] = ~(hit | moved)
                cached[name] += int(hit.sum() + moved.sum())
                akeys = np.asarray([cache_key.aligned_key(k, align) for k in keys], dtype=f"S{KEY_CHARS}")
                aok = live.matches(live.rows(ALIGNED, j, lo, lo + n), akeys, ("ok", "excluded"))
                realign = (hit & ~aok) | moved
                to_align[:, j] |= realign
                stored[realign, j] = row[realign]
            need = native.any(1) | to_align.any(1)
            work.append(np.arange(lo, lo + n)[need], np.asarray(fps, dtype=FP_DTYPE)[need], native[need],
                        to_align[need], stored[need])
    entries = np.unique(work.stored[work.stored >= 0])  # the stored results tasks read: their whole rows
    work.stored_rows = live.full_rows(entries)
    work.stored[work.stored >= 0] = np.searchsorted(entries, work.stored[work.stored >= 0])
    return Plan(uuid.uuid4().hex[:12], len(manifest), work, cached, descriptions)


MAX_AUTO_SHARD = 16


def auto_shard_size(clips: int, slots: int, per_slot: int = 4) -> int:
    """Clips per task: enough tasks for ``per_slot`` per worker slot (so no core idles at the end), at most 16."""
    return max(1, min(MAX_AUTO_SHARD, math.ceil(clips / max(1, slots * per_slot))))


def shard_sizes(clips: int, size: int, taper_slots: int = 0) -> Iterator[int]:
    """Clips per task, in submission order: ``size`` each; with ``taper_slots``, the last ``slots x size``
    clips go in tasks of 1/slots of what is left (guided self-scheduling, only at the end), halving down to
    one clip, so the workers run out of work together instead of one finishing a full-size last task while
    the others idle (on 2 workers that tail was up to half a task's time of the whole run). It adds about
    log2(size) tasks per slot, whatever the corpus size; a clip's own cost is the tail left."""
    left = clips
    while left > 0:
        n = size
        if taper_slots > 0 and left <= taper_slots * size:
            n = max(1, min(size, -(-left // taper_slots)))
        n = min(n, left)
        yield n
        left -= n


def shards(plan: Plan, size: int, taper_slots: int = 0) -> Iterator[list[ClipWork]]:
    """Tasks of ``size`` clips (see :func:`shard_sizes`), built as they are submitted; clips of one file sit
    together (segments of one long video)."""
    order = plan.work.order()
    lo = 0
    for n in shard_sizes(len(order), size, taper_slots):
        yield plan.work.build(order[lo : lo + n])
        lo += n


def shard_count(plan: Plan, size: int, taper_slots: int = 0) -> int:
    return sum(1 for _ in shard_sizes(len(plan.work), size, taper_slots))
