"""Collects finished results of a task and commits them: arrays first (a part), then index rows.

Native results are aligned as they are committed, so the aligned view needs no second pass. Parts
are flushed when they reach a memory budget, so memory does not grow with the size of the shard; a
long clip's spilled result (extractors/features.py) becomes its own part at once, streamed from disk.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from extractors.base import Features
from pipeline.shard.align import AlignConfig, align, clip_duration, exclusion_reason
from stores import cache_key, index
from stores.feature_store import FeatureStore
from stores.invariants import entry_problems
from stores.version import PACKAGE


@dataclass
class ClipMeta:
    fingerprint: str
    duration: float
    audio_duration: float = math.nan
    video_duration: float = math.nan

    @property
    def row(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Pending:
    ok: list[tuple[str, Features, str, float]] = field(default_factory=list)  # clip, feats, key, secs
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # clip, key, reason
    excluded: list[tuple[str, str, str]] = field(default_factory=list)
    nbytes: int = 0


class PartWriter:
    def __init__(
        self, store: FeatureStore, run_id: str, descriptions: dict[str, dict], align_cfg: AlignConfig,
        dtype: str, flush_bytes: int = 256 << 20,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.descriptions = descriptions
        self.align_cfg = align_cfg
        self.align_dict = align_cfg.key_fields()
        self.dtype = dtype
        self.flush_bytes = flush_bytes
        self.native: dict[str, Pending] = {}
        self.aligned: dict[str, Pending] = {}
        self.meta: dict[str, ClipMeta] = {}
        self.notes: dict[str, str] = {}  # clip -> what an ok row says of how it was made (re-timed frames)
        self.aliases: list[dict] = []  # native rows of results reused under another clip id
        self.counts = {"ok": 0, "failed": 0, "excluded": 0}

    # -- results -------------------------------------------------------------------------------
    def add_native(self, clip: str, ext: str, feats: Features, key: str, seconds: float) -> None:
        self.counts["ok"] += 1
        self.add_aligned(clip, ext, feats, key)
        if feats.spilled:  # a long clip: its own part now, streamed from the spill file
            try:
                self._commit("native", "", ext, Pending(ok=[(clip, feats, key, seconds)]))
            finally:
                feats.values.close()
            return
        p = self.native.setdefault(ext, Pending())
        p.ok.append((clip, feats, key, seconds))
        p.nbytes += feats.values.nbytes
        if p.nbytes >= self.flush_bytes:
            self.flush()

    def add_failed(self, clip: str, ext: str, key: str, reason: str) -> None:
        self.native.setdefault(ext, Pending()).failed.append((clip, key, reason))
        self.counts["failed"] += 1

    def add_excluded(self, clip: str, ext: str, key: str, reason: str) -> None:
        """A clip that lacks what the extractor needs (a modality): excluded, natively and in the aligned view,
        kept as the answer (not retried) until its media or the configuration change."""
        self.native.setdefault(ext, Pending()).excluded.append((clip, key, reason))
        self.aligned.setdefault(ext, Pending()).excluded.append((clip, cache_key.aligned_key(key, self.align_dict),
                                                                 reason))
        self.counts["excluded"] += 1

    def add_aligned_excluded(self, clip: str, ext: str, native_key: str, reason: str) -> None:
        self.aligned.setdefault(ext, Pending()).excluded.append(
            (clip, cache_key.aligned_key(native_key, self.align_dict), reason))

    def add_aligned(self, clip: str, ext: str, native: Features, native_key: str) -> None:
        m = self.meta[clip]
        akey = cache_key.aligned_key(native_key, self.align_dict)
        p = self.aligned.setdefault(ext, Pending())
        reason = exclusion_reason(m.audio_duration, m.video_duration, self.align_cfg)
        if reason:
            p.excluded.append((clip, akey, reason))
            return
        feats = align(native, m.duration, self.align_cfg)
        p.ok.append((clip, feats, akey, 0.0))
        p.nbytes += feats.values.nbytes

    def add_alias(self, clip: str, ext: str, stored: dict) -> None:
        """A stored result whose cache key this clip shares (same media, segment and config, other clip id):
        its arrays are not copied; a native row under this clip id points at them."""
        keep = ("key", "part", "offset", "length", "dim", "valid", "fingerprint", "duration", "audio_duration",
                "video_duration")
        self.aliases.append({"clip_id": clip, "stage": "native", "view": "", "extractor": ext, "status": "ok",
                             "reason": f"reused from {stored['clip_id']}", "seconds": 0.0, "run_id": self.run_id,
                             **{k: stored[k] for k in keep}})

    # -- commit --------------------------------------------------------------------------------
    def flush(self) -> None:
        for ext, pending in self.native.items():
            self._commit("native", "", ext, pending)
        for ext, pending in self.aligned.items():
            self._commit("aligned", self.align_cfg.view, ext, pending)
        if self.aliases:
            pid = cache_key.part_id(self.run_id, "alias", sorted((r["clip_id"], r["extractor"]) for r in self.aliases))
            index.commit(self.store.fs, self.aliases, f"native-alias-{pid}")
        self.native, self.aligned, self.aliases = {}, {}, []

    def _commit(self, stage: str, view: str, ext: str, p: Pending) -> None:
        if not (p.ok or p.failed or p.excluded):
            return
        sound = []
        for clip, feats, key, secs in p.ok:  # what `verify` would reject is a failure, never a commit
            why = entry_problems(feats.values, feats.start)
            if why:
                p.failed.append((clip, key, f"extract {ext}: {', '.join(why)} (not stored: `verify` rejects it)"))
                if stage == "native":
                    self.counts["ok"] -= 1
                    self.counts["failed"] += 1
            else:
                sound.append((clip, feats, key, secs))
        p.ok = sound
        entries = sorted([(c, k) for c, _, k, _ in p.ok] + [(c, k) for c, k, _ in p.failed + p.excluded])
        # named by content *and* run: a retried task of this run finds its part committed; a later run that
        # recomputes the same entries (after `verify --repair`) never reuses a damaged part's name
        pid = cache_key.part_id(self.run_id, stage, view, ext, entries, [c for c, *_ in p.failed])
        rows = []
        if p.ok:
            attrs = {"extractor": self.descriptions[ext], "stage": stage, "view": view,
                     "package": PACKAGE, "run_id": self.run_id}
            if stage == "aligned":
                attrs["align"] = self.align_dict
            part, spans = self.store.write_part(
                stage, view, ext, pid, [(c, f) for c, f, _, _ in p.ok], self.dtype, attrs
            )
            for (clip, feats, key, secs), (off, length) in zip(p.ok, spans):
                rows.append(self._row(clip, stage, view, ext, key, "ok", self.notes.get(clip, ""), secs)
                            | {"part": part, "offset": off, "length": length, "dim": feats.values.shape[1],
                               "valid": float(feats.mask.mean()) if len(feats.mask) else 0.0})
        for clip, key, reason in p.failed:
            rows.append(self._row(clip, stage, view, ext, key, "failed", reason, 0.0))
        for clip, key, reason in p.excluded:
            rows.append(self._row(clip, stage, view, ext, key, "excluded", reason, 0.0))
        index.commit(self.store.fs, rows, f"{stage}-{view or 'native'}-{ext}-{pid}")

    def _row(self, clip: str, stage: str, view: str, ext: str, key: str, status: str, reason: str,
             seconds: float) -> dict:
        meta = self.meta.get(clip)
        return {"clip_id": clip, "stage": stage, "view": view, "extractor": ext, "key": key, "status": status,
                "reason": reason, "seconds": seconds, "run_id": self.run_id, **(meta.row if meta else {})}


def meta_from_row(row: dict) -> ClipMeta:
    """The clip facts stored with a native result (for re-aligning without decoding)."""
    def num(v: object) -> float:  # null (None from Arrow, NaN from pandas): unknown
        return math.nan if v is None else float(v)

    return ClipMeta(row.get("fingerprint") or "", num(row["duration"]), num(row["audio_duration"]),
                    num(row["video_duration"]))


def decoded_meta(fingerprint: str, declared: float, audio_d: float, video_d: float) -> ClipMeta:
    duration = declared if declared and math.isfinite(declared) and declared > 0 else clip_duration(audio_d, video_d)
    return ClipMeta(fingerprint, duration, audio_d, video_d)
