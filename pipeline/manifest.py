"""The manifest: one row per clip, the contract between dataset adapters and everything after them.

Required columns: ``clip_id`` (stable, unique), ``speaker``, ``session``, ``media_path``; optional
``audio_path`` (separate audio file), ``start``/``end`` (seconds, a segment of a longer file),
``split``, and any label columns. Adapters live in ``pipeline/datasets/`` and register themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, TypeVar

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError

REQUIRED = ("clip_id", "speaker", "session", "media_path")
OPTIONAL = {"audio_path": None, "start": np.nan, "end": np.nan, "split": ""}


class DatasetAdapter:
    """Turns a corpus root into a manifest. Subclasses set ``name``, ``description``, ``layout``."""

    name: ClassVar[str]
    description: ClassVar[str]
    layout: ClassVar[str]

    def manifest(self, root: Path) -> pd.DataFrame:
        raise NotImplementedError


_DATASETS: dict[str, type[DatasetAdapter]] = {}
A = TypeVar("A", bound=type[DatasetAdapter])
BUILTIN_MODULES = ("pipeline.datasets.demo", "pipeline.datasets.folder", "pipeline.datasets.csv_list")


def register_dataset(cls: A) -> A:
    if cls.name in _DATASETS and _DATASETS[cls.name] is not cls:
        raise ValueError(f"duplicate dataset adapter name {cls.name!r}")
    _DATASETS[cls.name] = cls
    return cls


def _load() -> None:
    import importlib

    for m in BUILTIN_MODULES:
        importlib.import_module(m)


def dataset_names() -> list[str]:
    _load()
    return sorted(_DATASETS)


def get_dataset(name: str) -> DatasetAdapter:
    _load()
    if name not in _DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]()


def normalise(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check the contract and fill optional columns; fails with the offending rows named."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ConfigError(f"{source}: manifest lacks column(s) {missing}")
    df = df.copy()
    for col, default in OPTIONAL.items():
        if col not in df.columns:
            df[col] = default
    df["clip_id"] = df["clip_id"].astype(str)
    dup = df["clip_id"][df["clip_id"].duplicated()].unique()
    if len(dup):
        raise ConfigError(f"{source}: clip_id not unique, e.g. {list(dup[:5])}")
    if df["media_path"].isna().any():
        bad = df.loc[df["media_path"].isna(), "clip_id"].tolist()[:5]
        raise ConfigError(f"{source}: clips without media_path, e.g. {bad}")
    for col in ("speaker", "session", "split"):
        df[col] = df[col].fillna("").astype(str)
    df["start"] = pd.to_numeric(df["start"], errors="raise").astype(float)
    df["end"] = pd.to_numeric(df["end"], errors="raise").astype(float)
    bad = df[(df["end"] <= df["start"])]
    if len(bad):
        raise ConfigError(f"{source}: end <= start for clips {bad['clip_id'].tolist()[:5]}")
    return df.reset_index(drop=True)


def build(dataset: str, root: str | Path, limit: int | None = None) -> pd.DataFrame:
    adapter = get_dataset(dataset)
    root = Path(root).expanduser()
    if not root.exists():
        raise ConfigError(f"--root {root} does not exist")
    df = normalise(adapter.manifest(root), f"dataset {dataset!r} at {root}")
    if limit is not None:
        df = df.head(limit)
    return df.reset_index(drop=True)
