"""Aff-Wild2 (ABAW valence-arousal): per-video annotation files become frame-level targets.

Each annotation ``<name>.txt`` is a clip; ``<video>_left``/``_right`` are the two subjects of one
video (same media; ``endswith``, since base names hold underscores). The targets are stored as the
``affwild2_va`` stream (fps from the container; ``-5`` = invalid frame) and aligned like any feature.
Folds are disjoint by *video*, so the two subjects of a video never straddle folds.
Facts: ../shared/reference/corpora.md section 6.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.datasets import protocols
from pipeline.datasets.manifest import DatasetAdapter, register_dataset
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.datasets.checks import CheckReport

SPLIT_DIRS = {"train_set": "train", "training_set": "train", "validation_set": "validation"}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


def base_video(name: str) -> tuple[str, str]:
    for side in ("left", "right"):
        if name.endswith(f"_{side}"):
            return name[: -len(side) - 1], side
    return name, "main"


@register_dataset
class AffWild2(DatasetAdapter):
    name = "aff-wild2"
    description = "Aff-Wild2 VA (ABAW): frame-level valence/arousal targets, official Train/Validation sets"
    layout = ("<root>/**/{VA_Estimation_Challenge|VA_Set}/{Train_Set|Training_Set,Validation_Set}/<name>.txt, "
              "<root>/**/<video>.{mp4,avi}")
    targets = ("affwild2_va",)
    protocol_rules = {'split': 'official Train / Validation', 'fold_video_k5': '5 video-disjoint folds'}

    def manifest(self, root: Path) -> pd.DataFrame:
        ann_dirs = [d for d in root.rglob("*") if d.is_dir() and d.name in ("VA_Estimation_Challenge", "VA_Set")]
        if not ann_dirs:
            raise ConfigError(f"aff-wild2: no VA_Estimation_Challenge or VA_Set annotation folder under {root}")
        videos: dict[str, Path] = {}
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("._"):
                videos.setdefault(p.stem, p.resolve())
        rows = []
        for ann in ann_dirs:
            for split_dir in sorted(d for d in ann.iterdir() if d.is_dir()):
                split = SPLIT_DIRS.get(split_dir.name.lower())
                if split is None:
                    continue
                for txt in sorted(split_dir.glob("*.txt")):
                    video, side = base_video(txt.stem)
                    media = videos.get(video)
                    rows.append({
                        "clip_id": txt.stem, "speaker": txt.stem, "session": video, "video": video,
                        "subject_position": side, "split": split, "annotation_path": str(txt.resolve()),
                        "media_path": str(media) if media else str(root / "videos" / f"{video}.mp4"),
                    })
        if not rows:
            raise ConfigError(f"aff-wild2: no annotation .txt in Train_Set/Validation_Set under {root}")
        df = pd.DataFrame(rows)
        dup = df["clip_id"][df["clip_id"].duplicated()].unique()
        if len(dup):
            raise ConfigError(f"aff-wild2: annotation {dup[0]!r} appears in more than one set/folder")
        df = df.sort_values("clip_id").reset_index(drop=True)
        df["fold_video_k5"] = protocols.group_kfold(df, "video", min(5, df["video"].nunique())).values
        return df

    def extra_checks(self, manifest: pd.DataFrame, report: CheckReport) -> None:
        """Annotation rows vs decoded-frame count (from the container): +-2 tolerated, reported."""
        from pipeline.media.decode import probe

        for r in manifest.itertuples(index=False):
            try:
                frames = probe(r.media_path).frames
                with open(r.annotation_path, encoding="utf-8-sig") as f:
                    rows = sum(1 for line in f if line.strip()) - 1
            except Exception:  # noqa: BLE001 - missing media is reported by media_problems
                continue
            diff = rows - frames
            if diff:
                level = "within the +-2 tolerance" if abs(diff) <= 2 else "MISMATCH"
                report.warnings.append(f"{r.clip_id}: {rows} annotation rows vs {frames} video frames "
                                       f"({diff:+d}, {level})")
