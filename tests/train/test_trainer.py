"""The trainer: parameter counts, masking statistics, metrics, every model learning, protocols,
resume equality, and `pipeline train` end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm

from tests.helpers.cli import cli
from tests.helpers.store_fixtures import synthetic_store
from train import masking, metrics, trainer
from train.config import TrainConfig
from train.losses import ccc_loss
from train.models.gru import EFGRU, LFGRU
from train.models.jmt import JMT
from train.models.mult import BASE, LARGE, MulT, count_parameters
from train.partitions import low_resource, partitions


def test_parameter_counts_match_the_papers():
    base, large = count_parameters(MulT(512, 17, BASE)), count_parameters(MulT(512, 17, LARGE))
    assert abs(base - 38.4e6) / 38.4e6 < 0.005 and base == 38_375_665
    assert abs(large - 89.3e6) / 89.3e6 < 0.005 and large == 89_250_961
    assert count_parameters(JMT(512, 512)) == 11_820_034  # the authors' code, parameters used in forward
    for m in (EFGRU(512, 17, 4), LFGRU(512, 17, 4)):  # sized near MulT BASE
        assert abs(count_parameters(m) - base) / base < 0.02


def test_size_small_shrinks_the_gru_baselines_too_unless_options_say_otherwise():
    from train.build import build

    def n(**kw):
        return count_parameters(build(TrainConfig(store="-", **kw), {"audio": 512, "visual": 17}, 4))

    assert n(model="ef_gru") > 30e6 and n(model="lf_gru") > 30e6  # base: the paper's sizes
    assert n(model="ef_gru", size="small") < 0.5e6 and n(model="lf_gru", size="small") < 0.5e6
    assert n(model="gru_probe", size="small") < n(model="gru_probe") / 10
    assert n(model="ef_gru", size="small", options={"hidden": 128}) > n(model="ef_gru", size="small")


def test_masking_statistics_over_many_draws():
    cfg, rng = masking.MaskConfig(), np.random.default_rng(0)
    valid = np.ones((4000, 50), bool)
    valid[::2, 40:] = False  # padding is never selected
    marks = masking.draw(valid, cfg, rng)
    sel = marks > 0
    assert not sel[~valid].any()
    assert abs(sel.sum() / valid.sum() - 0.15) < 0.01
    kinds = marks[sel]
    for kind, p in ((masking.ZERO, 0.8), (masking.RANDOM, 0.1), (masking.KEEP, 0.1)):
        assert abs((kinds == kind).mean() - p) < 0.01
    for row in sel[:500]:  # selected frames come in runs whose lengths are multiples of 3
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0])))[::2]
        assert (runs % 3 == 0).all()
    idx = np.arange(10)
    assert (masking.static(valid[:10], idx, cfg, 5) == masking.static(valid[:10], idx, cfg, 5)).all()


def test_masking_apply_corrupts_both_modalities_at_the_same_positions_from_one_source_frame():
    B, T = 3, 12
    xa = torch.arange(B * T * 4, dtype=torch.float32).reshape(B, T, 4) + 1  # every frame distinct, none zero
    xv = -torch.arange(B * T * 2, dtype=torch.float32).reshape(B, T, 2) - 1
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[1, 8:] = False  # sample 1 is padded after frame 7
    marks = torch.zeros(B, T, dtype=torch.int8)
    marks[0, 0:3] = masking.ZERO
    marks[0, 3:6] = masking.RANDOM
    marks[0, 6:9] = masking.KEEP
    marks[2, 9:12] = masking.RANDOM
    for seed in range(20):
        ca, cv = masking.apply([xa, xv], marks, valid, np.random.default_rng(seed))
        assert (ca[0, 0:3] == 0).all() and (cv[0, 0:3] == 0).all()
        untouched = (marks != masking.ZERO) & (marks != masking.RANDOM)
        assert torch.equal(ca[untouched], xa[untouched]) and torch.equal(cv[untouched], xv[untouched])
        for b, span in ((0, slice(3, 6)), (2, slice(9, 12))):
            frame = ca[b, span]
            assert (frame == frame[0]).all()  # one source frame for every RANDOM position of the sample
            sb, st = map(int, torch.nonzero((xa == frame[0]).all(-1))[0])
            assert sb != b and valid[sb, st]  # another sample's valid frame, never padding
            assert torch.equal(cv[b, span][0], xv[sb, st])  # the video from the same sample and time
    one = masking.apply([xa[:1]], marks[:1], valid[:1], np.random.default_rng(0))[0]
    assert not (one[0, 3:6] == 0).any()  # a batch of one uses its own valid frames
    again = masking.apply([xa, xv], marks, valid, np.random.default_rng(3))
    assert all(torch.equal(a, b) for a, b in zip(again, masking.apply([xa, xv], marks, valid,
                                                                      np.random.default_rng(3))))


def test_ccc_and_classification_metrics():
    assert metrics.ccc(np.array([0, 1, 2]), np.array([0, 1, 1])) == pytest.approx(2 / 3)
    x, y = np.random.default_rng(0).normal(size=(2, 200))
    a, b = x - x.mean(), y - y.mean()
    by_hand = 2 * np.mean(a * b) / (np.var(x) + np.var(y) + (x.mean() - y.mean()) ** 2)
    assert metrics.ccc(x, y) == pytest.approx(by_hand)
    assert float(1 - ccc_loss(torch.tensor(x)[:, None], torch.tensor(y)[:, None])) == pytest.approx(by_hand)
    t, p = np.array([0, 0, 1, 1, 2, 2, 2]), np.array([0, 1, 1, 1, 2, 0, 2])
    m = metrics.classification(t, p, ["a", "b", "c"])
    assert m["unweighted_accuracy"] == pytest.approx(skm.balanced_accuracy_score(t, p))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(t, p, average="macro"))
    assert m["confusion"] == skm.confusion_matrix(t, p).tolist()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_store(tmp_path_factory.mktemp("syn") / "s.zarr", frame_targets=True)


SMALL = {"mult": {"size": "small"}, "tfn": {}, "ef_gru": {"options": {"hidden": 32, "layers": 1}},
         "lf_gru": {"options": {"hidden": 32}}, "gru_probe": {"options": {"hidden": 32}},
         "mater": {"options": {"d": 32, "heads": 4, "ffn": 64, "layers": 2}}, "svm": {}, "xgboost": {}, "mlp": {}}


@pytest.mark.parametrize("model", list(SMALL))
def test_every_model_learns_a_separable_task(store, tmp_path, model):
    cfg = TrainConfig(store=str(store), out=str(tmp_path / model), model=model, epochs=15, batch_size=8,
                      lr=3e-3, window=20, **SMALL[model])
    res = trainer.run(cfg, log=lambda *a: None)
    acc = res["summary"]["model_100pct"]["accuracy"]["mean"]
    assert acc >= 0.75, f"{model}: test accuracy {acc} (chance 0.25)"
    assert (tmp_path / model / "metrics.json").exists()


def test_clip_level_regression_with_ccc_loss(store, tmp_path):
    cfg = TrainConfig(store=str(store), out=str(tmp_path), model="ef_gru", task="regression", label="valence",
                      epochs=25, batch_size=8, lr=3e-3, window=20, options={"hidden": 32, "layers": 1})
    res = trainer.run(cfg, log=lambda *a: None)
    assert res["folds"]["split"]["model_100pct"]["valence"]["ccc"] > 0.7


def test_mater_reports_per_modality_accuracies(store, tmp_path):
    cfg = TrainConfig(store=str(store), out=str(tmp_path), model="mater", epochs=5, batch_size=8, window=20,
                      options={"d": 32, "heads": 4, "ffn": 64, "layers": 2, "positions": False})
    res = trainer.run(cfg, log=lambda *a: None)
    pm = res["folds"]["split"]["model_100pct"]["per_modality_accuracy"]
    assert set(pm) == {"audio", "visual"}


def test_mater_per_modality_and_fused_accuracies_match_a_count_by_hand(store):
    """Audio branch fixed to always say class 0 (strongly), visual branch class 1 (less strongly): the
    audio-only accuracy is the share of class-0 test clips, the visual-only one the share of class 1,
    and the averaged posteriors follow the more confident audio branch."""
    from train.build import build

    cfg = TrainConfig(store=str(store), model="mater", window=20,
                      options={"d": 16, "heads": 2, "ffn": 32, "layers": 1})
    data = trainer.load_data(cfg)
    model = build(cfg, data.dims, len(data.classes))
    with torch.no_grad():
        for branch, cls, strength in ((model.audio, 0, 10.0), (model.visual, 1, 5.0)):
            last = branch.head[-1]
            last.weight.zero_()
            last.bias.zero_()
            last.bias[cls] = strength
    test = np.flatnonzero(data.meta["split"].to_numpy() == "test")
    samples = np.flatnonzero(np.isin(data.samples[:, 0], test))
    y = data.targets[data.samples[samples, 0]]
    samples = np.r_[samples[y != 1], samples[y == 1][:1]]  # unequal class shares: 4/13 class 0, 1/13 class 1
    y = data.targets[data.samples[samples, 0]]
    out = trainer.evaluate(model, cfg, data, samples, torch.device("cpu"))
    assert out["per_modality_accuracy"]["audio"] == pytest.approx(np.mean(y == 0))
    assert out["per_modality_accuracy"]["visual"] == pytest.approx(np.mean(y == 1))
    assert out["accuracy"] == pytest.approx(np.mean(y == 0))
    assert 0 < np.mean(y == 0) < 1 and np.mean(y == 0) != np.mean(y == 1)
    summary = trainer.summarise({"f0": {"model_100pct": out}, "f1": {"model_100pct": {
        **out, "per_modality_accuracy": {"audio": 1.0, "visual": 0.0}}}})["model_100pct"]
    assert summary["audio_accuracy"]["mean"] == pytest.approx((np.mean(y == 0) + 1.0) / 2)
    assert summary["visual_accuracy"] == {"mean": pytest.approx(np.mean(y == 1) / 2),
                                          "std": pytest.approx(np.std([np.mean(y == 1), 0.0], ddof=1)), "n": 2}
    assert summary["visual_accuracy"]["std"] == pytest.approx(np.mean(y == 1) / np.sqrt(2))  # sample sd, n - 1


def test_jmt_learns_frame_level_targets_with_ccc(store, tmp_path):
    cfg = TrainConfig(store=str(store), out=str(tmp_path), model="jmt", task="frame_regression",
                      frame_targets="affwild2_va", epochs=20, batch_size=8, lr=2e-3, window=20,
                      options={"d": 32, "heads": 2, "attention": "sigmoid"})
    res = trainer.run(cfg, log=lambda *a: None)
    assert res["summary"]["model_100pct"]["mean_ccc"]["mean"] > 0.5


def test_partitions_are_disjoint_and_low_resource_nested():
    meta = pd.DataFrame({"speaker": [f"s{i // 4}" for i in range(40)], "label": list("abcd") * 10})
    meta["fold"] = meta["speaker"].str[1:].astype(int) % 5
    for _, p in partitions(meta, "fold"):
        sets = [set(meta.iloc[p[k]]["speaker"]) for k in ("train", "validation", "test")]
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    train = np.arange(40)
    small, big = (set(low_resource(meta, train, n, "label", 0)) for n in (20, 50))
    assert small < big and len(small) == 8


def test_resume_continues_bit_for_bit(store, tmp_path):
    base = dict(store=str(store), model="mult", size="small", epochs=4, batch_size=8, window=20)
    straight = trainer.run(TrainConfig(out=str(tmp_path / "a"), **base), log=lambda *a: None)
    trainer.run(TrainConfig(out=str(tmp_path / "b"), stop_after=2, **base), log=lambda *a: None)
    resumed = trainer.run(TrainConfig(out=str(tmp_path / "b"), **base), log=lambda *a: None)
    a = torch.load(tmp_path / "a/split/model_100pct/best.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b/split/model_100pct/best.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha = straight["folds"]["split"]["model_100pct"]["history"]
    hb = resumed["folds"]["split"]["model_100pct"]["history"]
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]


@pytest.mark.slow  # 20-40 s: the default tier stays under 15 minutes on 2 cores
def test_pipeline_pretrain_train_evaluate_end_to_end(store, tmp_path):
    pre = cli("pretrain", "--store", str(store), "--out", str(tmp_path / "pre"), "--size", "small",
              "--epochs", "2", "--window", "20", check=True)
    assert "pretrained weights" in pre.stdout
    ckpt = tmp_path / "pre" / "pretrained.pt"
    run = tmp_path / "ft"
    proc = cli("train", "--store", str(store), "--out", str(run), "--model", "mult", "--size", "small",
               "--epochs", "3", "--pretrained", str(ckpt), "--low-resource", "50,100", "--compare-scratch",
               "--opt", "out_dropout=0.1", check=True)
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["summary"]) == {"pretrained_50pct", "pretrained_100pct", "scratch_50pct", "scratch_100pct"}
    for png in ("low_resource.png", "split/pretrained_100pct/confusion.png", "split/pretrained_100pct/pca.png",
                "split/pretrained_100pct/learning_curves.png"):
        assert (run / png).stat().st_size > 1000, png
    assert json.loads((run / "config.json").read_text())["pretrained"] == str(ckpt)
    assert "loaded" in proc.stdout
    ev = json.loads(cli("evaluate", str(run), check=True).stdout)
    assert ev["split"]["pretrained_100pct"]["accuracy"] == m["folds"]["split"]["pretrained_100pct"]["accuracy"]
    bad = cli("train", "--store", str(store), "--model", "nope")
    assert bad.returncode == 2 and "unknown model" in bad.stderr


def test_mater_sees_raw_l2_normalised_embeddings_not_z_scores(store, tmp_path):
    """The paper l2-normalises the raw embeddings: no z-scoring of MATER's inputs (other models keep it)."""
    cfg = TrainConfig(store=str(store), out=str(tmp_path), model="mater", epochs=1, batch_size=8, window=20,
                      options={"d": 16, "heads": 2, "ffn": 32, "layers": 1})
    data = trainer.load_data(cfg)
    train = np.arange(len(data.clips))
    trainer.train_one(cfg, data, train, train[:4], train[:4], tmp_path / "m", None, lambda *a: None)
    assert data.norm == {}
    b = data.batch(np.arange(3))
    clip, start = (int(v) for v in data.samples[0])
    raw = data.store.read(data.store.index().query("stage == 'aligned' and extractor == 'egemaps'").set_index(
        "clip_id").loc[data.clips[clip]])
    n = int(b.mask["audio"][0].sum())
    np.testing.assert_allclose(b.x["audio"][0, :n].numpy(), raw.values[start : start + n], rtol=1e-6)
    other = TrainConfig(store=str(store), out=str(tmp_path), model="ef_gru", epochs=1, batch_size=8, window=20,
                        options={"hidden": 8, "layers": 1})
    trainer.train_one(other, data, train, train[:4], train[:4], tmp_path / "e", None, lambda *a: None)
    assert set(data.norm) == {"audio", "visual"}


@pytest.mark.slow  # 20-40 s: the default tier stays under 15 minutes on 2 cores
def test_classical_models_go_through_evaluate_like_the_others(tmp_path):
    """The README's walk-through: `train --model svm`, then `evaluate` on the run (exit 0, the same scores)."""
    import json

    from tests.helpers.cli import cli
    from tests.helpers.store_fixtures import synthetic_store

    store = synthetic_store(tmp_path / "s.zarr")
    for model, fusion in (("svm", "late"), ("xgboost", "concat")):
        run = tmp_path / f"run_{model}"
        proc = cli("train", "--store", str(store), "--model", model, "--fusion", fusion, "--label", "label",
                   "--protocol", "split", "--out", str(run))
        assert proc.returncode == 0, proc.stderr[-2000:]
        trained = json.loads((run / "metrics.json").read_text())["folds"]
        proc = cli("evaluate", str(run))
        assert proc.returncode == 0, proc.stderr[-2000:]
        again = json.loads(proc.stdout)
        for fold, runs in trained.items():
            for key, res in runs.items():
                assert again[fold][key]["unweighted_accuracy"] == res["unweighted_accuracy"], (model, fold, key)


def test_small_classes_train_the_svm_and_a_class_too_small_for_late_fusion_is_one_line(tmp_path):
    """Early fusion's SVM needs no posteriors: it trains on 1-2 clips a class (scikit-learn's calibration used to
    die on "3-fold cross-validation"); late fusion's calibrated SVM needs 2 a class: one line naming the class.
    XGBoost trains on the classes its training fold has (a class absent there is never predicted, not a crash).
    Classical models train on every non-test clip: no validation speaker is held out of them."""
    from tests.helpers.cli import cli
    from tests.helpers.store_fixtures import synthetic_store

    store = synthetic_store(tmp_path / "s.zarr", n_speakers=5, per_class=1)  # 3 train + 1 validation speakers
    proc = cli("train", "--store", str(store), "--model", "svm", "--label", "label", "--protocol", "split",
               "--low-resource", "50", "--out", str(tmp_path / "svm"))
    assert proc.returncode == 0 and "validation 0" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    cfg = TrainConfig(store=str(store), out=str(tmp_path / "late"), model="svm", fusion="late", label="label",
                      low_resource=(25,), low_resource_seeds=1)
    with pytest.raises(ValueError, match="late fusion: each class needs at least 2 training clips.*'class"):
        trainer.run(cfg, log=lambda *a: None)
    proc = cli("train", "--store", str(store), "--model", "xgboost", "--label", "label", "--protocol", "split",
               "--low-resource", "50", "--out", str(tmp_path / "xgb"))
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow  # builds MulT-BASE (43 M parameters): ~15 s
def test_a_large_model_on_a_handful_of_clips_and_a_one_class_validation_set_are_warned_about(tmp_path):
    from tests.helpers.cli import cli
    from tests.helpers.store_fixtures import synthetic_store

    store = synthetic_store(tmp_path / "s.zarr", n_speakers=5, per_class=1, classes=2)  # validation: 1 speaker
    proc = cli("train", "--store", str(store), "--model", "mult", "--size", "base", "--label", "label",
               "--protocol", "split", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [ln for ln in proc.stdout.splitlines() if "warning:" in ln]
    assert any("M parameters for 6 training clips" in w and "--size small" in w for w in warnings), proc.stdout
    small = cli("train", "--store", str(store), "--model", "tfn", "--label", "label", "--protocol", "split",
                "--epochs", "1", "--out", str(tmp_path / "tfn"))
    assert "M parameters for" not in small.stdout  # a model of its data's size: no warning
