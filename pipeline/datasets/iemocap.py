"""IEMOCAP: turns are segments of the dialog videos; labels and V/A/D from EmoEvaluation.

Speaker = session + the gender letter of the *last* ``_`` token of the turn id (``Ses03M_impro05a_F012``
-> ``Ses03F``); taking the dialog prefix or a fixed character misassigns 174 of the 5,531 4-class turns.
Facts: ../shared/reference/corpora.md section 4.
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

SUMMARY = re.compile(r"^\[(\d+\.\d+) - (\d+\.\d+)\]\t(\S+)\t(\w+)\t\[(\d+\.\d+), (\d+\.\d+), (\d+\.\d+)\]\s*$")
TRANSCRIPT = re.compile(r"^(Ses0[1-5][MF]_\S+?_[MF][X\d]{2}\d+)\s+\[[\d.]+-[\d.]+\]:\s*(.*)$")
FOUR_CLASS = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}
SESSION_COUNTS_4 = {"Ses01": 1085, "Ses02": 1023, "Ses03": 1151, "Ses04": 1031, "Ses05": 1241}


def speaker_of(turn: str) -> str:
    """``Ses0N`` + the first letter of the last ``_`` token (the actor who speaks)."""
    return turn[:5] + turn.rsplit("_", 1)[-1][0]


@register_dataset
class Iemocap(DatasetAdapter):
    name = "iemocap"
    description = "IEMOCAP (5 sessions, 10 speakers): turns as segments of dialog videos, categories + V/A/D"
    layout = ("<root>/Session{1..5}/dialog/{avi/DivX/*.avi, wav/*.wav, EmoEvaluation/*.txt, "
              "transcriptions/*.txt}")
    expected = {"clips": 10039, "speakers": 10, "label_4class": {"ang": 1103, "hap": 1636, "neu": 1708, "sad": 1084}}
    label_column = "label_4class"
    protocol_rules = {'fold_lo_session': '5 folds, one session as test per fold'}

    def manifest(self, root: Path) -> pd.DataFrame:
        sessions = sorted(p for p in root.glob("Session[1-5]") if p.is_dir())
        if not sessions:
            raise ConfigError(f"iemocap: no Session1..Session5 folders under {root} (point --root at "
                              "IEMOCAP_full_release)")
        rows = []
        for ses in sessions:
            dialog = ses / "dialog"
            texts = _transcripts(dialog / "transcriptions")
            for ev in sorted((dialog / "EmoEvaluation").glob("*.txt")):  # non-recursive: skip subfolders
                if ev.name.startswith("._") or not ev.is_file():
                    continue
                name = ev.stem
                avi = dialog / "avi" / "DivX" / f"{name}.avi"
                wav = dialog / "wav" / f"{name}.wav"
                for line in ev.read_text(errors="replace").splitlines():
                    m = SUMMARY.match(line)
                    if not m:
                        continue
                    start, end, turn, label, val, act, dom = m.groups()
                    rows.append({
                        "clip_id": turn, "speaker": speaker_of(turn), "gender": turn.rsplit("_", 1)[-1][0],
                        "session": turn[:5], "dialog": name,
                        "media_path": str(avi.resolve()) if avi.exists() else str(wav.resolve()),
                        "audio_path": str(wav.resolve()) if avi.exists() and wav.exists() else None,
                        "start": float(start), "end": float(end), "label": label,
                        "label_4class": FOUR_CLASS.get(label, ""), "valence": float(val),
                        "arousal": float(act), "dominance": float(dom),
                        "improvised": "_impro" in name, "transcript": texts.get(turn, ""),
                    })
        if not rows:
            raise ConfigError(f"iemocap: no evaluated turn found in {root}/Session*/dialog/EmoEvaluation/*.txt")
        df = pd.DataFrame(rows).drop_duplicates("clip_id").sort_values("clip_id").reset_index(drop=True)
        df["fold_lo_session"] = protocols.leave_one_out(df, "session").values
        df["split"] = ""  # no official split: use fold_lo_session (leave-one-session-out)
        df["low_resource_rank"] = protocols.low_resource_rank(df, "label_4class").values
        return df

    def extra_checks(self, manifest: pd.DataFrame, report: CheckReport) -> None:
        from pipeline.datasets.checks import compare

        four = manifest[manifest["label_4class"] != ""]
        compare(report, "4-class turns per session", four["session"].value_counts().sort_index().to_dict(),
                SESSION_COUNTS_4)
        blank = manifest[manifest["transcript"].fillna("").astype(str).str.strip() == ""]
        if len(blank):  # every released turn has its words; text extractors (BERT) would fail on these
            report.errors.append(f"{len(blank)} of {len(manifest)} turns have no transcript (e.g. "
                                 f"{blank['clip_id'].iloc[0]}; dialog/transcriptions/*.txt empty or missing lines): "
                                 "text features cannot be extracted for them; restore the transcription files")


def _transcripts(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in sorted(folder.glob("*.txt")) if folder.exists() else []:
        for line in p.read_text(errors="replace").splitlines():
            m = TRANSCRIPT.match(line.strip())
            if m and "XX" not in m.group(1).rsplit("_", 1)[-1]:
                out[m.group(1)] = m.group(2).strip()
    return out
