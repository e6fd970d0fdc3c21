"""Consolidated parts: same data, few files, crash points and task retries, verify clean."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from stores import consolidate, feature_store, index
from stores.feature_store import FeatureStore
from stores.verify import verify
from tests.helpers.cli import cli, extract_json
from tests.helpers.store_fixtures import small_store


def _snapshot(s: FeatureStore) -> dict[str, tuple]:
    live = s.index()
    return {r["clip_id"]: tuple(np.asarray(a).copy() for a in (f.values, f.start, f.end, f.mask, f.confidence))
            for r in live.to_dict("records") for f in [s.read(r)]}


def _files(path: Path) -> int:
    return sum(1 for _ in path.rglob("*"))


def test_merges_planned_on_a_worker_read_their_own_rows_bit_for_bit(tmp_path):
    """The run plans merges in a task (``plan_store_merges``) and each merge task reads only the rows of its own
    parts from the index, so the driver never loads the live index; same result as rows handed over."""
    s = small_store(tmp_path / "s.zarr", parts=10)
    small_store(tmp_path / "other.zarr", parts=3)  # rows of another store's parts must never leak in
    before = _snapshot(s)
    index.compact(s.fs)
    merges = consolidate.plan_store_merges(s.url)
    assert len(merges) == 1 and merges[0].rows is None and len(merges[0].sources) == 10
    assert consolidate.merge(merges[0]) == 30
    assert consolidate.merge(merges[0]) == 30  # a retry: the part and rows are committed, no twin
    s.garbage_collect(index.live_parts(s.fs))
    after = _snapshot(FeatureStore(s.url))
    assert after.keys() == before.keys()
    for clip, arrays in before.items():
        for a, b in zip(arrays, after[clip]):
            np.testing.assert_array_equal(a, b)
    assert len(list(FeatureStore(s.url).part_dirs())) == 1


def test_merge_keeps_every_entry_bit_for_bit_and_removes_the_small_parts(tmp_path):
    s = small_store(tmp_path / "s.zarr")
    before, files_before = _snapshot(s), _files(tmp_path / "s.zarr")
    merges = consolidate.plan_merges(s, s.index())
    assert len(merges) == 1 and len(merges[0].sources) == 12
    (m,) = consolidate.with_rows(merges, index.resolve_table(index.read_table(s.fs)))
    assert consolidate.merge(m) == 36
    assert consolidate.merge(m) == 36  # a retried task finds its part and rows committed: no twin
    assert len(index.files(s.fs)) == 12 + 1
    live = index.compact(s.fs)
    s.garbage_collect(live)
    s = FeatureStore(s.url)
    after = _snapshot(s)
    assert after.keys() == before.keys()
    for clip, arrays in before.items():
        for a, b in zip(arrays, after[clip]):
            np.testing.assert_array_equal(a, b)
    assert live["part"].nunique() == 1 and len(list(s.part_dirs())) == 1
    assert _files(tmp_path / "s.zarr") < files_before / 4
    assert verify(s) == []


def test_a_crash_between_the_merged_part_and_its_rows_loses_nothing(tmp_path):
    s = small_store(tmp_path / "s.zarr", parts=4)
    before = _snapshot(s)
    (m,) = consolidate.with_rows(consolidate.plan_merges(s, s.index()), index.resolve_table(index.read_table(s.fs)))
    consolidate.write_merged(m)  # written and renamed into place, then "kill -9" before the index commit
    merges = [m]
    assert len(list(s.part_dirs())) == 5
    live = index.compact(s.fs)
    assert set(live["part"]) == set(merges[0].sources)  # the old rows are still the live ones
    s.garbage_collect(live)  # the orphan merged part goes
    assert len(list(s.part_dirs())) == 4
    after = _snapshot(FeatureStore(s.url))
    for clip, arrays in before.items():
        np.testing.assert_array_equal(arrays[0], after[clip][0])
    assert verify(FeatureStore(s.url)) == []


def test_parts_with_and_without_confidence_are_not_mixed(tmp_path):
    s = small_store(tmp_path / "a.zarr", parts=3, conf=True)
    t = small_store(tmp_path / "b.zarr", parts=3, conf=False)
    assert consolidate.plan_merges(s, s.index())[0].sources
    assert consolidate.plan_merges(t, t.index())[0].sources
    assert consolidate.plan_merges(s, s.index(), target_bytes=1) == []  # nothing small enough to merge


def test_a_run_ends_with_consolidated_parts(mini_corpus, tmp_path):
    store = tmp_path / "s.zarr"
    args = ["--dataset", "demo", "--root", str(mini_corpus), "--store", str(store), "--extractors", "logmel",
            "--shard-size", "1", "--quiet"]
    r = extract_json(*args)
    assert r["tasks"] == 8 and r["merged_parts"] == 16  # 8 native + 8 aligned parts merged into 2
    assert len(list(FeatureStore(str(store)).part_dirs())) == 2
    assert cli("verify", str(store), "--quiet").returncode == 0
    assert extract_json(*args)["planned"] == 0


def test_kill_9_during_consolidation_then_the_rerun_completes_with_every_clip_once(mini_corpus, tmp_path):
    store = tmp_path / "s.zarr"
    args = ["--dataset", "demo", "--root", str(mini_corpus), "--store", str(store), "--extractors", "logmel,face_hog",
            "--shard-size", "1", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "extract", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not any(re.fullmatch(r"m[0-9a-f]{23}", d) for _, dirs, _ in os.walk(store) for d in dirs):  # races
        assert proc.poll() is None and time.time() - t0 < 180, "the run ended before any part was consolidated"
        time.sleep(0.005)
    for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
        p.kill()  # the whole node goes: driver and its workers, mid-consolidation
    assert proc.wait() == -signal.SIGKILL
    rerun = extract_json(*args)
    assert rerun["planned"] == 0  # every result was committed before the kill: nothing is recomputed
    live = FeatureStore(str(store)).index()
    assert len(live) == 32 and not live.duplicated(["clip_id", "stage", "view", "extractor"]).any()
    assert (live.status == "ok").all() and live.part.str.rsplit("/", n=1).str[-1].str.startswith("m").all()
    assert cli("verify", str(store), "--quiet").returncode == 0
    assert len(list(FeatureStore(str(store)).part_dirs())) == 4  # native + aligned, two extractors


def test_verify_names_only_the_entries_of_a_damaged_chunk_inside_a_shard(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_store, "CHUNK_BYTES", 7 * 4 * 16)  # 16 rows per chunk: many chunks per shard
    s = small_store(tmp_path / "s.zarr", parts=1, clips_per_part=6, conf=False)
    part = s.index()["part"].iloc[0]
    (shard,) = [p for p in (tmp_path / "s.zarr" / part / "values" / "c").rglob("*") if p.is_file()]
    data = bytearray(shard.read_bytes())
    data[3] ^= 0x10  # inside the first chunk (rows 0:16); the shard's index at the end is intact
    shard.write_bytes(bytes(data))
    problems = verify(FeatureStore(s.url))
    live = s.index()
    first = set(live[live["offset"] < 16]["clip_id"])
    assert {p.split(" [")[0] for p in problems} == first and len(first) < len(live), problems
    assert all("rows 0:16" in p and "checksum mismatch" in p for p in problems)


def test_a_merge_never_launders_a_missing_chunk_into_zeros(mini_corpus, tmp_path):
    """Delete one chunk of a small part, add a clip, run extract: the merge leaves the damaged part as it is,
    `verify` names the clip, and `--repair` + `extract` give the undamaged store's values back."""
    store = tmp_path / "s.zarr"
    args = ["--dataset", "demo", "--root", str(mini_corpus), "--store", str(store), "--extractors", "logmel",
            "--shard-size", "1", "--quiet", "--limit"]
    extract_json(*args, "4")
    s = FeatureStore(str(store))
    live = s.index()
    row = live[live["stage"] == "native"].iloc[0]
    before = _entries(s)
    in_chunk = int(((live["part"] == row["part"]) & (live["status"] == "ok")).sum())  # the run merged its parts
    (chunk,) = [p for p in (store / row["part"] / "values" / "c").rglob("*") if p.is_file()]
    chunk.unlink()
    extract_json(*args, "8")  # four new clips: their small parts are merged with the old ones
    proc = cli("verify", str(store), "--quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert row["clip_id"] in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert cli("verify", str(store), "--repair", "--quiet").returncode == 1
    assert extract_json(*args, "8")["calls"]["logmel"] == in_chunk  # exactly the damaged entries are recomputed
    assert cli("verify", str(store), "--quiet").returncode == 0
    after = _entries(FeatureStore(str(store)))
    assert before.keys() <= after.keys()
    for entry, arrays in before.items():
        for a, b in zip(arrays, after[entry]):
            np.testing.assert_array_equal(a, b)


def _entries(s: FeatureStore) -> dict[tuple, tuple]:
    """Every live ok entry's arrays, keyed by (clip, stage, view, extractor)."""
    live = s.index()
    ok = live[live["status"] == "ok"].to_dict("records")
    return {(r["clip_id"], r["stage"], r["view"], r["extractor"]): tuple(np.asarray(a).copy() for a in (
        f.values, f.start, f.end, f.mask)) for r in ok for f in [s.read(r)]}
