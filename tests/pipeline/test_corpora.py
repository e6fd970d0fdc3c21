"""The six corpus recipes on synthetic trees with each corpus's traps: manifests row by row, counts,
protocol disjointness, `pipeline datasets check`, and `pipeline extract` end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.datasets import manifest, protocols
from pipeline.datasets.iemocap import speaker_of
from pipeline.errors import ConfigError
from stores.feature_store import FeatureStore
from tests.helpers import corpus_fixtures as fx
from tests.helpers.cli import cli, extract_json


def _disjoint(df: pd.DataFrame, part: str, group: str) -> None:
    per_group = df.groupby(group)[part].nunique()
    assert (per_group == 1).all(), f"{group} straddles {part}: {per_group[per_group > 1].index.tolist()}"


# -- CREMA-D ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crema(tmp_path_factory):
    return fx.crema_d(tmp_path_factory.mktemp("c") / "CREMA-D")


def test_crema_d_manifest(crema):
    df = manifest.build("crema-d", crema).set_index("clip_id")
    assert len(df) == 6 * 22 - 1 + 1  # IEO: 5 emotions x 3 levels + NEU; TIE: 6
    r = df.loc["1003_IEO_HAP_MD"]
    assert (r.speaker, r.sentence, r.emotion, r.level) == ("1003", "IEO", "HAP", "MD")
    assert r.media_path.endswith("VideoFlash/1003_IEO_HAP_MD.flv") and r.audio_path.endswith(".wav")
    assert "1002_TIE_NEU_XX" not in df.index
    tie = df.loc["1001_IEO_ANG_LO"]
    assert tie.voice_vote == "A:D" and tie.voice_level == "37.2:58.6" and tie.voice_vote_tie
    assert df.loc["1004_TIE_SAD_XX"].multimodal_vote == "S"
    assert df.loc["1002_IEO_NEU_XX"].sex == "Male" and df.loc["1001_IEO_NEU_XX"].age == "30"
    assert "error picture" in df.loc["1076_MTI_SAD_XX"].known_issue  # kept, flagged
    _disjoint(df, "split", "speaker")
    _disjoint(df, "fold_speaker_k10", "speaker")


def test_crema_d_lfs_pointers_fail_clearly(tmp_path):
    root = fx.crema_d(tmp_path / "CREMA-D", lfs=True)
    with pytest.raises(ConfigError, match="git-LFS pointers.*git lfs pull"):
        manifest.build("crema-d", root)
    proc = cli("datasets", "check", "--dataset", "crema-d", "--root", str(root))
    assert proc.returncode == 1 and "git-LFS pointer files (1)" in proc.stdout and "cannot be used" in proc.stdout


def test_crema_d_check_reports_counts_and_known_bad_clips(crema):
    proc = cli("datasets", "check", "--dataset", "crema-d", "--root", str(crema))
    assert proc.returncode == 0, proc.stdout
    assert "7442" in proc.stdout and "known bad clips" in proc.stdout and "1076_MTI_SAD_XX" in proc.stdout
    assert "clips: found 132, the official release has 7442" in proc.stdout


# -- RAVDESS ------------------------------------------------------------------------------------
def test_ravdess_joins_the_three_files_of_a_take(tmp_path):
    df = manifest.build("ravdess", fx.ravdess(tmp_path / "RAVDESS")).set_index("clip_id")
    assert len(df) == 4 * 6  # 5 speech takes + 1 song take per actor
    r = df.loc["01-05-02-01-01-03"]
    assert r.av_path.endswith("Actor_03/01-01-05-02-01-01-03.mp4") and r.media_path == r.av_path
    assert r.video_only_path.endswith("02-01-05-02-01-01-03.mp4") and r.wav_path.endswith("03-01-05-02-01-01-03.wav")
    assert (r.emotion, r.intensity, r.vocal_channel, r.gender) == ("angry", "strong", "speech", "male")
    assert df.loc["01-01-01-01-01-02"].gender == "female" and df.loc["01-01-01-01-01-02"].intensity == "normal"
    song = df.loc["02-03-01-01-01-01"]
    assert song.media_path == song.video_only_path and song.audio_path == song.wav_path  # video-only + wav
    df = df.reset_index()
    _disjoint(df, "fold_speaker_k12", "speaker")
    _disjoint(df, "split", "speaker")


# -- IEMOCAP ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iemo(tmp_path_factory):
    return fx.iemocap(tmp_path_factory.mktemp("i") / "IEMOCAP_full_release")


def test_iemocap_turns_labels_and_speakers(iemo):
    df = manifest.build("iemocap", iemo).set_index("clip_id")
    assert len(df) == 10 and "Ses01F_impro01_F000" in df.index  # the Categorical subfolder was skipped
    r = df.loc["Ses01F_impro01_M001"]
    assert (r.label, r.label_4class, r.speaker, r.session) == ("exc", "hap", "Ses01M", "Ses01")
    assert (r.start, r.end) == (2.0, 3.2) and r.media_path.endswith("avi/DivX/Ses01F_impro01.avi")
    assert (r.valence, r.arousal, r.dominance) == (2.5, 4.0, 3.5) and r.transcript == "Hello there number 1."
    # the speaker is the last token's letter, not the dialog prefix and not a fixed character
    assert df.loc["Ses03M_impro05a_F001"].speaker == "Ses03F"
    assert df.loc["Ses05M_script01_1b_F003"].speaker == "Ses05F"
    assert df.loc["Ses02M_script01_1_F000"].speaker == "Ses02F"
    assert speaker_of("Ses03M_impro08b_M012") == "Ses03M"
    assert df.loc["Ses02M_script01_1_M001"].label_4class == ""  # xxx is outside the 4 classes
    four = df[df.label_4class != ""]
    assert sorted(four.label_4class.value_counts().to_dict().items()) == [("ang", 2), ("hap", 2), ("neu", 2),
                                                                           ("sad", 2)]
    _disjoint(df.reset_index(), "fold_lo_session", "session")
    assert df.fold_lo_session.nunique() == 5


def test_iemocap_turn_is_extracted_as_a_segment(iemo, tmp_path):
    s = tmp_path / "s.zarr"
    r = extract_json("--dataset", "iemocap", "--root", str(iemo), "--store", str(s), "--extractors",
                     "logmel,face_hog", "--quiet", "--limit", "4")
    assert r["counts"] == {"ok": 8, "failed": 0, "excluded": 0}
    live = FeatureStore(str(s)).index()
    a = live[(live.stage == "aligned") & (live.extractor == "logmel")]
    assert (a.length == 6).all()  # 1.2 s turns at 5 Hz
    native = live[(live.stage == "native") & (live.extractor == "face_hog")]
    assert (native.length == 30).all()  # 1.2 s of the 25 fps dialog video, not the whole 4 s


# -- MSP-IMPROV ---------------------------------------------------------------------------------
@pytest.mark.parametrize("misspelt, audio_tree", [(True, True), (False, False)])
def test_msp_improv_both_spellings_and_layouts(tmp_path, misspelt, audio_tree):
    df = manifest.build("msp-improv", fx.msp_improv(tmp_path / "MSP", misspelt, audio_tree)).set_index("clip_id")
    assert len(df) == 6 * 2 * 4
    r = df.loc["MSP-IMPROV-S03N-F02-P-FM02"]
    assert (r.speaker, r.gender, r.session, r.sentence, r.target_emotion, r.condition) == (
        "F02", "F", "2", "03", "N", "P")
    assert np.isnan(r.valence) and r.arousal == 3.5 and r.dominance == 3.0 and r.naturalness == 3.5
    assert r.label == "N" and r.label_4class == "N" and df.loc["MSP-IMPROV-S04S-M01-P-MM03"].label_4class == ""
    assert r.media_path.endswith(".wav" if audio_tree else ".avi")
    splits = df.groupby("session")["split"].first().to_dict()
    assert splits == {"1": "train", "2": "train", "3": "train", "4": "train", "5": "validation", "6": "test"}
    _disjoint(df.reset_index(), "split", "speaker")


# -- Aff-Wild2 ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aff(tmp_path_factory):
    return fx.affwild2(tmp_path_factory.mktemp("a") / "Aff-Wild2")


def test_affwild2_manifest_subjects_and_folds(aff):
    df = manifest.build("aff-wild2", aff).set_index("clip_id")
    assert len(df) == 7
    left = df.loc["video10_1_left"]
    assert (left.video, left.subject_position, left.split) == ("video10_1", "left", "train")
    assert left.media_path.endswith("videos/batch1/video10_1.mp4")
    assert df.loc["video10_1"].subject_position == "main" and df.loc["video2"].split == "validation"
    _disjoint(df.reset_index(), "fold_video_k5", "video")  # both subjects of a video in one fold


def test_affwild2_frame_targets_are_stored_and_aligned_with_a_mask(aff, tmp_path):
    s = tmp_path / "s.zarr"
    r = extract_json("--dataset", "aff-wild2", "--root", str(aff), "--store", str(s), "--extractors", "logmel",
                     "--quiet")
    assert r["counts"]["failed"] == 0 and r["calls"]["affwild2_va"] >= 1  # targets added automatically
    store = FeatureStore(str(s))
    live = store.index().set_index(["clip_id", "stage", "extractor"])
    native = store.read(live.loc[("video1", "native", "affwild2_va")])
    assert len(native) == 26 and native.mask[3:6].tolist() == [False] * 3 and native.mask[:3].all()
    np.testing.assert_allclose(native.start[:3], [0.0, 0.04, 0.08])
    aligned = store.read(live.loc[("video1", "aligned", "affwild2_va")])
    assert len(aligned) == 5 and aligned.mask.all()  # 1 s at 5 Hz; window 0 keeps its valid frames
    check = cli("datasets", "check", "--dataset", "aff-wild2", "--root", str(aff)).stdout
    assert "video1: 26 annotation rows vs 25 video frames (+1, within the +-2 tolerance)" in check
    assert "video3: 24 annotation rows vs 25 video frames (-1" in check


# -- VoxCeleb2 ----------------------------------------------------------------------------------
def test_voxceleb2_trees_meta_and_extract(tmp_path):
    root = fx.voxceleb2(tmp_path / "vox2")
    df = manifest.build("voxceleb2", root).set_index("clip_id")
    assert list(df.index) == ["id00012-abcDEF12345-00001", "id00012-abcDEF12345-00002",
                              "id00015-0fijmz4vTVU-00001", "id00020-Zz_-9yT3kLQ-00001"]
    r = df.loc["id00012-abcDEF12345-00001"]
    assert (r.speaker, r.session, r.split, r.gender, r.vggface2_id) == ("id00012", "abcDEF12345", "dev", "m",
                                                                      "n000012")
    assert r.media_path.endswith(".mp4") and r.m4a_path.endswith("00001.m4a")
    t = df.loc["id00020-Zz_-9yT3kLQ-00001"]
    assert t.split == "test" and t.media_path.endswith(".m4a")  # audio-only copy
    res = extract_json("--dataset", "voxceleb2", "--root", str(root), "--store", str(tmp_path / "s"),
                       "--extractors", "logmel", "--quiet")
    assert res["counts"] == {"ok": 4, "failed": 0, "excluded": 0}


# -- protocols ----------------------------------------------------------------------------------
def test_low_resource_subsets_are_stratified_nested_and_seeded():
    df = pd.DataFrame({"y": ["a"] * 60 + ["b"] * 40})
    rank = protocols.low_resource_rank(df, "y", seed=3)
    df["low_resource_rank"] = rank
    prev = set()
    for n in range(10, 101, 10):
        sub = protocols.low_resource_subset(df, n)
        assert prev <= set(sub.index)
        prev = set(sub.index)
        counts = sub["y"].value_counts()
        assert abs(counts.get("a", 0) - 0.6 * n) <= 1 and abs(counts.get("b", 0) - 0.4 * n) <= 1
    assert len(protocols.low_resource_subset(df, 100)) == 100
    assert rank.equals(protocols.low_resource_rank(df, "y", seed=3))


def test_group_kfold_has_equal_groups_per_fold():
    df = pd.DataFrame({"spk": [f"s{i:02d}" for i in range(24) for _ in range(3)]})
    folds = protocols.group_kfold(df, "spk", 12, seed=1)
    assert (df.assign(f=folds).groupby("f")["spk"].nunique() == 2).all()
    split = protocols.group_split(df, "spk", (0.6, 0.2, 0.2))
    assert df.assign(s=split).groupby("s")["spk"].nunique().to_dict() == {"test": 5, "train": 14, "validation": 5}


@pytest.mark.parametrize("name, build", [("crema-d", fx.crema_d), ("ravdess", fx.ravdess),
                                         ("msp-improv", fx.msp_improv)])
def test_extract_end_to_end_on_each_fake_corpus(tmp_path, name, build):
    root = build(tmp_path / name)
    r = extract_json("--dataset", name, "--root", str(root), "--store", str(tmp_path / "s"),
                     "--extractors", "logmel,face_hog" if name != "msp-improv" else "logmel", "--limit", "4",
                     "--quiet")
    assert r["counts"]["failed"] == 0 and r["counts"]["ok"] == (8 if name != "msp-improv" else 4)
    assert cli("verify", str(tmp_path / "s")).returncode == 0


def test_check_lists_extra_and_unreadable_files(crema, tmp_path):
    import shutil

    root = tmp_path / "CREMA-D"
    shutil.copytree(crema, root)
    (root / "AudioWAV" / "notes_backup.wav").write_bytes(b"x" * 2000)
    (root / "VideoFlash" / "1001_IEO_ANG_HI.flv").write_bytes(b"garbage" * 400)
    out = cli("datasets", "check", "--dataset", "crema-d", "--root", str(root)).stdout
    assert "extra files (not taken) (1)" in out and "notes_backup.wav" in out
    assert "unreadable media (1)" in out and "1001_IEO_ANG_HI.flv" in out
