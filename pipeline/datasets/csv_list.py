"""A user's own clip list (CSV or Parquet): paths, optional segments, speakers and label columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.datasets.manifest import DatasetAdapter, register_dataset
from pipeline.errors import ConfigError

ALIASES = {"path": "media_path", "file": "media_path", "video": "media_path", "audio": "audio_path",
           "id": "clip_id", "speaker_id": "speaker"}


@register_dataset
class CsvDataset(DatasetAdapter):
    name = "csv"
    description = "a CSV/Parquet list of clips: media_path (or path), optional clip_id, audio_path, start, end, labels"
    layout = "--root list.csv (or .parquet); relative paths are resolved against the file's folder"

    def manifest(self, root: Path) -> pd.DataFrame:
        if root.is_dir():
            found = [root / n for n in ("manifest.csv", "manifest.parquet", "clips.csv") if (root / n).exists()]
            if not found:
                raise ConfigError(f"--root {root} is a folder without manifest.csv; pass the CSV file itself")
            root = found[0]
        df = pd.read_parquet(root) if root.suffix == ".parquet" else pd.read_csv(root, skipinitialspace=True)
        df = df.rename(columns={k: v for k, v in ALIASES.items() if k in df.columns and v not in df.columns})
        if "media_path" not in df.columns:
            raise ConfigError(f"{root}: needs a media_path (or path) column; it has {list(df.columns)}")
        base = root.parent
        for col in ("media_path", "audio_path"):
            if col in df.columns:
                df[col] = [None if pd.isna(p) or p == "" else str((base / str(p)).resolve()) for p in df[col]]
        if "clip_id" not in df.columns:
            df["clip_id"] = [Path(p).relative_to(base.resolve()).with_suffix("").as_posix()
                             if Path(p).is_relative_to(base.resolve()) else Path(p).stem for p in df["media_path"]]
        for col in ("speaker", "session"):
            if col not in df.columns:
                df[col] = ""
        return df
