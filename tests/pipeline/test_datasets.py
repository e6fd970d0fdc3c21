"""The manifest contract and the three built-in adapters."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.datasets import manifest
from pipeline.errors import ConfigError
from pipeline.media import synth


def test_folder_adapter_ids_from_relative_paths(tmp_path):
    synth.write_wav(tmp_path / "spk1" / "a.wav", synth.voice(0.3, 120, 4, 0.5, 0, 16000))
    synth.write_wav(tmp_path / "spk2" / "sub" / "b c.wav", synth.voice(0.3, 120, 4, 0.5, 1, 16000))
    (tmp_path / "notes.txt").write_text("x")
    df = manifest.build("folder", tmp_path)
    assert df["clip_id"].tolist() == ["spk1/a", "spk2/sub/b c"]
    assert df["speaker"].tolist() == ["spk1", "spk2/sub"]
    assert df["start"].isna().all() and (df["split"] == "").all()


def test_csv_adapter_segments_labels_and_relative_paths(tmp_path):
    (tmp_path / "m").mkdir()
    pd.DataFrame({"path": ["m/long.mp4", "m/long.mp4"], "start": [0.0, 2.5], "end": [2.5, 4.0],
                  "clip_id": ["t1", "t2"], "emotion": ["ang", "sad"], "speaker": ["F1", "F1"]}
                 ).to_csv(tmp_path / "list.csv", index=False)
    df = manifest.build("csv", tmp_path / "list.csv")
    assert df["media_path"].iloc[0] == str((tmp_path / "m" / "long.mp4").resolve())
    assert df["emotion"].tolist() == ["ang", "sad"] and df["end"].tolist() == [2.5, 4.0]


def test_manifest_contract_errors(tmp_path):
    pd.DataFrame({"path": ["a.mp4", "a.mp4"], "clip_id": ["x", "x"]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ConfigError, match="clip_id not unique"):
        manifest.build("csv", tmp_path / "d.csv")
    pd.DataFrame({"path": ["a.mp4"], "start": [3.0], "end": [1.0]}).to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(ConfigError, match="end <= start"):
        manifest.build("csv", tmp_path / "e.csv")
    with pytest.raises(ConfigError, match="does not exist"):
        manifest.build("folder", tmp_path / "nowhere")


def test_demo_corpus_is_deterministic(tmp_path):
    from pipeline.datasets.demo import generate

    a = generate(tmp_path / "a", speakers=1, clips_per_class=1, seed=7, durations=(0.5, 0.6))
    b = generate(tmp_path / "b", speakers=1, clips_per_class=1, seed=7, durations=(0.5, 0.6))
    files = sorted(p.relative_to(a) for p in a.rglob("*.mp4"))
    assert len(files) == 4
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    df = manifest.build("demo", a)
    assert set(df["label"]) == {"calm", "happy", "angry", "sad"} and set(df["split"]) == {"train"}


def test_demo_corpus_pool_is_unlabelled_other_speakers_in_no_fold(tmp_path):
    from pipeline.datasets.demo import generate

    root = generate(tmp_path / "d", speakers=2, clips_per_class=1, seed=1, durations=(0.5, 0.6), pool=1)
    df = manifest.build("demo", root)
    pool = df[df["split"] == "pool"]
    assert len(pool) == 4 and pool["label"].isna().all() and pool["fold_lo_speaker"].isna().all()
    assert set(pool["speaker"]).isdisjoint(df.loc[df["label"].notna(), "speaker"])
    assert sorted(df["fold_lo_speaker"].dropna().unique()) == [0, 1]
