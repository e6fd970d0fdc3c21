"""Store internals (index commits, compaction, parts) and cluster configuration."""

from __future__ import annotations

import numpy as np
import pytest

from extractors.base import Extractor, Features, NoConfig
from pipeline.errors import ConfigError
from pipeline.runtime import cluster
from stores import index
from stores.feature_store import FeatureStore


def _feats(n: int, d: int = 3) -> Features:
    return Features(np.arange(n * d, dtype=np.float32).reshape(n, d), np.arange(n) / 10, np.arange(1, n + 1) / 10)


def test_parts_are_written_whole_and_idempotently(tmp_path):
    s = FeatureStore(str(tmp_path / "s"), create=True)
    items = [("a", _feats(4)), ("b", _feats(2))]
    part, spans = s.write_part("native", "", "x", "p1", items, "float32", {"k": 1})
    assert spans == [(0, 4), (4, 2)]
    again, spans2 = s.write_part("native", "", "x", "p1", items, "float32", {"k": 1})
    assert again == part and spans2 == spans
    assert not list((tmp_path / "s" / ".tmp").iterdir())  # nothing half-written left behind
    row = {"part": part, "offset": 4, "length": 2}
    np.testing.assert_array_equal(s.read(row).values, _feats(2).values)


def test_index_latest_row_wins_and_compaction_keeps_the_live_rows(tmp_path):
    s = FeatureStore(str(tmp_path / "s"), create=True)
    base = {"clip_id": "a", "stage": "native", "view": "", "extractor": "x"}
    index.commit(s.fs, [base | {"key": "k1", "status": "failed", "reason": "r"}], "one")
    index.commit(s.fs, [base | {"key": "k2", "status": "ok"}, base | {"clip_id": "b", "status": "ok"}], "two")
    assert index.commit(s.fs, [base | {"key": "k3"}], "two").endswith("two.parquet")  # existing file wins
    live = index.load(s.fs)
    assert len(live) == 2 and live.set_index("clip_id").loc["a", "key"] == "k2"
    compacted = index.compact(s.fs)
    assert len(index.files(s.fs)) == 1
    assert compacted.sort_values("clip_id").reset_index(drop=True).equals(live.sort_values("clip_id")
                                                                          .reset_index(drop=True))


def test_a_store_path_that_is_another_zarr_group_is_refused(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "g"), mode="w")
    with pytest.raises(ValueError, match="not an affect-pipeline store"):
        FeatureStore(str(tmp_path / "g"), create=True)
    with pytest.raises(FileNotFoundError, match="no feature store"):
        FeatureStore(str(tmp_path / "missing"))


def test_store_url_through_fsspec(tmp_path):
    s = FeatureStore(f"file://{tmp_path}/u.zarr", create=True)
    part, _ = s.write_part("native", "", "x", "p", [("a", _feats(3))], "float16", {})
    np.testing.assert_allclose(s.read({"part": part, "offset": 0, "length": 3}).values, _feats(3).values)


def test_local_cluster_defaults_bind_loopback(tmp_path):
    kw = cluster._local_kwargs({})
    assert kw["host"] == "127.0.0.1" and kw["dashboard_address"].startswith("127.0.0.1")
    assert kw["n_workers"] >= 1 and kw["threads_per_worker"] == 1


def test_jobqueue_spec_renders_a_real_job_script(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("mode: jobqueue\njobqueue: {system: slurm, cores: 4, memory: 16GB, walltime: '01:00:00', "
                 "gpus_per_job: 1, queue: gpu}\n")
    cfg = cluster.load(str(y))
    jc = cluster.make_jobqueue_cluster(cfg.jobqueue)
    try:
        script = jc.job_script()
    finally:
        jc.close()
    assert "#SBATCH --gres=gpu:1" in script and "--resources GPU=1" in script and "-p gpu" in script


def test_gpu_extractors_fail_fast_when_no_worker_offers_a_gpu():
    from dataclasses import dataclass

    from distributed import Client, LocalCluster

    from extractors import registry
    from pipeline.engine.config import ExtractConfig
    from pipeline.engine.plan import Plan
    from pipeline.engine.run import _device

    @dataclass(frozen=True)
    class Cfg(NoConfig):
        pass

    @registry.register_extractor
    class NeedsGPU(Extractor):
        name = "test_needs_gpu"
        modality = "audio"
        input = "audio"
        Config = Cfg
        wants_gpu = True

    plan = Plan("r", 0, [], {}, {"test_needs_gpu": {}})
    cfg = ExtractConfig("demo", ".", "s", {"logmel": {}}, device="cuda")
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as lc, Client(lc) as client:
        with pytest.raises(ConfigError, match="no Dask worker offers a 'GPU' resource"):
            _device(cfg, client, plan)
        auto = ExtractConfig("demo", ".", "s", {"logmel": {}}, device="auto")
        assert _device(auto, client, plan) == ("cpu", None)


def _fresh_page_faults(shape: tuple[int, ...] = (720, 1280, 3), cycles: int = 200) -> int:
    """Minor page faults of allocate-fill-free cycles of an array (a 720p RGB frame's size), in this process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        a = np.ones(shape, np.uint8)
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_workers_reuse_freed_frame_memory_instead_of_faulting_it_in_again():
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which makes every frame-sized allocation a fresh mmap (and
    the face stage half as fast); the worker preload restores reuse. Pages of one frame: 675."""
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc allocator tuning is Linux-only")
    cfg = cluster.ClusterConfig("local", {"n_workers": 1, "threads_per_worker": 1})
    with cluster.client_for(cfg) as session:
        env, faults = next(iter(session.client.run(
            lambda: (__import__("os").environ.get("MALLOC_TRIM_THRESHOLD_"), _fresh_page_faults())).values()))
    assert env == "65536"  # the nanny's setting is there ...
    assert faults < 200 * 675 * 0.1, faults  # ... and yet freed frames are reused, not faulted in 200 times


@pytest.mark.parametrize("memory, reused", [("8GiB", True), ("1GiB", False)])
def test_roomy_workers_also_reuse_model_sized_allocations(memory, reused):
    """Tensors over 8 MiB (wav2vec2's activations: 13 % of its time went to faulting them in) are reused in
    workers with >= 4 GiB per thread; lean workers keep less freed memory and fault them in (the trade-off
    that keeps 2 GB SLURM workers below Dask's pause mark). 16 MiB = 4,096 pages, 50 cycles."""
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc allocator tuning is Linux-only")
    cfg = cluster.ClusterConfig("local", {"n_workers": 1, "threads_per_worker": 1, "memory_limit": memory})
    with cluster.client_for(cfg) as session:
        (faults,) = session.client.run(_fresh_page_faults, (16 << 20,), 50).values()
    assert (faults < 50 * 4096 * 0.1) == reused, faults


@pytest.mark.parametrize("keep", [False, True])
def test_workers_run_without_dasks_statistical_profiler_unless_asked(keep, monkeypatch):
    """The profiler walks the task thread's deep model stack every 10 ms (~4 % of a worker's CPU under
    wav2vec2); the preload removes it before it starts. AFFECT_DASK_PROFILE=1 keeps it for the dashboard."""
    monkeypatch.setenv("AFFECT_DASK_PROFILE", "1" if keep else "0")
    cfg = cluster.ClusterConfig("local", {"n_workers": 1, "threads_per_worker": 1})
    with cluster.client_for(cfg) as session:
        (names,) = session.client.run(lambda dask_worker: sorted(dask_worker.periodic_callbacks)).values()
    assert ("profile" in names) == keep and ("profile-cycle" in names) == keep, names
    assert "heartbeat" in names  # the worker's other callbacks are untouched
