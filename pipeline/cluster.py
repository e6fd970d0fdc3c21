"""Which Dask cluster runs the graph: an embedded LocalCluster, a running scheduler, or dask-jobqueue.

Chosen by ``dask_cluster.yaml`` (``--cluster FILE``). Everything is validated before any work starts.
Scheduler and dashboard bind to 127.0.0.1 unless the file says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from pipeline.errors import ConfigError

MODES = ("local", "scheduler", "jobqueue")
JOBQUEUE_SYSTEMS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster", "sge": "SGECluster",
                    "htcondor": "HTCondorCluster"}
_LOCAL_KEYS = {"n_workers", "threads_per_worker", "memory_limit", "host", "dashboard_address", "resources"}
_SCHED_KEYS = {"address", "timeout"}
_JQ_KEYS = {"system", "cores", "memory", "walltime", "queue", "account", "processes", "jobs", "job_extra_directives",
            "job_script_prologue", "interface", "gpus_per_job", "local_directory", "log_directory", "wait_timeout"}


@dataclass(frozen=True)
class ClusterConfig:
    mode: str = "local"
    local: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    jobqueue: dict[str, Any] = field(default_factory=dict)


def _check_keys(section: str, given: dict, allowed: set[str], source: str) -> None:
    if not isinstance(given, dict):
        raise ConfigError(f"{source}: `{section}` must be a mapping")
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in `{section}`; allowed: {sorted(allowed)}")


def load(path: str | None) -> ClusterConfig:
    """Read and validate a cluster file (None: the embedded LocalCluster with defaults)."""
    if path is None:
        return ClusterConfig()
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"--cluster {path}: file not found")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--cluster {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--cluster {path}: expected a mapping with `mode:` at the top")
    _check_keys("top level", raw, {"mode", *MODES}, path)
    mode = raw.get("mode", "local")
    if mode not in MODES:
        raise ConfigError(f"--cluster {path}: mode must be one of {MODES}, not {mode!r}")
    local, sched, jq = raw.get("local") or {}, raw.get("scheduler") or {}, raw.get("jobqueue") or {}
    _check_keys("local", local, _LOCAL_KEYS, path)
    _check_keys("scheduler", sched, _SCHED_KEYS, path)
    _check_keys("jobqueue", jq, _JQ_KEYS, path)
    for key in ("n_workers", "threads_per_worker"):
        v = local.get(key, "auto")
        if v != "auto" and (not isinstance(v, int) or v < 1):
            raise ConfigError(f"--cluster {path}: local.{key} must be a positive integer or 'auto', not {v!r}")
    if mode == "scheduler" and not sched.get("address"):
        raise ConfigError(f"--cluster {path}: mode 'scheduler' needs scheduler.address (e.g. tcp://127.0.0.1:8786)")
    if mode == "jobqueue":
        system = jq.get("system")
        if system not in JOBQUEUE_SYSTEMS:
            raise ConfigError(f"--cluster {path}: jobqueue.system must be one of {sorted(JOBQUEUE_SYSTEMS)}")
        for key in ("cores", "memory"):
            if key not in jq:
                raise ConfigError(f"--cluster {path}: jobqueue.{key} is required")
    return ClusterConfig(mode, local, sched, jq)


def _local_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    n = cfg.get("n_workers", "auto")
    n = cores if n == "auto" else n
    threads = cfg.get("threads_per_worker", "auto")
    threads = 1 if threads == "auto" else threads
    memory = cfg.get("memory_limit", "auto")
    if memory == "auto":
        memory = int(psutil.virtual_memory().total * 0.9 / n)
    resources = dict(cfg.get("resources") or {})
    if "GPU" not in resources and _gpus() > 0:
        resources["GPU"] = 1
    return {
        "n_workers": n, "threads_per_worker": threads, "memory_limit": memory, "processes": True,
        "host": cfg.get("host", "127.0.0.1"), "dashboard_address": cfg.get("dashboard_address", "127.0.0.1:0"),
        "resources": resources or None,
    }


def _gpus() -> int:
    """CUDA devices, counted without importing torch in the client (nvidia-smi if present)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if not exe:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@contextmanager
def client_for(cfg: ClusterConfig) -> Iterator[Any]:
    """A connected ``distributed.Client``; clusters it started are closed on exit."""
    from distributed import Client, LocalCluster

    if cfg.mode == "scheduler":
        client = Client(cfg.scheduler["address"], timeout=cfg.scheduler.get("timeout", "30s"))
        try:
            yield client
        finally:
            client.close()
        return
    if cfg.mode == "jobqueue":
        cluster = make_jobqueue_cluster(cfg.jobqueue)
        cluster.scale(jobs=int(cfg.jobqueue.get("jobs", 1)))
        with cluster, Client(cluster) as client:
            client.wait_for_workers(1, timeout=cfg.jobqueue.get("wait_timeout", 3600))
            yield client
        return
    with LocalCluster(**_local_kwargs(cfg.local)) as cluster, Client(cluster) as client:
        yield client


def make_jobqueue_cluster(jq: dict[str, Any]) -> Any:
    import dask_jobqueue

    cls = getattr(dask_jobqueue, JOBQUEUE_SYSTEMS[jq["system"]])
    kwargs = {k: v for k, v in jq.items() if k not in ("system", "jobs", "gpus_per_job", "wait_timeout")}
    kwargs.setdefault("scheduler_options", {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"})
    gpus = int(jq.get("gpus_per_job", 0))
    if gpus:
        kwargs["worker_extra_args"] = [*kwargs.get("worker_extra_args", []), "--resources", f"GPU={gpus}"]
        if jq["system"] == "slurm":
            kwargs["job_extra_directives"] = [*kwargs.get("job_extra_directives", []), f"--gres=gpu:{gpus}"]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"jobqueue: {exc}") from None


def gpu_workers(client: Any) -> int:
    try:
        info = client.scheduler_info(n_workers=-1)  # newer distributed lists only 5 workers by default
    except TypeError:
        info = client.scheduler_info()
    workers = info.get("workers", {})
    return sum(1 for w in workers.values() if (w.get("resources") or {}).get("GPU", 0) > 0)
