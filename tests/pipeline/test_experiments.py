"""Experiment presets: every seed paper's experiment loads, checks and runs end to end through
`pipeline experiment run` on recipe-shaped test trees (tiny models or cheap substitutes, by override)."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import ConfigError
from pipeline.experiments import preset
from tests.helpers import corpus_fixtures as fx
from tests.helpers.cli import cli

EXPECTED = {"tran_pretrain_voxceleb2", "tran_pretrain_voxceleb2_large", "tran_crema_d", "tran_msp_improv",
            "tran_features_crema_d", "tran_features_msp_improv", "jmt_affwild2", "jmt_affwild2_5fold",
            "babaali_iemocap", "mater_ravdess", "mater_ravdess_w025", "mater_crema_d", "mater_crema_d_w025"}


def test_every_preset_loads_and_says_how_it_differs_from_its_paper(tmp_path):
    assert set(preset.names()) == EXPECTED
    from pipeline.experiments.paper_spec import differs

    for name in EXPECTED:
        p = preset.load(name)
        assert differs(p), name  # generated from the preset's paper spec
    five = preset.load("jmt_affwild2_5fold")
    assert five.train["protocol"] == "fold_video_k5" and five.train["optimizer"] == "sgd"
    assert five.differs[: len(preset.load("jmt_affwild2").differs)] == preset.load("jmt_affwild2").differs
    w025 = preset.load("mater_ravdess_w025")
    assert w025.extract["extractors"]["vggish"]["window_s"] == 0.25 and w025.view == "4hz"
    assert w025.extract["extractors"]["vggm_face"] == {"size": 96}
    babaali = preset.load("babaali_iemocap")
    assert len(babaali.runs) == 21 and babaali.train["text"] == "bert"
    custom = preset.customise(preset.load("mater_ravdess"), ["vggish.batch_examples=8"],
                              ["epochs=1", "options={d: 16}"], ["vggm_face=face_hog"])
    assert "vggm_face" not in custom.extract["extractors"] and custom.train["visual"] == "face_hog"
    assert custom.runs[1]["train"]["options"] == {"attention": False, "d": 16}
    assert custom.differs[-4:] == ["extractor vggm_face replaced by face_hog (--substitute)",
                                   "vggish.batch_examples = 8 (--set)", "epochs = 1 (--override)",
                                   "options = {d: 16} (--override)"]
    with pytest.raises(ConfigError, match="run 'MATER'.*no option"):
        preset.customise(preset.load("mater_ravdess"), [], ["options={nonsense: 1}"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: mater_ravdess\ntrain: {optimiser: sgd}\n")
    with pytest.raises(ConfigError, match="unknown training option.*optimiser"):
        preset.load(str(bad))
    proc = cli("experiment", "list")
    assert proc.returncode == 0 and all(n in proc.stdout for n in EXPECTED)


def _run(name: str, root, out, *args: str) -> dict:
    proc = cli("experiment", "run", name, "--root", str(root), "--out", str(out), "--quiet", *args, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Differs from the paper" in proc.stdout  # the table is printed too
    return json.loads((out / "experiment.json").read_text())


@pytest.mark.slow  # ~1.5 min: three tiny transformers extracted, 21 classical runs x 5 folds
def test_babaali_iemocap_text_speech_video_fusion_end_to_end(tmp_path):
    """The paper's three modalities through real (tiny) BERT, wav2vec2 and VideoMAE: unimodal, early
    concat/sum/product and late fusion, SVM/XGBoost/MLP, leave-one-session-out."""
    from tests.helpers.tiny_models import add_bert, add_videomae, add_wav2vec2

    models = tmp_path / "models"
    add_bert(tmp_path, models)
    add_wav2vec2(tmp_path, models, hidden=16)
    add_videomae(tmp_path, models)
    labels = ["neu", "hap", "ang", "sad", "exc", "neu", "ang", "sad"]
    turns = {s: (f"Ses0{s}F_impro0{s}", [(f"Ses0{s}F_impro0{s}_{'FM'[i % 2]}{i:03d}", lab)
                                         for i, lab in enumerate(labels)]) for s in range(1, 6)}
    root = fx.iemocap(tmp_path / "IEMOCAP", turns)
    out = tmp_path / "exp"
    res = _run("babaali_iemocap", root, out, "--models", str(models), "--set", "bert.weights=TEST_BERT",
               "--set", "wav2vec2.weights=TEST_W2V", "--set", "videomae.weights=TEST_VMAE",
               "--finetune-override", "epochs=1")
    assert res["extract"]["counts"]["failed"] == 0
    runs = {r["name"]: r["summary"]["model_100pct"] for r in res["runs"]}
    assert len(runs) == 21
    for name, s in runs.items():
        assert s["accuracy"]["n"] == 5, name  # five leave-one-session-out folds
    fold = json.loads((out / "run03" / "fold0" / "metrics.json").read_text())  # SVM, early fusion (concat)
    assert list(fold["folds"]) == ["fold_0"]
    config = json.loads((out / "run04" / "fold2" / "config.json").read_text())  # SVM, early fusion (sum), fold 2
    assert (config["text"], config["audio"], config["visual"], config["fusion"], config["folds"]) == (
        "bert@babaali_iemocap-bert-fold2", "wav2vec2@babaali_iemocap-wav2vec2-fold2",
        "videomae@babaali_iemocap-videomae-fold2", "sum", [2])
    table = (out / "table.md").read_text()
    assert "| SVM, early fusion (product) | 100 % labels |" in table and "XGBoost, late fusion" in table
    assert "bert.weights = TEST_BERT (--set)" in table and "fine-tuning epochs = 1 (--finetune-override)" in table
    assert "encoder trained on" not in table  # each encoder fine-tuned per fold, as the paper does
    assert len(list(models.glob("babaali_iemocap-*-fold*"))) == 15  # 3 encoders x 5 folds


def _cheap(name: str) -> list[str]:
    """Substitutes and overrides that make a preset run in seconds; each is listed in its differs."""
    tiny = ["--override", "epochs=1", "--override", "batch_size=8"]
    subs = {"trill": "logmel", "trill_clip": "logmel", "openface": "face_hog", "vggish": "logmel",
            "vggm_face": "face_hog", "facenet": "face_hog", "resnet_face": "face_hog", "r2plus1d": "face_hog",
            "resnet18_spectrogram": "logmel"}
    p = preset.load(name)
    args = [a for old in p.extract["extractors"] if old in subs for a in ("--substitute", f"{old}={subs[old]}")]
    if name.startswith("tran"):
        args += ["--override", "size=small", "--override", "window=10", "--override", "low_resource_seeds=1"]
    if name.startswith("mater"):
        args += ["--override", "options={d: 16, heads: 2, ffn: 32, layers: 1}"]
    if name.startswith("jmt"):
        args += ["--override", "options={d: 16}", "--override", "window=4"]
    return args + tiny


@pytest.mark.slow  # ~6 min: nine presets, each extracting and training on its own test tree
def test_every_other_preset_runs_end_to_end_on_its_test_tree(tmp_path):
    trees = {"voxceleb2": fx.voxceleb2(tmp_path / "VoxCeleb2"), "crema-d": fx.crema_d(tmp_path / "CREMA-D"),
             "msp-improv": fx.msp_improv(tmp_path / "MSP-IMPROV", video=True),
             "aff-wild2": fx.affwild2(tmp_path / "Aff-Wild2"),
             "ravdess": fx.ravdess(tmp_path / "RAVDESS")}
    exps = tmp_path / "experiments"
    for name in sorted(EXPECTED - {"babaali_iemocap"}, key=lambda n: (not n.startswith("tran_pretrain"), n)):
        p = preset.load(name)
        res = _run(name, trees[p.dataset], exps / name, *_cheap(name))
        assert len(res["runs"]) == len(p.runs), name
        assert any("(--substitute)" in d for d in res["differs"]) and any("epochs = 1" in d for d in res["differs"])
        for r in res["runs"]:
            assert r["summary"], (name, r["name"])
            assert all(m in v for v in r["summary"].values() for m in p.metrics if m != "valence_ccc"), (name, r)
        if p.pretrained_from:  # fine-tuned from the pretraining run beside it, with a scratch comparison
            cfg = json.loads((exps / name / "run00" / "config.json").read_text())
            assert cfg["pretrained"].endswith("tran_pretrain_voxceleb2/pretrain/pretrained.pt")
            assert {"pretrained_10pct", "scratch_10pct", "pretrained_100pct", "scratch_100pct"} <= set(
                res["runs"][0]["summary"])
            assert [c["verdict"] for c in res["claims"]] and all(c["verdict"] in ("holds", "does not hold here")
                                                                 for c in res["claims"])
    assert (exps / "tran_pretrain_voxceleb2" / "pretrain" / "pretrained.pt").is_file()
    proc = cli("experiment", "run", "tran_crema_d", "--root", str(trees["crema-d"]), "--out",
               str(tmp_path / "elsewhere" / "tran_crema_d"))
    assert proc.returncode == 2 and "run `pipeline experiment run tran_pretrain_voxceleb2" in proc.stderr


def test_a_preset_fine_tunes_its_backbone_per_fold_and_each_fold_trains_on_its_own_stream(tmp_path):
    """Babaali's protocol: the text encoder learns each fold's training sessions first (weights registered per
    fold), its features live as one stream per fold beside each other in one store, and fold k trains and is
    tested on the stream fine-tuned without fold k."""
    from tests.helpers.tiny_models import add_bert

    models = tmp_path / "models"
    add_bert(tmp_path, models)
    labels = ["neu", "hap", "ang", "sad"]
    turns = {s: (f"Ses0{s}F_impro0{s}", [(f"Ses0{s}F_impro0{s}_{'FM'[i % 2]}{i:03d}", lab)
                                         for i, lab in enumerate(labels)]) for s in range(1, 6)}
    root = fx.iemocap(tmp_path / "IEMOCAP", turns)
    mine = tmp_path / "text_only.yaml"
    p = preset.load("babaali_iemocap")
    text = "\n".join(["extends: babaali_iemocap", "runs:", '  - {name: "SVM, text only", train: {model: svm, only: '
                      'text}}', "finetune: {bert: {epochs: 1, batch_size: 4}}"])
    mine.write_text(text + "\n")
    assert p.finetune["bert"]["lr"] == 2.0e-5
    out = tmp_path / "exp"
    proc = cli("experiment", "run", str(mine), "--root", str(root), "--out", str(out), "--quiet", "--models",
               str(models), "--set", "bert.weights=TEST_BERT", "--substitute", "wav2vec2=egemaps", "--substitute",
               "videomae=face_hog", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((out / "experiment.json").read_text())
    assert res["runs"][0]["folds"] == 5 and res["runs"][0]["summary"]["model_100pct"]["accuracy"]["n"] == 5
    tuned = sorted(d.name for d in models.glob("text_only-bert-fold*"))
    assert tuned == [f"text_only-bert-fold{k}" for k in range(5)]
    from stores.feature_store import FeatureStore

    live = FeatureStore(str(out / "store.zarr")).index()
    streams = set(live[live["stage"] == "aligned"]["extractor"])
    assert {f"bert@text_only-bert-fold{k}" for k in range(5)} <= streams and "bert" not in streams
    cfg = json.loads((out / "run00" / "fold3" / "config.json").read_text())
    assert cfg["text"] == "bert@text_only-bert-fold3" and cfg["folds"] == [3]
    assert not any(d.startswith("text encoder trained on") for d in res["differs"]), res["differs"]
    again = cli("experiment", "run", str(mine), "--root", str(root), "--out", str(out), "--quiet", "--models",
                str(models), "--set", "bert.weights=TEST_BERT", "--substitute", "wav2vec2=egemaps", "--substitute",
                "videomae=face_hog", timeout=900)
    assert again.returncode == 0 and again.stdout.count("fine-tuned already (same settings): reused") == 5


@pytest.mark.slow  # R(2+1)D and ResNet-18 fine-tuned on CPU, then JMT: ~2 min
def test_jmt_fine_tunes_both_backbones_on_affwild2_then_trains_the_fusion_on_them(tmp_path):
    import torch
    from torchvision.models.video import r2plus1d_18

    from extractors.resnet18_spectrogram import resnet18_1ch

    models = tmp_path / "models"
    torch.manual_seed(0)
    torch.save(r2plus1d_18(weights=None).state_dict(), tmp_path / "r2.pth")
    torch.save(resnet18_1ch().state_dict(), tmp_path / "rn.pth")
    cli("models", "add", "START_R2", str(tmp_path / "r2.pth"), "--like", "R2PLUS1D_18_KINETICS400_V1", "--models",
        str(models), check=True)
    cli("models", "add", "START_RN", str(tmp_path / "rn.pth"), "--like", "RESNET18_SPECTROGRAM_JMT", "--models",
        str(models), check=True)
    root, out = fx.affwild2(tmp_path / "Aff-Wild2"), tmp_path / "exp"
    res = _run("jmt_affwild2", root, out, "--models", str(models), "--set", "r2plus1d.weights=START_R2", "--set",
               "resnet18_spectrogram.weights=START_RN", "--set", "r2plus1d.face_size=112", "--finetune-override",
               "epochs=1", "--override", "epochs=1", "--override", "window=4", "--override", "options={d: 16}")
    assert res["runs"][0]["summary"], res["runs"]
    assert sorted(d.name for d in models.glob("jmt_affwild2-*")) == ["jmt_affwild2-r2plus1d",
                                                                     "jmt_affwild2-resnet18_spectrogram"]
    cfg = json.loads((out / "run00" / "config.json").read_text())
    assert (cfg["visual"], cfg["audio"]) == ("r2plus1d@jmt_affwild2-r2plus1d",
                                             "resnet18_spectrogram@jmt_affwild2-resnet18_spectrogram")
    assert not any(d.startswith(("visual backbone trained on", "audio backbone trained on")) for d in res["differs"])
