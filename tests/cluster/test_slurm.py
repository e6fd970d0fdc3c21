"""`mode: jobqueue` on a real single-node SLURM: jobs cancelled mid-run, the driver killed, loopback workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from pipeline.datasets.demo import generate
from stores.feature_store import FeatureStore
from tests.helpers.cli import wait_for
from tests.helpers.slurm_cluster import jobs, scancel, slurm_cluster

pytestmark = pytest.mark.slow
CLIPS = 16
EXTRACTORS = "logmel,face_hog"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """16 clips of 3-4 s: long enough that a run can be interrupted halfway."""
    return generate(tmp_path_factory.mktemp("corpus") / "demo", speakers=2, clips_per_class=2, seed=5,
                    durations=(3.0, 4.0))


def _cluster_file(tmp: Path, **overrides) -> Path:
    jq = {"system": "slurm", "cores": 1, "processes": 1, "memory": "2GB", "jobs": 2, "walltime": "00:30:00",
          "queue": "debug", "python": sys.executable, "log_directory": str(tmp / "logs"),
          "local_directory": str(tmp / "work"), "death_timeout": 10, "no_workers_timeout": 60,
          "max_resubmissions": 2, **overrides}
    f = tmp / "cluster.yaml"
    f.write_text(yaml.safe_dump({"mode": "jobqueue", "jobqueue": jq}))
    return f


def _start(slurm: dict, corpus: Path, store: Path, cluster: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "pipeline", "extract", "--dataset", "demo", "--root", str(corpus), "--store",
            str(store), "--cluster", str(cluster), "--extractors", EXTRACTORS, "--shard-size", "1",
            "--progress-every", "2"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **slurm, "COLUMNS": "200"}, cwd=store.parent)


def _committed(store: Path) -> int:
    d = store / "index"
    return len(list(d.glob("*.parquet"))) if d.exists() else 0



def _running(slurm: dict) -> list[str]:
    return [j for j, state in jobs(slurm) if state == "RUNNING"]


def _complete(store: Path) -> None:
    live = FeatureStore(str(store)).index()
    ok = live[(live.status == "ok") & (live.stage == "native")]
    assert len(ok) == CLIPS * 2 and not ok.duplicated(["clip_id", "extractor"]).any()
    r = subprocess.run([sys.executable, "-m", "pipeline", "verify", str(store), "--quiet"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def _worker_pids() -> list[int]:
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "dask_worker" in cmd or "dask-worker" in cmd or "distributed.cli.dask_worker" in cmd:
            out.append(p.info["pid"])
            out += [c.pid for c in p.children(recursive=True)]
    return out


def test_one_job_cancelled_mid_run_completes_and_workers_listen_on_loopback_only(slurm, corpus, tmp_path):
    store = tmp_path / "s.zarr"
    proc = _start(slurm, corpus, store, _cluster_file(tmp_path))
    wait_for(lambda: len(_running(slurm)) == 2 and _committed(store) >= 1, 180, "two running jobs and a commit", proc)
    pids = set(_worker_pids())
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert listening, "no listening socket found for the worker jobs"
    assert all(c.laddr.ip == "127.0.0.1" for c in listening), [c.laddr for c in listening]
    scancel(slurm, _running(slurm)[0])
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    _complete(store)


def test_every_job_cancelled_is_replaced_and_the_run_completes(slurm, corpus, tmp_path):
    store = tmp_path / "s.zarr"
    proc = _start(slurm, corpus, store, _cluster_file(tmp_path))
    wait_for(lambda: len(_running(slurm)) == 2 and _committed(store) >= 1, 180, "two running jobs and a commit", proc)
    scancel(slurm, *_running(slurm))
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    assert "worker job(s) lost; submitted replacements" in err
    _complete(store)


def test_every_job_cancelled_without_replacements_stops_cleanly_then_resumes(slurm, corpus, tmp_path):
    store = tmp_path / "s.zarr"
    proc = _start(slurm, corpus, store, _cluster_file(tmp_path, max_resubmissions=0, no_workers_timeout=8))
    wait_for(lambda: len(_running(slurm)) == 2 and _committed(store) >= 1, 180, "two running jobs and a commit", proc)
    scancel(slurm, *_running(slurm))
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 1, err
    assert "no Dask worker for 8 s" in err and "Run the same command to resume" in err
    assert "Traceback" not in err
    proc = _start(slurm, corpus, store, _cluster_file(tmp_path))
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    _complete(store)


def test_driver_kill_9_then_the_rerun_resumes(slurm, corpus, tmp_path):
    store = tmp_path / "s.zarr"
    proc = _start(slurm, corpus, store, _cluster_file(tmp_path))
    wait_for(lambda: _committed(store) >= 2, 180, "two commits", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    scancel(slurm, *[j for j, _ in jobs(slurm)])  # the orphaned workers would also leave after death_timeout
    live = FeatureStore(str(store)).index()
    before = int(((live.stage == "native") & (live.status == "ok")).sum())
    assert 0 < before < CLIPS * 2
    proc = _start(slurm, corpus, store, _cluster_file(tmp_path))
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    _complete(store)


def test_a_jobqueue_run_is_tls_and_refuses_a_client_without_its_credentials(slurm, tmp_path, monkeypatch):
    """Real SLURM jobs: the run's throw-away certificates reach the jobs through a private folder, the
    workers join over TLS, and a client in another process without them is refused."""
    from pipeline.runtime import cluster
    from tests.cluster.test_security import assert_refused

    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    cfg = cluster.load(str(_cluster_file(tmp_path, jobs=1, shared_temp_directory=str(tmp_path))))
    with cluster.client_for(cfg) as session:
        session.client.wait_for_workers(1, timeout=180)
        address = session.client.scheduler.address
        assert address.startswith("tls://127.0.0.1:"), address
        (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith(".affect-tls-")]
        assert folder.stat().st_mode & 0o077 == 0  # the worker certificates: the user's alone
        assert list(session.client.run(lambda: "ran").values()) == ["ran"]
        assert_refused(address)
        assert session.exposure_warnings() == []
    assert not folder.exists()  # removed with the run
