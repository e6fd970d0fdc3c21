"""A folder as users have them: a portrait phone clip, a damaged-timestamp AVI, a .wav, a video-only clip, an
empty audio track and normal clips, extracted together with the real CLI (exit 0, verify clean)."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np

from pipeline.media import synth
from stores.feature_store import FeatureStore
from tests.helpers.cli import cli, extract_json, opencv_sample


def _empty_wav(path: Path) -> None:
    """A WAV whose audio stream holds no samples (a recorder stopped at once): a stream, and nothing in it."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"")


def test_a_folder_of_real_world_media_extracts_with_exit_0_and_verifies(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    face = synth.face_image(160)
    upright = list(synth.animate_face(face, 25, 25, 0, 1, 1, 1, 0))
    voice = synth.voice(1.0, 140, 4, 0.5, 0)
    synth.write_clip(root / "normal.mp4", upright, 25, voice)
    synth.write_clip(root / "phone.mp4", [np.ascontiguousarray(np.rot90(f, -1)) for f in upright], 25, voice,
                     display_rotation=90)
    synth.write_clip(root / "video_only.mp4", upright, 25, None)
    synth.write_wav(root / "voice.wav", synth.voice(1.0, 150, 4, 0.5, 1, 16000), 16000)
    _empty_wav(root / "silent_track.wav")
    (root / "...mp4").write_bytes((root / "normal.mp4").read_bytes())  # a name of dots: still a clip
    shutil.copy(opencv_sample("Megamind.avi"), root / "megamind.avi")  # timestamps go backwards in 88 frames
    store = tmp_path / "s.zarr"
    dry = extract_json("--dataset", "folder", "--root", str(root), "--store", str(store), "--extractors",
                       "logmel,face_hog", "--face-detector", "haar", "--quiet", "--dry-run")
    report = extract_json("--dataset", "folder", "--root", str(root), "--store", str(store), "--extractors",
                          "logmel,face_hog", "--face-detector", "haar", "--quiet")
    # the estimate holds on real media with the face stage (calibrated per pixel shown, not per media second)
    assert 1 / 1.5 <= dry["estimate"]["wall_seconds"] / report["wall_s"] <= 1.5, (dry["estimate"], report["wall_s"])
    assert report["counts"]["failed"] == 0, report["failures"]
    live = FeatureStore(str(store)).index()
    native = live[live["stage"] == "native"].set_index(["clip_id", "extractor"])
    status = native["status"].to_dict()
    assert {c for c, _ in status} == {"normal", "phone", "video_only", "voice", "silent_track", "..", "megamind"}
    excluded = {k for k, v in status.items() if v == "excluded"}
    assert excluded == {("video_only", "logmel"), ("voice", "face_hog"), ("silent_track", "logmel"),
                        ("silent_track", "face_hog")}, status
    assert "no audio stream" in native.loc[("video_only", "logmel"), "reason"]
    assert "holds no samples" in native.loc[("silent_track", "logmel"), "reason"]
    assert native.loc[("phone", "face_hog"), "valid"] > 0.9  # faces found: the frames were upright
    assert "rot90" in native.loc[("phone", "face_hog"), "reason"]
    assert "timestamps go backwards" in native.loc[("megamind", "face_hog"), "reason"]
    assert cli("verify", str(store), "--quiet").returncode == 0
    shown = cli("status", str(store)).stdout
    assert "excluded" in shown and "voice" in shown
    again = extract_json("--dataset", "folder", "--root", str(root), "--store", str(store), "--extractors",
                         "logmel,face_hog", "--face-detector", "haar", "--quiet")
    assert again["planned"] == 0  # exclusions are answers: nothing retried
