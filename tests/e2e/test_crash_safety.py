"""Real crashes: `kill -9` of the extract process, and of a Dask worker on a multi-process cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stores.feature_store import FeatureStore
from tests.helpers.cli import cli, extract_json, wait_for


def _committed(store: Path) -> int:
    d = store / "index"
    return len(list(d.glob("*.parquet"))) if d.exists() else 0



def _live_counts(store: Path) -> tuple[int, int]:
    live = FeatureStore(str(store)).index()
    ok = live[live.status == "ok"]
    return len(ok), int(ok.duplicated(["clip_id", "stage", "view", "extractor"]).sum())


@pytest.mark.slow  # ~40 s; the default suite keeps the worker kill -9 and the consolidation kill -9
def test_kill_9_of_the_extract_process_then_resume(mini_corpus, tmp_path):
    s = tmp_path / "s.zarr"
    args = ["extract", "--dataset", "demo", "--root", str(mini_corpus), "--store", str(s),
            "--extractors", "logmel,face_hog", "--shard-size", "1", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(lambda: _committed(s) >= 2, 120, "a first committed result")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < _live_counts(s)[0] < 32  # killed mid-run: some results committed, not all
    live = FeatureStore(str(s)).index()
    native_before = int(((live.stage == "native") & (live.status == "ok")).sum())
    r = extract_json(*args[1:])
    assert r["counts"]["ok"] == 16 - native_before  # only the missing work was done
    assert sum(r["cached"].values()) == native_before
    ok, dups = _live_counts(s)
    assert ok == 32 and dups == 0
    assert cli("verify", str(s)).returncode == 0
    r = extract_json(*args[1:])
    assert r["planned"] == 0


def test_worker_killed_mid_run_on_a_separate_process_cluster(mini_corpus, tmp_path, dask_cluster):
    yaml_file, procs = dask_cluster
    s = tmp_path / "s.zarr"
    args = ["extract", "--dataset", "demo", "--root", str(mini_corpus), "--store", str(s), "--cluster",
            str(yaml_file), "--extractors", "logmel,face_hog", "--shard-size", "1", "--quiet", "--json"]
    run = subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _committed(s) >= 2, 120, "a first committed result")
    procs[1].send_signal(signal.SIGKILL)  # a worker dies mid-run
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    ok, dups = _live_counts(s)
    assert ok == 32 and dups == 0
    assert cli("verify", str(s)).returncode == 0
