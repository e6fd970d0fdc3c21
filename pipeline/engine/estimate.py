"""`pipeline extract --dry-run`'s time estimate: every stage (decoding, the face stage, each extractor)
costed per second of media, then summed over the clips that need it.

Where a stage's speed comes from, in order: the newest earlier run of this store that timed it (the
run reports under ``runs/``), else a short calibration run now, on a few clips of this corpus, into a
throw-away store (the real task code, one thread, models loaded once and not counted). The estimate
says which, per stage. Wall time = the stages' single-thread seconds spread over the cluster's task slots,
plus the setup the calibration measured (workers load their models in parallel) and the cluster start.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from extractors import registry, weights
from pipeline.engine.config import ExtractConfig
from pipeline.engine.plan import Plan
from pipeline.errors import ConfigError
from pipeline.media.decode import probe
from pipeline.runtime import cluster
from pipeline.shard.task import FACE_STAGE, decode_stage, pixel_stage, process_shard, stage_units
from pipeline.shard.work import ClipWork, ShardTask, TaskConfig
from stores.feature_store import FeatureStore

CALIBRATION_CLIPS = 3
CALIBRATION_SECONDS = 20.0  # at most this much of each calibration clip is processed
CALIBRATION_TIMEOUT_S = 900
CLUSTER_START_S = 4.0  # a LocalCluster's start, the final consolidation and stop on 2 cores (docs/benchmarks.md)


def clip_stages(cfg: ExtractConfig, work: ClipWork) -> list[str]:
    """The stages this clip goes through in this run."""
    inputs = {n: registry.get(n).input for n in work.native}
    video = any(i in ("frames", "faces") for i in inputs.values())
    audio = any(i == "audio" for i in inputs.values())
    stages = [decode_stage(video, audio)] if video or audio else []
    if any(i == "faces" for i in inputs.values()):
        stages.append(FACE_STAGE)
    return stages + list(work.native)


def rates_from_runs(store: FeatureStore | None) -> tuple[dict[str, tuple[float, str]], float]:
    """(stage -> (seconds per media second, basis) from the newest run report that timed it, the newest
    timed run's start-up: its wall time less its stages' share per slot and the cluster's start)."""
    if store is None:
        return {}, 0.0
    reports = []
    for path in store.fs.ls("runs"):
        try:
            reports.append(json.loads(store.fs.read_bytes(path)))
        except (OSError, ValueError):
            continue
    rates: dict[str, tuple[float, str]] = {}
    reports.sort(key=lambda r: r.get("finished_at", 0.0), reverse=True)
    for r in reports:
        media = r.get("stage_media_s", {})
        units = r.get("stage_units")
        for stage, secs in r.get("stage_s", {}).items():
            # a report from before work units timed pixel stages per media second: not comparable, left out
            u = units.get(stage, 0.0) if units is not None else 0.0 if pixel_stage(stage) else media.get(stage, 0.0)
            if stage not in rates and u > 0:
                rates[stage] = (secs / u, f"earlier run {r.get('run_id')} ({media[stage]:.0f} s of media)")
    timed = [r for r in reports if r.get("slots") and r.get("stage_s")]
    startup = 0.0
    if timed:
        r = timed[0]
        startup = max(0.0, r["wall_s"] - r.get("plan_s", 0.0) - sum(r["stage_s"].values()) / r["slots"]
                      - CLUSTER_START_S)
    return rates, startup


def calibrate(cfg: ExtractConfig, plan: Plan) -> tuple[dict[str, tuple[float, str]], float]:
    """(stage -> (seconds per media second, basis), start-up seconds) from a few clips run now.

    Run in a fresh Python process, as a worker runs: its imports, model loading and first-clip warm-up
    are the start-up every worker pays once (in parallel); the clips after the first give the rates."""
    n = len(plan.work)
    picks = sorted({int(i) for i in np.linspace(0, n - 1, min(CALIBRATION_CLIPS, n))})
    clips = []
    for w in plan.work.build(np.asarray(picks)):
        src = w.source
        end = (src.start or 0.0) + CALIBRATION_SECONDS
        if (src.end if src.end is not None else _duration(src.media_path)) > end:
            src = replace(src, end=end)
        clips.append({"source": asdict(src), "fingerprint": w.fingerprint, "keys": w.keys, "native": w.native})
    with tempfile.TemporaryDirectory(prefix="affect-calibration-") as tmp:
        job = {"store": os.path.join(tmp, "s.zarr"), "clips": clips, "extractors": cfg.extractors,
               "descriptions": plan.descriptions, "face": asdict(cfg.face), "align": asdict(cfg.align),
               "dtype": cfg.dtype, "window_frames": cfg.window_frames, "batch_frames": cfg.batch_frames,
               "batch_seconds": cfg.batch_seconds, "max_side": cfg.max_side, "models_dir": str(weights.models_dir())}
        Path(tmp, "job.json").write_text(json.dumps(job, default=str))
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pipeline.engine.estimate", str(Path(tmp, "job.json"))],
                              capture_output=True, text=True, timeout=CALIBRATION_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            raise ConfigError(f"--dry-run: the calibration run failed ({proc.stderr.strip().splitlines()[-1:]}); "
                              "run without --dry-run to see the failing clip")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        startup = time.perf_counter() - t - r["rated_s"]
    rates = {stage: (secs / r["stage_units"][stage], f"calibration now on {r['clips']} clip(s), "
                                                     f"{r['stage_media_s'][stage]:.0f} s of media")
             for stage, secs in r["stage_s"].items() if r["stage_units"].get(stage, 0) > 0}
    return rates, startup


def _duration(path: str) -> float:
    try:
        return probe(path).duration
    except Exception:  # noqa: BLE001 - unreadable: the calibration reports it
        return 0.0


def _calibration_child(job_path: str) -> None:
    """The calibration process: one worker thread's view of a task (``calibrate``)."""
    from extractors.threads import limit_threads
    from pipeline.runtime.worker_setup import tune_malloc

    limit_threads(1)
    tune_malloc()
    job = json.loads(Path(job_path).read_text())
    from pipeline.media.decode import ClipSource
    from pipeline.media.face import FaceConfig
    from pipeline.shard.align import AlignConfig

    FeatureStore(job["store"], create=True)
    clips = [ClipWork(ClipSource(**c["source"]), c["fingerprint"], c["keys"], c["native"], list(c["native"]))
             for c in job["clips"]]
    specs = tuple(registry.spec(n, o) for n, o in job["extractors"].items())  # a new process: validated here
    shared = TaskConfig(job["store"], "calibration", specs, job["descriptions"], FaceConfig(**job["face"]),
                        AlignConfig(**job["align"]), job["dtype"], job["window_frames"], job["batch_frames"],
                        job["batch_seconds"], job["max_side"], "cpu", job["models_dir"])
    task = ShardTask(0, clips[:1], shared)
    process_shard(task)  # models loaded, caches warm: start-up, not rate
    rest = clips[1:] or clips
    t = time.perf_counter()
    r = process_shard(replace(task, shard=1, clips=rest))
    print(json.dumps({"stage_s": r.stage_s, "stage_media_s": r.stage_media_s, "stage_units": r.stage_units,
                      "clips": len(rest),
                      "rated_s": time.perf_counter() - t}))


def estimate(cfg: ExtractConfig, plan: Plan, store: FeatureStore | None) -> dict[str, Any]:
    """Media seconds and frames of the clips that need work, and the time estimate per stage."""
    media: dict[str, float] = {}
    units: dict[str, float] = {}
    seconds, frames, unreadable = 0.0, 0, 0
    for w in plan.work:
        try:
            info = probe(w.source.media_path)
        except Exception:  # noqa: BLE001 - counted, reported by the real run
            unreadable += 1
            continue
        dur = (w.source.end - (w.source.start or 0)) if w.source.end is not None else info.duration
        seconds += dur
        frames += int(round(dur * info.fps))
        for stage in clip_stages(cfg, w):
            media[stage] = media.get(stage, 0.0) + dur
            units[stage] = units.get(stage, 0.0) + stage_units(stage, dur, info)
    out: dict[str, Any] = {"media_seconds": round(seconds, 2), "frames": frames,
                           "extractor_calls": plan.native_calls, "unreadable": unreadable}
    if not media:
        return out
    rates, setup = rates_from_runs(store)
    if any(s not in rates for s in media):
        measured, setup = calibrate(cfg, plan)
        rates = {**measured, **{s: v for s, v in rates.items() if s not in measured}}
    stages = {s: {"media_s": round(m, 1), "s_per_media_s": round(rates[s][0] * units[s] / m, 4) if s in rates else None,
                  "seconds": round(rates[s][0] * units[s], 1) if s in rates else None,
                  "basis": rates[s][1] if s in rates else "not measured (the stage failed in calibration)"}
              for s, m in media.items()}
    compute = sum(v["seconds"] or 0.0 for v in stages.values())
    slots = cluster.planned_slots(cluster.load(cfg.cluster_file))
    out["stages"] = stages
    out["compute_seconds"] = round(compute, 1)
    out["compute_seconds_basis"] = "single-thread seconds per stage (see stages)"
    if slots:
        out["slots"] = slots
        out["wall_seconds"] = round(compute / slots + setup + CLUSTER_START_S, 1)
        out["wall_seconds_basis"] = (f"compute spread over {slots} task slots + {setup:.0f} s worker start-up "
                                     f"(imports, models, warm-up) + {CLUSTER_START_S:g} s cluster start and finish")
    if not math.isfinite(compute):
        out.pop("compute_seconds")
    return out


if __name__ == "__main__":
    _calibration_child(sys.argv[1])
