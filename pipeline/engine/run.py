"""`pipeline extract`: manifest -> plan -> one Dask task per shard of clips -> committed store.

The client plans (reads the live index, decides what is missing), submits shard tasks, shows
progress, and at the end compacts the index and removes superseded parts, under the store's lock.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow.compute as pc
from rich.console import Console

from extractors import registry, weights
from pipeline.datasets import manifest
from pipeline.engine import plan
from pipeline.engine.config import ExtractConfig
from pipeline.engine.crashes import CrashIsolation
from pipeline.errors import ConfigError
from pipeline.media import face
from pipeline.runtime import cluster
from pipeline.runtime.dispatch import Dispatcher, NoWorkers
from pipeline.runtime.progress import RunProgress
from pipeline.runtime.stop import RunStopped, StopSignals
from pipeline.shard.reporter import TOPIC
from pipeline.shard.task import ShardResult, process_shard
from pipeline.shard.work import ShardTask
from stores import consolidate, index
from stores.feature_store import FeatureStore
from stores.lock import StoreLock
from stores.version import PACKAGE


@dataclass
class RunReport:
    run_id: str
    clips: int
    planned: int
    cached: dict[str, int]
    calls: dict[str, int] = field(default_factory=dict)
    compute_s: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0, "excluded": 0})
    decode_s: float = 0.0
    frames: int = 0
    clips_done: int = 0
    media_s: float = 0.0
    tasks: int = 0
    stage_s: dict[str, float] = field(default_factory=dict)  # seconds per stage, summed over workers
    stage_media_s: dict[str, float] = field(default_factory=dict)  # media seconds each stage processed
    stage_units: dict[str, float] = field(default_factory=dict)  # the work units each stage did (estimate.py)
    merged_parts: int = 0  # small parts consolidated into large ones at the end of the run
    max_in_flight: int = 0  # tasks submitted at once, at most (the driver's window)
    # the end-of-run tail: from the first worker's last task ending to the run's last task ending (workers idle)
    tail_s: float = 0.0
    tasks_s: float = 0.0  # wall time of the tasks phase: first submission to last result
    slots: int = 0  # task slots (worker threads) the run had
    finished_at: float = 0.0  # seconds since the epoch (orders the run reports)
    plan_s: float = 0.0  # manifest + fingerprints + cache lookups, before any task
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    task_errors: list[str] = field(default_factory=list)
    dry_run: bool = False
    estimate: dict[str, Any] = field(default_factory=dict)

    def add(self, r: ShardResult) -> None:
        for k, v in r.calls.items():
            self.calls[k] = self.calls.get(k, 0) + v
        for k, v in r.compute_s.items():
            self.compute_s[k] = self.compute_s.get(k, 0.0) + v
        for k, v in r.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        self.decode_s += r.decode_s
        for k, v in r.stage_s.items():
            self.stage_s[k] = self.stage_s.get(k, 0.0) + v
            self.stage_media_s[k] = self.stage_media_s.get(k, 0.0) + r.stage_media_s.get(k, 0.0)
            self.stage_units[k] = self.stage_units.get(k, 0.0) + r.stage_units.get(k, 0.0)
        self.frames += r.frames
        self.clips_done += r.clips
        self.media_s += r.media_s
        self.failures.extend(r.failures)
        if r.worker:
            self._last_end[r.worker] = max(self._last_end.get(r.worker, 0.0), r.ended_at)
            self.tail_s = max(self._last_end.values()) - min(self._last_end.values())

    def __post_init__(self) -> None:
        self._last_end: dict[str, float] = {}  # worker -> its last task's end (not in the saved report)


def extract(cfg: ExtractConfig, console: Console | None = None) -> RunReport:
    console = console or Console(stderr=True)
    t0 = time.perf_counter()
    cluster_cfg = cluster.load(cfg.cluster_file)  # validated before any work
    weights.set_models_dir(cfg.models_dir)
    exts = {name: s.create() for name, s in cfg.specs.items()}
    for name, ext in exts.items():  # weights resolved and checked before any clip is touched
        if ext.weights_id:
            try:
                weights.resolve(ext.weights_id)
            except weights.WeightsError as exc:
                raise ConfigError(f"extractor {name}: {exc}") from None
        ok, why = ext.usable()
        if not ok:
            raise ConfigError(f"extractor {name} cannot run on this machine: {why}")
    if any(ext.input == "faces" for ext in exts.values()):
        cfg = replace(cfg, face=replace(cfg.face, detector=face.resolve_detector(cfg.face.detector)))
        if cfg.face.detector == "mtcnn":  # asked for by name: its weights are checked before any clip
            try:
                weights.resolve("MTCNN")
            except weights.WeightsError as exc:
                raise ConfigError(f"face stage (--face-detector mtcnn): {exc}; or use --face-detector haar") from None
    clips, refused, skipped = manifest.build_listing(cfg.dataset, cfg.root, cfg.limit, keep_refused=cfg.allow_failures,
                                                      select=cfg.select)
    for line in skipped[:20]:
        console.print(f"warning: skipped {line}", highlight=False, soft_wrap=True)
    if len(skipped) > 20:
        console.print(f"warning: skipped {len(skipped) - 20} more paths the listing could not read", highlight=False)
    targets = manifest.get_dataset(cfg.dataset).targets  # frame-level targets always travel with the features
    cfg = cfg.with_extractors(targets)
    if cfg.dry_run:
        store = FeatureStore(cfg.store) if _exists(cfg.store) else None
        p = plan.make_plan(cfg, clips, store.fs if store else None)
        del clips  # the plan keeps the columns tasks read; the corpus' other columns are freed
        plan_s = time.perf_counter() - t0
        report = _dry_run(cfg, p, store)
        report.plan_s = plan_s
        return report
    store = FeatureStore(cfg.store, create=True)
    with StoreLock(store.fs), StopSignals(lambda line: console.print(line, highlight=False)) as stop:
        store.save_manifest(clips)
        p = plan.make_plan(cfg, clips, store.fs)
        del clips
        # a run with nothing to extract still finishes the consolidation an interrupted run left undone
        needs_cluster = bool(p.work) or consolidate.pending(store)
        for name, desc in p.descriptions.items():
            ext = cfg.specs[name].create()
            attrs = {**desc, "modality": ext.modality, "input": ext.input, "dim": ext.dim,
                     "rate": None if ext.per_clip else ext.rate, "per_clip": ext.per_clip,
                     "feature_names": ext.feature_names, "package": PACKAGE}
            if ext.input == "faces":
                attrs["face"] = {**face.face_key(cfg.face), "crop": asdict(ext.face_crop)}
            store.set_group_attrs("native", "", name, attrs)
            store.set_group_attrs("aligned", cfg.align.view, name, {**attrs, "rate": cfg.align.rate,
                                                                     "align": cfg.align.key_fields()})
        report = RunReport(p.run_id, p.clips, len(p.work), p.cached)
        report.plan_s = time.perf_counter() - t0
        p.work = _refuse(store, p, refused, report)
        stopped = None
        if needs_cluster:
            try:
                with cluster.client_for(cluster_cfg) as session:
                    if p.work:
                        _run_tasks(cfg, session, store, p, report, console, stop)
                    if not stop.requested:
                        _consolidate(session, store, report, console, stop, cfg.progress, cfg.progress_every)
            except NoWorkers as exc:
                stopped = RunStopped(f"{exc}", 1)
        if stop.requested:
            stopped = RunStopped(f"stopped by {stop.name}", stop.exit_code())
        report.wall_s = time.perf_counter() - t0
        report.finished_at = time.time()
        store.fs.write_atomic(f"runs/{p.run_id}.json", lambda f: f.write(json.dumps(asdict(report), indent=1).encode()))
        if stopped is not None:  # counted from the index: tasks abandoned at the stop may have committed too
            rows = index.read_table(store.fs, columns=["clip_id", "stage", "status", "run_id"])
            mine = rows.filter(pc.and_(pc.equal(rows["run_id"], p.run_id), pc.equal(rows["stage"], "native")))
            ok = int(pc.sum(pc.equal(mine["status"], "ok")).as_py() or 0)
            clips = len(pc.unique(mine["clip_id"]))
            raise RunStopped(
                f"{stopped}. This run committed {ok} results ({mine.num_rows} entries of {clips} of the "
                f"{len(p.work)} clips that needed work); nothing committed is lost. "
                "Run the same command to resume: committed work is skipped.", stopped.code, report)
        if len(index.files(store.fs)) > 1:  # the cluster compacted it unless the run needed no cluster
            index.compact_table(store.fs)
        store.garbage_collect(index.live_parts(store.fs))
    return report


def _refuse(store: FeatureStore, p: plan.Plan, refused: dict[str, str], report: RunReport) -> plan.WorkList:
    """Clips that cannot be processed at all (git-LFS pointers): a failed row per extractor, not a task."""
    if not refused:
        return p.work
    hit = np.isin(p.work.clip_ids(), list(refused))
    rows = [{"clip_id": w.source.clip_id, "stage": "native", "view": "", "extractor": name, "key": w.keys[name],
             "status": "failed", "reason": refused[w.source.clip_id], "run_id": p.run_id}
            for w in p.work.build(np.flatnonzero(hit)) for name in w.native]
    if rows:
        index.commit(store.fs, rows, f"refused-{p.run_id}")
        report.counts["failed"] += len(rows)
        report.failures.extend(f"{r['clip_id']}: {r['reason']}" for r in rows)
    return p.work.keep(~hit)


def _exists(url: str) -> bool:
    try:
        FeatureStore(url)
        return True
    except FileNotFoundError:
        return False


def _device(cfg: ExtractConfig, client: Any, p: plan.Plan) -> tuple[str, dict | None]:
    wants = [n for n in p.descriptions if registry.get(n).wants_gpu]
    if not wants or cfg.device == "cpu":
        return "cpu", None
    gpus = cluster.gpu_workers(client)
    if gpus == 0:
        if cfg.device == "cuda":
            raise ConfigError(
                f"extractors {wants} were asked to run on GPU (--device cuda) but no Dask worker offers a 'GPU' "
                "resource; start workers with `--resources GPU=1`, set local.resources in the cluster file, "
                "or use --device cpu"
            )
        return "cpu", None
    return "cuda", {"GPU": 1}


def _run_tasks(cfg: ExtractConfig, session: cluster.Session, store: FeatureStore, p: plan.Plan,
               report: RunReport, console: Console, stop: StopSignals) -> None:
    client = session.client
    link = getattr(client, "dashboard_link", None)
    if link and cfg.progress:
        console.print(f"Dask dashboard: {link}")
    device, resources = _device(cfg, client, p)
    report.slots = session.slots()
    size = cfg.shard_size or plan.auto_shard_size(len(p.work), report.slots)
    taper = 0 if cfg.shard_size else report.slots  # a size the user gave is kept to the end
    groups = plan.shards(p, size, taper)
    shared = replace(cfg, store=store.url).task_config(p.run_id, p.descriptions, device, str(weights.models_dir()))
    tasks = (ShardTask(i, g, shared) for i, g in enumerate(groups))
    progress = RunProgress(console, len(p.work), cfg.progress, cfg.progress_every)
    client.subscribe_topic(TOPIC, progress.event)

    def done(task: ShardTask, r: ShardResult) -> None:
        report.add(r)
        progress.shard_done(task.shard, len(task.clips), r.media_s)

    report.tasks = plan.shard_count(p, size, taper)
    crashes = CrashIsolation(store, p.run_id, report.tasks)

    def failed(task: ShardTask, exc: BaseException) -> list[ShardTask] | None:
        again = crashes.handle(task, exc)
        if again:  # its workers died: each clip alone, so one bad clip costs only itself
            console.print(f"warning: the workers running task {task.shard} died; its {len(task.clips)} clips run "
                          "one per task", highlight=False)
            report.tasks += len(again)
            progress.shard_done(task.shard, 0, 0.0)
            return again
        progress.shard_done(task.shard, len(task.clips), 0.0)
        if again is None:
            report.task_errors.append(f"shard {task.shard} ({len(task.clips)} clips, e.g. "
                                      f"{task.clips[0].source.clip_id}): {type(exc).__name__}: {exc}")
            return None
        (work,) = task.clips
        report.clips_done += 1
        report.counts["failed"] += len(work.native)
        report.failures.extend(f"{work.source.clip_id}: {work.native[0]}: crashed the worker" for _ in work.native[:1])
        return None

    dispatcher = Dispatcher(session, console, stop, progress)
    t = time.perf_counter()
    with progress:
        dispatcher.run(process_shard, tasks, key=lambda t: f"shard-{p.run_id}-{t.shard}", on_done=done,
                       on_error=failed, resources=resources)
    report.tasks_s = time.perf_counter() - t
    report.max_in_flight = dispatcher.in_flight_max


def _consolidate(session: cluster.Session, store: FeatureStore, report: RunReport, console: Console,
                 stop: StopSignals, show: bool, every: float) -> None:
    """Merge small parts into few large ones, as tasks on the same cluster (stores/consolidate.py); each task
    commits its own rows, so the driver only holds the rows of the merges in flight. The index is compacted
    before (a task reads the run's many small index files; the driver then reads one) and after."""
    _compact_on_cluster(session, store, console, stop)
    if stop.requested:
        return
    merges = _on_cluster(session, console, stop, consolidate.plan_store_merges, store.url, "plan-merges")
    if merges is None:  # the task failed: plan in the driver
        merges = consolidate.plan_merges(store, consolidate.slim(index.compact_table(store.fs)))
    if not merges:
        return
    progress = RunProgress(console, sum(len(m.sources) for m in merges), show, every, "consolidate", "parts")

    def done(m: consolidate.Merge, moved: int) -> None:
        report.merged_parts += len(m.sources)
        progress.shard_done(-1, len(m.sources), 0.0)

    def failed(m: consolidate.Merge, exc: BaseException) -> None:  # the small parts stay: nothing is lost
        console.print(f"warning: consolidating {len(m.sources)} parts of {m.extractor} failed ({type(exc).__name__}: "
                      f"{exc}); they stay as they are, the next run tries again", highlight=False)

    with progress:
        Dispatcher(session, console, stop, progress).run(
            consolidate.merge, merges, key=lambda m: f"merge-{m.part_id}", on_done=done, on_error=failed)
    if not stop.requested:
        _compact_on_cluster(session, store, console, stop)


def _compact_on_cluster(session: cluster.Session, store: FeatureStore, console: Console, stop: StopSignals) -> None:
    """Compact the index as a task: a run leaves one small index file per task, and reading thousands of them
    is a worker's job, not the driver's memory. If the task fails the driver compacts (nothing is lost
    either way: compaction commits the merged file before removing any other)."""
    if _on_cluster(session, console, stop, index.compact_store, store.url, "compact-index") is None \
            and not stop.requested:
        index.compact_table(store.fs)


def _on_cluster(session: cluster.Session, console: Console, stop: StopSignals, fn: Any, arg: Any,
                name: str) -> Any:
    """``fn(arg)`` as one task through the dispatcher (lost workers and signals handled as for shards); its
    result, or None (with a warning) if it failed."""
    out: list[Any] = []

    def failed(a: Any, exc: BaseException) -> None:
        console.print(f"warning: {name} failed on the cluster ({type(exc).__name__}: {exc}); the driver does it",
                      highlight=False)

    Dispatcher(session, console, stop, RunProgress(console, 1, False)).run(
        fn, [arg], key=lambda a: f"{name}-{time.time_ns()}", on_done=lambda a, r: out.append(r), on_error=failed)
    return out[0] if out else None


def _dry_run(cfg: ExtractConfig, p: plan.Plan, store: FeatureStore | None) -> RunReport:
    """Counts and a time estimate per stage (pipeline/engine/estimate.py); no store is written."""
    from pipeline.engine.estimate import estimate

    report = RunReport(p.run_id, p.clips, len(p.work), p.cached, dry_run=True)
    report.estimate = estimate(cfg, p, store)
    slots = cluster.planned_slots(cluster.load(cfg.cluster_file)) or 1  # the real run's task sizing, not a guess
    size = cfg.shard_size or plan.auto_shard_size(len(p.work), slots)
    report.estimate["shards"] = plan.shard_count(p, size, 0 if cfg.shard_size else slots) if len(p.work) else 0
    report.frames = report.estimate["frames"]
    return report
