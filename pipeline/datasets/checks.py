"""Checking a user's copy of a corpus: counts against the official release, and unusable files.

`pipeline datasets check` prints a :class:`CheckReport`; a copy is unusable (non-zero exit) when its
manifest cannot be built, when it holds no clip, or when media files are git-LFS pointers or empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"


def is_lfs_pointer(path: str | Path) -> bool:
    """A git-LFS pointer: a tiny text file standing where the media should be (zip download, no `git lfs`)."""
    p = Path(path)
    try:
        if p.stat().st_size > 1024:
            return False
        with open(p, "rb") as f:
            return f.read(len(LFS_MAGIC)) == LFS_MAGIC
    except OSError:
        return False


@dataclass
class CheckReport:
    dataset: str
    root: str
    found: dict[str, object] = field(default_factory=dict)
    expected: dict[str, object] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    lfs_pointers: list[str] = field(default_factory=list)
    known_issues: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.errors and not self.lfs_pointers and not self.empty and bool(self.found.get("clips"))


def media_problems(manifest: pd.DataFrame, report: CheckReport,
                   columns: tuple[str, ...] = ("media_path", "audio_path")) -> None:
    """Fill missing / empty / LFS-pointer lists from the manifest's file columns."""
    for col in columns:
        if col not in manifest.columns:
            continue
        for path in manifest[col].dropna().unique():
            p = Path(str(path))
            if not p.exists():
                report.missing.append(str(p))
            elif p.stat().st_size == 0:
                report.empty.append(str(p))
            elif is_lfs_pointer(p):
                report.lfs_pointers.append(str(p))
            elif not _readable(p):
                report.unreadable.append(str(p))
    if report.lfs_pointers:
        report.errors.append(
            f"{len(report.lfs_pointers)} media files are git-LFS pointer files, not media: fetch the real files "
            "(`git lfs pull` in a clone, or the release archives) before extracting"
        )
    if report.empty:
        report.errors.append(f"{len(report.empty)} media files are empty (0 bytes): re-copy them")


def _readable(path: Path) -> bool:
    """Container header opens and has a stream (no decoding)."""
    from pipeline.media.decode import probe

    try:
        info = probe(str(path))
    except Exception:  # noqa: BLE001 - any failure means unreadable
        return False
    return info.has_audio or info.has_video


def extra_files(folder: Path, pattern: str, known: set[str]) -> list[str]:
    """Files in a media folder that the recipe did not take (wrong name, stray copies)."""
    if not folder.exists():
        return []
    return sorted(str(p) for p in folder.glob(pattern) if p.stem not in known and not p.name.startswith("."))


def compare(report: CheckReport, name: str, found: object, expected: object) -> None:
    """Record a count and warn (not fail) when it differs from the official release."""
    report.found[name] = found
    report.expected[name] = expected
    if expected is not None and found != expected:
        report.warnings.append(f"{name}: found {found}, the official release has {expected}")



def lfs_pointers(paths: Iterable[str]) -> list[str]:
    return [p for p in paths if is_lfs_pointer(p)]
