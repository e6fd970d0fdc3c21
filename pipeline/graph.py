"""`pipeline extract`: manifest -> plan -> one Dask task per shard of clips -> committed store.

The client plans (reads the live index, decides what is missing), submits shard tasks, shows
progress, and at the end compacts the index and removes superseded parts, under the store's lock.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from extractors import registry, weights
from pipeline import __version__, cluster, manifest, plan
from pipeline.config import ExtractConfig
from pipeline.errors import ConfigError
from pipeline.shard import ShardResult, ShardTask, process_shard
from stores import index
from stores.feature_store import FeatureStore
from stores.lock import StoreLock


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
        self.frames += r.frames
        self.failures.extend(r.failures)


def extract(cfg: ExtractConfig, console: Console | None = None) -> RunReport:
    console = console or Console(stderr=True)
    t0 = time.perf_counter()
    cluster_cfg = cluster.load(cfg.cluster_file)  # validated before any work
    weights.set_models_dir(cfg.models_dir)
    for name, overrides in cfg.extractors.items():  # weights resolved and checked before any clip is touched
        ext = registry.create(name, overrides)
        if ext.weights_id:
            try:
                weights.resolve(ext.weights_id)
            except weights.WeightsError as exc:
                raise ConfigError(f"extractor {name}: {exc}") from None
    clips = manifest.build(cfg.dataset, cfg.root, cfg.limit)
    targets = manifest.get_dataset(cfg.dataset).targets  # frame-level targets always travel with the features
    if any(t not in cfg.extractors for t in targets):
        cfg = replace(cfg, extractors={**cfg.extractors, **{t: {} for t in targets if t not in cfg.extractors}})
    if cfg.dry_run:
        store = FeatureStore(cfg.store) if _exists(cfg.store) else None
        live = store.index() if store else index.empty()
        return _dry_run(cfg, plan.make_plan(cfg, live=live, manifest=clips), live)
    store = FeatureStore(cfg.store, create=True)
    with StoreLock(store.fs):
        store.save_manifest(clips)
        p = plan.make_plan(cfg, clips, store.index())
        for name, desc in p.descriptions.items():
            ext = registry.create(name, cfg.extractors[name])
            attrs = {**desc, "modality": ext.modality, "input": ext.input, "dim": ext.dim, "rate": ext.rate,
                     "feature_names": ext.feature_names, "package": f"affect-pipeline {__version__}"}
            if ext.input == "faces":
                attrs["face"] = asdict(cfg.face)
            store.set_group_attrs("native", "", name, attrs)
            store.set_group_attrs("aligned", cfg.align.view, name, {**attrs, "rate": cfg.align.rate,
                                                                     "align": asdict(cfg.align)})
        report = RunReport(p.run_id, p.clips, len(p.work), p.cached)
        if p.work:
            _run_tasks(cfg, cluster_cfg, store, p, report, console)
        live = index.compact(store.fs)
        store.garbage_collect(live)
        report.wall_s = time.perf_counter() - t0
        store.fs.write_atomic(f"runs/{p.run_id}.json", lambda f: f.write(json.dumps(asdict(report), indent=1).encode()))
    return report


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


def _run_tasks(cfg: ExtractConfig, cluster_cfg: cluster.ClusterConfig, store: FeatureStore, p: plan.Plan,
               report: RunReport, console: Console) -> None:
    from distributed import as_completed

    groups = plan.shards(p, cfg.shard_size)
    with cluster.client_for(cluster_cfg) as client:
        link = getattr(client, "dashboard_link", None)
        if link and cfg.progress:
            console.print(f"Dask dashboard: {link}")
        device, resources = _device(cfg, client, p)
        tasks = [
            ShardTask(store.url, p.run_id, i, g, cfg.extractors, p.descriptions, cfg.face, cfg.align, cfg.dtype,
                      cfg.window_frames, cfg.batch_frames, cfg.batch_seconds, cfg.max_side, device,
                      str(weights.models_dir()))
            for i, g in enumerate(groups)
        ]
        futures = [client.submit(process_shard, t, key=f"shard-{p.run_id}-{t.shard}", pure=False,
                                 resources=resources) for t in tasks]
        sizes = {f.key: len(t.clips) for f, t in zip(futures, tasks)}
        with _progress(cfg.progress, console, len(p.work)) as advance:
            for fut in as_completed(futures):
                try:
                    report.add(fut.result())
                except Exception as exc:  # noqa: BLE001 - a task that died for good: the rest goes on
                    report.task_errors.append(f"{fut.key}: {type(exc).__name__}: {exc}")
                advance(sizes[fut.key])


class _progress:
    """A rich progress bar with clips/s and ETA (or nothing, for --quiet)."""

    def __init__(self, enabled: bool, console: Console, total: int) -> None:
        self.enabled, self.console, self.total = enabled, console, total

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        self.bar = Progress(TextColumn("extract"), BarColumn(), MofNCompleteColumn(), TextColumn("clips"),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=self.console)
        self.bar.__enter__()
        self.task = self.bar.add_task("extract", total=self.total, rate="")
        self.t0, self.done = time.perf_counter(), 0
        return self.advance

    def advance(self, n: int) -> None:
        self.done += n
        rate = self.done / max(1e-9, time.perf_counter() - self.t0)
        self.bar.update(self.task, advance=n, rate=f"{rate:.1f} clips/s")

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)


def _dry_run(cfg: ExtractConfig, p: plan.Plan, live: Any) -> RunReport:
    """Counts and an estimate, from container headers only (no decoding, no extractor call).

    The time estimate uses the compute time per media second that earlier runs recorded in this store.
    """
    from pipeline.decode import probe

    report = RunReport(p.run_id, p.clips, len(p.work), p.cached, dry_run=True)
    seconds, frames, unreadable = 0.0, 0, 0
    for w in p.work:
        try:
            info = probe(w.source.media_path)
        except Exception:  # noqa: BLE001 - counted, reported by the real run
            unreadable += 1
            continue
        dur = (w.source.end - (w.source.start or 0)) if w.source.end is not None else info.duration
        seconds += dur
        frames += int(round(dur * info.fps))
    report.frames = frames
    report.estimate = {"media_seconds": round(seconds, 2), "frames": frames, "extractor_calls": p.native_calls,
                       "unreadable": unreadable, "shards": math.ceil(len(p.work) / cfg.shard_size)}
    ok = live[(live["stage"] == "native") & (live["status"] == "ok")] if len(live) else live
    known = {}
    for name, n in p.native_calls.items():
        rows = ok[ok["extractor"] == name] if len(ok) else ok
        if n and len(rows) and rows["duration"].sum() > 0:
            known[name] = float(rows["seconds"].sum() / rows["duration"].sum())
    if known:
        per_clip = seconds / max(1, len(p.work))
        report.estimate["compute_seconds"] = round(sum(
            f * per_clip * p.native_calls[n] for n, f in known.items()), 1)
        report.estimate["compute_seconds_basis"] = "earlier runs in this store (one core)"
    return report
