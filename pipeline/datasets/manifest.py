"""The manifest: one row per clip, the contract between dataset adapters and everything after them.

Required columns: ``clip_id`` (stable, unique), ``speaker``, ``session``, ``media_path``; optional
``audio_path`` (separate audio file), ``start``/``end`` (seconds, a segment of a longer file),
``split``, and any label columns. Adapters live in ``pipeline/datasets/`` and register themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.datasets.checks import CheckReport

REQUIRED = ("clip_id", "speaker", "session", "media_path")
OPTIONAL = {"audio_path": None, "annotation_path": None, "start": np.nan, "end": np.nan, "split": ""}


class DatasetAdapter:
    """Turns a corpus root into a manifest. Subclasses set ``name``, ``description``, ``layout``.

    ``expected`` holds the official release's counts (clips, speakers, per-class counts of
    ``label_column``); ``pipeline datasets check`` compares a user's copy against them.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    layout: ClassVar[str]
    #: extractors always run for this dataset (frame-level targets stored as streams)
    targets: ClassVar[tuple[str, ...]] = ()
    expected: ClassVar[dict] = {}
    label_column: ClassVar[str | None] = None
    #: what each protocol column of the manifest holds, in words (a preset's paper spec compares them)
    protocol_rules: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.skipped: list[str] = []  # "path: reason" of what the listing could not read (warned, not fatal)

    def manifest(self, root: Path) -> pd.DataFrame:
        raise NotImplementedError

    def check(self, root: Path) -> CheckReport:
        """Counts against the official release and unusable files; never raises for a bad copy."""
        from pipeline.datasets.checks import CheckReport, compare, media_problems

        report = CheckReport(self.name, str(root))
        try:
            df = normalise(self.manifest(Path(root)), f"dataset {self.name!r} at {root}")
        except (ConfigError, OSError, ValueError) as exc:
            report.errors.append(str(exc))
            return report
        compare(report, "clips", len(df), self.expected.get("clips"))
        compare(report, "speakers", int(df["speaker"].nunique()), self.expected.get("speakers"))
        if self.label_column and self.label_column in df.columns:
            counts = {str(k): int(v) for k, v in df[self.label_column].value_counts().sort_index().items() if k}
            compare(report, f"{self.label_column} counts", counts, self.expected.get(self.label_column))
        if "known_issue" in df.columns:
            report.known_issues = [f"{c}: {i}" for c, i in zip(df["clip_id"], df["known_issue"]) if i]
        media_problems(df, report)
        self.extra_checks(df, report)
        return report

    def extra_checks(self, manifest: pd.DataFrame, report: CheckReport) -> None:
        """Corpus-specific checks (e.g. annotation rows vs video frames)."""


_DATASETS: dict[str, type[DatasetAdapter]] = {}
A = TypeVar("A", bound=type[DatasetAdapter])
BUILTIN_MODULES = (
    "pipeline.datasets.demo", "pipeline.datasets.folder", "pipeline.datasets.csv_list",
    "pipeline.datasets.voxceleb2", "pipeline.datasets.crema_d", "pipeline.datasets.ravdess",
    "pipeline.datasets.iemocap", "pipeline.datasets.msp_improv", "pipeline.datasets.affwild2",
)


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
    ids = df["clip_id"]
    blank = (ids.isna() | ids.astype(str).str.strip().eq("")).to_numpy()
    if blank.any():  # astype(str) would make every missing id "nan": one clip's results overwriting another's
        rows = np.flatnonzero(blank)
        raise ConfigError(f"{source}: {len(rows)} clip(s) with an empty clip_id (data row(s) "
                          f"{', '.join(str(r + 1) for r in rows[:5])}, e.g. media {df['media_path'].iloc[rows[0]]!r}); "
                          "give every row a clip_id, or leave the column out to name clips after their files")
    df["clip_id"] = ids.astype(str)
    if _repeats(pa.array(df["clip_id"], pa.string())):
        dup = df["clip_id"][df["clip_id"].duplicated()].unique()
        raise ConfigError(f"{source}: clip_id not unique, e.g. {list(dup[:5])}")
    if df["media_path"].isna().any():
        bad = df.loc[df["media_path"].isna(), "clip_id"].tolist()[:5]
        raise ConfigError(f"{source}: clips without media_path, e.g. {bad}")
    for col in ("speaker", "session", "split"):
        df[col] = df[col].fillna("").astype(str)
    df["start"] = pd.to_numeric(df["start"], errors="raise").astype(float)
    df["end"] = pd.to_numeric(df["end"], errors="raise").astype(float)
    bad = (df["end"] <= df["start"]).to_numpy()  # a mask: df[mask] of 1.1 M rows cost ~60 MB even when empty
    if bad.any():
        raise ConfigError(f"{source}: end <= start for clips {df['clip_id'][bad].tolist()[:5]}")
    bad = (df["start"] < 0).to_numpy() | (df["end"] < 0).to_numpy()
    if bad.any():
        raise ConfigError(f"{source}: a negative start or end for clips {df['clip_id'][bad].tolist()[:5]}; segment "
                          "times are seconds from the start of the media file (>= 0)")
    return df.reset_index(drop=True)


def _repeats(ids: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a value occurs twice, by sorting (a hash table of 1.1 M clip ids costs ~150 MB more, pandas'
    ``duplicated`` ~170 MB); a column already in order (the adapters sort theirs) is not sorted again."""
    a = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if len(a) < 2 or pc.all(pc.greater(a[1:], a[:-1])).as_py():
        return False
    s = a.take(pc.sort_indices(a))
    return bool(pc.any(pc.equal(s[1:], s[:-1])).as_py())


def build(dataset: str, root: str | Path, limit: int | None = None) -> pd.DataFrame:
    """The manifest; refuses a corpus with git-LFS pointer files in place of media (see ``build_with_refusals``)."""
    return build_with_refusals(dataset, root, limit, keep_refused=False)[0]


def build_with_refusals(dataset: str, root: str | Path, limit: int | None = None,
                        keep_refused: bool = True) -> tuple[pd.DataFrame, dict[str, str]]:
    """``build_listing`` without the list of unreadable paths."""
    return build_listing(dataset, root, limit, keep_refused)[:2]


def build_listing(dataset: str, root: str | Path, limit: int | None = None, keep_refused: bool = True,
                  select: str | None = None) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """The manifest, the clips that cannot be processed at all (clip_id -> reason), and the paths the
    listing could not read ("path: reason": an unreadable folder, a symlink loop), to warn about.

    A git-LFS pointer in place of a media file is such a clip. Without ``keep_refused`` (no
    ``--allow-failures``) one pointer refuses the run up front; with it, each pointer becomes that
    clip's failed result, with the same reason, and the rest of the corpus runs.
    """
    adapter = get_dataset(dataset)
    root = Path(root).expanduser()
    if not root.exists():
        raise ConfigError(f"--root {root} does not exist")
    df = normalise(adapter.manifest(root), f"dataset {dataset!r} at {root}")
    if df.empty:
        hint = (f"{root} is a file: for a clip list pass --dataset csv" if root.is_file() and dataset != "csv"
                else f"expected layout: {adapter.layout}; `pipeline datasets check --dataset {dataset} --root "
                     f"{root}` says what is missing")
        raise ConfigError(f"dataset {dataset!r} at {root}: no clips found ({hint})")
    if select:  # a subset the experiment defines (RAVDESS speech takes), before --limit
        column, value = select.split("=", 1)
        if column not in df.columns:
            raise ConfigError(f"select {select!r}: dataset {dataset!r} has no column {column!r}; columns: "
                              f"{sorted(df.columns)}")
        df = df[df[column].astype(str) == value].reset_index(drop=True)
        if df.empty:
            raise ConfigError(f"select {select!r}: no clip of {dataset!r} at {root} has {column} = {value}")
    if limit is not None:
        df = df.head(limit)
    from pipeline.datasets.checks import lfs_pointers

    bad = set(lfs_pointers(_unique_paths(df)))
    fix = "run `git lfs pull` in your clone or download the release archives"
    if bad and not keep_refused:
        raise ConfigError(f"dataset {dataset!r}: {len(bad)} media files are git-LFS pointers, not media "
                          f"(e.g. {sorted(bad)[0]}); {fix} (or pass --allow-failures to record them as failed)")
    refused = {}
    for r in df.itertuples(index=False) if bad else ():
        pointer = next((p for p in (r.media_path, r.audio_path) if isinstance(p, str) and p in bad), None)
        if pointer:
            refused[str(r.clip_id)] = f"input: {pointer} is a git-LFS pointer, not media ({fix})"
    return df.reset_index(drop=True), refused, adapter.skipped


def _unique_paths(df: pd.DataFrame, batch: int = 65536) -> Iterator[str]:
    """The media and audio paths, each once per batch of rows (a file's segments sit together), as a batch of
    Python strings at a time: not a list of 1.1 M, nor a hash table of them (~150 MB)."""
    for col in ("media_path", "audio_path"):
        paths = pa.array(df[col], pa.string())
        for lo in range(0, len(paths), batch):
            yield from dict.fromkeys(p for p in paths.slice(lo, batch).to_pylist() if p)
