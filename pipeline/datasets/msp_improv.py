"""MSP-IMPROV: Evaluation.txt (or the misspelt Evalution.txt) consensus labels, A/V/D means, sessions.

Utterance ``MSP-IMPROV-S01A-F01-P-FM01``: sentence 01, target emotion A, speaker F01 (session = its
digits), condition P. The label file names the video ``UTD-IMPROV-...avi``; media are indexed by stem
under any of the known layouts. Facts: ../shared/reference/corpora.md section 5.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pipeline.datasets import protocols
from pipeline.datasets.manifest import DatasetAdapter, register_dataset
from pipeline.errors import ConfigError

LABELS = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral", "O": "other", "X": "no agreement"}
SESSION_SPLIT = {"1": "train", "2": "train", "3": "train", "4": "train", "5": "validation", "6": "test"}


def _float(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return math.nan  # "NaN" in the file


def parse_evaluation(text: str) -> list[dict]:
    """Consensus lines only; fields are ``key:value`` pairs split on ';' (N: may be absent)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("UTD-IMPROV-"):
            continue
        fields = [f.strip() for f in line.split(";") if f.strip()]
        name, label = fields[0], fields[1] if len(fields) > 1 else ""
        kv = {k.strip(): _float(v.strip()) for k, _, v in (f.partition(":") for f in fields[2:]) if _}
        rows.append({"utterance": "MSP-" + name.removeprefix("UTD-").removesuffix(".avi"), "label": label,
                     "arousal": kv.get("A", math.nan), "valence": kv.get("V", math.nan),
                     "dominance": kv.get("D", math.nan), "naturalness": kv.get("N", math.nan)})
    return rows


@register_dataset
class MspImprov(DatasetAdapter):
    name = "msp-improv"
    description = "MSP-IMPROV (12 actors, 6 sessions): consensus category + mean arousal/valence/dominance"
    layout = "<root>/Evaluation.txt|Evalution.txt, <root>/[Audio/]session<N>/<S01A>/<P|R|S|T>/MSP-IMPROV-*.{avi,wav}"
    expected = {"clips": 8438, "speakers": 12}
    label_column = "label"
    protocol_rules = {'split': 'sessions 1-4 train, 5 validation, 6 test'}

    def manifest(self, root: Path) -> pd.DataFrame:
        label_files = [p for name in ("Evaluation.txt", "Evalution.txt") for p in root.rglob(name)]
        if not label_files:
            raise ConfigError(f"msp-improv: neither Evaluation.txt nor Evalution.txt under {root}")
        media: dict[str, dict[str, Path]] = {}
        for p in root.rglob("*"):
            if p.suffix.lower() in (".wav", ".avi") and not p.name.startswith("._"):
                stem = "MSP-" + p.stem.split("-", 1)[1] if p.stem.startswith(("MSP-", "UTD-")) else p.stem
                media.setdefault(stem, {})[p.suffix.lower()] = p.resolve()
        parsed = [r for f in sorted(label_files) for r in parse_evaluation(f.read_text(errors="replace"))]
        rows = []
        for r in parsed:
            uid = r["utterance"]
            parts = uid.split("-")  # MSP, IMPROV, S01A, F01, P, FM01
            if len(parts) != 6:
                continue
            files = media.get(uid, {})
            avi, wav = files.get(".avi"), files.get(".wav")
            speaker = parts[3]
            rows.append({
                "clip_id": uid, "speaker": speaker, "gender": speaker[0], "session": str(int(speaker[1:])),
                "sentence": parts[2][1:3], "target_emotion": parts[2][3:], "condition": parts[4], "turn": parts[5],
                "media_path": str(avi or wav) if (avi or wav) else str(root / f"{uid}.wav"),
                "audio_path": str(wav) if avi and wav else None, **{k: r[k] for k in
                ("label", "arousal", "valence", "dominance", "naturalness")},
                "label_4class": r["label"] if r["label"] in {"A", "H", "S", "N"} else "",
            })
        if not rows:
            raise ConfigError(f"msp-improv: no UTD-IMPROV-... consensus line in {label_files[0]}")
        df = pd.DataFrame(rows).drop_duplicates("clip_id").sort_values("clip_id").reset_index(drop=True)
        df["split"] = protocols.fixed_split(df, "session", SESSION_SPLIT).values
        df["low_resource_rank"] = protocols.low_resource_rank(df, "label").values
        return df
