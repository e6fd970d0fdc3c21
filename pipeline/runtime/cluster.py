"""Which Dask cluster runs the graph: an embedded LocalCluster, a running scheduler, or dask-jobqueue.

Chosen by ``dask_cluster.yaml`` (``--cluster FILE``). Everything is validated before any work starts.
Everything listens on 127.0.0.1 unless the file says otherwise (``interface:`` for a real cluster's
private network); ``jobqueue`` takes every option of dask-jobqueue's cluster class as it is.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from pipeline.errors import ConfigError
from pipeline.runtime.security import (
    any_host,
    check_scheduler_security,
    is_loopback,
    listening_addresses,
    security_for,
    shared_dir,
)

MODES = ("local", "scheduler", "jobqueue")
JOBQUEUE_SYSTEMS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster", "sge": "SGECluster",
                    "htcondor": "HTCondorCluster"}
PRELOAD = "pipeline.runtime.worker_setup"
_COMMON_KEYS = {"no_workers_timeout", "insecure"}
_LOCAL_KEYS = {"n_workers", "threads_per_worker", "memory_limit", "host", "dashboard_address", "resources"}
_SCHED_KEYS = {"address", "timeout", "tls"}
# ours; everything else in `jobqueue:` goes to dask-jobqueue's cluster class unchanged
_JQ_OWN_KEYS = {"system", "jobs", "gpus_per_job", "wait_timeout", "max_resubmissions"}
DEFAULT_NO_WORKERS_TIMEOUT = {"local": 60.0, "scheduler": 300.0, "jobqueue": 3600.0}


@dataclass(frozen=True)
class ClusterConfig:
    mode: str = "local"
    local: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    jobqueue: dict[str, Any] = field(default_factory=dict)

    @property
    def section(self) -> dict[str, Any]:
        return {"local": self.local, "scheduler": self.scheduler, "jobqueue": self.jobqueue}[self.mode]

    @property
    def no_workers_timeout(self) -> float:
        """Seconds without any worker (while work remains) before the run stops with an error."""
        v = self.section.get("no_workers_timeout")
        if v is None and self.mode == "jobqueue":
            v = self.jobqueue.get("wait_timeout")
        return float(v) if v is not None else DEFAULT_NO_WORKERS_TIMEOUT[self.mode]


def jobqueue_keys(system: str) -> set[str]:
    """Every option dask-jobqueue's cluster class for ``system`` accepts (read from its signatures)."""
    import dask_jobqueue
    from dask_jobqueue.core import Job, JobQueueCluster

    cls = getattr(dask_jobqueue, JOBQUEUE_SYSTEMS[system])
    names: set[str] = set()
    for fn in (cls.job_cls.__init__, Job.__init__, JobQueueCluster.__init__):
        names |= {p for p, v in inspect.signature(fn).parameters.items()
                  if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
    return names - {"self", "scheduler", "name", "loop", "asynchronous", "job_cls", "base_class_kwargs",
                    "config_name", "job_kwargs"}


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
    if p.stat().st_mode & 0o022:  # what it says runs as you (dask-jobqueue puts prologue, python, shebang verbatim
        # into job scripts): a file others can change is code others can run as you
        raise ConfigError(f"--cluster {path} is writable by other users (mode {p.stat().st_mode & 0o777:o}); the "
                          f"cluster file is trusted like code: `chmod go-w {path}`")
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
    _check_keys("local", local, _LOCAL_KEYS | _COMMON_KEYS, path)
    _check_keys("scheduler", sched, _SCHED_KEYS | _COMMON_KEYS, path)
    for key in ("n_workers", "threads_per_worker"):
        v = local.get(key, "auto")
        if v != "auto" and (not isinstance(v, int) or v < 1):
            raise ConfigError(f"--cluster {path}: local.{key} must be a positive integer or 'auto', not {v!r}")
    if mode == "scheduler" and not sched.get("address"):
        raise ConfigError(f"--cluster {path}: mode 'scheduler' needs scheduler.address (e.g. tls://10.0.0.5:8786)")
    if mode == "scheduler":
        check_scheduler_security(sched, path)
    if mode == "jobqueue" or jq:
        system = jq.get("system")
        if system not in JOBQUEUE_SYSTEMS:
            raise ConfigError(f"--cluster {path}: jobqueue.system must be one of {sorted(JOBQUEUE_SYSTEMS)}")
        _check_keys("jobqueue", jq, jobqueue_keys(system) | _JQ_OWN_KEYS | _COMMON_KEYS, path)
        for key in ("cores", "memory"):
            if key not in jq:
                raise ConfigError(f"--cluster {path}: jobqueue.{key} is required")
    for section, values in (("local", local), ("scheduler", sched), ("jobqueue", jq)):
        v = values.get("no_workers_timeout")
        if v is not None and (not isinstance(v, int | float) or v <= 0):
            raise ConfigError(f"--cluster {path}: {section}.no_workers_timeout must be seconds > 0, not {v!r}")
    return ClusterConfig(mode, local, sched, jq)


def _local_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    n = cfg.get("n_workers", "auto")
    n = cores if n == "auto" else n
    threads = cfg.get("threads_per_worker", "auto")
    threads = max(1, cores // n) if threads == "auto" else threads
    memory = cfg.get("memory_limit", "auto")
    if memory == "auto":
        memory = int(psutil.virtual_memory().total * 0.9 / n)
    resources = dict(cfg.get("resources") or {})
    if "GPU" not in resources and _gpus() > 0:
        resources["GPU"] = 1
    return {
        "n_workers": n, "threads_per_worker": threads, "memory_limit": memory, "processes": True,
        "host": cfg.get("host", "127.0.0.1"), "dashboard_address": cfg.get("dashboard_address", "127.0.0.1:0"),
        "worker_dashboard_address": None,  # per-worker dashboards off: the scheduler's shows every worker
        "resources": resources or None, "preload": [PRELOAD], "silence_logs": 40,  # logging.ERROR
    }


def planned_slots(cfg: ClusterConfig) -> int | None:
    """Task slots (worker threads) the configuration asks for, before any worker starts; None where only the
    running scheduler knows (mode: scheduler)."""
    if cfg.mode == "local":
        kw = _local_kwargs(cfg.local)
        return int(kw["n_workers"]) * int(kw["threads_per_worker"])
    if cfg.mode == "jobqueue":
        return int(cfg.jobqueue.get("jobs", 1)) * int(cfg.jobqueue.get("cores", 1))
    return None


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


class Session:
    """A connected client, plus what the driver needs to keep a run alive: slots, lost-job replacement."""

    def __init__(self, cfg: ClusterConfig, client: Any, cluster: Any = None) -> None:
        self.cfg, self.client, self.cluster = cfg, client, cluster
        self.resubmitted = 0
        self._seen: set[str] = set()
        self.max_resubmissions = int(cfg.jobqueue.get("max_resubmissions", 2 * int(cfg.jobqueue.get("jobs", 1))))

    def workers(self) -> dict[str, dict]:
        try:
            info = self.client.scheduler_info(n_workers=-1)  # newer distributed lists 5 workers by default
        except TypeError:
            info = self.client.scheduler_info()
        return info.get("workers", {})

    def slots(self, workers: dict[str, dict] | None = None) -> int:
        """Task slots (worker threads) now, or the configured number while workers are still starting;
        ``workers`` as ``workers()`` just returned it saves asking the scheduler again."""
        workers = self.workers() if workers is None else workers
        n = sum(int(w.get("nthreads", 1)) for w in workers.values())
        if n:
            return n
        if self.cfg.mode == "jobqueue":
            return int(self.cfg.jobqueue.get("jobs", 1)) * int(self.cfg.jobqueue.get("cores", 1))
        return _local_kwargs(self.cfg.local)["n_workers"] if self.cfg.mode == "local" else 1

    def replace_lost_jobs(self) -> int:
        """Resubmit worker jobs whose worker left the scheduler (walltime, scancel, node failure), up to a cap.

        dask-jobqueue forgets a lost job's worker after ``distributed.deploy.lost-worker-timeout``; asking
        for the configured number of jobs again then submits a replacement. Returns jobs resubmitted now.
        """
        if self.cfg.mode != "jobqueue" or self.cluster is None:
            return 0
        self._seen |= set(self.cluster.workers)  # a job counts once it was submitted (sbatch returned)
        lost = sorted((self._seen - set(self.cluster.workers)) & set(self.cluster.worker_spec))
        room = self.max_resubmissions - self.resubmitted
        if not lost or room <= 0:
            return 0
        lost = lost[:room]
        for name in lost:  # forget the lost jobs, then ask for as many again: new names, new jobs
            del self.cluster.worker_spec[name]
        self.cluster.scale(jobs=len(self.cluster.worker_spec) + len(lost))
        self.resubmitted += len(lost)
        return len(lost)

    def exposure_warnings(self, workers: dict[str, dict] | None = None) -> list[str]:
        """One line per address of this run that is reachable from outside the machine: every socket the
        scheduler and each worker process listens on (comm, dashboard, metrics), as the processes report them,
        not only the addresses they advertise (a worker's HTTP server binds 0.0.0.0 under --no-dashboard)."""
        found: dict[str, str] = {}
        try:
            if self.cfg.mode == "scheduler":
                sched = self.client.run_on_scheduler(listening_addresses)
            else:  # the scheduler runs in this process (local and jobqueue modes)
                sched = listening_addresses()
            per_worker = self.client.run(listening_addresses)
        except Exception:  # noqa: BLE001 - warnings are best effort (a worker leaving mid-question)
            return []
        for addr in sched:
            found.setdefault(addr, "scheduler (or its dashboard)")
        for worker, addrs in sorted(per_worker.items()):
            for addr in addrs:
                found.setdefault(addr, f"worker {worker}")
        return [f"the {what} listens on {addr}{' (every interface)' if any_host(addr) else ''}: reachable from "
                "other machines on that network (set `interface:` or `host: 127.0.0.1` in the cluster file, "
                "`--dashboard-address 127.0.0.1:0` for workers you start; docs/cluster.md)"
                for addr, what in found.items() if addr and not is_loopback(addr)]


# Dask keeps the last ``low-level-log-length`` messages of every batched connection (default 1000) for
# debugging; with the scheduler in the driver (local and jobqueue modes) each logged message to a worker
# holds a whole task, and the client's log holds the submitted graphs: a thousand shard tasks of 16 clips
# each per worker. A short log keeps the driver's memory flat in the number of tasks.
DRIVER_DASK_CONFIG = {"distributed.admin.low-level-log-length": 32}


@contextmanager
def client_for(cfg: ClusterConfig) -> Iterator[Session]:
    """A connected session; clusters it started are closed on exit."""
    import dask
    import distributed  # noqa: F401 - its defaults must exist before the set: leaving the set restores the
    # config as it was, and a namespace first created inside it would be removed (the next session: KeyError)

    with dask.config.set(DRIVER_DASK_CONFIG):
        yield from _client_for(cfg)


def _client_for(cfg: ClusterConfig) -> Iterator[Session]:
    from distributed import Client, LocalCluster

    security = security_for(cfg.mode, cfg.section)
    if cfg.mode == "scheduler":
        client = Client(cfg.scheduler["address"], timeout=cfg.scheduler.get("timeout", "30s"), security=security)
        try:
            yield Session(cfg, client)
        finally:
            client.close()
        return
    if cfg.mode == "jobqueue":
        certs = tempfile.mkdtemp(prefix=".affect-tls-", dir=shared_dir(cfg.jobqueue))  # mode 700
        cluster = None
        try:
            cluster = make_jobqueue_cluster(cfg.jobqueue, security, certs)
            cluster.scale(jobs=int(cfg.jobqueue.get("jobs", 1)))
            with cluster, Client(cluster, security=security) as client:
                yield Session(cfg, client, cluster)
        finally:  # dask-jobqueue keeps its certificate files open on the cluster (``_job_<key>``): closed
            # (which removes them) with the run, then the folder
            for key in ("ca_file", "cert", "key"):
                handle = getattr(cluster, f"_job_{key}", None) if cluster is not None else None
                if handle is not None:
                    handle.close()
            shutil.rmtree(certs, ignore_errors=True)
        return
    kwargs = _local_kwargs(cfg.local)
    if security is not None:
        kwargs.update(security=security, protocol="tls://")
    with LocalCluster(**kwargs) as cluster, Client(cluster, security=security) as client:
        yield Session(cfg, client, cluster)


def _has_flag(args: list[str], *flags: str) -> bool:
    return any(a == f or a.startswith(f + "=") for a in args for f in flags)


def make_jobqueue_cluster(jq: dict[str, Any], security: Any = None, certs: str | None = None) -> Any:
    """dask-jobqueue's cluster for ``jq`` with our defaults: loopback unless an interface is named, preload,
    TLS with ``security`` (its worker certificates written into ``certs`` for the job scripts)."""
    import dask_jobqueue

    cls = getattr(dask_jobqueue, JOBQUEUE_SYSTEMS[jq["system"]])
    kwargs = {k: v for k, v in jq.items() if k not in _JQ_OWN_KEYS | _COMMON_KEYS}
    if security is not None:
        kwargs.update(security=security, protocol="tls://", shared_temp_directory=certs)
    args = [str(a) for a in kwargs.get("worker_extra_args") or []]
    private = bool(kwargs.get("interface")) or _has_flag(args, "--host", "--interface", "--listen-address")
    if not private:  # one node (or a login node that runs everything): nothing leaves the machine
        kwargs.setdefault("scheduler_options", {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"})
        args += [] if _has_flag(args, "--host") else ["--host", "127.0.0.1"]
    else:
        kwargs.setdefault("scheduler_options", {"dashboard_address": "127.0.0.1:0"})
    if not _has_flag(args, "--dashboard-address", "--no-dashboard", "--dashboard"):
        # on loopback either way: `--no-dashboard` still serves the worker's HTTP endpoints, on 0.0.0.0
        args += ["--dashboard-address", "127.0.0.1:0"]
    if not _has_flag(args, "--preload"):
        args += ["--preload", PRELOAD]
    gpus = int(jq.get("gpus_per_job", 0))
    if gpus:
        args += ["--resources", f"GPU={gpus}"]
        if jq["system"] == "slurm":
            kwargs["job_extra_directives"] = [*kwargs.get("job_extra_directives", []), f"--gres=gpu:{gpus}"]
    kwargs["worker_extra_args"] = args
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
