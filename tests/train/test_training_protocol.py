"""The papers' training protocol: validation from inside the training part, official splits without a test
partition, SGD and reduce-on-plateau, and pretraining's weights and statistics carried into fine-tuning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers.store_fixtures import synthetic_store
from train import trainer
from train.config import TrainConfig
from train.optim import Schedule, make_optimizer
from train.partitions import partitions
from train.pretrain import pretrain


def _sessions() -> pd.DataFrame:
    """IEMOCAP-shaped: 5 sessions of 2 speakers, leave-one-session-out folds."""
    meta = pd.DataFrame({"speaker": [f"Ses{i // 8 + 1}{'FM'[i // 4 % 2]}" for i in range(40)]})
    meta["fold"] = meta["speaker"].str[3].astype(int) - 1
    return meta


def test_leave_one_session_out_trains_on_all_four_other_sessions():
    meta = _sessions()
    for name, p in partitions(meta, "fold"):
        k = int(name.split("_")[1])
        train, val, test = (set(meta.iloc[p[s]]["speaker"]) for s in ("train", "validation", "test"))
        assert {s[3] for s in test} == {str(k + 1)}
        assert {s[3] for s in train} == {str(j) for j in range(1, 6)} - {str(k + 1)}  # 4 sessions
        assert val and not (val & train) and not (val & test)  # held-out speakers from inside training
        assert {s[3] for s in val} <= {str(j) for j in range(1, 6)} - {str(k + 1)}
        assert len(p["train"]) + len(p["validation"]) + len(p["test"]) == len(meta)
    old = dict(partitions(meta, "fold", validation="next_fold"))["fold_0"]
    assert {s[3] for s in meta.iloc[old["train"]]["speaker"]} == {"3", "4", "5"}  # the option keeps fold k+1


def test_inner_validation_is_seeded_and_falls_back_to_clips():
    meta = _sessions()
    a, b = partitions(meta, "fold", seed=1), partitions(meta, "fold", seed=1)
    assert all((x[1]["validation"] == y[1]["validation"]).all() for x, y in zip(a, b))
    one = pd.DataFrame({"fold": [0] * 10 + [1] * 10})  # no speaker column: clips are held out
    for _, p in partitions(one, "fold", fraction=0.2):
        assert len(p["validation"]) == 2 and not set(p["validation"]) & set(p["test"])


def test_official_split_without_test_reports_on_validation_and_never_selects_on_it():
    meta = pd.DataFrame({"speaker": [f"v{i // 3}" for i in range(30)],
                         "split": ["train"] * 21 + ["validation"] * 9})
    ((name, p),) = partitions(meta, "split")
    assert set(p["test"]) == set(range(21, 30))  # Aff-Wild2: results on the official validation set
    assert set(p["validation"]) < set(range(21)) and not set(p["validation"]) & set(p["train"])
    meta["split"] = ["train"] * 21 + ["test"] * 9  # no validation: model selection never sees the test clips
    ((_, q),) = partitions(meta, "split")
    assert not set(q["validation"]) & set(q["test"]) and set(q["validation"]) < set(range(21))


def test_sgd_with_momentum_and_reduce_on_plateau():
    w = torch.nn.Parameter(torch.ones(2))
    opt = make_optimizer("sgd", [w], 0.1, momentum=0.9)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    sched = Schedule("plateau", opt, 100, patience=1, factor=0.5)
    lrs = []
    for score in (0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7):
        for _ in range(3):
            sched.step()  # per batch: a plateau schedule ignores it
        sched.epoch_end(score)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    adam = torch.optim.Adam([w], lr=1.0)
    warm = Schedule("warmup_linear", adam, 10, warmup=0.2)
    adam.step()
    warm.step()
    assert warm.inner.get_last_lr()[0] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_store(tmp_path_factory.mktemp("syn") / "s.zarr")


def test_sgd_plateau_run_learns_and_resumes_bit_for_bit(store, tmp_path):
    base = dict(store=str(store), model="ef_gru", epochs=4, batch_size=8, window=20, lr=0.05, optimizer="sgd",
                schedule="plateau", plateau_patience=0, options={"hidden": 16, "layers": 1})
    quiet = lambda *a: None  # noqa: E731
    straight = trainer.run(TrainConfig(out=str(tmp_path / "a"), **base), log=quiet)
    trainer.run(TrainConfig(out=str(tmp_path / "b"), stop_after=2, **base), log=quiet)
    resumed = trainer.run(TrainConfig(out=str(tmp_path / "b"), **base), log=quiet)
    ha, hb = (r["folds"]["split"]["model_100pct"]["history"] for r in (straight, resumed))
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    assert straight["summary"]["model_100pct"]["unweighted_accuracy"]["mean"] > 0.5  # 4 classes: chance 0.25


def test_fine_tuning_loads_the_pretrained_weights_and_statistics(store, tmp_path):
    small = dict(store=str(store), size="small", window=20, batch_size=8)
    ckpt = pretrain(TrainConfig(out=str(tmp_path / "pre"), epochs=1, **small), log=lambda *a: None)
    saved = torch.load(ckpt, weights_only=True)
    assert set(saved["norm"]) == {"audio.mean", "audio.std", "visual.mean", "visual.std"}
    cfg = TrainConfig(out=str(tmp_path / "ft"), model="mult", epochs=0, **small)  # 0 epochs: best.pt = as loaded
    data = trainer.load_data(cfg)
    lines: list[str] = []
    clips = np.arange(len(data.clips))
    trainer.train_one(cfg, data, clips[:20], clips[20:30], clips[30:], tmp_path / "ft", str(ckpt), lines.append)
    best = torch.load(tmp_path / "ft" / "best.pt", weights_only=True)
    shared = [k for k, v in saved["model"].items() if k in best["model"] and best["model"][k].shape == v.shape]
    assert len(shared) >= 0.9 * len(best["model"])  # only the classification head is new
    assert f"loaded {len(shared)}/{len(best['model'])} tensors" in "\n".join(lines)
    assert all(torch.equal(saved["model"][k], best["model"][k]) for k in shared)
    for key, value in saved["norm"].items():  # standardised as in pretraining, saved with the run
        assert torch.equal(best["norm"][key], value)
    assert any("pretraining statistics" in line for line in lines)
    own = TrainConfig(out=str(tmp_path / "own"), model="mult", epochs=0, pretrained_norm=False, **small)
    trainer.train_one(own, data, clips[:20], clips[20:30], clips[30:], tmp_path / "own", str(ckpt), lambda *a: None)
    assert not torch.equal(torch.load(tmp_path / "own" / "best.pt", weights_only=True)["norm"]["audio.mean"],
                           saved["norm"]["audio.mean"])


def test_low_resource_subsets_of_a_regression_target_are_n_percent_not_one_per_value(store, tmp_path):
    """Stratifying on a continuous label made every distinct value a "class" kept at least once (here 4
    values: 4 clips instead of 10 % of the 48 training clips)."""
    import re

    lines: list[str] = []
    cfg = TrainConfig(store=str(store), out=str(tmp_path), model="tfn", task="regression", label="valence",
                      low_resource=(10,), low_resource_seeds=1, epochs=1, batch_size=8, window=20)
    trainer.run(cfg, log=lambda *a: lines.append(" ".join(map(str, a))))
    data = trainer.load_data(cfg)
    n_train = int((data.meta["split"] == "train").sum())
    assert n_train == 48 and data.meta["valence"][data.meta["split"] == "train"].nunique() == 4
    used = [int(m.group(1)) for line in lines for m in [re.search(r"train (\d+) clips", line)] if m]
    assert used == [round(0.1 * n_train)], lines[:3]


def test_nearest_frame_baseline_copies_the_closest_unselected_valid_frame():
    from train import masking

    x = np.arange(8, dtype=np.float32).reshape(1, 8, 1) * 10  # frame t holds 10 t
    marks = np.zeros((1, 8), np.int8)
    marks[0, 2:5] = masking.ZERO  # 2 <- 1 (left), 3 <- 1 (tie: earlier), 4 <- 5
    marks[0, 7] = masking.KEEP  # selected frames are unknown too: 7 <- 5 (6 is padding)
    valid = np.ones((1, 8), bool)
    valid[0, 6] = False
    got = masking.nearest_frame(x, marks, valid)[0, :, 0]
    np.testing.assert_array_equal(got, [0, 10, 10, 10, 50, 50, 60, 50])


def test_pretraining_on_a_selected_pool_scores_the_nearest_frame_baseline(store, tmp_path):
    import json

    logs = []
    pretrain(TrainConfig(store=str(store), out=str(tmp_path), size="small", epochs=2, window=20, batch_size=8,
                         select="split=test", label=None), log=logs.append)
    assert "on 15 windows" in logs[0]  # 2 test speakers x 4 classes x 2 clips, one held out to validate
    hist = json.loads((tmp_path / "pretrain.json").read_text())["history"]
    assert all(h["val_l1_nearest_frame"] > 0 for h in hist) and "nearest-frame baseline" in logs[-1]
    with pytest.raises(ValueError, match="split has"):
        pretrain(TrainConfig(store=str(store), out=str(tmp_path / "x"), size="small", epochs=1, window=20,
                             select="split=pool", label=None), log=lambda *a: None)
    from tests.helpers.cli import cli

    proc = cli("pretrain", "--store", str(store), "--out", str(tmp_path / "y"), "--select", "split=pool")
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert "select 'split=pool' matches no clip" in proc.stderr and not (tmp_path / "y" / "pretrained.pt").exists()


def test_demo_claims_are_checked_against_every_sd():
    from train.demo import report

    def s(mean, sd_seeds, sd_runs):
        return {"mean": mean, "sd_seeds": sd_seeds, "sd_runs": sd_runs, "n_seeds": 3, "n_runs": 18}

    def rows(pre, late):
        table = {"MulT small, pretrained": pre, "MulT small, scratch": s(0.35, 0.05, 0.13),
                 "SVM, audio only": s(0.55, None, 0.11), "SVM, visual only": s(0.46, None, 0.10),
                 "SVM, late fusion": late}
        return [(k, "10 %", {"unweighted_accuracy": v, "macro_f1": v}) for k, v in table.items()]

    pre = {"val_l1": 1.09, "val_l1_nearest_frame": 1.38}
    md = report(rows(s(0.50, 0.07, 0.14), s(0.80, None, 0.12)), pre)
    assert md.count("**holds**") == 2 and "(audio only)" in md and "beats the baseline" in md
    md = report(rows(s(0.50, 0.16, 0.20), s(0.60, None, 0.12)), pre)  # 0.15 < sd 0.16; 0.05 < sd 0.12
    assert md.count("**does not hold**") == 2
    paired = {"values": [0.5, 0.6, 0.4]}
    md = report(rows({**s(0.50, 0.07, 0.14), **paired}, s(0.80, None, 0.12)), pre)
    assert "ahead in" not in md  # scratch has no values: nothing to pair


def test_fine_tuning_refuses_a_pretraining_of_another_size_or_feature(store, tmp_path):
    """It loaded "2 of 242 tensors" and exited 0 (a meaningless "pretrained" row) or failed deep inside."""
    small = dict(store=str(store), window=20, batch_size=8, epochs=1)
    ckpt = pretrain(TrainConfig(out=str(tmp_path / "pre"), size="small", **small), log=lambda *a: None)
    other = TrainConfig(out=str(tmp_path / "ft"), model="mult", size="base", pretrained=str(ckpt), **small)
    with pytest.raises(ValueError, match="pretrained with other settings.*size 'small' there, 'base' here"):
        trainer.run(other, log=lambda *a: None)
    feature = TrainConfig(out=str(tmp_path / "ft2"), model="mult", size="small", pretrained=str(ckpt),
                          visual="egemaps", **small)
    with pytest.raises(ValueError, match="visual 'face_hog' there, 'egemaps' here"):
        trainer.run(feature, log=lambda *a: None)


def test_keep_none_leaves_metrics_only_and_a_rerun_reads_them(store, tmp_path):
    cfg = TrainConfig(store=str(store), out=str(tmp_path / "r"), model="lf_gru", size="small", window=20,
                      batch_size=8, epochs=1, keep="none")
    first = trainer.run(cfg, log=lambda *a: None)
    assert not list((tmp_path / "r").rglob("*.pt")) and list((tmp_path / "r").rglob("result.json"))
    lines: list[str] = []
    again = trainer.run(cfg, log=lines.append)
    assert any("not trained again" in ln for ln in lines)
    assert again["summary"] == first["summary"]


def test_without_a_validation_set_every_non_test_clip_trains_and_the_last_epoch_is_kept(store, tmp_path):
    """MATER's protocol: all non-test subjects train; the plateau schedule watches the training loss."""
    lines: list[str] = []
    cfg = TrainConfig(store=str(store), out=str(tmp_path / "r"), model="lf_gru", size="small", window=20,
                      batch_size=8, epochs=2, validation="none", schedule="plateau")
    res = trainer.run(cfg, log=lines.append)
    assert any("validation 0, test" in ln for ln in lines) and any("last epoch kept" in ln for ln in lines)
    assert np.isnan(res["folds"]["split"]["model_100pct"]["validation_score"])


def test_tran_misalignment_rule_reads_the_feature_sequences_after_the_confidence_filter(tmp_path):
    """A clip whose visual track keeps 2 valid windows (faces lost or filtered out) while its audio has ~18 is
    dropped at max_frame_gap 5; container durations (equal here) would have kept it."""
    store = synthetic_store(tmp_path / "s.zarr", faceless=3)
    kept = trainer.load_data(TrainConfig(store=str(store), model="lf_gru", window=20))
    cut = trainer.load_data(TrainConfig(store=str(store), model="lf_gru", window=20, max_frame_gap=5))
    assert len(kept.clips) - len(cut.clips) == 3 and len(cut.misaligned) == 3
    assert set(cut.misaligned) <= set(kept.clips) and not set(cut.misaligned) & set(cut.clips)


def test_the_scratch_arm_is_standardised_like_the_pretrained_arm(store, tmp_path):
    """One normalisation policy for both arms: the comparison measures pretraining, not statistics."""
    small = dict(store=str(store), size="small", window=20, batch_size=8)
    ckpt = pretrain(TrainConfig(out=str(tmp_path / "pre"), epochs=1, **small), log=lambda *a: None)
    lines: list[str] = []
    cfg = TrainConfig(out=str(tmp_path / "ft"), model="mult", epochs=1, pretrained=str(ckpt), compare_scratch=True,
                      **small)
    trainer.run(cfg, log=lines.append)
    assert sum("pretraining statistics" in ln for ln in lines) == 2  # the pretrained arm and the scratch arm
    saved = torch.load(ckpt, weights_only=True)["norm"]["audio.mean"]
    scratch = torch.load(tmp_path / "ft" / "split" / "scratch_100pct" / "best.pt", weights_only=True)
    assert torch.equal(scratch["norm"]["audio.mean"], saved)


def test_pretraining_with_nothing_masked_says_so_instead_of_a_perfect_zero(tmp_path):
    store = synthetic_store(tmp_path / "s.zarr", t=3)  # windows of 1-2 frames: shorter than a 3-frame span
    lines: list[str] = []
    pretrain(TrainConfig(store=str(store), out=str(tmp_path / "pre"), size="small", window=2, epochs=1,
                         batch_size=8), log=lines.append)
    import json

    h = json.loads((tmp_path / "pre" / "pretrain.json").read_text())["history"][-1]
    assert h["val_masked_frames"] == 0 and np.isnan(h["val_l1"]) and "not measured" in lines[-1]
