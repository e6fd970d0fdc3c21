"""The manifest contract and the three built-in adapters."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from pipeline.datasets import manifest, scan
from pipeline.errors import ConfigError
from pipeline.media import synth
from tests.helpers.cli import cli


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


def test_csv_ids_that_are_empty_null_or_blank_are_refused_naming_the_rows(tmp_path):
    """An empty and a `nan` id both became the string "nan": one clip's results overwrote the other's."""
    pd.DataFrame({"path": ["a.mp4", "b.mp4", "c.mp4", "d.mp4"], "clip_id": ["ok", "", "nan", "  "]}).to_csv(
        tmp_path / "list.csv", index=False)
    with pytest.raises(ConfigError, match=r"3 clip\(s\) with an empty clip_id \(data row\(s\) 2, 3, 4"):
        manifest.build("csv", tmp_path / "list.csv")
    proc = cli("extract", "--dataset", "csv", "--root", str(tmp_path / "list.csv"), "--store", str(tmp_path / "s"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1, proc.stderr


def test_csv_negative_segment_start_is_refused(tmp_path):
    pd.DataFrame({"path": ["a.mp4"], "clip_id": ["a"], "start": [-1.0], "end": [2.0]}).to_csv(
        tmp_path / "list.csv", index=False)
    with pytest.raises(ConfigError, match="negative start or end for clips \\['a'\\]"):
        manifest.build("csv", tmp_path / "list.csv")


def test_folder_listing_skips_a_symlink_loop_and_an_unreadable_folder_with_a_warning(tmp_path):
    """Real damage on disk: a self-referencing symlink and a folder its reader may not list (read as user
    `nobody` when the tests run as root, who may list anything). Both are named; the rest is listed."""
    root = Path(tempfile.mkdtemp(prefix="affect-scan-"))
    try:
        root.chmod(0o755)
        synth.write_wav(root / "good.wav", synth.voice(0.3, 120, 4, 0.5, 0, 16000))
        (root / "loop.wav").symlink_to(root / "loop.wav")
        (root / "locked").mkdir()
        synth.write_wav(root / "locked" / "hidden.wav", synth.voice(0.3, 120, 4, 0.5, 1, 16000))
        (root / "locked").chmod(0)
        found, skipped = _scan_as_nobody(root)
        assert found == [str(root / "good.wav")]
        assert sorted(s.split(":")[0] for s in skipped) == [str(root / "locked"), str(root / "loop.wav")]
        assert "Too many levels of symbolic links" in " ".join(skipped) and "Permission denied" in " ".join(skipped)
        with pytest.raises(OSError):  # without a list to record them in, the old behaviour: raise
            list(scan.files(str(root), {".wav"}))
        proc = cli("extract", "--dataset", "folder", "--root", str(root), "--store", str(root / "s.zarr"),
                   "--extractors", "logmel", "--quiet")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert f"warning: skipped {root / 'loop.wav'}: Too many levels of symbolic links" in proc.stderr
    finally:
        (root / "locked").chmod(0o755)
        shutil.rmtree(root)


def _scan_as_nobody(root: Path) -> tuple[list[str], list[str]]:
    """``scan.files`` in a forked child that dropped to user ``nobody`` when running as root (root may list
    any folder: no permission bit would stop it); the result comes back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exec, the modules are already imported
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            skipped: list[str] = []
            found = list(scan.files(str(root), {".wav"}, skipped))
            os.write(w, json.dumps([found, skipped]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(out))
