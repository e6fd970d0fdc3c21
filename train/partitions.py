"""Train/validation/test index sets from a protocol column of the manifest, plus low-resource subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd


def partitions(meta: pd.DataFrame, column: str, folds: tuple[int, ...] = (), validation: str = "inner",
               group: str = "speaker", fraction: float = 0.1, seed: int = 0) -> list[tuple[str, dict]]:
    """[(name, {"train": idx, "validation": idx, "test": idx})] over clip positions in ``meta``.

    A split column (train/validation/test) gives one partition; a fold column gives one per fold k with
    test = k. Validation (model selection) comes from inside the training part by default (``inner``:
    whole ``group``s held out, e.g. speakers), so a leave-one-session-out fold trains on all other
    sessions as the papers do; ``next_fold`` takes fold k+1 instead (one fold fewer to train on). A split
    without a test partition (Aff-Wild2's official Train -> Validation: test labels are not public)
    reports on its validation partition and selects models on an inner hold-out of train.
    """
    if column not in meta.columns:
        raise ValueError(f"protocol column {column!r} not in the manifest; columns: {list(meta.columns)}")
    if validation not in ("inner", "next_fold"):
        raise ValueError(f"validation must be inner or next_fold, not {validation!r}")
    values = meta[column]
    if values.astype(str).isin(["train", "validation", "test"]).any():
        v = values.astype(str).to_numpy()
        parts = {p: np.flatnonzero(v == p) for p in ("train", "validation", "test")}
        if not len(parts["test"]):  # report on the official validation partition
            parts["test"], parts["validation"] = parts["validation"], np.array([], dtype=np.int64)
        if not len(parts["train"]) or not len(parts["test"]):
            raise ValueError(f"protocol {column!r} has no train clips or neither test nor validation clips "
                             "among the loaded clips")
        if not len(parts["validation"]):
            parts["train"], parts["validation"] = inner_validation(meta, parts["train"], group, fraction, seed)
        return [("split", parts)]
    f = values.astype(int).to_numpy()
    ks = sorted(set(f))
    out = []
    for i, k in enumerate(ks):
        if folds and k not in folds:
            continue
        if validation == "next_fold":
            val = ks[(i + 1) % len(ks)]
            parts = {"train": np.flatnonzero((f != k) & (f != val)), "validation": np.flatnonzero(f == val)}
        else:
            parts = dict(zip(("train", "validation"),
                             inner_validation(meta, np.flatnonzero(f != k), group, fraction, [seed, k])))
        out.append((f"fold_{k}", {**parts, "test": np.flatnonzero(f == k)}))
    return out


def inner_validation(meta: pd.DataFrame, train: np.ndarray, group: str, fraction: float,
                     seed: int | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(train', validation): ``fraction`` of the training part's groups (at least one, never all) held out,
    seeded; clips themselves when the manifest has no such column or only one group."""
    keys = meta.iloc[train][group].astype(str).to_numpy() if group in meta.columns else None
    if keys is None or len(set(keys)) < 2:
        keys = np.arange(len(train)).astype(str)
    names = sorted(set(keys))
    rng = np.random.default_rng(seed)
    n_val = min(len(names) - 1, max(1, round(fraction * len(names))))
    held = {names[i] for i in rng.permutation(len(names))[:n_val]}
    is_val = np.isin(keys, sorted(held))
    return train[~is_val], train[is_val]


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
