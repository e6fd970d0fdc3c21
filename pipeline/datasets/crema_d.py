"""CREMA-D: 7,442 clips of 91 actors; VideoFlash/*.flv with AudioWAV/*.wav, acted and perceived labels.

Facts and traps: ../shared/reference/corpora.md section 2 (file names ``AAAA_SSS_EEE_LL``, the
summaryTable's ``FileName`` header and colon-joined ties, git-LFS pointers, the known bad clips).
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

EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = {"LO", "MD", "HI", "XX"}
SENTENCES = {"IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"}
KNOWN_ISSUES = {
    "1076_MTI_NEU_XX": "flv/mp3 very short without audio (WAV fine)",
    "1076_MTI_SAD_XX": "flv shows an error picture; mp3 and wav have no audio",
    "1064_TIE_SAD_XX": "flv/mp3 without duration",
    "1064_IEO_DIS_MD": "flv/mp3 about 1 min long holding all IEO emotions",
}


@register_dataset
class CremaD(DatasetAdapter):
    name = "crema-d"
    description = "CREMA-D (91 actors, 6 emotions): acted labels, perceived votes, demographics"
    layout = "<root>/VideoFlash/*.flv, AudioWAV/*.wav [, processedResults/summaryTable.csv, VideoDemographics.csv]"
    expected = {"clips": 7442, "speakers": 91,
                "emotion": {"ANG": 1271, "DIS": 1271, "FEA": 1271, "HAP": 1271, "NEU": 1087, "SAD": 1271}}
    label_column = "emotion"
    protocol_rules = {'split': 'speaker-independent 60/20/20, speakers drawn with seed 0',
                      'fold_speaker_k10': '10 speaker-disjoint folds'}

    def manifest(self, root: Path) -> pd.DataFrame:
        video = {p.stem: p for p in (root / "VideoFlash").glob("*.flv")}
        audio = {p.stem: p for p in (root / "AudioWAV").glob("*.wav")}
        if not video and not audio:
            raise ConfigError(f"crema-d: no VideoFlash/*.flv or AudioWAV/*.wav under {root}")
        rows = []
        for stem in sorted(set(video) | set(audio)):
            fields = stem.split("_")
            if len(fields) != 4 or fields[2] not in EMOTIONS or fields[1] not in SENTENCES:
                continue  # not a CREMA-D clip name; `datasets check` counts these
            actor, sentence, emotion, level = fields
            fixed = "XX" if level == "X" else level  # 1040_ITH_SAD_X in old copies
            issue = KNOWN_ISSUES.get(stem, "")
            if fixed != level:
                issue = "mis-named level `_X` (fixed upstream to `_XX`)"
            v, a = video.get(stem), audio.get(stem)
            rows.append({
                "clip_id": stem, "speaker": actor, "session": actor,
                "media_path": str((v or a).resolve()), "audio_path": str(a.resolve()) if v and a else None,
                "sentence": sentence, "emotion": emotion, "emotion_name": EMOTIONS[emotion],
                "level": fixed if fixed in LEVELS else "XX", "known_issue": issue,
                "has_video": v is not None, "has_audio_wav": a is not None,
            })
        df = pd.DataFrame(rows)
        if df.empty:
            raise ConfigError(f"crema-d: no file under {root} has the AAAA_SSS_EEE_LL name pattern")
        df = _join_votes(df, root / "processedResults" / "summaryTable.csv")
        df = _join_demographics(df, root / "VideoDemographics.csv")
        df["split"] = protocols.group_split(df, "speaker", (0.6, 0.2, 0.2), seed=0).values
        df["fold_speaker_k10"] = protocols.group_kfold(df, "speaker", min(10, df["speaker"].nunique())).values
        df["low_resource_rank"] = protocols.low_resource_rank(df, "emotion").values
        return df

    def extra_checks(self, manifest: pd.DataFrame, report: CheckReport) -> None:
        from pipeline.datasets.checks import extra_files

        root, known = Path(report.root), set(manifest["clip_id"])
        report.extra = extra_files(root / "VideoFlash", "*", known) + extra_files(root / "AudioWAV", "*", known)
        missing_video = int((~manifest["has_video"]).sum())
        if missing_video:
            report.warnings.append(f"{missing_video} clips have a wav but no VideoFlash .flv (audio-only rows)")


def _join_votes(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Perceived labels; ties stay colon-joined ("A:D") with their colon-joined levels."""
    if not path.exists():
        return df
    votes = pd.read_csv(path, dtype=str, keep_default_na=False)
    key = next((c for c in votes.columns if c.lower() == "filename"), None)
    if key is None:
        raise ConfigError(f"crema-d: {path} has no FileName column (columns: {list(votes.columns)})")
    cols = {"VoiceVote": "voice_vote", "VoiceLevel": "voice_level", "FaceVote": "face_vote",
            "FaceLevel": "face_level", "MultiModalVote": "multimodal_vote", "MultiModalLevel": "multimodal_level"}
    votes = votes.rename(columns=cols)[[key, *[c for c in cols.values() if c in votes.rename(columns=cols)]]]
    votes = votes.rename(columns={key: "clip_id"}).drop_duplicates("clip_id")
    out = df.merge(votes, on="clip_id", how="left")
    for c in ("voice_vote", "face_vote", "multimodal_vote"):
        if c in out:
            out[f"{c}_tie"] = out[c].fillna("").str.contains(":")
    return out


def _join_demographics(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    if not path.exists():
        return df
    demo = pd.read_csv(path, dtype=str).rename(columns={"ActorID": "speaker", "Age": "age", "Sex": "sex",
                                                        "Race": "race", "Ethnicity": "ethnicity"})
    return df.merge(demo.drop_duplicates("speaker"), on="speaker", how="left")
