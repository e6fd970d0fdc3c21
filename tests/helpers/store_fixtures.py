"""Generated feature stores (through the real store writer and index) for trainer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from extractors.base import Features
from stores import index
from stores.feature_store import FeatureStore


def synthetic_store(path: Path, n_speakers: int = 10, per_class: int = 2, classes: int = 4, t: int = 20,
                    audio_dim: int = 8, visual_dim: int = 6, frame_targets: bool = False, seed: int = 0,
                    faceless: int = 0) -> Path:
    """Classes separable in both modalities (class-specific means), speakers disjoint across splits; the first
    ``faceless`` clips have valid visual frames only in their first 2 windows (a face lost: Tran's rule)."""
    rng = np.random.default_rng(seed)
    store = FeatureStore(str(path), create=True)
    means_a, means_v = rng.normal(0, 1.5, (classes, audio_dim)), rng.normal(0, 1.5, (classes, visual_dim))
    rows, manifest, streams = [], [], {"egemaps": [], "face_hog": [], "affwild2_va": []}
    for s in range(n_speakers):
        split = "train" if s < n_speakers * 0.6 else "validation" if s < n_speakers * 0.8 else "test"
        for c in range(classes):
            for k in range(per_class):
                clip = f"s{s:02d}_c{c}_{k}"
                n = t - int(rng.integers(0, t // 3))
                a = means_a[c] + rng.normal(0, 1.0, (n, audio_dim))
                v = means_v[c] + rng.normal(0, 1.0, (n, visual_dim))
                start = np.arange(n) / 5.0
                streams["egemaps"].append((clip, Features(a, start, start + 0.2)))
                seen = np.arange(n) < (2 if len(manifest) < faceless else n)
                streams["face_hog"].append((clip, Features(v, start, start + 0.2, seen)))
                va = np.stack([np.tanh(a[:, 0] - v[:, 0]), np.tanh(a[:, 1] + v[:, 1])], 1)
                streams["affwild2_va"].append((clip, Features(va, start, start + 0.2, rng.random(n) > 0.1)))
                manifest.append({"clip_id": clip, "speaker": f"s{s:02d}", "session": f"s{s:02d}",
                                 "media_path": f"/nonexistent/{clip}.mp4", "label": f"class{c}", "split": split,
                                 "valence": float(means_a[c][0])})
    for ext, items in streams.items():
        if ext == "affwild2_va" and not frame_targets:
            continue
        store.set_group_attrs("aligned", "5hz", ext, {"name": ext, "feature_names":
                              ["valence", "arousal"] if ext == "affwild2_va" else []})
        part, spans = store.write_part("aligned", "5hz", ext, f"p_{ext}", items, "float32", {})
        for (clip, f), (off, length) in zip(items, spans):
            rows.append({"clip_id": clip, "stage": "aligned", "view": "5hz", "extractor": ext, "key": "k",
                         "status": "ok", "reason": "", "part": part, "offset": off, "length": length,
                         "dim": f.values.shape[1], "valid": float(f.mask.mean())})
    index.commit(store.fs, rows, "synthetic")
    store.save_manifest(pd.DataFrame(manifest))
    return path


def small_store(path: Path, parts: int = 12, clips_per_part: int = 3, conf: bool = True) -> FeatureStore:
    """A store as a run leaves it (the group's provenance, the manifest), its parts written directly."""
    rng = np.random.default_rng(0)
    s = FeatureStore(str(path), create=True)
    s.set_group_attrs("native", "", "x", {"name": "x"})
    ids = [f"clip{p:02d}_{c}" for p in range(parts) for c in range(clips_per_part)]
    s.save_manifest(pd.DataFrame({"clip_id": ids}))
    for p in range(parts):
        items, rows = [], []
        for c in range(clips_per_part):
            n = int(rng.integers(5, 40))
            mask = rng.random(n) > 0.3
            mask[:] = False if c == 0 else mask  # an all-False mask chunk must be stored and verified too
            items.append((f"clip{p:02d}_{c}", Features(rng.normal(size=(n, 7)).astype(np.float32), np.arange(n) / 5,
                                                        np.arange(1, n + 1) / 5, mask,
                                                        rng.random(n).astype(np.float32) if conf else None)))
        part, spans = s.write_part("native", "", "x", f"p{p:02d}", items, "float32", {"extractor": {"name": "x"}})
        for (clip, _f), (off, length) in zip(items, spans):
            rows.append({"clip_id": clip, "stage": "native", "view": "", "extractor": "x", "key": f"k-{clip}",
                         "status": "ok", "part": part, "offset": off, "length": length, "dim": 7, "duration": 1.0})
        index.commit(s.fs, rows, f"p{p:02d}")
    return s
