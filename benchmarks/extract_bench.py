"""Extraction benchmark on the demo corpus: ratios measured side by side in one run.

    .venv/bin/python benchmarks/extract_bench.py [--out benchmarks/out] [--long-seconds 120]

Prints a Markdown table (also written to <out>/results.md) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from pipeline.datasets.demo import generate
from pipeline.engine.config import DEFAULT_EXTRACTORS, ExtractConfig
from pipeline.engine.run import extract
from pipeline.media.decode import ClipDecoder, ClipSource

QUIET = Console(stderr=True, quiet=True)


def run(corpus: Path, store: Path, extractors: list[str], workers: int, tmp: Path) -> tuple[float, object]:
    cluster = tmp / f"local{workers}.yaml"
    cluster.write_text(f"mode: local\nlocal: {{n_workers: {workers}, threads_per_worker: 1}}\n")
    cfg = ExtractConfig("demo", str(corpus), str(store), {n: {} for n in extractors},
                        cluster_file=str(cluster), progress=False)
    t = time.perf_counter()
    report = extract(cfg, QUIET)
    return time.perf_counter() - t, report


def decode_all(files: list[Path]) -> float:
    t = time.perf_counter()
    for f in files:
        d = ClipDecoder(ClipSource(f.stem, str(f)), True, True, 32)
        for _ in d.windows():
            pass
    return time.perf_counter() - t


def ffmpeg_all(files: list[Path]) -> float | None:
    exe = shutil.which("ffmpeg")
    if not exe:
        return None
    t = time.perf_counter()
    for f in files:  # same work: decode video to RGB and audio to 16 kHz mono float
        subprocess.run([exe, "-v", "error", "-threads", "1", "-i", str(f), "-map", "0:v", "-pix_fmt", "rgb24",
                        "-f", "null", "-", "-map", "0:a", "-ar", "16000", "-ac", "1", "-f", "null", "-"],
                       check=True, timeout=120)
    return time.perf_counter() - t


RSS_CHILD = """
import json, resource, sys
from pipeline.runtime.worker_setup import tune_malloc
tune_malloc()  # as in every Dask worker
from pipeline.shard.align import AlignConfig
from pipeline.media.face import FaceConfig
from pipeline.media.decode import ClipSource
from pipeline.shard.work import ClipWork, ShardTask, TaskConfig
from pipeline.shard.task import process_shard
from stores.feature_store import FeatureStore
from extractors import registry
path, store = sys.argv[1], sys.argv[2]
FeatureStore(store, create=True)
names = ["logmel", "linear_spectrogram", "egemaps", "face_hog"]
desc = {n: registry.create(n).describe() for n in names}
w = ClipWork(ClipSource("long", path), "fp", {n: n for n in names}, names, names)
r = process_shard(ShardTask(0, [w], TaskConfig(store, "rss", tuple(registry.spec(n) for n in names), desc)))
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "frames": r.frames,
                  "ok": r.counts["ok"]}))
"""


def long_clip_rss(tmp: Path, seconds: float) -> dict:
    """Peak RSS of one worker task on a 720p clip of 30 s and of `seconds`: should not grow with the length."""
    import cv2

    from pipeline.media import synth

    base = synth.face_image(720)
    out = {}
    for secs in (30.0, seconds):
        path = tmp / f"long_{int(secs)}s.mp4"
        if not path.exists():
            frames = (cv2.copyMakeBorder(f, 0, 0, 280, 280, cv2.BORDER_CONSTANT)  # 1280 x 720
                      for f in synth.animate_face(base, int(secs * 25), 25, 0, 1, 1, 1, 0))
            synth.write_clip(path, frames, 25, synth.voice(secs, 150, 4, 0.5, 0))
        proc = subprocess.run([sys.executable, "-c", RSS_CHILD, str(path), str(tmp / f"rss_{int(secs)}.zarr")],
                              capture_output=True, text=True, timeout=3600, check=True)
        out[f"{int(secs)}s"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def rss_row(rss: dict, seconds: float) -> tuple[str, str]:
    short, long = rss["30s"], rss[f"{int(seconds)}s"]
    return (f"peak RSS of a worker task, 720p clip {int(seconds)} s / 30 s",
            f"{long['rss_mb'] / short['rss_mb']:.2f}x ({long['rss_mb']:.0f} MB vs {short['rss_mb']:.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    ap.add_argument("--long-seconds", type=float, default=120.0)
    ap.add_argument("--only-scaling", action="store_true", help="only the 2-workers-vs-1 measurement")
    ap.add_argument("--only-rss", action="store_true", help="only the long-clip worker memory measurement")
    args = ap.parse_args()
    tmp = args.out
    if args.only_rss:
        tmp.mkdir(parents=True, exist_ok=True)
        print(rss_row(long_clip_rss(tmp, args.long_seconds), args.long_seconds))
        return
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    corpus = generate(tmp / "corpus")
    files = sorted(corpus.rglob("*.mp4"))
    all_ext = list(DEFAULT_EXTRACTORS)
    rows = []

    pyav, ff = (None, None) if args.only_scaling else (decode_all(files), ffmpeg_all(files))
    if ff:
        rows.append(("decode: PyAV (frames to RGB numpy + 16 kHz audio) / `ffmpeg -f null`, same files, 1 thread",
                     f"{pyav / ff:.2f}x the time ({pyav:.1f} s vs {ff:.1f} s)"))

    t1, r1 = run(corpus, tmp / "w1.zarr", all_ext, 1, tmp)
    t2, r2 = run(corpus, tmp / "w2.zarr", all_ext, 2, tmp)
    rows.append(("end to end, all offline extractors: 2 workers vs 1 (speed-up)",
                 f"{t1 / t2:.2f}x ({t1:.1f} s vs {t2:.1f} s)"))
    if args.only_scaling:
        print("| measure | result |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows))
        return
    work = sum(r1.compute_s.values()) + r1.decode_s
    rows.append(("orchestration overhead, 1 worker: wall time / (decode + extractor compute)",
                 f"{t1 / work:.2f} ({t1:.1f} s vs {work:.1f} s)"))
    t_re, r_re = run(corpus, tmp / "w2.zarr", all_ext, 2, tmp)
    rows.append(("unchanged re-run / first run (2 workers)", f"{100 * t_re / t2:.2f} % ({t_re:.2f} s vs {t2:.1f} s)"))
    assert sum(r_re.calls.values()) == 0

    others = [e for e in all_ext if e != "egemaps"]
    run(corpus, tmp / "add.zarr", others, 2, tmp)
    t_add, _ = run(corpus, tmp / "add.zarr", all_ext, 2, tmp)
    t_alone, _ = run(corpus, tmp / "alone.zarr", ["egemaps"], 2, tmp)
    rows.append(("add `egemaps` to a store holding the 3 others / `egemaps` alone into a new store",
                 f"{t_add / t_alone:.2f}x"))
    rss = long_clip_rss(tmp, args.long_seconds)
    rows.append(rss_row(rss, args.long_seconds))

    table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    details = {"first_run_1w": vars(r1) | {"wall": t1}, "first_run_2w": {"wall": t2, "calls": r2.calls},
               "rss": rss, "clips": len(files)}
    (tmp / "results.md").write_text(table + "\n")
    (tmp / "details.json").write_text(json.dumps(details, indent=1, default=str))
    print(table)


if __name__ == "__main__":
    main()
