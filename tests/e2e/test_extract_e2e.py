"""End to end through the CLI on generated media: caching, increments, invalidation, re-alignment."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr

from stores.feature_store import FeatureStore
from tests.helpers.cli import FAST, cli, extract_json


@pytest.fixture(scope="module")
def store(mini_corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "s.zarr"
    report = extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", str(path), *FAST)
    assert report["counts"] == {"ok": 24, "failed": 0, "excluded": 0}
    assert report["calls"]["logmel"] >= 1 and report["frames"] > 150
    return path


def test_unchanged_rerun_calls_no_extractor(store, mini_corpus):
    r = extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", str(store), *FAST)
    assert r["planned"] == 0 and sum(r["calls"].values()) == 0 and r["frames"] == 0
    assert r["cached"] == {"logmel": 8, "egemaps": 8, "face_hog": 8}
    assert cli("verify", str(store)).returncode == 0


def test_store_reads_with_plain_zarr_and_pyarrow(store):
    """Follows docs/store.md, without importing this package's store code."""
    idx = pq.read_table(store / "index").to_pandas()
    idx = idx.sort_values("committed_at").drop_duplicates(["clip_id", "stage", "view", "extractor"], keep="last")
    row = idx[(idx.stage == "aligned") & (idx.view == "5hz") & (idx.extractor == "face_hog")].iloc[0]
    part = zarr.open_group(str(store / row.part), mode="r")
    lo, hi = row.offset, row.offset + row.length
    values, mask, times = part["values"][lo:hi], part["mask"][lo:hi], part["times"][lo:hi]
    assert values.shape == (row.length, row.dim) and mask.dtype == bool and mask.mean() > 0.8
    np.testing.assert_allclose(times[:, 0], np.arange(row.length) / 5.0)
    assert part.attrs["clip_ids"][part.attrs["offsets"].index(int(lo))] == row.clip_id
    group = zarr.open_group(str(store / "native" / "logmel"), mode="r")
    assert group.attrs["name"] == "logmel" and len(group.attrs["feature_names"]) == group.attrs["dim"] == 64
    assert group.attrs["config"]["n_mels"] == 64 and group.attrs["rate"] == 100.0
    manifest = pq.read_table(store / "manifest.parquet").to_pandas()
    assert len(manifest) == 8 and {"clip_id", "speaker", "label", "split", "media_path"} <= set(manifest.columns)
    # aligned views of one clip have the same length across extractors
    one = idx[(idx.stage == "aligned") & (idx.clip_id == row.clip_id)]
    assert one["length"].nunique() == 1 and len(one) == 3


@pytest.mark.slow  # ~55 s: four extraction runs on one store
def test_incremental_add_config_change_and_realign(mini_corpus, tmp_path):
    s = str(tmp_path / "inc.zarr")
    base = ["--dataset", "demo", "--root", str(mini_corpus), "--store", s, "--shard-size", "4", "--quiet"]
    r = extract_json(*base, "--extractors", "logmel")
    assert r["counts"]["ok"] == 8
    r = extract_json(*base, "--extractors", "logmel,linear_spectrogram")
    assert r["calls"]["logmel"] == 0 and r["calls"]["linear_spectrogram"] >= 1 and r["counts"]["ok"] == 8
    r = extract_json(*base, "--extractors", "logmel,linear_spectrogram", "--set", "logmel.n_mels=40")
    assert r["calls"]["linear_spectrogram"] == 0 and r["calls"]["logmel"] >= 1 and r["counts"]["ok"] == 8
    r = extract_json(*base, "--extractors", "logmel,linear_spectrogram", "--set", "logmel.n_mels=40",
                     "--rate", "10")
    assert sum(r["calls"].values()) == 0 and r["frames"] == 0  # re-aligned from stored features, no decoding
    status = cli("status", s, check=True).stdout
    assert "10hz" in status and "5hz" in status
    idx = pq.read_table(f"{s}/index").to_pandas()
    live = idx.sort_values("committed_at").drop_duplicates(["clip_id", "stage", "view", "extractor"], keep="last")
    assert (live[(live.extractor == "logmel")]["dim"] == 40).all()
    r10 = live[(live.view == "10hz")]
    r5 = live[(live.view == "5hz") & (live.clip_id.isin(r10.clip_id))]
    assert (r10.groupby("clip_id")["length"].first() >= 2 * r5.groupby("clip_id")["length"].first() - 1).all()
    r = extract_json(*base, "--extractors", "logmel", "--set", "logmel.n_mels=40", "--force")
    assert r["calls"]["logmel"] >= 1 and r["counts"]["ok"] == 8
    assert cli("verify", s).returncode == 0
    # superseded parts (n_mels=64) were garbage-collected: every part is referenced
    assert "committed part that no index row" not in cli("verify", s).stdout


def test_dry_run_does_no_work_and_estimates(store, mini_corpus, tmp_path):
    fresh = tmp_path / "none.zarr"
    r = extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", str(fresh), "--dry-run", *FAST)
    assert r["dry_run"] and r["planned"] == 8 and r["estimate"]["frames"] > 150 and not fresh.exists()
    r = extract_json("--dataset", "demo", "--root", str(mini_corpus), "--store", str(store), "--dry-run",
                     "--extractors", "logmel,linear_spectrogram", "--quiet")
    assert r["estimate"]["extractor_calls"] == {"logmel": 0, "linear_spectrogram": 8}


@pytest.mark.parametrize("args, message", [
    (["--extractors", "logmel,nope"], "unknown extractor 'nope'"),
    (["--set", "logmel.n_mel=3"], "no option"),
    (["--rate", "0"], "rate must be > 0"),
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--shard-size", "0"], "--shard-size"),
])
def test_bad_arguments_are_rejected_before_any_work(mini_corpus, tmp_path, args, message):
    s = tmp_path / "s.zarr"
    base = {"--dataset": "demo", "--root": str(mini_corpus), "--store": str(s)}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    proc = cli("extract", *[x for kv in base.items() for x in kv], "--quiet")
    assert proc.returncode == 2 and message in proc.stderr and not s.exists()


@pytest.mark.parametrize("text, message", [
    ("mode: [unclosed", "not valid YAML"),
    ("mode: cloud", "mode must be one of"),
    ("mode: local\nlocal: {n_workers: -1}", "positive integer"),
    ("mode: local\nlocal: {wrokers: 2}", "unknown key"),
    ("mode: scheduler", "needs scheduler.address"),
    ("mode: jobqueue\njobqueue: {system: slurm}", "jobqueue.cores is required"),
])
def test_bad_cluster_yaml_is_rejected_before_any_work(mini_corpus, tmp_path, text, message):
    y = tmp_path / "c.yaml"
    y.write_text(text)
    s = tmp_path / "s.zarr"
    proc = cli("extract", "--dataset", "demo", "--root", str(mini_corpus), "--store", str(s), "--cluster", str(y))
    assert proc.returncode == 2 and message in proc.stderr and not s.exists()


@pytest.mark.slow  # ~35 s: every listing command as a subprocess
def test_listing_commands(store):
    ext = cli("extractors", check=True).stdout
    assert "face_hog" in ext and "egemaps" in ext and "yes" in ext
    assert "demo" in cli("datasets", check=True).stdout
    for cmd in ("extract", "status", "verify", "datasets", "extractors", "demo"):
        assert cli(cmd, "--help").returncode == 0


@pytest.mark.slow  # 20-40 s: the default tier stays under 15 minutes on 2 cores
def test_stat_fingerprint_touch_invalidates_only_that_clip(mini_corpus, tmp_path):
    import os

    corpus = tmp_path / "c"
    shutil.copytree(mini_corpus, corpus)
    store = tmp_path / "s.zarr"
    args = ["--dataset", "demo", "--root", str(corpus), "--store", str(store), "--extractors", "logmel", "--quiet",
            "--fingerprint", "stat"]
    assert extract_json(*args)["counts"]["ok"] == 8
    assert extract_json(*args)["planned"] == 0  # unchanged files: nothing to do, no file read
    touched = sorted(corpus.rglob("*.mp4"))[0]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    r = extract_json(*args)
    assert r["planned"] == 1 and r["calls"]["logmel"] == 1 and r["cached"]["logmel"] == 7
    content = [a if a != "stat" else "content" for a in args]
    assert extract_json(*content)["planned"] == 8  # keys of one mode are not the other's: choose once per store


@pytest.mark.slow  # 20-40 s: the default tier stays under 15 minutes on 2 cores
def test_full_fingerprint_tells_a_damaged_copy_with_intact_ends_from_the_original(mini_corpus, tmp_path):
    """Same size, same first and last 64 KiB, zeroed middle: the content fingerprint reuses the original's
    results (the documented trade-off); --fingerprint full decodes the copy."""
    from stores import cache_key

    corpus = tmp_path / "c"
    shutil.copytree(mini_corpus, corpus)
    big = corpus / "big.mp4"
    data = bytearray(sorted(corpus.rglob("*.mp4"))[0].read_bytes())
    data = bytes(data) + bytes(300_000)  # room for a middle beyond the two 64 KiB ends
    big.write_bytes(data)
    copy = tmp_path / "copy.mp4"
    damaged = bytearray(data)
    damaged[70_000:len(data) - 70_000] = bytes(len(data) - 140_000)
    damaged[70_000:70_010] = b"\x01" * 10
    copy.write_bytes(bytes(damaged))
    assert cache_key.file_fingerprint(str(big)) == cache_key.file_fingerprint(str(copy))
    assert cache_key.file_fingerprint(str(big), "full") != cache_key.file_fingerprint(str(copy), "full")
    assert cache_key.file_fingerprint(str(big), "full") == cache_key.file_fingerprint(str(big), "full")
    first, both = tmp_path / "first.csv", tmp_path / "both.csv"
    first.write_text(f"clip_id,media_path\norig,{big}\n")
    both.write_text(f"clip_id,media_path\norig,{big}\ncopy,{copy}\n")

    def copy_row(mode: str) -> dict:
        """The original extracted first; then the list with the copy added (as an archive grows)."""
        store = str(tmp_path / f"{mode}.zarr")
        for lst in (first, both):
            extract_json("--dataset", "csv", "--root", str(lst), "--store", store, "--extractors", "logmel",
                         "--quiet", "--allow-failures", "--fingerprint", mode)
        live = FeatureStore(store).index()
        return live[(live["clip_id"] == "copy") & (live["stage"] == "native")].iloc[0].to_dict()

    assert copy_row("content")["reason"] == "reused from orig"  # the documented trade-off
    row = copy_row("full")  # decoded for itself: here the zeroed middle does not decode
    assert row["status"] == "failed" and "reused" not in row["reason"], row
