"""Training data straight from a feature store: aligned sequences per modality, labels, protocols.

Reads are chunk-aware and lazy: a part (the arrays one extraction task wrote) is read once, whole,
and kept in a bounded LRU cache, so a batch costs numpy slicing, not one file open per sample, and
the store is never loaded whole. One sample is a fixed-length window (default 50 frames = 10 s at
5 Hz) of a clip, zero-padded with a validity mask; clip-level tasks use a clip's first window,
frame-level targets (Aff-Wild2) use every window.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from stores.feature_store import FeatureStore
from stores.views import DEFAULT_VIEW


class PartCache:
    """Whole parts of one extractor's aligned view, least recently used evicted past ``max_bytes``."""

    def __init__(self, store: FeatureStore, max_bytes: int = 2 << 30) -> None:
        self.store, self.max_bytes, self.nbytes = store, max_bytes, 0
        self.parts: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def get(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        if part in self.parts:
            self.parts.move_to_end(part)
            return self.parts[part]
        values = self.store.array(f"{part}/values")[:].astype(np.float32, copy=False)
        mask = self.store.array(f"{part}/mask")[:]
        self.parts[part] = (values, mask)
        self.nbytes += values.nbytes + mask.nbytes
        while self.nbytes > self.max_bytes and len(self.parts) > 1:
            _, (v, m) = self.parts.popitem(last=False)
            self.nbytes -= v.nbytes + m.nbytes
        return values, mask


@dataclass
class Batch:
    x: dict[str, torch.Tensor]  # modality -> [B, W, D]
    mask: dict[str, torch.Tensor]  # modality -> [B, W] bool
    y: torch.Tensor | None  # [B] (class / value) or [B, W] or [B, W, K] (frame targets)
    y_mask: torch.Tensor | None  # [B, W] for frame targets
    index: torch.Tensor  # sample indices


def _why_missing(live: pd.DataFrame, store: str, view: str, missing: list[str]) -> str:
    """An extractor that ran and failed on every clip needs its reason, not advice to run it again."""
    done = set(live.loc[live["status"] == "ok", "extractor"])
    failed = live[live["extractor"].isin(set(missing) - done) & (live["status"] == "failed")]
    if len(failed):
        e = str(failed["extractor"].iloc[0])
        rows = failed[failed["extractor"] == e]
        return (f"{e} failed on all {rows['clip_id'].nunique()} clip(s) of store {store} (first: "
                f"{rows['clip_id'].iloc[0]}: {rows['reason'].iloc[0]}); `pipeline status {store}` lists them")
    return (f"store {store} has no aligned {view} features for {missing}; "
            f"run `pipeline extract ... --extractors {','.join(missing)} --rate {view[:-2]}`")


class StoreData:
    """Samples of the clips that have every requested extractor in the aligned view."""

    def __init__(self, store: str, modalities: dict[str, str], view: str = DEFAULT_VIEW, label: str | None = None,
                 task: str = "classification", window: int = 50, frame_targets: str | None = None,
                 classes: list[str] | None = None, all_windows: bool = False, select: str | None = None,
                 max_frame_gap: int | None = None) -> None:
        self.store = FeatureStore(store)
        self.modalities, self.window, self.task, self.label = modalities, window, task, label
        self.frame_targets, self.all_windows = frame_targets, all_windows
        self.norm: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        live = self.store.index()
        ok = live[(live["stage"] == "aligned") & (live["view"] == view) & (live["status"] == "ok")]
        exts = list(modalities.values()) + ([frame_targets] if frame_targets else [])
        missing = [e for e in exts if e not in set(ok["extractor"])]
        if missing:
            raise ValueError(_why_missing(live, store, view, missing))
        rows = {e: ok[ok["extractor"] == e].set_index("clip_id") for e in exts}
        clips = sorted(set.intersection(*[set(r.index) for r in rows.values()]))
        manifest = self.store.manifest().set_index("clip_id")
        self.meta = manifest.loc[[c for c in clips if c in manifest.index]].copy()
        if select:
            column, value = select.split("=", 1)
            if column not in self.meta.columns:
                raise ValueError(f"select: column {column!r} not in the manifest; columns: {list(self.meta.columns)}")
            self.meta = self.meta[self.meta[column].astype(str) == value]
            if self.meta.empty:
                raise ValueError(f"select {select!r} matches no clip with the features; "
                                 f"{column} has {sorted(manifest[column].astype(str).unique())[:10]}")
        self.misaligned: list[str] = []
        if max_frame_gap is not None and {"audio", "visual"} <= set(modalities):
            # Tran & Soleymani: drop a clip whose audio and visual *feature* sequences differ by more than N
            # frames once low-confidence frames are gone (the view's masks, counted from the index)
            n = {m: (rows[e].loc[self.meta.index, "valid"].fillna(1.0) * rows[e].loc[self.meta.index, "length"]).round()
                 for m, e in modalities.items() if m in ("audio", "visual")}
            bad = (n["audio"] - n["visual"]).abs() > max_frame_gap
            self.misaligned = list(self.meta.index[bad.to_numpy()])
            self.meta = self.meta[~bad.to_numpy()]
        if label is not None:
            if label not in self.meta.columns:
                raise ValueError(f"label column {label!r} not in the manifest; columns: {list(self.meta.columns)}")
            self.meta = self.meta[self.meta[label].notna() & (self.meta[label].astype(str) != "")]
        self.clips = list(self.meta.index)
        self.rows = {e: r.loc[self.clips, ["part", "offset", "length", "dim"]] for e, r in rows.items()}
        self.dims = {m: int(self.rows[e]["dim"].iloc[0]) for m, e in modalities.items()} if self.clips else {}
        self.caches = {e: PartCache(self.store) for e in exts}
        self._geom = {}  # extractor -> (part code per clip, offsets, lengths, part names): no pandas per batch
        for e, r in self.rows.items():
            codes, names = pd.factorize(r["part"])
            self._geom[e] = (codes.astype(np.int64), r["offset"].to_numpy(np.int64), r["length"].to_numpy(np.int64),
                             list(names))
        self.dims_targets, self.target_names = 0, []
        if frame_targets and self.clips:
            self.dims_targets = int(self.rows[frame_targets]["dim"].iloc[0])
            self.target_names = list(self.store.group_attrs("aligned", view, frame_targets).get(
                "feature_names", [f"target_{i}" for i in range(self.dims_targets)]))
        if label is not None and task == "classification":
            self.classes = classes or sorted(self.meta[label].astype(str).unique())
            self.targets = self.meta[label].astype(str).map({c: i for i, c in enumerate(self.classes)}).to_numpy()
        elif label is not None:
            self.classes, self.targets = [], self.meta[label].astype(float).to_numpy()
        else:
            self.classes, self.targets = [], None
        self.samples = self._samples()

    def _samples(self) -> np.ndarray:
        """(clip index, window start) pairs: one per clip, or every window for frame-level targets."""
        out = []
        lengths = self.rows[next(iter(self.rows))]["length"].to_numpy()
        for i, n in enumerate(lengths):
            starts = range(0, max(1, int(n)), self.window) if self.frame_targets or self.all_windows else [0]
            out += [(i, s) for s in starts]
        return np.array(out, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.samples)

    def clip_of(self, sample: np.ndarray) -> np.ndarray:
        return self.samples[sample, 0]

    def _window(self, ext: str, clips: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[B, W, D] values and [B, W] mask; one vectorised gather per part touched by the batch."""
        codes, offsets, lengths, names = self._geom[ext]
        n = np.clip(lengths[clips] - starts, 0, self.window)
        steps = np.arange(self.window)
        valid = steps[None, :] < n[:, None]
        idx = np.where(valid, (offsets[clips] + starts)[:, None] + steps[None, :], 0)
        batch_parts = codes[clips]
        uniq = np.unique(batch_parts)
        if len(uniq) == 1:
            values, m = self.caches[ext].get(names[uniq[0]])
            out, mask = values[idx], m[idx]
        else:
            out = mask = None
            for code in uniq:
                values, m = self.caches[ext].get(names[code])
                sel = np.flatnonzero(batch_parts == code)
                if out is None:
                    out = np.empty((len(clips), self.window, values.shape[1]), np.float32)
                    mask = np.empty((len(clips), self.window), bool)
                out[sel], mask[sel] = values[idx[sel]], m[idx[sel]]
        out[~valid] = 0.0
        return out, mask & valid

    def samples_of(self, clips: np.ndarray) -> np.ndarray:
        """The samples (rows of ``samples``) of the clips at positions ``clips``."""
        return np.flatnonzero(np.isin(self.samples[:, 0], clips))

    def epoch_order(self, samples: np.ndarray, rng: np.random.Generator, block: int = 4) -> np.ndarray:
        """A shuffled epoch that is chunk-aware: parts in random order, samples shuffled within blocks
        of ``block`` parts, so a batch touches few parts (the shard shuffle of web-scale loaders)."""
        codes = self._geom[next(iter(self._geom))][0][self.samples[samples, 0]]
        return chunk_aware_order(samples, codes, rng, block)

    def batch(self, index: np.ndarray) -> Batch:
        index = np.asarray(index)
        clips, starts = self.samples[index, 0], self.samples[index, 1]
        x, mask = {}, {}
        for mod, ext in self.modalities.items():
            v, m = self._window(ext, clips, starts)
            if mod in self.norm:
                mean, std = self.norm[mod]
                v = (v - mean) / std
                v[~m] = 0.0
            x[mod], mask[mod] = torch.from_numpy(v), torch.from_numpy(m)
        y = y_mask = None
        if self.frame_targets:
            v, m = self._window(self.frame_targets, clips, starts)
            y, y_mask = torch.from_numpy(v), torch.from_numpy(m)
        elif self.targets is not None:
            t = self.targets[clips]
            y = torch.from_numpy(t.astype(np.int64 if self.task == "classification" else np.float32))
        return Batch(x, mask, y, y_mask, torch.from_numpy(index))

    def fit_norm(self, clips: np.ndarray) -> None:
        """Per-feature standardisation from the valid frames of the training clips only."""
        for mod, ext in self.modalities.items():
            rows = self.rows[ext].iloc[np.asarray(clips)]
            total, sq, n = 0.0, 0.0, 0
            for part, off, length in zip(rows["part"], rows["offset"], rows["length"]):
                values, m = self.caches[ext].get(part)
                seg = values[int(off) : int(off) + int(length)][m[int(off) : int(off) + int(length)]].astype(np.float64)
                total, sq, n = total + seg.sum(0), sq + (seg**2).sum(0), n + len(seg)
            if n:
                mean = total / n
                std = np.sqrt(np.maximum(sq / n - mean**2, 0.0))
                self.norm[mod] = (mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32))

    def norm_state(self) -> dict[str, torch.Tensor]:
        """The standardisation statistics as tensors, saved beside model weights (``weights_only`` loads)."""
        return {f"{mod}.{k}": torch.from_numpy(a) for mod, (mean, std) in self.norm.items()
                for k, a in (("mean", mean), ("std", std))}

    def load_norm(self, state: dict[str, torch.Tensor]) -> bool:
        """Use saved statistics (pretraining's, or a run's) for every modality they cover; False if any lacks."""
        norm = {}
        for mod in self.modalities:
            if f"{mod}.mean" not in state:
                return False
            norm[mod] = (state[f"{mod}.mean"].numpy(), state[f"{mod}.std"].numpy())
        self.norm = norm
        return True

    def pooled(self, modality: str) -> np.ndarray:
        """Clip-level vectors: the mean of each clip's valid aligned frames (TFN, classical models)."""
        ext = self.modalities[modality]
        rows = self.rows[ext]
        out = np.zeros((len(self.clips), int(rows["dim"].iloc[0])), np.float32)
        for i, (part, off, n) in enumerate(zip(rows["part"], rows["offset"], rows["length"])):
            values, m = self.caches[ext].get(part)
            seg, sm = values[int(off) : int(off) + int(n)], m[int(off) : int(off) + int(n)]
            out[i] = seg[sm].mean(axis=0) if sm.any() else 0.0
        return out

    def column(self, name: str) -> pd.Series:
        return self.meta[name]


def chunk_aware_order(samples: np.ndarray, parts: np.ndarray, rng: np.random.Generator, block: int = 4) -> np.ndarray:
    """``samples`` (whose part codes are ``parts``) with parts in random order, taken ``block`` parts at a
    time and shuffled within each block. One sort: O(n log n) in the samples, whatever the number of parts."""
    uniq, which = np.unique(parts, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[rng.permutation(len(uniq))] = np.arange(len(uniq))  # each part's place in a random part order
    return samples[np.lexsort((rng.random(len(samples)), rank[which.reshape(-1)] // block))]
