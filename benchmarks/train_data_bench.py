"""Training-data throughput: samples/s reading batches from a store vs the same loop over in-memory arrays.

    .venv/bin/python benchmarks/train_data_bench.py [--clips 3000] [--out benchmarks/out]

The store is generated (TRILL-like 512-d audio + 17 AUs at 5 Hz, 20-80 frames per clip, written by the
real store writer in parts of 64 clips). Both loops build identical [B, 50, D] batches with masks; the
store loop starts cold (a new StoreData, no part read yet) and is measured over one epoch and a second.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from extractors.base import Features
from stores import index
from stores.feature_store import FeatureStore
from train.data import StoreData


def make_store(path: Path, clips: int, seed: int = 0, part_clips: int = 64,
               dims: tuple[tuple[str, int], ...] = (("trill", 512), ("openface_au", 17))) -> None:
    """A store of ``clips`` clips, 20-80 frames each, written by the real part writer ``part_clips`` at a time."""
    rng = np.random.default_rng(seed)
    store = FeatureStore(str(path), create=True)
    lengths = rng.integers(20, 80, clips)
    for ext, dim in dims:
        rows = []
        for p0 in range(0, clips, part_clips):
            items = []
            for c in range(p0, min(clips, p0 + part_clips)):
                n = int(lengths[c])
                items.append((f"c{c:07d}", Features(rng.normal(size=(n, dim)).astype(np.float32),
                                                    np.arange(n) / 5, np.arange(1, n + 1) / 5)))
            part, spans = store.write_part("aligned", "5hz", ext, f"{ext}_{p0}", items, "float32", {})
            rows += [{"clip_id": cid, "stage": "aligned", "view": "5hz", "extractor": ext, "status": "ok",
                      "part": part, "offset": o, "length": ln, "dim": dim} for (cid, _), (o, ln) in zip(items, spans)]
        index.commit(store.fs, rows, f"bench-{ext}")
    store.save_manifest(pd.DataFrame({"clip_id": [f"c{c:07d}" for c in range(clips)], "speaker": "s",
                                      "session": "s", "media_path": "-", "label": [f"k{c % 4}" for c in range(clips)]}))


def in_memory(data: StoreData) -> tuple[dict, dict, torch.Tensor]:
    """The same windows, pre-built as dense arrays (the fastest possible loop)."""
    b = data.batch(np.arange(len(data)))
    return b.x, b.mask, b.y


def epoch_store(data: StoreData, order: np.ndarray, bs: int) -> int:
    n = 0
    for i in range(0, len(order), bs):
        b = data.batch(order[i : i + bs])
        n += len(b.index)
    return n


def epoch_memory(x: dict, m: dict, y: torch.Tensor, order: np.ndarray, bs: int) -> int:
    n = 0
    for i in range(0, len(order), bs):
        idx = torch.from_numpy(order[i : i + bs])
        batch = ({k: v[idx] for k, v in x.items()}, {k: v[idx] for k, v in m.items()}, y[idx])
        n += len(batch[2])
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = ap.parse_args()
    path = args.out / "train_data.zarr"
    shutil.rmtree(path, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    make_store(path, args.clips)
    mods = {"audio": "trill", "visual": "openface_au"}
    x, m, y = in_memory(StoreData(str(path), mods, label="label"))
    data = StoreData(str(path), mods, label="label")  # cold: no part read yet
    rows = []
    for name, order_fn in (("chunk-aware shuffle (trainer default)", data.epoch_order),
                           ("uniform shuffle", lambda s, rng: s[rng.permutation(len(s))])):
        data = StoreData(str(path), mods, label="label")  # cold: no part read yet
        for epoch in (1, 2):
            order = order_fn(np.arange(len(data)), np.random.default_rng(epoch))
            t = time.perf_counter()
            n = epoch_store(data, order, 64)
            store_rate = n / (time.perf_counter() - t)
            t = time.perf_counter()
            n = epoch_memory(x, m, y, order, 64)
            mem_rate = n / (time.perf_counter() - t)
            rows.append((name, epoch, store_rate, mem_rate))
    # the same comparison inside a training loop: MulT (small) steps on each batch, one cold epoch
    from train.build import SMALL_MULT
    from train.models.mult import MulT

    def steps(batches) -> float:
        torch.manual_seed(0)
        model = MulT(512, 17, SMALL_MULT, n_out=4)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        t, n = time.perf_counter(), 0
        for xb, mb, yb in batches:
            loss = torch.nn.functional.cross_entropy(model.classify(model(xb["audio"], xb["visual"]),
                                                                    mb["audio"] | mb["visual"]), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += len(yb)
        return n / (time.perf_counter() - t)

    cold = StoreData(str(path), mods, label="label")
    order = cold.epoch_order(np.arange(len(cold)), np.random.default_rng(3))

    def from_store():
        for i in range(0, len(order), 64):
            b = cold.batch(order[i : i + 64])
            yield b.x, b.mask, b.y

    def from_memory():
        for i in range(0, len(order), 64):
            idx = torch.from_numpy(order[i : i + 64])
            yield {k: v[idx] for k, v in x.items()}, {k: v[idx] for k, v in m.items()}, y[idx]

    for epoch in (1, 2):
        train_store, train_mem = steps(from_store()), steps(from_memory())
        rows.append(("training loop: batches + MulT-small steps", epoch, train_store, train_mem))
    print("| order | epoch | from store (samples/s) | in memory (samples/s) | ratio |\n|---|---|---|---|---|")
    for name, e, s, mm in rows:
        print(f"| {name} | {e}{' (cold)' if e == 1 else ''} | {s:,.0f} | {mm:,.0f} | {s / mm:.2f} |")


if __name__ == "__main__":
    main()
