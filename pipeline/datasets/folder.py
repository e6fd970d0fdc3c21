"""Every media file under a root is a clip; ids are relative paths, speaker is the parent folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import ConfigError
from pipeline.manifest import DatasetAdapter, register_dataset

MEDIA_SUFFIXES = {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".flv", ".webm", ".mpg", ".mpeg",
                  ".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac"}


@register_dataset
class FolderDataset(DatasetAdapter):
    name = "folder"
    description = "every audio/video file under --root becomes a clip (no labels)"
    layout = "<root>/**/<name>.{mp4,mkv,avi,flv,webm,wav,flac,mp3,m4a,...}"

    def manifest(self, root: Path) -> pd.DataFrame:
        if not root.is_dir():
            raise ConfigError(f"--root {root} is a file; --dataset folder takes a folder of media files (for a CSV "
                              "or Parquet list of clips, with labels or segments, use --dataset csv)")
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file())
        rows = []
        for p in paths:
            rel = p.relative_to(root)
            rows.append({
                "clip_id": rel.with_suffix("").as_posix(),
                "speaker": rel.parent.as_posix() if rel.parent != Path(".") else "",
                "session": "",
                "media_path": str(p.resolve()),
            })
        return pd.DataFrame(rows, columns=["clip_id", "speaker", "session", "media_path"])
