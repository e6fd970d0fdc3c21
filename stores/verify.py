"""`pipeline verify`: every committed chunk exists, decodes (CRC-32C) and agrees with the index.

Zarr returns fill values for a missing chunk, so a deleted chunk file would reach training as silent
zeros; this check lists the chunk keys each array must have and reads every chunk on its own, so one
bad chunk names exactly the entries (clip, stage, extractor) whose rows it holds. ``repair`` commits
those entries as failed, so the next ``extract`` recomputes exactly them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stores import index, store_files
from stores.feature_store import ARRAYS, FeatureStore
from stores.invariants import entry_problems

if TYPE_CHECKING:
    import zarr

REPAIR_REASON = "verify: {problem} (marked for recomputation by `pipeline verify --repair`)"


@dataclass(frozen=True)
class Problem:
    message: str
    part: str = ""
    clip_id: str = ""
    stage: str = ""
    view: str = ""
    extractor: str = ""

    @property
    def entry(self) -> tuple[str, str, str, str] | None:
        return (self.clip_id, self.stage, self.view, self.extractor) if self.clip_id else None

    def line(self) -> str:
        if not self.clip_id:
            return f"{self.part}: {self.message}"
        view = f"/{self.view}" if self.view else ""
        return f"{self.clip_id} [{self.stage}{view} {self.extractor}]: {self.message} (part {self.part})"


@dataclass(frozen=True)
class PartCheck:
    """One task's worth of work: a part and the live rows that point into it."""

    store: str
    part: str
    rows: list[dict]


def check_parts(checks: list[PartCheck]) -> list[Problem]:
    """The task function (runs on a worker): every chunk of every array of each part, then each entry."""
    out: list[Problem] = []
    for c in checks:
        out += _check_part(FeatureStore(c.store, repairing=True), c.part, c.rows)
    return out


def _entry(row: dict, message: str, part: str) -> Problem:
    return Problem(message, part, str(row["clip_id"]), str(row["stage"]), str(row["view"] or ""),
                   str(row["extractor"]))


def _check_part(store: FeatureStore, part: str, rows: list[dict]) -> list[Problem]:
    out: list[Problem] = []
    data: dict[str, np.ndarray] = {}
    why = store_files.group_problem(store.fs, part)
    if why:  # the part's own metadata (its clip ids and spans, as plain zarr reads them)
        return [_entry(r, f"the part's metadata {part}/zarr.json {why}", part) for r in rows] or [
            Problem(f"the part's metadata {part}/zarr.json {why}", part)]
    for name in ARRAYS:
        if name == "confidence" and not store.has_array(part, name):
            continue
        try:
            arr = store.array(f"{part}/{name}")
        except Exception as exc:  # noqa: BLE001 - unreadable metadata: every entry of the part is lost
            why = f"{part}/{name}/zarr.json: array metadata unreadable ({type(exc).__name__})"
            return [_entry(r, why, part) for r in rows] or [Problem(why, part)]
        full, bad = _read_chunks(store, part, name, arr)
        data[name] = full
        for (lo, hi), why in bad:
            hit = [r for r in rows if int(r["offset"]) < hi and int(r["offset"]) + int(r["length"]) > lo]
            out += [_entry(r, f"{name} {why}", part) for r in hit] or [Problem(f"{name} {why} (no live row)", part)]
    if len(data) < 3:
        return out
    n = len(data["values"])
    if data["times"].shape != (n, 2) or data["mask"].shape != (n,):
        out.append(Problem(f"values/times/mask lengths differ ({n}, {data['times'].shape}, {data['mask'].shape})",
                           part))
    damaged = {p.entry for p in out}
    for r in rows:
        lo, hi = int(r["offset"]), int(r["offset"]) + int(r["length"])
        if lo < 0 or hi > n:
            out.append(_entry(r, f"rows {lo}:{hi} outside the part's {n} rows", part))
            continue
        if (str(r["clip_id"]), str(r["stage"]), str(r["view"] or ""), str(r["extractor"])) in damaged:
            continue
        if int(r["dim"]) != data["values"].shape[1]:
            out.append(_entry(r, f"index says dim {r['dim']}, array has {data['values'].shape[1]}", part))
        out += [_entry(r, why, part) for why in entry_problems(data["values"][lo:hi], data["times"][lo:hi, 0])]
    # one result reused under several clip ids (same cache key, same span) is one span, not an overlap
    spans = sorted({(int(r["offset"]), int(r["offset"]) + int(r["length"]), str(r["key"])) for r in rows})
    spans = [(lo, hi) for lo, hi, _ in spans]
    for (_, a1), (b0, _) in zip(spans, spans[1:]):
        if b0 < a1:
            out.append(Problem(f"two clips share rows {b0}:{a1}", part))
    return out


def _read_chunks(store: FeatureStore, part: str, name: str, arr: zarr.Array) -> tuple[np.ndarray, list]:
    """The whole array, read chunk by chunk; ((row_lo, row_hi), why) for each missing or undecodable chunk.

    A stored object is a chunk, or a shard holding several chunks (its index has its own checksum)."""
    n, rows = arr.shape[0], arr.chunks[0]
    per_object = arr.metadata.chunk_grid.chunk_shape[0]  # rows per stored object (shard or chunk)
    full = np.zeros(arr.shape, dtype=arr.dtype)
    bad = []
    for i in range(math.ceil(n / per_object) if n else 0):
        lo, hi = i * per_object, min(n, (i + 1) * per_object)
        key = arr.metadata.encode_chunk_key((i,) + (0,) * (arr.ndim - 1))
        if not store.fs.exists(f"{part}/{name}/{key}"):
            bad.append(((lo, hi), f"chunk {part}/{name}/{key} is missing (rows {lo}:{hi})"))
            continue
        for a in range(lo, hi, rows):
            b = min(hi, a + rows)
            try:
                full[a:b] = arr[a:b]
            except Exception as exc:  # noqa: BLE001 - checksum mismatch, truncation, codec error: all the same
                why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
                why = "CRC-32C checksum mismatch" if "checksum" in why.lower() else why
                obj = f"{part}/{name}/{key}"
                where = f"chunk {obj}" if per_object == rows else f"shard {obj}, rows {a}:{b}"
                bad.append(((a, b), f"{where} does not decode (rows {a}:{b}: {why})"))
    return full, bad


def plan_checks(store: FeatureStore, per_task: int = 16) -> tuple[list[list[PartCheck]], list[Problem]]:
    """Tasks of ``per_task`` parts each, and the problems the store's own files and the index alone show
    (a damaged root, group, manifest or index file; duplicates, orphans). Damaged index files are left out:
    the parts only they referenced show up as unreferenced."""
    damaged = store_files.check(store.fs)
    problems = [Problem(why, path) for path, why in damaged]
    live = index.resolve_table(index.read_table(store.fs, store_files.readable_index_files(store.fs, damaged)))
    live = live.to_pandas()
    if live.duplicated(index.ENTRY).any():
        problems.append(Problem("an entry appears twice in the live index", "index"))
    ok = live[live["status"] == "ok"]
    cols = ["clip_id", "stage", "view", "extractor", "key", "offset", "length", "dim"]
    checks = [PartCheck(store.url, str(part), rows[cols].to_dict("records")) for part, rows in ok.groupby("part")]
    referenced = set(ok["part"])
    for part in store.part_dirs():
        if part not in referenced:
            problems.append(Problem("committed part that no index row references (removed by the next run)", part))
    return [checks[i : i + per_task] for i in range(0, len(checks), per_task)], problems


def verify(store: FeatureStore) -> list[str]:
    """Problems found, one line each (empty = sound), checked in this process."""
    tasks, problems = plan_checks(store)
    for t in tasks:
        problems += check_parts(t)
    return [p.line() for p in problems]


def repair(store: FeatureStore, problems: list[Problem], run_id: str) -> int:
    """Commit each damaged entry as failed so the next extract recomputes it; returns the entries marked."""
    live = store.index().set_index(index.ENTRY)
    rows, seen = [], set()
    for p in problems:
        if p.entry is None or p.entry in seen or p.entry not in live.index:
            continue
        seen.add(p.entry)
        old = live.loc[p.entry]
        rows.append({"clip_id": p.clip_id, "stage": p.stage, "view": p.view, "extractor": p.extractor,
                     "key": old["key"], "status": "failed", "reason": REPAIR_REASON.format(problem=p.message),
                     "fingerprint": old["fingerprint"], "duration": old["duration"],
                     "audio_duration": old["audio_duration"], "video_duration": old["video_duration"],
                     "run_id": run_id})
    if rows:
        index.commit(store.fs, rows, f"repair-{run_id}")
    return len(rows)

