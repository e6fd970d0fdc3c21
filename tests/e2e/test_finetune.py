"""`pipeline finetune`: a backbone learns from a corpus partition through the extraction front end, is registered
with its sha256, and its features sit beside the starting checkpoint's in one store (the cache key differs)."""

from __future__ import annotations

import json

import pytest
import torch

from extractors import weights
from stores.feature_store import FeatureStore
from tests.helpers import corpus_fixtures as fx
from tests.helpers.cli import cli, extract_json

JMT_AUDIO = ["sample_rate=44100", "n_fft=1024", "window_s=0.5", "hop_s=0.25"]


@pytest.mark.slow  # ~30 s; the default tier keeps tests/extractors/test_finetune_device.py and the per-fold preset
def test_jmt_audio_backbone_fine_tuned_on_affwild2_then_extracted_beside_the_start(tmp_path):
    from extractors.resnet18_spectrogram import resnet18_1ch

    root, models, store = fx.affwild2(tmp_path / "Aff-Wild2"), tmp_path / "models", str(tmp_path / "s.zarr")
    torch.manual_seed(0)
    torch.save(resnet18_1ch().state_dict(), tmp_path / "start.pth")
    cli("models", "add", "START_RN", str(tmp_path / "start.pth"), "--like", "RESNET18_SPECTROGRAM_JMT", "--models",
        str(models), check=True)
    args = ["finetune", "resnet18_spectrogram", "--dataset", "aff-wild2", "--root", str(root), "--name", "AW_RN",
            "--set", "weights=START_RN", *[a for s in JMT_AUDIO for a in ("--set", s)], "--optimizer", "adam",
            "--lr", "1e-3", "--models", str(models), "--out", str(tmp_path / "ft")]
    first = cli(*args, "--epochs", "1", check=True)
    assert "epoch 1/1" in first.stdout and "registered AW_RN" in first.stdout
    again = cli(*[a if a != "AW_RN" else "AW_RN2" for a in args], "--epochs", "2", check=True)
    assert "resumed at epoch 1" in again.stdout and "epoch 2/2" in again.stdout  # checkpointed, resumable
    record = json.loads((models / "AW_RN2" / "weights.json").read_text())
    assert record["like"] == "RESNET18_SPECTROGRAM_JMT" and record["finetuned"]["dataset"] == "aff-wild2"
    assert "train rows" in record["finetuned"]["partition"]  # the official Train set only
    weights.set_models_dir(str(models))
    try:
        assert weights.get_weights("AW_RN2").meta["dataset"] == "aff-wild2"
        sums = (models / "AW_RN2" / "SHA256SUMS").read_text().split()[0]
        assert sums == weights.sha256_of(models / "AW_RN2" / "resnet18_spectrogram.pth")
    finally:
        weights.set_models_dir(None)
    opts = [a for s in JMT_AUDIO for w in ("START_RN", "AW_RN2")
            for a in ("--set", f"resnet18_spectrogram@{w}.{s}")]
    r = extract_json("--dataset", "aff-wild2", "--root", str(root), "--store", store, "--models", str(models),
                     "--extractors", "resnet18_spectrogram@START_RN,resnet18_spectrogram@AW_RN2", *opts, "--quiet")
    assert r["counts"]["failed"] == 0
    live = FeatureStore(store).index()
    native = live[(live["stage"] == "native") & (live["status"] == "ok")]
    both = native[native["extractor"].str.startswith("resnet18_spectrogram@")]
    assert both.groupby("clip_id")["extractor"].nunique().min() == 2  # side by side in one store
    keys = both.groupby("extractor")["key"].apply(set)
    assert not keys["resnet18_spectrogram@START_RN"] & keys["resnet18_spectrogram@AW_RN2"]  # sha256 in each key
    proc = cli("verify", store)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_text_and_speech_encoders_fine_tuned_on_iemocap_training_sessions(tmp_path):
    from tests.helpers.tiny_models import add_bert, add_wav2vec2

    models = tmp_path / "models"
    add_bert(tmp_path, models)
    add_wav2vec2(tmp_path, models, hidden=16)
    labels = ["neu", "hap", "ang", "sad"]
    turns = {s: (f"Ses0{s}F_impro0{s}", [(f"Ses0{s}F_impro0{s}_{'FM'[i % 2]}{i:03d}", lab)
                                         for i, lab in enumerate(labels)]) for s in range(1, 6)}
    root = fx.iemocap(tmp_path / "IEMOCAP", turns)
    for ext, start in (("bert", "TEST_BERT"), ("wav2vec2", "TEST_W2V")):
        proc = cli("finetune", ext, "--dataset", "iemocap", "--root", str(root), "--name", f"FOLD5_{ext}",
                   "--set", f"weights={start}", "--label", "label_4class", "--protocol", "fold_lo_session",
                   "--fold", "4", "--epochs", "1", "--optimizer", "adamw", "--lr", "2e-5", "--weight-decay", "0.01",
                   "--models", str(models), "--out", str(tmp_path / ext), check=True)
        assert "(16 units)" in proc.stdout, proc.stdout  # 4 sessions x 4 turns: fold 4 (session 5) left out
        record = json.loads((models / f"FOLD5_{ext}" / "weights.json").read_text())["finetuned"]
        assert record["partition"] == "fold_lo_session, test fold 4 left out" and record["classes"] == sorted(labels)
    r = extract_json("--dataset", "iemocap", "--root", str(root), "--store", str(tmp_path / "s.zarr"), "--models",
                     str(models), "--extractors", "bert,wav2vec2", "--set", "bert.weights=FOLD5_bert", "--set",
                     "wav2vec2.weights=FOLD5_wav2vec2", "--quiet")
    assert r["counts"]["failed"] == 0


def test_fold_protocol_needs_the_test_fold_and_unknown_backbones_are_named(tmp_path):
    root = fx.iemocap(tmp_path / "IEMOCAP")
    proc = cli("finetune", "bert", "--dataset", "iemocap", "--root", str(root), "--name", "X", "--label",
               "label_4class", "--protocol", "fold_lo_session", "--models", str(tmp_path / "m"))
    assert proc.returncode == 2 and "--fold K" in proc.stderr, proc.stderr
    proc = cli("finetune", "bert", "--dataset", "iemocap", "--root", str(root), "--name", "X", "--label",
               "label_4class", "--protocol", "fold_lo_session", "--fold", "5", "--models", str(tmp_path / "m"))
    assert proc.returncode == 2 and "fold '5' is not a value" in proc.stderr, proc.stderr
    proc = cli("finetune", "egemaps", "--dataset", "iemocap", "--root", str(root), "--name", "X", "--label",
               "label_4class", "--fold", "1", "--protocol", "fold_lo_session")
    assert proc.returncode == 2 and "no trainable backbone" in proc.stderr and "r2plus1d" in proc.stderr


@pytest.mark.slow  # R(2+1)D on CPU: ~40 s
def test_jmt_visual_backbone_fine_tuned_on_affwild2_clips(tmp_path):
    from torchvision.models.video import r2plus1d_18

    root, models = fx.affwild2(tmp_path / "Aff-Wild2"), tmp_path / "models"
    torch.manual_seed(0)
    torch.save(r2plus1d_18(weights=None).state_dict(), tmp_path / "r2.pth")
    cli("models", "add", "START_R2", str(tmp_path / "r2.pth"), "--like", "R2PLUS1D_18_KINETICS400_V1", "--models",
        str(models), check=True)
    cli("finetune", "r2plus1d", "--dataset", "aff-wild2", "--root", str(root), "--name", "AW_R2", "--set",
        "weights=START_R2", "--epochs", "1", "--models", str(models), "--out", str(tmp_path / "ft"), check=True)
    state = torch.load(models / "AW_R2" / "r2plus1d_18-91a641e6.pth", weights_only=True)
    start = torch.load(tmp_path / "r2.pth", weights_only=True)
    assert set(state) == set(start)  # loadable as the architecture's own file (classifier kept)
    assert not torch.equal(state["layer4.1.conv2.0.0.weight"], start["layer4.1.conv2.0.0.weight"])
    r = extract_json("--dataset", "aff-wild2", "--root", str(root), "--store", str(tmp_path / "s.zarr"),
                     "--models", str(models), "--extractors", "r2plus1d", "--set", "r2plus1d.weights=AW_R2", "--quiet")
    assert r["counts"]["failed"] == 0


def test_a_damaged_clip_is_left_out_of_fine_tuning_by_name_and_the_rest_learns(tmp_path):
    from tests.helpers.tiny_models import add_wav2vec2

    models = tmp_path / "models"
    add_wav2vec2(tmp_path, models, hidden=16)
    labels = ["neu", "hap", "ang", "sad"]
    turns = {s: (f"Ses0{s}F_impro0{s}", [(f"Ses0{s}F_impro0{s}_{'FM'[i % 2]}{i:03d}", lab)
                                         for i, lab in enumerate(labels)]) for s in range(1, 6)}
    root = fx.iemocap(tmp_path / "IEMOCAP", turns)
    broken = next(root.rglob("Ses01F_impro01.wav"))
    broken.write_bytes(b"RIFF not a wav at all")
    proc = cli("finetune", "wav2vec2", "--dataset", "iemocap", "--root", str(root), "--name", "W", "--set",
               "weights=TEST_W2V", "--label", "label_4class", "--protocol", "fold_lo_session", "--fold", "4",
               "--epochs", "1", "--models", str(models), "--out", str(tmp_path / "ft"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    left = [ln for ln in proc.stdout.splitlines() if "left out of fine-tuning" in ln]
    assert len(left) == 4 and all("Ses01F_impro01_" in ln for ln in left), proc.stdout
    assert "(12 units)" in proc.stdout  # sessions 2-4 learnt; session 5 is the test fold
