"""Scale benchmark: what a corpus of N one-second clips costs the driver, the filesystem and a re-run.

    .venv/bin/python benchmarks/scale_bench.py --sizes 2000 20000 [--plan-stubs 100000] [--replan-stubs 20000 100000]
        [--out benchmarks/out]

For each size: N one-second 16 kHz WAV clips (generated, 100 per folder) go through
`pipeline extract --dataset folder --extractors logmel` (the default local cluster), as a user runs it.
Measured: the driver process's peak RSS (polled, not its workers), files+folders in the store per clip,
the unchanged re-run, `pipeline status` and `pipeline verify`. ``--plan-stubs`` times `extract --dry-run`
over that many tiny stub files (plan time only; nothing is decoded) for both fingerprints.
``--replan-stubs N ...`` measures an unchanged re-run's plan (driver RSS, plan time) at each N: stub clips and a
store index saying every result is stored (1.1 M clips cannot be extracted on this machine in a session).
``--trees DIR ...`` runs those stub plans with other checkouts too (e.g. ``git worktree add /tmp/old HEAD~1``),
in the same session, for a before/after.
Prints a Markdown table (also <out>/scale.md) for docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]


def generate(root: Path, n: int, seconds: float = 1.0, rate: int = 16000) -> None:
    """N distinct WAV clips: a tone of a different pitch each, plus noise."""
    rng = np.random.default_rng(n)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(n):
        d = root / f"spk{i // 100:05d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        x = 0.3 * np.sin(2 * np.pi * (100 + i % 900) * t) + 0.05 * rng.standard_normal(len(t))
        with wave.open(str(d / f"utt{i:07d}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes((x * 32767).astype("<i2").tobytes())


TREE = ROOT  # the checkout whose `pipeline` runs (``--trees``: another one, side by side)


def timed(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, the process's own peak RSS in MB, stdout), polling the process (not its children)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=TREE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.05)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.wait() not in (0, 1):
        raise RuntimeError(f"pipeline {' '.join(args)} failed with exit {proc.returncode}")
    return time.perf_counter() - t, peak / 2**20, out


def count_entries(path: Path) -> int:
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(path))


def one_size(n: int, tmp: Path) -> dict:
    corpus, store = tmp / f"corpus{n}", tmp / f"s{n}.zarr"
    if not corpus.exists():
        generate(corpus, n)
    shutil.rmtree(store, ignore_errors=True)
    ext = ["extract", "--dataset", "folder", "--root", str(corpus), "--store", str(store), "--extractors", "logmel",
           "--quiet", "--json"]
    first, rss, out = timed(ext)
    report = json.loads(out)
    again, rss_again, out2 = timed(ext)
    rerun = json.loads(out2)
    assert rerun["planned"] == 0, "the unchanged re-run planned work"
    status_s, _, _ = timed(["status", str(store)])
    verify_s, _, _ = timed(["verify", str(store), "--quiet"])
    entries = count_entries(store)
    return {"clips": n, "first_s": first, "rerun_s": again, "driver_rss_mb": rss, "rerun_rss_mb": rss_again,
            "entries": entries, "per_clip": entries / n, "status_s": status_s, "verify_s": verify_s,
            "plan_s": report["plan_s"], "rerun_plan_s": rerun["plan_s"],
            "tasks": report["tasks"], "merged_parts": report["merged_parts"], "max_in_flight": report["max_in_flight"]}


def stubs(n: int, tmp: Path) -> Path:
    root = tmp / f"stubs{n}"
    if not root.exists():
        for i in range(n):
            d = root / f"spk{i // 1000:05d}"
            if i % 1000 == 0:
                d.mkdir(parents=True, exist_ok=True)
            (d / f"utt{i:07d}.wav").write_bytes(i.to_bytes(8, "little"))  # distinct content, nothing decodable
    return root


def plan_stubs(n: int, tmp: Path) -> dict:
    root = stubs(n, tmp)
    out = {"stubs": n}
    for fp in ("content", "stat"):
        _, rss, o = timed(["extract", "--dataset", "folder", "--root", str(root), "--store", str(tmp / "stub.zarr"),
                           "--extractors", "logmel", "--dry-run", "--fingerprint", fp, "--quiet", "--json"])
        out[f"plan_{fp}_s"], out[f"plan_{fp}_rss_mb"] = json.loads(o)["plan_s"], rss
    return out


def finished_store(root: Path, store: Path, per_part: int = 2048) -> int:
    """A store whose index says every stub clip has its logmel result, native and aligned, in consolidated parts
    of ``per_part`` clips, as a finished run leaves it (the arrays are not written: a dry run reads none).
    The keys come from the same functions the planner uses, so a correct plan finds everything cached."""
    import pyarrow as pa

    from extractors import registry
    from pipeline.datasets import manifest
    from pipeline.engine import plan
    from pipeline.engine.config import ExtractConfig
    from stores import cache_key, index
    from stores.feature_store import FeatureStore

    shutil.rmtree(store, ignore_errors=True)
    cfg = ExtractConfig("folder", str(root), str(store), {"logmel": {}})
    clips, _ = manifest.build_with_refusals("folder", root, keep_refused=False)
    ext_fp = registry.create("logmel", {}).fingerprint()
    cols: dict[str, list] = {c: [] for c in ("clip_id", "stage", "view", "extractor", "key", "status", "part",
                                             "offset", "length", "dim", "fingerprint", "duration", "committed_at")}
    now = time.time_ns()
    for i, src in enumerate(plan.clip_sources(clips)):
        fp = plan._fingerprint(src, cfg.fingerprint)
        native = cache_key.native_key(fp, src.start, src.end, ext_fp, None)
        for stage, view, key in (("native", "", native),
                                 ("aligned", cfg.align.view, cache_key.aligned_key(native, cfg.align.key_fields()))):
            for c, v in zip(cols, (src.clip_id, stage, view, "logmel", key, "ok",
                                   f"{stage}/{view or '-'}/logmel/merged-{i // per_part:05d}", (i % per_part) * 100,
                                   100, 64, fp, 1.0, now)):
                cols[c].append(v)
    fs = FeatureStore(str(store), create=True).fs
    index.commit_table(fs, pa.table(cols), f"compacted-{now}")
    return len(clips)


def replan_stubs(n: int, tmp: Path) -> dict:
    """An unchanged re-run's plan over ``n`` stub clips whose results are all stored: a dry run against
    ``finished_store`` (the driver's re-run memory at corpus sizes too slow to extract here)."""
    root, store = stubs(n, tmp), tmp / f"replan{n}.zarr"
    finished_store(root, store)
    wall, rss, o = timed(["extract", "--dataset", "folder", "--root", str(root), "--store", str(store),
                          "--extractors", "logmel", "--dry-run", "--quiet", "--json"])
    report = json.loads(o)
    assert report["planned"] == 0, f"the re-plan of a finished store planned {report['planned']} clips"
    shutil.rmtree(store, ignore_errors=True)
    return {"stubs": n, "replan_s": report["plan_s"], "replan_wall_s": wall, "replan_rss_mb": rss}


def order_costs(sizes: tuple[int, ...] = (20_000, 100_000, 400_000, 1_100_000)) -> dict[int, float]:
    """Seconds for one epoch's chunk-aware order (train.data.chunk_aware_order), parts of 8 clips (the worst case)."""
    from train.data import chunk_aware_order

    out = {}
    for n in sizes:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            chunk_aware_order(np.arange(n), np.arange(n) // 8, np.random.default_rng(0))
            best = min(best, time.perf_counter() - t)
        out[n] = best
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--plan-stubs", type=int, default=0)
    ap.add_argument("--replan-stubs", type=int, nargs="*", default=[])
    ap.add_argument("--trees", type=Path, nargs="*", default=[],
                    help="other checkouts whose stub plans (--plan-stubs, --replan-stubs) run beside this one's")
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/affect-scale"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    a = ap.parse_args()
    a.tmp.mkdir(parents=True, exist_ok=True)
    rows = [one_size(n, a.tmp) for n in a.sizes if n]
    lines = ["| clips | first run s (plan) | unchanged re-run s (% of first; plan) | driver peak RSS MB "
             "| files+folders (per clip) | status s | verify s | tasks | parts merged |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pct = 100 * r["rerun_s"] / r["first_s"]
        lines.append(f"| {r['clips']:,} | {r['first_s']:.1f} ({r['plan_s']:.1f}) | {r['rerun_s']:.1f} ({pct:.1f} %; "
                     f"{r['rerun_plan_s']:.1f})"
                     f" | {r['driver_rss_mb']:.0f} | {r['entries']:,} ({r['per_clip']:.3f}) | {r['status_s']:.1f} "
                     f"| {r['verify_s']:.1f} | {r['tasks']} | {r['merged_parts']} |")
    if len(rows) > 1:
        lines.append(f"\ndriver peak RSS, {rows[-1]['clips']:,} vs {rows[0]['clips']:,} clips: "
                     f"{rows[-1]['driver_rss_mb'] / rows[0]['driver_rss_mb']:.2f}x")
    global TREE
    for tree in [ROOT, *a.trees]:
        TREE, label = tree.resolve(), "" if tree == ROOT else f" [{tree}]"
        if a.plan_stubs:
            p = plan_stubs(a.plan_stubs, a.tmp)
            lines.append(f"\nplan (manifest + fingerprints + cache lookups) over {p['stubs']:,} stub files, a dry run"
                         f"{label}: content fingerprint {p['plan_content_s']:.1f} s "
                         f"({p['plan_content_rss_mb']:.0f} MB), stat fingerprint {p['plan_stat_s']:.1f} s "
                         f"({p['plan_stat_rss_mb']:.0f} MB)")
        for n in a.replan_stubs:
            r = replan_stubs(n, a.tmp)
            lines.append(f"\nunchanged re-run's plan (dry run) over {n:,} stub clips, every result stored{label}: "
                         f"plan {r['replan_s']:.1f} s, driver peak RSS {r['replan_rss_mb']:.0f} MB")
    TREE = ROOT
    oc = order_costs()
    lines.append("\ntrainer epoch order (chunk-aware shuffle, parts of 8 clips): " +
                 ", ".join(f"{v:.3f} s at {k:,}" for k, v in oc.items()))
    text = "\n".join(lines)
    print(text)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "scale.md").write_text(text + "\n")
    (a.out / "scale.json").write_text(json.dumps({"sizes": rows}, indent=1))


if __name__ == "__main__":
    main()
