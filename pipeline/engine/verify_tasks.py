"""`pipeline verify` on a cluster: parts are checked as tasks (local cluster by default), with progress.

A million-clip store holds tens of thousands of parts; reading every chunk of them from one process
takes most of an hour, so the same cluster that wrote the store reads it back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from rich.console import Console

from pipeline.runtime import cluster
from pipeline.runtime.dispatch import Dispatcher, NoWorkers
from pipeline.runtime.progress import RunProgress
from pipeline.runtime.stop import RunStopped, StopSignals
from stores import store_files
from stores.feature_store import FeatureStore
from stores.lock import StoreLock
from stores.verify import PartCheck, Problem, check_parts, plan_checks, repair
from stores.version import PACKAGE

IN_PROCESS_PARTS = 256


@dataclass
class VerifyReport:
    parts: int = 0
    entries: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: int = 0
    files_repaired: list[str] = field(default_factory=list)  # what ``--repair`` did to the store's own files


def run_verify(url: str, cluster_file: str | None = None, fix: bool = False, console: Console | None = None,
               progress: bool = True, progress_every: float = 30.0) -> VerifyReport:
    console = console or Console(stderr=True)
    cfg = cluster.load(cluster_file)
    store = FeatureStore(url, repairing=True)
    if not store.fs.exists("zarr.json") and not store.fs.exists("index"):
        FeatureStore(url)  # not a store at all: the plain open says so
    # the store's lock for the whole check: a run's consolidation moving rows and parts meanwhile would read
    # as damage, so verify works on a store no run is changing (a running extract makes it wait for none:
    # it refuses, naming the run)
    with StoreLock(store.fs):
        return _verify(store, cfg, cluster_file, fix, console, progress, progress_every)


def _verify(store: FeatureStore, cfg: cluster.ClusterConfig, cluster_file: str | None, fix: bool, console: Console,
            progress: bool, progress_every: float) -> VerifyReport:
    tasks, problems = plan_checks(store)
    report = VerifyReport(sum(len(t) for t in tasks), sum(len(c.rows) for t in tasks for c in t), problems)
    if tasks and cluster_file is None and report.parts <= IN_PROCESS_PARTS:
        for t in tasks:  # a small store: starting a cluster would cost more than the check
            report.problems.extend(check_parts(t))
    elif tasks:
        with StopSignals(lambda line: console.print(line, highlight=False)) as stop:
            try:
                _run(cfg, tasks, report, console, stop, RunProgress(console, report.parts, progress, progress_every,
                                                                     label="verify", unit="parts"))
            except NoWorkers as exc:
                raise RunStopped(f"{exc}; nothing was changed, run verify again", 1, report) from None
            if stop.requested:
                raise RunStopped(f"verify stopped by {stop.name}; nothing was changed", stop.exit_code(), report)
    if fix and report.problems:
        report.files_repaired = store_files.repair(store.fs, store_files.check(store.fs), PACKAGE)
        report.repaired = repair(store, report.problems, f"repair-{uuid.uuid4().hex[:12]}")
    return report


def _run(cfg: cluster.ClusterConfig, tasks: list[list[PartCheck]], report: VerifyReport, console: Console,
         stop: StopSignals, progress: RunProgress) -> None:
    with cluster.client_for(cfg) as session:

        def done(task: list[PartCheck], found: list[Problem]) -> None:
            report.problems.extend(found)
            progress.shard_done(-1, len(task), 0.0)

        def failed(task: list[PartCheck], exc: BaseException) -> None:
            report.problems.extend(Problem(f"could not be checked ({type(exc).__name__}: {exc})", c.part)
                                   for c in task)
            progress.shard_done(-1, len(task), 0.0)

        with progress:
            Dispatcher(session, console, stop, progress).run(
                check_parts, tasks, key=lambda t: f"verify-{uuid.uuid4().hex[:8]}-{t[0].part}", on_done=done,
                on_error=failed)
