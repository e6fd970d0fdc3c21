"""The OpenFace wrapper against a stand-in executable writing OpenFace 2.2.0's exact CSV schema."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from extractors.openface import OpenFaceError, parse_csv
from pipeline.media import synth
from stores.feature_store import FeatureStore
from tests.helpers.cli import cli

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "openface" / "openface-2.2.0-video2-head.csv"


@pytest.mark.skipif(not FIXTURE.exists(), reason="../shared/fixtures/openface is not beside this checkout")
def test_parser_reads_the_real_openface_2_2_0_output():
    df = parse_csv(FIXTURE.read_text())
    assert len(df) == 6 and df.shape[1] == 714
    au = [c for c in df.columns if c.endswith("_r") and c.startswith("AU")]
    assert len(au) == 17 and df["timestamp"].is_monotonic_increasing and (df["success"] == 1).all()


def test_parser_rejects_broken_csvs():
    for text, msg in (("", "empty"), ("frame, timestamp\n1, 0.0\n", "header"),
                      ("a,b,c\n1,2,3\n4,5\n", "truncated")):
        with pytest.raises(OpenFaceError, match=msg):
            parse_csv(text)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    d = tmp_path_factory.mktemp("bin")
    exe = d / "FeatureExtraction"
    src = (Path(__file__).parents[1] / "helpers" / "openface_standin.py").read_text()
    exe.write_text(f"#!{sys.executable}\n" + src)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_openface_wrapper_end_to_end(tmp_path, standin):
    face = synth.face_image(96)
    names = ["normal", "noface", "lowconf", "crash", "hang", "empty", "trunc", "badheader"]
    for n in names:
        synth.write_clip(tmp_path / f"{n}.mp4", synth.animate_face(face, 30, 25, 0, 1, 1, 1, 0), 25,
                         synth.voice(1.2, 150, 4, 0.5, 0))
    pd.DataFrame({"media_path": [f"{n}.mp4" for n in names]}).to_csv(tmp_path / "l.csv", index=False)
    os.environ["OPENFACE_BIN"] = str(standin)
    try:
        assert "yes: FeatureExtraction at" in cli("extractors").stdout.replace("\n", "")
        proc = cli("extract", "--dataset", "csv", "--root", str(tmp_path / "l.csv"), "--store",
                   str(tmp_path / "s"), "--extractors", "openface", "--set", "openface.timeout_s=5",
                   "--min-confidence", "0.8", "--quiet")
    finally:
        del os.environ["OPENFACE_BIN"]
    assert proc.returncode == 1, proc.stderr  # failed clips -> non-zero exit
    store = FeatureStore(str(tmp_path / "s"))
    live = store.index()
    native = live[live.stage == "native"].set_index("clip_id")
    assert set(native[native.status == "ok"].index) == {"normal", "noface", "lowconf"}
    reasons = native["reason"].to_dict()
    assert "no CSV" in reasons["crash"] and "Segmentation fault" in reasons["crash"]
    assert "timed out" in reasons["hang"]
    assert "empty" in reasons["empty"] and "truncated" in reasons["trunc"] and "header" in reasons["badheader"]
    f = store.read(native.loc["normal"])
    assert f.values.shape == (30, 17) and f.mask.all() and np.allclose(f.confidence, 0.98)
    np.testing.assert_allclose(f.values[1, :3], [1.0, 2.0, 3.0])
    assert not store.read(native.loc["noface"]).mask.any()
    aligned = live[(live.stage == "aligned")].set_index("clip_id")
    lc = store.read(aligned.loc["lowconf"])
    nf = store.read(aligned.loc["normal"])
    assert lc.mask.all() and not np.allclose(lc.values, nf.values)  # odd frames (conf 0.5) were dropped
    assert not store.read(aligned.loc["noface"]).mask.any()


def test_audio_video_gap_is_judged_on_openface_frames_when_video_is_not_decoded(tmp_path, standin):
    """Audio 3 s, video 1.2 s: the container says 3 s for both, OpenFace's frames say 1.2 s of video."""
    synth.write_clip(tmp_path / "short_video.mp4", synth.animate_face(synth.face_image(96), 30, 25, 0, 1, 1, 1, 0),
                     25, synth.voice(3.0, 150, 4, 0.5, 0))
    synth.write_clip(tmp_path / "even.mp4", synth.animate_face(synth.face_image(96), 75, 25, 0, 1, 1, 1, 0),
                     25, synth.voice(3.0, 150, 4, 0.5, 0))
    pd.DataFrame({"media_path": ["short_video.mp4", "even.mp4"]}).to_csv(tmp_path / "l.csv", index=False)
    os.environ["OPENFACE_BIN"] = str(standin)
    try:
        proc = cli("extract", "--dataset", "csv", "--root", str(tmp_path / "l.csv"), "--store", str(tmp_path / "s"),
                   "--extractors", "logmel,openface", "--quiet")
    finally:
        del os.environ["OPENFACE_BIN"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    live = FeatureStore(str(tmp_path / "s")).index()
    aligned = live[live.stage == "aligned"]
    short = aligned[aligned.clip_id == "short_video"]
    assert set(short.status) == {"excluded"} and len(short) == 2, short[["extractor", "status", "reason"]]
    assert "video 1.20s" in short.reason.iloc[0]
    assert set(aligned[aligned.clip_id == "even"].status) == {"ok"}


def test_version_from_the_build_tree(tmp_path):
    from extractors.openface import version_of

    (tmp_path / "build" / "bin").mkdir(parents=True)
    exe = tmp_path / "build" / "bin" / "FeatureExtraction"
    exe.write_text("")
    assert version_of(str(exe)) == "version unknown"
    (tmp_path / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.8)\nproject(OpenFace VERSION 2.2.0)\n")
    assert version_of(str(exe)) == "2.2.0"
