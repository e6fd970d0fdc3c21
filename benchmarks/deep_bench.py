"""Deep extractors inside the pipeline vs the bare model on pre-decoded batches (CPU here).

    .venv/bin/python benchmarks/deep_bench.py [--clips 24] [--out benchmarks/out]

Weights are randomly initialised at the real sizes (R(2+1)D-18: 31.3 M parameters; wav2vec2-base: 95 M),
registered through `pipeline models add --like` (the speed does not depend on the values). "Bare" =
decode every clip first (PyAV), then run the same preprocessing + model on full batches in this process;
"pipeline" = `pipeline extract` end to end (planning, decoding, batching across clips, writing the store)
on a LocalCluster of 2 single-threaded workers vs the bare loop with torch using both cores.
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
from pipeline.decode import ClipDecoder, ClipSource


def setup_models(root: Path) -> None:
    from torchvision.models.video import r2plus1d_18
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.save(r2plus1d_18(weights=None).state_dict(), root / "r2p1d.pth")
    w2v = root / "w2v"
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(w2v, safe_serialization=True)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(w2v)
    m = root / "models"
    weights.define_custom("BENCH_R2P1D", "R2PLUS1D_18_KINETICS400_V1", m)
    weights.add("BENCH_R2P1D", root / "r2p1d.pth", m)
    weights.define_custom("BENCH_W2V", "WAV2VEC2_BASE", m)
    weights.add("BENCH_W2V", w2v, m)


def bare(name: str, overrides: dict, files: list[Path], models: Path) -> float:
    weights.set_models_dir(str(models))
    ext = registry.create(name, overrides)
    ext.ensure_setup("cpu")
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
    t = time.perf_counter()
    ext.compute(decoded)
    return time.perf_counter() - t


def pipeline(name: str, overrides: dict, corpus: Path, store: Path, models: Path, limit: int) -> float:
    cluster = store.parent / "two.yaml"
    cluster.write_text("mode: local\nlocal: {n_workers: 2, threads_per_worker: 1}\n")
    sets = [x for k, v in overrides.items() for x in ("--set", f"{name}.{k}={v}")]
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "extract", "--dataset", "demo", "--root", str(corpus),
                    "--store", str(store), "--extractors", name, *sets, "--models", str(models), "--limit",
                    str(limit), "--cluster", str(cluster), "--quiet", "--shard-size", "4"], check=True,
                   capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/deep"))
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    corpus = generate(args.out / "corpus")
    setup_models(args.out)
    files = sorted(corpus.rglob("*.mp4"))[: args.clips]
    from pipeline import manifest

    order = manifest.build("demo", corpus, args.clips)["media_path"].tolist()
    files = [Path(p) for p in order]
    rows = {}
    for name, ov in (("r2plus1d", {"weights": "BENCH_R2P1D"}), ("wav2vec2", {"weights": "BENCH_W2V"})):
        half = args.clips // 2
        tb = bare(name, ov, files[half:], args.out / "models")  # the same clips as the marginal half below
        t1 = pipeline(name, ov, corpus, args.out / f"{name}_a.zarr", args.out / "models", half)
        t2 = pipeline(name, ov, corpus, args.out / f"{name}_b.zarr", args.out / "models", args.clips)
        rows[name] = {"bare_s": tb, "pipeline_half_s": t1, "pipeline_all_s": t2, "marginal_s": t2 - t1,
                      "ratio_marginal": tb / (t2 - t1), "ratio_end_to_end": 2 * tb / t2}
    (args.out / "deep.json").write_text(json.dumps(rows, indent=1))
    print("| extractor | bare model, N clips (s) | pipeline N / 2N clips (s) | marginal throughput ratio "
          "| end-to-end ratio (2N) |\n|---|---|---|---|---|")
    for n, r in rows.items():
        print(f"| {n} | {r['bare_s']:.1f} | {r['pipeline_half_s']:.1f} / {r['pipeline_all_s']:.1f} | "
              f"{r['ratio_marginal']:.2f} | {r['ratio_end_to_end']:.2f} |")


if __name__ == "__main__":
    main()
