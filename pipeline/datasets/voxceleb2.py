"""VoxCeleb2 (pretraining, unlabelled): ``{dev,test,}/mp4/idXXXXX/<ytid>/NNNNN.mp4`` and the m4a tree.

``clip_id = spk-ytid-utt``; media is the mp4 (its own audio track) or, for audio-only copies, the
m4a (``m4a_path`` is kept as a column); speaker = idXXXXX, session = YouTube id; split dev/test from
``vox2_meta.csv`` (UTF-8 BOM, space-padded fields) or from the tree a file sits in.
Facts: ../shared/reference/corpora.md section 1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.datasets import scan
from pipeline.datasets.manifest import DatasetAdapter, register_dataset
from pipeline.errors import ConfigError

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
        base = str(root.resolve())

        def row(path: str) -> tuple[str, ...] | None:
            folder, name = os.path.split(path)
            folder, yt = os.path.split(folder)
            spk = os.path.basename(folder)
            if not SPEAKER.match(spk):
                return None
            rel = tuple(os.path.relpath(path, base).split(os.sep))
            return f"{spk}-{yt}-{os.path.splitext(name)[0]}", spk, yt, _tree_split(rel), path

        names = ["clip_id", "speaker", "session", "tree_split", "path"]
        trees = []
        for suffix, col in ((".mp4", "video"), (".m4a", "audio")):
            t = scan.columns(scan.files(base, {suffix}, self.skipped), row, names)
            t = scan.sort(t, [("path", "ascending")])  # the first of a clip's copies wins
            codes = pc.dictionary_encode(t["clip_id"]).combine_chunks().indices.to_numpy()
            first = np.sort(np.unique(codes, return_index=True)[1])
            t = t if len(first) == len(t) else t.take(pa.array(first, pa.int64()))  # no copy when no clip is twice
            trees.append(t.rename_columns([*names[:-1], col]))
        if not sum(len(t) for t in trees):
            raise ConfigError(f"voxceleb2: no idXXXXX/<ytid>/NNNNN.mp4 or .m4a under {root}")
        both = trees[0].join(trees[1], keys="clip_id", join_type="full outer", left_suffix="", right_suffix="_a",
                             coalesce_keys=True)
        for c in ("speaker", "session", "tree_split"):  # from the mp4 where it says, else from the m4a
            mine = pc.fill_null(pc.not_equal(both[c], ""), False)
            both = both.set_column(both.schema.get_field_index(c), c,
                                   pc.if_else(mine, both[c], pc.coalesce(both[f"{c}_a"], both[c])))
        both = both.drop_columns([f"{c}_a" for c in ("speaker", "session", "tree_split")])
        df = scan.sort(both, [("clip_id", "ascending")]).to_pandas()
        df["media_path"] = df["video"].fillna(df["audio"])
        df["m4a_path"] = df["audio"]  # the mp4 carries the same audio track; decode-once uses the mp4's own
        metas = sorted(root.rglob("vox2_meta.csv"))
        if metas:
            df = df.merge(read_meta(metas[0]), on="speaker", how="left")
            df["split"] = df["meta_set"].fillna("").where(df["meta_set"].fillna("") != "", df["tree_split"])
        else:
            df["split"] = df["tree_split"]
        return df.drop(columns=["video", "audio"])
