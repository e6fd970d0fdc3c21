"""VoxCeleb2 (pretraining, unlabelled): ``{dev,test,}/mp4/idXXXXX/<ytid>/NNNNN.mp4`` and the m4a tree.

``clip_id = spk-ytid-utt``; media is the mp4 (its own audio track) or, for audio-only copies, the
m4a (``m4a_path`` is kept as a column); speaker = idXXXXX, session = YouTube id; split dev/test from
``vox2_meta.csv`` (UTF-8 BOM, space-padded fields) or from the tree a file sits in.
Facts: ../shared/reference/corpora.md section 1.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipeline.errors import ConfigError
from pipeline.manifest import DatasetAdapter, register_dataset

SPEAKER = re.compile(r"^id\d{5}$")


def read_meta(path: Path) -> pd.DataFrame:
    """`vox2_meta.csv`: BOM, then fields padded with spaces -> strip every field (as lhotse does)."""
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for i, line in enumerate(f):
            fields = [x.strip() for x in line.split(",")]
            if i == 0 or len(fields) < 4 or not SPEAKER.match(fields[0]):
                continue
            rows.append({"speaker": fields[0], "vggface2_id": fields[1], "gender": fields[2], "meta_set": fields[3]})
    return pd.DataFrame(rows, columns=["speaker", "vggface2_id", "gender", "meta_set"])


def _tree_split(parts: tuple[str, ...]) -> str:
    return "test" if "test" in parts else "dev" if "dev" in parts else ""


@register_dataset
class VoxCeleb2(DatasetAdapter):
    name = "voxceleb2"
    description = "VoxCeleb2 (unlabelled, for pretraining): mp4 video with m4a audio, dev/test split"
    layout = "<root>/[dev/|test/]{mp4,aac}/idXXXXX/<youtube_id>/NNNNN.{mp4,m4a} [, vox2_meta.csv]"
    expected = {"speakers": 6112}

    def manifest(self, root: Path) -> pd.DataFrame:
        utts: dict[str, dict] = {}
        for suffix, col in ((".mp4", "video"), (".m4a", "audio")):
            for p in root.rglob(f"*{suffix}"):
                spk, yt, utt = p.parent.parent.name, p.parent.name, p.stem
                if not SPEAKER.match(spk) or p.name.startswith("._"):
                    continue
                row = utts.setdefault(f"{spk}-{yt}-{utt}", {"clip_id": f"{spk}-{yt}-{utt}", "speaker": spk,
                                                            "session": yt, "tree_split": ""})
                row[col] = str(p.resolve())
                row["tree_split"] = row["tree_split"] or _tree_split(p.relative_to(root).parts)
        if not utts:
            raise ConfigError(f"voxceleb2: no idXXXXX/<ytid>/NNNNN.mp4 or .m4a under {root}")
        df = pd.DataFrame(list(utts.values())).sort_values("clip_id").reset_index(drop=True)
        for col in ("video", "audio"):
            if col not in df:
                df[col] = None
        df["media_path"] = df["video"].fillna(df["audio"])
        df["m4a_path"] = df["audio"]  # the mp4 carries the same audio track; decode-once uses the mp4's own
        metas = sorted(root.rglob("vox2_meta.csv"))
        if metas:
            df = df.merge(read_meta(metas[0]), on="speaker", how="left")
            df["split"] = df["meta_set"].fillna("").where(df["meta_set"].fillna("") != "", df["tree_split"])
        else:
            df["split"] = df["tree_split"]
        return df.drop(columns=["video", "audio"])
