"""Presets against their papers: the generated "differs" list, the paper figures, and the fixes of issue 26."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.experiments import paper_spec, preset
from pipeline.experiments.runner import check_claim, table
from tests.helpers import corpus_fixtures as fx
from tests.helpers.cli import SHARED, cli


def test_every_spec_point_resolves_and_every_disagreement_is_listed():
    """Read independently of ``differs``: each point's paper value against the resolved configuration; a
    disagreement or an unstated point must have its line, and an agreement must not."""
    for name in preset.names():
        p = preset.load(name)
        resolved, lines = paper_spec.resolve(p), paper_spec.differs(p)
        assert p.spec, name
        for point in p.spec:
            if point["key"].startswith("data."):
                continue
            ours = resolved[point["key"]]
            listed = [ln for ln in lines if ln.startswith(point["point"] + ":")
                      or ln.startswith(f"{paper_spec.UNSTATED}: {point['point']};")]
            if point["value"] is None or not paper_spec.same(ours, point["value"]):
                assert len(listed) == 1, (name, point, lines)
            else:
                assert not listed, (name, point, listed)


def test_the_list_follows_command_line_changes_and_the_data():
    base = preset.load("mater_ravdess")
    assert not any(ln.startswith("learning rate") for ln in paper_spec.differs(base))
    changed = preset.customise(base, [], ["lr=0.001"])
    assert "learning rate: paper 1e-06, ours 0.001 (changed on the command line)" in paper_spec.differs(changed)
    assert "folds formed: paper 12, ours 4" in paper_spec.differs(base, {"data.folds_formed": 4})
    assert not any("folds formed" in ln for ln in paper_spec.differs(base, {"data.folds_formed": 12}))
    subbed = preset.customise(preset.load("jmt_affwild2"), [], [], ["resnet18_spectrogram=logmel"])
    assert any("audio sample rate (Hz): paper 44100, ours not measured (extractor resnet18_spectrogram"
               in ln for ln in paper_spec.differs(subbed))


def test_a_spec_point_naming_a_missing_key_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: mater_ravdess\nspec:\n  - {point: x, key: train.no_such_field, value: 1}\n")
    with pytest.raises(ConfigError, match="train.no_such_field"):
        preset.load(str(bad))


def test_paper_figures_are_the_papers():
    """Every figure in a preset's paper column appears in the reference notes of its paper's section."""
    notes = SHARED / "reference" / "paper-results.md"
    if not notes.exists():
        pytest.skip("../shared/reference/paper-results.md not present")
    text = notes.read_text()
    sections = {"tran": text.split("## 1.")[1].split("## 2.")[0], "jmt": text.split("## 2.")[1].split("## 3.")[0],
                "babaali": text.split("## 3.")[1].split("## 4.")[0], "mater": text.split("## 4.")[1]}
    figures = 0
    for name in preset.names():
        section = sections[name.split("_")[0]]
        for run in preset.load(name).runs:
            for cells in (run.get("paper") or {}).values():
                for metric, value in cells.items():
                    assert re.search(rf"(?<![\d.]){re.escape(str(value))}(?!\d)", section), (name, run["name"],
                                                                                          metric, value)
                    figures += 1
    assert figures >= 50  # every printed cell of the reproduced tables (54)


def test_claims_a_tie_does_not_hold_and_a_branch_or_a_cited_figure_can_be_the_other_side():
    runs = [{"name": "A", "summary": {"m": {"accuracy": {"mean": 0.7}, "audio_accuracy": {"mean": 0.55}}}},
            {"name": "B", "summary": {"m": {"accuracy": {"mean": 0.7}}}}]
    assert check_claim({"text": "", "metric": "accuracy", "better": "A/m", "worse": "B/m"}, runs)["verdict"] == \
        "does not hold here"
    assert check_claim({"text": "", "metric": "accuracy", "better": "A/m", "worse": "A/m",
                        "worse_metric": "audio_accuracy", "margin": 0.1}, runs)["verdict"] == "holds"
    assert check_claim({"text": "", "metric": "accuracy", "better": "A/m", "worse": 0.7159}, runs)["verdict"] == \
        "does not hold here"


def test_a_run_that_cannot_train_is_a_row_and_percentages_are_the_papers_unit():
    p = preset.load("mater_ravdess")
    result = {"runs": [{"name": "MATER", "summary": {"model_100pct": {"accuracy": {"mean": 0.5, "std": 0.1, "n": 3}}}},
                       {"name": "MATER without self-attention", "summary": {}, "error": "svm: boom"}],
              "differs": ["x"], "warnings": ["MATER: warning: classes absent"]}
    text = table(p, result)
    assert "| MATER | 100 % labels | 50.00 ± 10.00 (n=3) | 76.3 |" in text
    assert "| MATER without self-attention | could not train: svm: boom |" in text
    assert "- MATER: warning: classes absent" in text


def test_substitutes_stay_within_a_modality():
    with pytest.raises(ConfigError, match="logmel is a audio extractor and openface a video one"):
        preset.customise(preset.load("tran_crema_d"), [], [], ["openface=logmel"])


def test_ravdess_speech_only_and_the_mater_fusion_of_logits(tmp_path):
    from pipeline.datasets.manifest import build_listing
    from train.models.mater import MATER, MATERConfig

    root = fx.ravdess(tmp_path / "RAVDESS")
    every, _, _ = build_listing("ravdess", root)
    speech, _, _ = build_listing("ravdess", root, select=preset.load("mater_ravdess").extract["select"])
    assert set(every["vocal_channel"]) == {"speech", "song"} and set(speech["vocal_channel"]) == {"speech"}
    assert 0 < len(speech) < len(every)
    torch.manual_seed(0)
    m = MATER(8, 6, 3, MATERConfig(d=16, heads=2, ffn=16, layers=1)).eval()
    a, v, mask = torch.randn(2, 4, 8), torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool)
    b = m.branches(a, v, mask, mask)
    torch.testing.assert_close(m(a, v, mask, mask), (b["audio"] + b["visual"]) / 2)  # Eq. 3, not probabilities


def test_jmt_audio_front_end_is_the_papers_64_by_107():
    from extractors import registry

    p = preset.load("jmt_affwild2")
    ext = registry.create("resnet18_spectrogram", p.extract["extractors"]["resnet18_spectrogram"])
    x = np.random.default_rng(0).normal(size=round(1.08 * 16000)).astype(np.float32)
    assert ext.spectrogram(x).shape == (107, 64)
    assert p.train["window"] == 8


def test_tfn_trains_on_a_last_batch_of_one_clip():
    from train.models.tfn import TFN

    net = TFN(5, 4, 3).train()
    net(torch.randn(1, 5), torch.randn(1, 4)).sum().backward()  # BatchNorm raised on a batch of one


def test_empty_transcripts_make_iemocap_unusable(tmp_path):
    root = fx.iemocap(tmp_path / "IEMOCAP")
    for f in root.rglob("transcriptions/*.txt"):
        f.write_text("")
    proc = cli("datasets", "check", "--dataset", "iemocap", "--root", str(root))
    assert proc.returncode != 0 and "have no transcript" in proc.stdout + proc.stderr, proc.stdout


def test_macro_f1_counts_only_classes_the_test_set_has():
    from train import metrics

    out = metrics.classification(np.array([0, 0, 1]), np.array([0, 0, 1]), ["a", "b", "c"])
    assert out["macro_f1"] == 1.0 and out["unweighted_accuracy"] == 1.0


def test_sum_and_product_fusion_of_unequal_substitutes_pad_with_the_identity():
    from train.classical import fuse

    a, b = np.ones((2, 3)), np.full((2, 2), 2.0)
    np.testing.assert_array_equal(fuse([a, b], "sum"), [[3, 3, 1], [3, 3, 1]])
    np.testing.assert_array_equal(fuse([a, b], "product"), [[2, 2, 1], [2, 2, 1]])


def test_jmt_audio_weights_say_how_to_make_them_not_to_fetch_them(tmp_path):
    from extractors import weights

    with pytest.raises(weights.WeightsError) as err:
        weights.resolve("RESNET18_SPECTROGRAM_JMT", tmp_path)
    assert "pipeline finetune resnet18_spectrogram" in str(err.value) and "models fetch" not in str(err.value)


def test_a_stream_name_runs_an_extractor_with_other_weights():
    from extractors import registry

    s = registry.spec("bert@BERT_FOLD0", {"pooling": "cls"})
    assert s.name == "bert@BERT_FOLD0" and s.config.weights == "BERT_FOLD0" and registry.get(s.name).name == "bert"
    with pytest.raises(ValueError, match="no learned weights"):
        registry.spec("egemaps@X")


def test_a_reason_does_not_outlive_the_value_it_explains():
    p = preset.customise(preset.load("mater_ravdess"), [], ["options={heads: 2}"])
    lines = paper_spec.differs(p)
    assert "unstated by the paper: attention heads; ours is 2 (changed on the command line)" in lines
    assert "unstated by the paper: feed-forward size; ours is 2048 (Vaswani's default)" in lines


def test_experiment_show_prints_every_preset_and_its_generated_list():
    """`pipeline experiment show NAME` (the docs' first step with a preset): exit 0 for every preset, the
    resolved preset as YAML, then each generated line; once through the real CLI, the rest in-process."""
    import yaml
    from typer.testing import CliRunner

    from pipeline.cli.experiments import app

    for name in preset.names():
        res = CliRunner().invoke(app, ["show", name], env={"COLUMNS": "400"})
        assert res.exit_code == 0, (name, res.output, res.exception)
        head, _, tail = res.output.partition("differs from the paper")
        assert yaml.safe_load(head)["name"] == name
        p = preset.load(name)
        for line in paper_spec.differs(p) + list(p.differs):
            assert f"- {line}" in tail, (name, line)
    proc = cli("experiment", "show", "mater_ravdess")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "unstated by the paper" in proc.stdout
