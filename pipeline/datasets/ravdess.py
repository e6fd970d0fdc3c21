"""RAVDESS: one row per take, joining the full-AV mp4, the video-only mp4 and the audio-only wav.

The three files of a take are the same performance (fields 2-7 of ``MM-VV-EE-II-SS-RR-AA``), so they
are one row and can never land in different folds. Facts: ../shared/reference/corpora.md section 3.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.datasets import protocols
from pipeline.datasets.manifest import DatasetAdapter, register_dataset
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.datasets.checks import CheckReport

NAME = re.compile(r"^(0[1-3])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)$")
EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
            "07": "disgust", "08": "surprised"}
MODALITY = {"01": "av_path", "02": "video_only_path", "03": "wav_path"}


@register_dataset
class Ravdess(DatasetAdapter):
    name = "ravdess"
    description = "RAVDESS (24 actors, speech + song, 8 emotions): AV, video-only and audio files joined per take"
    layout = "<root>/**/Actor_NN/MM-VV-EE-II-SS-RR-AA.{mp4,wav} (any folder split of the Zenodo zips)"
    expected = {"clips": 2452, "speakers": 24}
    label_column = "emotion"
    protocol_rules = {'split': 'speaker-independent 60/20/20, speakers drawn with seed 0',
                      'fold_speaker_k12': '12 speaker-disjoint folds'}

    def manifest(self, root: Path) -> pd.DataFrame:
        takes: dict[str, dict] = {}
        for p in sorted(root.rglob("*")):
            m = NAME.match(p.stem)
            if not m or p.suffix.lower() not in (".mp4", ".wav") or p.name.startswith("._"):
                continue
            modality, channel, emotion, intensity, statement, rep, actor = m.groups()
            if (modality == "03") != (p.suffix.lower() == ".wav"):
                continue
            key = "-".join(m.groups()[1:])
            row = takes.setdefault(key, {
                "clip_id": key, "speaker": actor, "session": actor,
                "vocal_channel": "speech" if channel == "01" else "song",
                "emotion": EMOTIONS[emotion], "intensity": "normal" if intensity == "01" else "strong",
                "statement": int(statement), "repetition": int(rep),
                "gender": "male" if int(actor) % 2 else "female",  # odd actors are male (README)
                "av_path": None, "video_only_path": None, "wav_path": None,
            })
            row[MODALITY[modality]] = str(p.resolve())
        if not takes:
            raise ConfigError(f"ravdess: no MM-VV-EE-II-SS-RR-AA.mp4/.wav file under {root}")
        df = pd.DataFrame(list(takes.values())).sort_values("clip_id").reset_index(drop=True)
        df["media_path"] = df["av_path"].fillna(df["video_only_path"]).fillna(df["wav_path"])
        # audio from the wav only when the media has none of its own (video-only take)
        df["audio_path"] = [w if m == v else None for w, m, v in zip(df["wav_path"], df["media_path"],
                                                                      df["video_only_path"])]
        df["split"] = protocols.group_split(df, "speaker", (0.6, 0.2, 0.2), seed=0).values
        df["fold_speaker_k12"] = protocols.group_kfold(df, "speaker", min(12, df["speaker"].nunique())).values
        df["low_resource_rank"] = protocols.low_resource_rank(df, "emotion").values
        return df

    def extra_checks(self, manifest: pd.DataFrame, report: CheckReport) -> None:
        files = int(manifest[["av_path", "video_only_path", "wav_path"]].notna().sum().sum())
        from pipeline.datasets.checks import compare

        compare(report, "files", files, 7356)
        incomplete = manifest[manifest[["av_path", "video_only_path", "wav_path"]].isna().any(axis=1)]
        if len(incomplete):
            report.warnings.append(f"{len(incomplete)} takes lack one of AV mp4 / video-only mp4 / wav "
                                   f"(e.g. {incomplete['clip_id'].iloc[0]})")
