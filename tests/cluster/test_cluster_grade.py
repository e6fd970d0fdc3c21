"""Cluster-grade behaviour without SLURM: lost workers, signals, loopback, integrity, progress, LFS pointers.

Everything runs the real CLI in its own process against real Dask clusters of separate processes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from pipeline.datasets.demo import generate
from pipeline.errors import ConfigError
from pipeline.runtime import cluster, security
from stores.feature_store import FeatureStore
from tests.helpers.cli import cli, extract_json, wait_for
from tests.helpers.corpus_fixtures import LFS

ARGS = ["--dataset", "demo", "--extractors", "logmel,face_hog"]


def _popen(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)



def _committed(store: Path) -> int:
    d = store / "index"
    return len(list(d.glob("*.parquet"))) if d.exists() else 0


def _ok(store: Path) -> int:
    live = FeatureStore(str(store)).index()
    return int(((live.stage == "native") & (live.status == "ok")).sum())


@pytest.fixture(scope="module")
def longer_corpus(tmp_path_factory) -> Path:
    """16 clips of 1.5-2 s: a run long enough to interrupt."""
    return generate(tmp_path_factory.mktemp("corpus") / "demo", speakers=2, clips_per_class=2, seed=7,
                    durations=(1.5, 2.0))


# -- lost workers --------------------------------------------------------------------------------------
def test_every_worker_lost_stops_the_run_with_a_clear_message(mini_corpus, tmp_path, dask_cluster):
    yaml_file, procs = dask_cluster
    yaml_file.write_text(yaml_file.read_text() + "  no_workers_timeout: 5\n")
    store = tmp_path / "s.zarr"
    run = _popen("extract", *ARGS, "--root", str(mini_corpus), "--store", str(store), "--cluster", str(yaml_file),
                 "--shard-size", "1", "--quiet")
    wait_for(lambda: _committed(store) >= 1, 120, "a first commit")
    for p in procs[1:]:
        p.send_signal(signal.SIGKILL)  # every worker dies; the scheduler stays
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, err
    assert "no Dask worker for 5 s" in err and "Run the same command to resume" in err and "Traceback" not in err
    assert 0 < _ok(store) < 16


# -- signals -------------------------------------------------------------------------------------------
@pytest.mark.slow  # ~50 s each: a cluster stopped by a real signal, then the re-run (default suite: ~15 min budget)
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_first_signal_stops_cleanly_and_the_rerun_completes(longer_corpus, tmp_path, sig, code):
    store = tmp_path / "s.zarr"
    args = ["extract", *ARGS, "--root", str(longer_corpus), "--store", str(store), "--shard-size", "1", "--quiet"]
    run = _popen(*args, start_new_session=True)  # its own process group, like a terminal's foreground job
    wait_for(lambda: _committed(store) >= 2, 120, "two commits")
    if sig == signal.SIGINT:
        os.killpg(run.pid, sig)  # Ctrl-C reaches the driver and every worker process
    else:
        os.kill(run.pid, sig)  # SLURM's SIGTERM at walltime
    out, err = run.communicate(timeout=60)
    assert run.returncode == code, err
    assert f"stopped by {signal.Signals(sig).name}" in err and "Run the same command to resume" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    before = _ok(store)
    assert 0 < before < 32
    assert f"This run committed {before} results" in err, err  # what the index holds, not what was reported back
    r = extract_json(*args[1:])
    assert sum(r["cached"].values()) == before and r["counts"]["ok"] == 32 - before
    assert cli("verify", str(store), "--quiet").returncode == 0


def test_second_ctrl_c_exits_at_once(longer_corpus, tmp_path):
    store = tmp_path / "s.zarr"
    run = _popen("extract", *ARGS, "--root", str(longer_corpus), "--store", str(store), "--quiet",
                 start_new_session=True)
    wait_for(lambda: _committed(store) >= 1, 120, "a commit")
    os.killpg(run.pid, signal.SIGINT)
    time.sleep(0.3)
    t = time.time()
    os.killpg(run.pid, signal.SIGINT)
    run.communicate(timeout=30)
    assert run.returncode == 130 and time.time() - t < 3


# -- loopback --------------------------------------------------------------------------------------------
def test_local_cluster_listens_on_loopback_only(longer_corpus, tmp_path):
    store = tmp_path / "s.zarr"
    run = _popen("extract", *ARGS, "--root", str(longer_corpus), "--store", str(store), "--quiet")
    wait_for(lambda: _committed(store) >= 1, 120, "a commit")
    me = psutil.Process(run.pid)
    pids = {run.pid, *(c.pid for c in me.children(recursive=True))}
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    run.terminate()
    run.communicate(timeout=60)
    assert run.returncode == 143
    assert len(listening) >= 3  # scheduler, its dashboard, the workers (and their nannies)
    assert all(c.laddr.ip == "127.0.0.1" for c in listening), [c.laddr for c in listening]


def _job_script(tmp_path: Path, **jq) -> str:
    y = tmp_path / "c.yaml"
    y.write_text(yaml.safe_dump({"mode": "jobqueue", "jobqueue": {"system": "slurm", "cores": 2, "memory": "4GB",
                                                                   **jq}}))
    jc = cluster.make_jobqueue_cluster(cluster.load(str(y)).jobqueue)
    try:
        return jc.job_script()
    finally:
        jc.close()


def test_jobqueue_passes_dask_jobqueue_options_through_and_defaults_to_loopback(tmp_path):
    script = _job_script(tmp_path, python="/opt/venv/bin/python", job_directives_skip=["--mem"],
                         job_script_prologue=["module load ffmpeg"], worker_extra_args=["--lifetime", "55m"])
    assert "/opt/venv/bin/python -m distributed.cli.dask_worker" in script
    assert "#SBATCH --mem" not in script and "module load ffmpeg" in script and "--lifetime 55m" in script
    assert "--host 127.0.0.1" in script and "--dashboard-address 127.0.0.1:0" in script
    assert "--preload pipeline.runtime.worker_setup" in script
    private = _job_script(tmp_path, interface="lo")  # a real cluster names its private one (ib0, eth1, ...)
    assert "--interface lo" in private and "--host " not in private and "--no-dashboard" not in private
    assert "--dashboard-address 127.0.0.1:0" in private  # --no-dashboard still served HTTP on 0.0.0.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: jobqueue\njobqueue: {system: slurm, cores: 1, memory: 1GB, pyhton: x}\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['pyhton'\]"):
        cluster.load(str(bad))


def test_non_loopback_addresses_are_recognised():
    assert security.is_loopback("tcp://127.0.0.1:8786") and security.is_loopback("http://localhost:8787/status")
    assert not security.is_loopback("tcp://0.0.0.0:8786") and not security.is_loopback("tcp://10.1.2.3:40000")
    assert security.is_loopback("tcp://[::1]:1234") and not security.is_loopback("tcp://[::]:1234")


# -- integrity -------------------------------------------------------------------------------------------
def _stored_object(store: Path, part: str, array: str) -> Path:
    """The one stored object (a chunk, or a shard of chunks) of a small part's array."""
    (obj,) = [p for p in (store / part / array / "c").rglob("*") if p.is_file()]
    return obj


@pytest.mark.slow  # 20-40 s: the default tier stays under 15 minutes on 2 cores
def test_verify_finds_missing_truncated_and_flipped_chunks_and_repair_recomputes_exactly_them(mini_corpus, tmp_path):
    store = tmp_path / "s.zarr"
    args = [*ARGS, "--root", str(mini_corpus), "--store", str(store), "--quiet"]
    extract_json(*args)
    live = FeatureStore(str(store)).index()
    part = {(r.stage, r.view, r.extractor): r.part for r in live.itertuples()}
    _stored_object(store, part["native", "", "face_hog"], "mask").unlink()  # lost: zarr alone returns zeros
    truncated = _stored_object(store, part["aligned", "5hz", "logmel"], "times")
    truncated.write_bytes(truncated.read_bytes()[:20])
    flipped = _stored_object(store, part["native", "", "logmel"], "values")
    data = bytearray(flipped.read_bytes())
    data[len(data) // 3] ^= 0x01  # one flipped bit: only the checksum sees it
    flipped.write_bytes(bytes(data))
    r = cli("verify", str(store), "--quiet")
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("problem")]
    clips = live.clip_id.nunique()
    assert sum("[native face_hog]" in ln and "is missing" in ln for ln in lines) == clips, r.stdout
    assert sum("[aligned/5hz logmel]" in ln and "does not decode" in ln for ln in lines) == clips, r.stdout
    assert sum("[native logmel]" in ln and "checksum mismatch" in ln for ln in lines) == clips, r.stdout
    assert len(lines) == 3 * clips  # each names its entry: clip [stage extractor]; nothing else is reported
    r = cli("verify", str(store), "--repair", "--quiet")
    assert r.returncode == 1 and f"marked {3 * clips} entries for recomputation" in r.stdout
    again = extract_json(*args)
    now = FeatureStore(str(store)).index()
    redone = now[now.run_id == again["run_id"]]
    # exactly the damaged entries, plus the aligned copy of a re-extracted native entry (derived from it)
    assert set(zip(redone.stage, redone.view, redone.extractor)) == {
        ("native", "", "face_hog"), ("aligned", "5hz", "face_hog"), ("aligned", "5hz", "logmel"),
        ("native", "", "logmel")}
    assert len(redone) == 4 * clips and (redone.status == "ok").all()
    assert again["calls"] == {"logmel": clips, "face_hog": clips}
    assert cli("verify", str(store), "--quiet").returncode == 0


# -- progress and shard sizing ---------------------------------------------------------------------------
def test_progress_lines_in_a_batch_log_count_media_seconds_inside_a_long_clip(tmp_path):
    root = tmp_path / "one"
    generate(tmp_path / "gen", speakers=1, clips_per_class=1, seed=2, durations=(12.0, 12.0))
    root.mkdir()
    shutil.copy(next((tmp_path / "gen").rglob("*.mp4")), root / "long.mp4")
    run = _popen("extract", "--dataset", "folder", "--root", str(root), "--store", str(tmp_path / "s.zarr"),
                 "--extractors", "logmel,face_hog", "--progress-every", "0.5")
    seen = []
    for line in run.stderr:  # stderr is a pipe here, as in a SLURM batch job: plain lines, not a bar
        m = re.match(r"extract: 0/1 clips \(.*\), (\d+) s of media", line)
        if m:
            seen.append(float(m.group(1)))
    run.wait(timeout=300)
    assert run.returncode == 0
    assert seen and max(seen) > 0, "no progress inside the clip before it finished"


def test_shards_are_sized_to_keep_every_worker_busy_and_submitted_through_a_bounded_window(mini_corpus, tmp_path):
    c = tmp_path / "one-worker.yaml"
    c.write_text("mode: local\nlocal: {n_workers: 1, threads_per_worker: 1}\n")
    fast = ["--dataset", "demo", "--extractors", "logmel", "--root", str(mini_corpus), "--quiet"]
    r = extract_json(*fast, "--store", str(tmp_path / "s.zarr"), "--cluster", str(c))
    assert r["tasks"] == 4  # 8 clips, one slot, four tasks per slot: 2 clips per task
    assert r["max_in_flight"] <= 2 < r["tasks"]  # never more than the window (2 per slot) in flight
    two = extract_json(*fast, "--store", str(tmp_path / "t.zarr"))
    assert two["tasks"] == 8  # the default cluster (one worker per core, 2 here): one clip per task


# -- git-LFS pointers ------------------------------------------------------------------------------------
def test_a_git_lfs_pointer_is_a_failed_row_with_allow_failures(mini_corpus, tmp_path):
    root = tmp_path / "clips"
    shutil.copytree(mini_corpus, root, ignore=shutil.ignore_patterns("*.csv"))
    pointer = sorted(root.rglob("*.mp4"))[0]
    pointer.write_bytes(LFS)
    store = tmp_path / "s.zarr"
    refused = cli("extract", "--dataset", "folder", "--root", str(root), "--store", str(store), "--quiet",
                  "--extractors", "logmel")
    assert refused.returncode == 2 and "git-LFS pointer" in refused.stderr
    r = extract_json("--dataset", "folder", "--root", str(root), "--store", str(store), "--quiet",
                     "--extractors", "logmel", "--allow-failures")
    assert r["counts"]["failed"] == 1 and r["counts"]["ok"] == 7
    live = FeatureStore(str(store)).index()
    bad = live[live.status == "failed"]
    assert len(bad) == 1 and "git-LFS pointer" in bad.iloc[0]["reason"] and "git lfs pull" in bad.iloc[0]["reason"]
    assert cli("status", str(store)).returncode == 0
