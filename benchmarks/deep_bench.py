"""Deep extractors inside the pipeline vs the bare model on pre-decoded batches, on one device.

    .venv/bin/python benchmarks/deep_bench.py [--clips 24] [--w2v-clips 64] [--reps 3] [--shard-size N]
                                              [--only NAME] [--trees CHECKOUT,CHECKOUT] [--device auto|cpu|cuda]

Both sides run on ``--device`` (auto: cuda when torch sees a GPU; the pipeline is given the same
``--device``), so on a GPU node the ratio says how much of decoding the pipeline hides behind the model.

Weights are randomly initialised at the real sizes (R(2+1)D-18: 31.3 M parameters; wav2vec2-base: 95 M),
registered through `pipeline models add --like` (the speed does not depend on the values). "Bare" =
decode every clip first (PyAV), then run the same preprocessing + model on full batches in this process;
"pipeline" = `pipeline extract` end to end (planning, decoding, batching across clips, writing the store)
on a LocalCluster of 2 single-threaded workers vs the bare loop with torch using both cores. Each repetition
runs bare, pipeline N, pipeline 2N and bare again back to back and compares the pipeline with the mean of
the two bare runs around it (this shared machine's speed drifted by up to 25 % within one repetition; the
bracket cancels a linear drift, and the two bare times show how much it moved); the table gives every
repetition, the median, and the run's one figure: each quantity's fastest repetition, then the ratio (a
marginal time is the difference of two ~40-60 s runs, so one repetition's ratio swings by +-30 % here).
It also gives each 2N run's task count and end-of-run tail (workers idle while the last task runs, from the
run report). ``--trees`` runs other checkouts' `pipeline` side by side in the same repetitions. Shards
are sized as `pipeline extract` sizes them unless ``--shard-size`` is given (fixed large shards on few
clips leave one worker idle at the end).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from extractors import registry, weights
from extractors.base import AudioSegment, VideoSegment
from pipeline.datasets.demo import generate
from pipeline.media.decode import ClipDecoder, ClipSource

sys.path.insert(0, str(Path(__file__).parent))
from model_throughput import register  # noqa: E402 - the benchmarks folder, as a script sees it


def setup_models(root: Path) -> dict[str, str]:
    """Real-size random R(2+1)D-18 and wav2vec2-base weights in ``root/models``; extractor -> weights id."""
    return {name: register(name, root / "models") for name in ("r2plus1d", "wav2vec2")}


def bare(name: str, overrides: dict, files: list[Path], models: Path, device: str = "cpu") -> float:
    weights.set_models_dir(str(models))
    ext = registry.create(name, overrides)
    ext.ensure_setup(device)
    decoded = []
    for f in files:  # decode first: the model timing below sees pre-decoded batches only
        d = ClipDecoder(ClipSource(f.stem, str(f)), ext.input == "frames", ext.input == "audio", 32)
        wins = list(d.windows())
        if ext.input == "frames":
            frames = np.concatenate([w.frames for w in wins])
            times = np.concatenate([w.times for w in wins])
            ends = np.concatenate([w.ends for w in wins])
            decoded.append(VideoSegment(f.stem, frames, times, ends, last=True))
        else:
            decoded.append(AudioSegment(f.stem, d.audio))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    ext.compute(decoded)
    sync()
    return time.perf_counter() - t


def pipeline(name: str, overrides: dict, corpus: Path, store: Path, models: Path, limit: int,
             shard_size: int | None = None, tree: Path | None = None, device: str = "cpu") -> tuple[float, dict]:
    """Wall seconds of `pipeline extract` as a user runs it, and the run's report (runs/*.json)."""
    shutil.rmtree(store, ignore_errors=True)
    cluster = store.parent / "two.yaml"
    cluster.write_text("mode: local\nlocal: {n_workers: 2, threads_per_worker: 1}\n")
    sets = [x for k, v in overrides.items() for x in ("--set", f"{name}.{k}={v}")]
    shard = ["--shard-size", str(shard_size)] if shard_size else []
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "extract", "--dataset", "demo", "--root", str(corpus),
                    "--store", str(store), "--extractors", name, *sets, "--models", str(models), "--limit",
                    str(limit), "--cluster", str(cluster), "--device", device, "--quiet", *shard], check=True,
                   capture_output=True, cwd=tree)  # another checkout: `-m pipeline` imports from the cwd first
    wall = time.perf_counter() - t
    return wall, json.loads(max((store / "runs").glob("*.json"), key=lambda f: f.stat().st_mtime).read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=24, help="2N clips for R(2+1)D")
    ap.add_argument("--w2v-clips", type=int, default=64, help="2N clips for wav2vec2 (its clips are cheap)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--shard-size", type=int, default=None)
    ap.add_argument("--only", choices=["r2plus1d", "wav2vec2"], default=None)
    ap.add_argument("--trees", default="", help="comma-separated checkouts to compare side by side (e.g. a "
                    "`git worktree` of the previous commit); default: this one")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="both sides on this device (auto: cuda when torch sees a GPU)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/deep"))
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    need = max(args.clips, args.w2v_clips)
    corpus = generate(args.out / "corpus", clips_per_class=-(-need // 24))  # 6 speakers x 4 classes per step
    own = setup_models(args.out.resolve())
    from pipeline.datasets import manifest

    order = [Path(p) for p in manifest.build("demo", corpus, None)["media_path"]]
    runs = [r for r in (("r2plus1d", {"weights": own["r2plus1d"]}, args.clips),
                        ("wav2vec2", {"weights": own["wav2vec2"]}, args.w2v_clips)) if args.only in (None, r[0])]
    trees = [Path(t).resolve() for t in args.trees.split(",") if t] or [None]
    rows: dict[str, list[dict]] = {}
    out = args.out.resolve()
    for rep in range(args.reps):
        for name, ov, clips in runs:
            for tree in trees:  # each tree bracketed by its own two bare runs
                label = name if tree is None else f"{name} @ {tree.name}"
                half = clips // 2
                models = out / "models"
                before = bare(name, ov, order[half:clips], models, device)  # the clips of the marginal half
                t1, _ = pipeline(name, ov, corpus.resolve(), out / f"{name}_a.zarr", models, half, args.shard_size,
                                 tree, device)
                t2, r2 = pipeline(name, ov, corpus.resolve(), out / f"{name}_b.zarr", models, clips, args.shard_size,
                                  tree, device)
                after = bare(name, ov, order[half:clips], models, device)
                tb = (before + after) / 2
                rows.setdefault(label, []).append({
                    "n": half, "bare_before_s": before, "bare_after_s": after, "bare_s": tb, "pipeline_half_s": t1,
                    "pipeline_all_s": t2, "marginal_s": t2 - t1, "ratio_marginal": tb / (t2 - t1),
                    "ratio_end_to_end": 2 * tb / t2, "tasks": r2.get("tasks", 0), "tasks_s": r2.get("tasks_s", 0.0),
                    "tail_s": r2.get("tail_s", float("nan"))})
                print(label, rep, {k: round(v, 2) for k, v in rows[label][-1].items()}, flush=True)
    (args.out / "deep.json").write_text(json.dumps(rows, indent=1))
    print("| extractor | N | rep | bare model, N clips: before / after (s) | pipeline N / 2N clips (s) "
          "| marginal throughput ratio | end-to-end ratio (2N) | tasks (2N) | end-of-run tail (2N, s) |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for n, reps in rows.items():
        for i, r in enumerate(reps):
            print(f"| {n} | {r['n']} | {i + 1} | {r['bare_before_s']:.1f} / {r['bare_after_s']:.1f} | "
                  f"{r['pipeline_half_s']:.1f} / {r['pipeline_all_s']:.1f} | {r['ratio_marginal']:.2f} | "
                  f"{r['ratio_end_to_end']:.2f} | {r['tasks']} | {r['tail_s']:.1f} |")
        print(f"| {n} | {reps[0]['n']} | median | | | {np.median([r['ratio_marginal'] for r in reps]):.2f} | "
              f"{np.median([r['ratio_end_to_end'] for r in reps]):.2f} | | "
              f"{np.median([r['tail_s'] for r in reps]):.1f} |")
        print(f"| {n} | {reps[0]['n']} | {pooled(reps)} |")


def pooled(reps: list[dict]) -> str:
    """The run's one figure: each quantity's fastest repetition (interference on a shared machine only ever
    slows a run down, so the minimum estimates the uncontended time; timeit's rule), then the ratio."""
    bare_s = min(min(r["bare_before_s"], r["bare_after_s"]) for r in reps)
    marginal = min(r["pipeline_all_s"] for r in reps) - min(r["pipeline_half_s"] for r in reps)
    return (f"fastest of {len(reps)} | {bare_s:.1f} | {min(r['pipeline_half_s'] for r in reps):.1f} / "
            f"{min(r['pipeline_all_s'] for r in reps):.1f} | **{bare_s / marginal:.2f}** | "
            f"{2 * bare_s / min(r['pipeline_all_s'] for r in reps):.2f} | | |")


if __name__ == "__main__":
    main()
