"""Evaluation protocols as manifest columns: every split is seeded, reproducible and group-disjoint.

Each function takes the manifest and returns a Series aligned with it (a split name or a fold number),
which the recipes store as ``split_*``/``fold_*`` columns and the trainer reads. ``group`` is the
column that must never straddle two partitions (speaker, subject, session or video).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _groups(df: pd.DataFrame, group: str, seed: int) -> list[str]:
    groups = sorted(df[group].astype(str).unique())
    rng = np.random.default_rng(seed)
    return [groups[i] for i in rng.permutation(len(groups))]


def group_split(df: pd.DataFrame, group: str, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                seed: int = 0) -> pd.Series:
    """train/validation/test by whole groups (e.g. speaker-independent 60/20/20, Tran & Soleymani)."""
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    order = _groups(df, group, seed)
    n = len(order)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    name = {g: "train" for g in order[:n_train]}
    name |= {g: "validation" for g in order[n_train : n_train + n_val]}
    name |= {g: "test" for g in order[n_train + n_val :]}
    return df[group].astype(str).map(name).rename(f"split_{group}")


def group_kfold(df: pd.DataFrame, group: str, k: int, seed: int = 0) -> pd.Series:
    """Fold 0..k-1 per row, with the groups dealt round-robin so folds have equal numbers of groups."""
    order = _groups(df, group, seed)
    if k > len(order):
        raise ValueError(f"{k} folds need at least {k} {group}s; found {len(order)}")
    fold = {g: i % k for i, g in enumerate(order)}
    return df[group].astype(str).map(fold).astype(int).rename(f"fold_{group}_k{k}")


def leave_one_out(df: pd.DataFrame, group: str) -> pd.Series:
    """Fold = index of the row's group in sorted order (e.g. leave-one-session-out on IEMOCAP)."""
    order = sorted(df[group].astype(str).unique())
    return df[group].astype(str).map({g: i for i, g in enumerate(order)}).astype(int).rename(f"fold_lo_{group}")


def fixed_split(df: pd.DataFrame, column: str, mapping: dict[str, str]) -> pd.Series:
    """A split given by a column's values (e.g. MSP-IMPROV sessions 1-4 / 5 / 6)."""
    return df[column].astype(str).map(mapping).fillna("").rename(f"split_{column}")


def low_resource_rank(df: pd.DataFrame, stratify: str | None, seed: int = 0) -> pd.Series:
    """A rank in [0, 1) per row: the N % subset is ``rank < N/100``.

    Ranks are drawn within each class (stratified) by spreading a seeded permutation of each class
    evenly over [0, 1), so every N % subset keeps the class proportions and the subsets are nested
    as N grows (10 % is inside 20 %, ...). Apply to the training rows of a protocol.
    """
    rng = np.random.default_rng(seed)
    rank = pd.Series(np.zeros(len(df)), index=df.index, name="low_resource_rank")
    keys = df[stratify].astype(str) if stratify else pd.Series("all", index=df.index)
    for _, idx in sorted(keys.groupby(keys).groups.items()):
        idx = np.asarray(idx)
        perm = rng.permutation(len(idx))
        rank.loc[idx[perm]] = (np.arange(len(idx)) + rng.uniform(0, 1)) / len(idx)
    return rank


def low_resource_subset(df: pd.DataFrame, percent: int, rank_column: str = "low_resource_rank") -> pd.DataFrame:
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    return df[df[rank_column] < percent / 100.0]
