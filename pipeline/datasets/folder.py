"""Every media file under a root is a clip; ids are relative paths, speaker is the parent folder."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pandas as pd

from pipeline.datasets import scan
from pipeline.datasets.manifest import DatasetAdapter, register_dataset
from pipeline.errors import ConfigError

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
        base = str(root.resolve())

        def row(path: str) -> tuple[str, str, str, str]:
            rel = os.path.relpath(path, base).replace(os.sep, "/")
            return rel[: len(rel) - len(scan.suffix(rel))], posixpath.dirname(rel), "", path

        listing = scan.files(base, MEDIA_SUFFIXES, self.skipped)
        t = scan.columns(listing, row, ["clip_id", "speaker", "session", "media_path"])
        return scan.sort(t, [("media_path", "ascending")]).to_pandas()
