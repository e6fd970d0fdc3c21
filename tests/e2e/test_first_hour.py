"""A new user's first hour: own folders and CSV lists, honest dry-run estimates, refusals before any work,
visible face failures, help that shows defaults, readable training output and plots."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from pipeline.media import synth
from tests.helpers.cli import FAST, cli, extract_json
from tests.helpers.store_fixtures import synthetic_store


def _copy_clips(mini_corpus, dest, n=3):
    clips = sorted(mini_corpus.rglob("*.mp4"))[:n]
    dest.mkdir(parents=True)
    for i, c in enumerate(clips):
        shutil.copy(c, dest / f"clip{i}.mp4")
    return sorted(dest.glob("*.mp4"))


@pytest.mark.slow  # 20-40 s: the default tier stays under 15 minutes on 2 cores
def test_labels_added_later_reuse_every_result_under_the_new_clip_ids(mini_corpus, tmp_path):
    """folder run (ids clip0..) then a CSV with labels (ids myclips/clip0..): zero extractor calls."""
    clips = _copy_clips(mini_corpus, tmp_path / "myclips")
    store = str(tmp_path / "s.zarr")
    args = ["--store", store, "--extractors", "logmel,egemaps", "--quiet"]
    first = extract_json("--dataset", "folder", "--root", str(tmp_path / "myclips"), *args)
    assert first["counts"]["ok"] == 6
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"path": [f"myclips/{c.name}" for c in clips], "label": ["a", "b", "a"]}).to_csv(csv, index=False)
    dry = extract_json("--dataset", "csv", "--root", str(csv), *args, "--dry-run")
    assert dry["estimate"]["extractor_calls"] == {"logmel": 0, "egemaps": 0}
    r = extract_json("--dataset", "csv", "--root", str(csv), *args)
    assert sum(r["calls"].values()) == 0 and r["frames"] == 0 and r["cached"] == {"logmel": 3, "egemaps": 3}
    from stores.feature_store import FeatureStore
    from train.data import StoreData

    live = FeatureStore(store).index()
    for stage in ("native", "aligned"):
        ids = set(live[(live["stage"] == stage) & (live["status"] == "ok")]["clip_id"])
        assert {f"myclips/clip{i}" for i in range(3)} <= ids and {f"clip{i}" for i in range(3)} <= ids
    old = live[(live["clip_id"] == "clip0") & (live["stage"] == "native")].set_index("extractor")
    new = live[(live["clip_id"] == "myclips/clip0") & (live["stage"] == "native")].set_index("extractor")
    assert (old.loc["logmel", ["part", "offset", "length"]] == new.loc["logmel", ["part", "offset", "length"]]).all()
    data = StoreData(store, {"audio": "egemaps"}, "5hz", "label", "classification", 10)
    assert sorted(data.clips) == [f"myclips/clip{i}" for i in range(3)] and data.classes == ["a", "b"]
    assert cli("verify", store).returncode == 0
    again = extract_json("--dataset", "csv", "--root", str(csv), *args)
    assert again["planned"] == 0  # the new ids have their own rows now
    # the manifest rule: it accumulates every run's clips (both id sets), and `prune` keeps one dataset's
    assert len(FeatureStore(store).manifest()) == 6
    proc = cli("prune", store, "--dataset", "csv", "--root", str(csv))
    assert proc.returncode == 0 and "dropped 3 clips from the manifest" in proc.stdout, proc.stdout + proc.stderr
    s = FeatureStore(store)
    assert sorted(s.manifest()["clip_id"]) == [f"myclips/clip{i}" for i in range(3)]
    assert set(s.index()["clip_id"]) == {f"myclips/clip{i}" for i in range(3)}
    assert cli("verify", store).returncode == 0  # the arrays the new ids share were kept
    assert StoreData(store, {"audio": "egemaps"}, "5hz", "label", "classification", 10).classes == ["a", "b"]
    assert extract_json("--dataset", "csv", "--root", str(csv), *args)["planned"] == 0


def test_dry_run_estimates_every_stage_within_2x_of_the_real_run(mini_corpus, tmp_path):
    store = str(tmp_path / "s.zarr")
    args = ["--dataset", "demo", "--root", str(mini_corpus), "--store", store, *FAST]
    dry = extract_json(*args, "--dry-run")
    e = dry["estimate"]
    assert not os.path.exists(store)
    assert {"decode video+audio", "face stage", "logmel", "egemaps", "face_hog"} <= set(e["stages"])
    assert all(v["basis"].startswith("calibration") for v in e["stages"].values())
    real = extract_json(*args)
    assert 0.5 <= e["wall_seconds"] / real["wall_s"] <= 2.0, (e["wall_seconds"], real["wall_s"])
    auto = [a for a in args if a not in ("--shard-size", "2")]  # automatic task sizes, tapered: as the real run's
    assert extract_json(*auto, "--dry-run", "--force")["estimate"]["shards"] == extract_json(*auto, "--force")["tasks"]
    assert real["stage_s"]["face stage"] > 0 and real["stage_media_s"]["logmel"] == pytest.approx(
        real["media_s"], rel=0.01)
    # a later run adding an extractor: the known stages come from the earlier run, only the new one calibrates
    more = extract_json(*args[:-5], "--extractors", "logmel,egemaps,face_hog,linear_spectrogram", "--quiet",
                        "--dry-run")["estimate"]["stages"]
    assert set(more) == {"decode audio", "linear_spectrogram"}
    assert more["linear_spectrogram"]["basis"].startswith("calibration")
    proc = cli("extract", *args, "--dry-run", "--force")
    assert "estimated wall time" in proc.stdout and "measured by" in proc.stdout
    assert "earlier run" in proc.stdout


@pytest.mark.parametrize("kind", ["empty folder", "csv to folder", "empty csv"])
def test_a_root_without_clips_is_an_error_not_an_empty_store(tmp_path, kind):
    root = tmp_path / "root"
    root.mkdir()
    dataset = "folder"
    if kind == "csv to folder":
        root = tmp_path / "list.csv"
        root.write_text("path,label\nclip.mp4,a\n")
    elif kind == "empty csv":
        root, dataset = tmp_path / "list.csv", "csv"
        root.write_text("path,label\n")
    store = tmp_path / "s.zarr"
    proc = cli("extract", "--dataset", dataset, "--root", str(root), "--store", str(store), "--quiet")
    assert proc.returncode == 2 and not store.exists(), proc.stderr
    assert ("--dataset csv" if kind == "csv to folder" else "no clips found") in proc.stderr


def test_openface_without_its_binary_is_refused_before_any_work(mini_corpus, tmp_path):
    env_bin = os.environ.pop("OPENFACE_BIN", None)
    try:
        store = tmp_path / "s.zarr"
        proc = cli("extract", "--dataset", "demo", "--root", str(mini_corpus), "--store", str(store),
                   "--extractors", "logmel,openface", "--quiet")
        assert proc.returncode == 2 and not store.exists()
        assert "openface cannot run" in proc.stderr and "OPENFACE_BIN" in proc.stderr
        proc = cli("extract", "--dataset", "demo", "--root", str(mini_corpus), "--store", str(store),
                   "--extractors", "openface", "--set", f"openface.binary={tmp_path}/nope", "--quiet")
        assert proc.returncode == 2 and "does not exist" in proc.stderr and not store.exists()
    finally:
        if env_bin is not None:
            os.environ["OPENFACE_BIN"] = env_bin


def test_status_shows_the_valid_share_and_warns_about_faceless_clips(mini_corpus, tmp_path):
    folder = tmp_path / "clips"
    _copy_clips(mini_corpus, folder, n=2)
    rng = np.random.default_rng(0)
    street = (rng.integers(0, 255, (40, 120, 160, 3))).astype(np.uint8)  # no face anywhere
    synth.write_clip(folder / "street.mp4", street, 25, synth.voice(1.6, 120, 3, 0.3, 1))
    store = str(tmp_path / "s.zarr")
    extract_json("--dataset", "folder", "--root", str(folder), "--store", store, "--extractors", "logmel,face_hog",
                 "--quiet")
    out = cli("status", store, check=True).stdout
    assert "valid frames" in out
    row = next(line for line in out.splitlines() if "native" in line and "face_hog" in line)
    assert re.search(r"\b[3-9]\d%", row), row  # 2 of 3 clips have a face in most frames
    assert "100%" in next(line for line in out.splitlines() if "native" in line and "logmel" in line)
    warning = next(line for line in out.splitlines() if line.startswith("warning"))
    assert "face_hog: 1 clips" in warning and "street (0%)" in warning


def _option_rows(help_text: str) -> dict[str, str]:
    """--option -> its help text (wrapped lines joined), from rich's help table."""
    rows: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        m = re.match(r"\W*(?:\*\s+)?(--[a-z][a-z-]*)", line)
        if m:
            current = m.group(1)
            rows[current] = line
        elif current:
            rows[current] += " " + line.strip("│ ")
    return rows


def test_help_shows_every_default_and_train_reads_other_views():
    rows = _option_rows(cli("train", "--help", check=True).stdout)
    for opt in ("--audio", "--visual", "--size", "--fusion", "--epochs", "--lr", "--batch-size", "--seed",
                "--device", "--view", "--window", "--model", "--label", "--protocol", "--low-resource-seeds"):
        assert "[default:" in rows[opt], rows[opt]
    assert "(30)" in rows["--epochs"] and "(5hz)" in rows["--view"] and "(egemaps)" in rows["--audio"]
    from pipeline.engine.config import DEFAULT_EXTRACTORS

    ext = _option_rows(cli("extract", "--help", check=True).stdout)["--extractors"]
    assert ",".join(DEFAULT_EXTRACTORS) in re.sub(r"\s+", "", ext)


def test_listing_extractors_imports_no_tensorflow_and_names_rates():
    import subprocess
    import sys

    code = ("import sys; from pipeline.cli import app\ntry:\n    app(['extractors'])\nexcept SystemExit:\n    pass\n"
            "print('TF' if 'tensorflow' in sys.modules else 'noTF')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "250"})
    assert proc.stdout.strip().endswith("noTF"), proc.stdout[-500:]
    bert = next(line for line in proc.stdout.splitlines() if line.lstrip("│ ").startswith("bert"))
    assert "1 per clip" in bert


def test_starting_the_cli_imports_no_deep_learning_framework():
    """Every command (and every test that runs one) pays the CLI's import time; torch alone costs ~2.5 s."""
    import subprocess
    import sys

    code = ("import sys, pipeline.cli.main, train.config\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr[-500:]


def test_models_add_refuses_a_bad_file_and_leaves_nothing(tmp_path):
    models = tmp_path / "models"
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"this is not a checkpoint")
    proc = cli("models", "add", "mine", str(bad), "--like", "FACENET_VGGFACE2", "--models", str(models))
    assert proc.returncode == 1 and "not a loadable PyTorch weights file" in proc.stderr
    assert not (models / "mine").exists() and not [p for p in models.iterdir() if ".adding-" in p.name]
    proc = cli("models", "add", "MTCNN", str(tmp_path), "--models", str(models))
    assert proc.returncode == 1 and not (models / "MTCNN").exists()


def test_metrics_warn_about_nothing_and_training_prints_a_table(tmp_path):
    from train import metrics

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = metrics.classification(np.array([0, 0, 1]), np.array([0, 2, 1]), ["a", "b", "c"])
    assert m["unweighted_accuracy"] == pytest.approx(0.75)  # mean recall over the classes present
    store = synthetic_store(tmp_path / "s.zarr", n_speakers=5, per_class=1)
    out = tmp_path / "run"
    args = ["--store", str(store), "--model", "ef_gru", "--epochs", "2", "--window", "20", "--opt", "hidden=16",
            "--opt", "layers=1"]
    proc = cli("train", *args, "--out", str(out), "--low-resource", "20,100", check=True)
    text = proc.stdout + proc.stderr
    assert "validation UA" in text and "train loss (ce)" in text and "fold split" in text
    assert "y_pred contains classes" not in text and "classes absent" not in text  # stratified: all present
    assert re.search(r"UA \(balanced accuracy\)", text) and "±" in text and "20 % labels" in text
    for png in ("low_resource.png", "split/model_100pct/confusion.png", "split/model_100pct/learning_curves.png"):
        assert (out / png).stat().st_size > 5000, png
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    assert summary["model_20pct"]["unweighted_accuracy"]["n"] == 3  # 3 seeded subsets of the one split
    from stores.feature_store import FeatureStore

    fs = FeatureStore(str(store))
    m = fs.manifest()
    m.loc[(m["label"] == "class3") & (m["split"] == "train"), "split"] = "validation"
    fs.save_manifest(m)
    proc = cli("train", *args, "--out", str(tmp_path / "run2"), "--low-resource", "50,100", check=True)
    text = proc.stdout + proc.stderr
    assert text.count("warning: classes absent from the training partition") == 1 and "class3" in text
