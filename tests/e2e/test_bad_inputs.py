"""Every kind of bad input becomes a failed row with a one-line reason; everything else is stored."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from pipeline.media import synth
from stores.feature_store import FeatureStore
from stores.lock import StoreLock
from tests.helpers.cli import cli, extract_json


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    face = synth.face_image(128)
    audio = synth.voice(1.2, 140, 4, 0.5, 0)
    good = d / "good.mp4"
    synth.write_clip(good, synth.animate_face(face, 30, 25, 0, 1, 1, 1, 0), 25, audio)
    odd = d / "wëird näme 'with' \"quotes\".mp4"
    synth.write_clip(odd, synth.animate_face(face, 30, 25, 0, 1, 1, 1, 1), 25, audio)
    synth.write_wav(d / "audio_only.wav", audio[::3].copy(), 16000)
    synth.write_clip(d / "video_only.mp4", synth.animate_face(face, 30, 25, 0, 1, 1, 1, 2), 25, None)
    (d / "zero.mp4").write_bytes(b"")
    data = good.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "random.mp4").write_bytes(np.random.default_rng(0).bytes(30000))
    broken = bytearray(data)
    broken[len(data) // 3 : len(data) // 3 + 6000] = np.random.default_rng(1).bytes(6000)
    (d / "broken_middle.mp4").write_bytes(bytes(broken))
    long_audio = synth.voice(3.5, 140, 4, 0.5, 5)  # audio outlasts the video by 2.3 s
    synth.write_clip(d / "mismatch.mp4", synth.animate_face(face, 30, 25, 0, 1, 1, 1, 3), 25, long_audio)
    rows = [p.name for p in sorted(d.iterdir())] + ["missing.mp4"]
    pd.DataFrame({"media_path": rows, "speaker": "s1"}).to_csv(d / "list.csv", index=False)
    return d


def test_each_bad_input_fails_alone_with_a_reason(bad_corpus, tmp_path):
    s = tmp_path / "s.zarr"
    args = ["--dataset", "csv", "--root", str(bad_corpus / "list.csv"), "--store", str(s),
            "--extractors", "logmel,face_hog", "--shard-size", "3", "--quiet"]
    proc = cli("extract", *args)
    assert proc.returncode == 1, proc.stderr  # failures -> non-zero exit
    live = FeatureStore(str(s)).index()
    native = live[live.stage == "native"].set_index(["clip_id", "extractor"])
    ok = {c for (c, e), r in native.iterrows() if r.status == "ok"}
    reason = {(c, e): r.reason for (c, e), r in native.iterrows() if r.status == "failed"}
    excluded = {(c, e): r.reason for (c, e), r in native.iterrows() if r.status == "excluded"}
    assert {"good", "wëird näme 'with' \"quotes\"", "mismatch"} <= ok
    # a clip without a modality is not broken media: excluded for the extractors that need it, the rest kept
    assert ("audio_only", "logmel") in {(c, e) for (c, e), r in native.iterrows() if r.status == "ok"}
    assert "no video stream" in excluded[("audio_only", "face_hog")]
    assert "no audio stream" in excluded[("video_only", "logmel")]
    assert ("video_only", "face_hog") not in reason and ("video_only", "face_hog") not in excluded
    assert "empty (0 bytes)" in reason[("zero", "logmel")]
    assert "not a readable media file" in reason[("truncated", "logmel")]
    assert "not a readable media file" in reason[("random", "face_hog")]
    # damaged packets in the middle: skipped and counted (as FFmpeg's tools do), said in the row; where nothing
    # decodes it stays a failure
    broken = native.loc[("broken_middle", "face_hog")]
    assert (broken.status == "ok" and "damaged" in broken.reason and "skipped" in broken.reason) or \
        broken.reason.startswith("decode: corrupt media"), broken.to_dict()
    assert "file not found" in reason[("missing", "logmel")]
    for r in reason.values():
        assert "\n" not in r and r.split(":")[0] in ("open", "probe", "decode")
    aligned = live[(live.stage == "aligned") & (live.clip_id == "mismatch")]
    assert set(aligned.status) == {"excluded"} and aligned.reason.str.contains("gap").all()
    assert cli("verify", str(s)).returncode == 0
    status = cli("status", str(s)).stdout
    assert "failures and exclusions" in status and "random" in status and "video_only" in status
    again = extract_json(*args, "--allow-failures")  # failures retried, the rest (exclusions too) cached
    assert again["counts"]["ok"] == 0 and again["counts"]["failed"] == len(reason)
    assert again["counts"]["excluded"] == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(bad_corpus, tmp_path):
    p = tmp_path / "locked.mp4"
    p.write_bytes((bad_corpus / "good.mp4").read_bytes())
    p.chmod(0)
    pd.DataFrame({"media_path": [str(p)], "speaker": ["s"]}).to_csv(tmp_path / "l.csv", index=False)
    r = extract_json("--dataset", "csv", "--root", str(tmp_path / "l.csv"), "--store", str(tmp_path / "s"),
                     "--extractors", "logmel", "--quiet", check=False)
    assert "permission denied" in r["failures"][0]


def test_a_second_concurrent_run_is_refused_with_a_clear_message(bad_corpus, tmp_path):
    s = tmp_path / "s.zarr"
    store = FeatureStore(str(s), create=True)
    with StoreLock(store.fs):
        proc = cli("extract", "--dataset", "csv", "--root", str(bad_corpus / "list.csv"), "--store", str(s),
                   "--extractors", "logmel", "--quiet")
    assert proc.returncode == 2 and "in use by another run" in proc.stderr


def test_verify_and_repair_while_a_run_holds_the_store_refuse_in_one_line_and_status_says_so(mini_corpus, tmp_path):
    """A real lock held by another process (this one) on a real store: verify would read a consolidation in
    progress as damage, and --repair would race it; both refuse with one line naming the holder."""
    store = tmp_path / "s.zarr"
    extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", str(store), "--extractors", "logmel",
                 "--quiet", "--limit", "2")
    with StoreLock(FeatureStore(str(store)).fs):
        for args in ((), ("--repair",)):
            proc = cli("verify", str(store), *args)
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
            assert len(lines) == 1 and "in use by another run" in lines[0] and str(os.getpid()) in lines[0], lines
        proc = cli("status", str(store))
        assert proc.returncode == 0 and "a run is in progress" in proc.stderr, proc.stderr
    assert cli("verify", str(store)).returncode == 0
    assert "in progress" not in cli("status", str(store)).stderr


def test_every_mistake_on_the_command_line_is_one_line_and_exit_2(mini_corpus, tmp_path):
    """Paths that must be a store, and option values (type and range), refused before any work, dry run too."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a store")
    ext = ["extract", "--dataset", "demo", "--root", str(mini_corpus), "--extractors", "logmel", "--quiet"]
    cases = [
        [*ext, "--store", str(a_file)],
        ["status", str(a_file)],
        ["verify", str(a_file)],
        ["train", "--store", str(tmp_path / "nowhere.zarr"), "--out", str(tmp_path / "run")],
        ["pretrain", "--store", str(tmp_path / "nowhere.zarr"), "--out", str(tmp_path / "pre")],
        ["experiment", "run", "mater_ravdess", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "exp")],
        ["experiment", "run", "mater_ravdess", "--root", str(mini_corpus), "--out", str(tmp_path / "exp"),
         "--keep", "weird"],
    ]
    for setting in ("logmel.n_mels=forty", "logmel.n_mels=-3", "logmel.fmax=10", "logmel.win_ms=[1]"):
        for dry in (["--dry-run"], []):
            cases.append([*ext, "--store", str(tmp_path / "s.zarr"), "--set", setting, *dry])
    for args in cases:
        proc = cli(*args)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, lines)
    for made in ("s.zarr", "run", "pre", "exp"):  # nothing was started, no folder left behind
        assert not (tmp_path / made).exists(), made


def test_a_segment_past_the_end_of_its_media_names_the_clip_and_its_times(bad_corpus, tmp_path):
    pd.DataFrame({"path": [str(bad_corpus / "good.mp4")] * 2, "clip_id": ["inside", "after"],
                  "start": [0.2, 12.0], "end": [0.8, 15.0]}).to_csv(tmp_path / "l.csv", index=False)
    r = extract_json("--dataset", "csv", "--root", str(tmp_path / "l.csv"), "--store", str(tmp_path / "s"),
                     "--extractors", "logmel,face_hog", "--quiet", check=False)
    assert r["counts"]["ok"] == 2 and r["counts"]["failed"] == 2
    assert all("segment: starts at 12 s, after the end of its media" in f and "'after'" in f for f in r["failures"])
