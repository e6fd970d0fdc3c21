"""Train/validation/test index sets from a protocol column of the manifest, plus low-resource subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd


def partitions(meta: pd.DataFrame, column: str, folds: tuple[int, ...] = ()) -> list[tuple[str, dict]]:
    """[(name, {"train": idx, "validation": idx, "test": idx})] over clip positions in ``meta``.

    A split column (train/validation/test) gives one partition; a fold column gives one per fold k
    (test = k, validation = k+1 mod K, train = the rest), so groups stay disjoint like the folds.
    """
    if column not in meta.columns:
        raise ValueError(f"protocol column {column!r} not in the manifest; columns: {list(meta.columns)}")
    values = meta[column]
    if values.astype(str).isin(["train", "validation", "test"]).any():
        v = values.astype(str).to_numpy()
        parts = {p: np.flatnonzero(v == p) for p in ("train", "validation", "test")}
        if not len(parts["train"]) or not len(parts["test"]):
            raise ValueError(f"protocol {column!r} has no train or no test clips among the loaded clips")
        if not len(parts["validation"]):
            parts["validation"] = parts["test"]
        return [("split", parts)]
    f = values.astype(int).to_numpy()
    ks = sorted(set(f))
    out = []
    for i, k in enumerate(ks):
        if folds and k not in folds:
            continue
        val = ks[(i + 1) % len(ks)]
        out.append((f"fold_{k}", {"train": np.flatnonzero((f != k) & (f != val)),
                                  "validation": np.flatnonzero(f == val), "test": np.flatnonzero(f == k)}))
    return out


def low_resource(meta: pd.DataFrame, train: np.ndarray, percent: int, stratify: str | None,
                 seed: int | list[int]) -> np.ndarray:
    """N % of the training clips, stratified: each class keeps round(N % of its clips) and at least one, so
    no class is ever absent (at 10 % of a small fold, unstratified or rounded-down subsets drop classes).
    Nested as N grows for one seed (10 % is inside 20 %); the trainer seeds it per fold and repeat."""
    if percent >= 100:
        return train
    sub = meta.iloc[train]
    keys = sub[stratify].astype(str).to_numpy() if stratify in sub.columns else np.zeros(len(sub), dtype=str)
    rng = np.random.default_rng(seed)
    keep = []
    for k in sorted(set(keys)):
        pos = np.flatnonzero(keys == k)
        order = pos[rng.permutation(len(pos))]
        keep.extend(order[: max(1, round(percent / 100.0 * len(pos)))])
    return train[np.sort(np.asarray(keep, dtype=np.int64))]
