"""Cost of the media fingerprint modes per GB of media, side by side in one run (docs/benchmarks.md).

    python benchmarks/fingerprint_bench.py --gb 1 --reps 3

Writes a file of random bytes, then times ``stat``, ``content`` (size + 128 KiB) and ``full`` (every byte,
xxHash3-128) on it, fastest of ``--reps`` each, with the file in the page cache (the second read of a corpus),
and prints seconds per GB and the ratio to ``content``. The first read of a corpus is bounded by the disk instead.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from stores.cache_key import file_fingerprint


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    size = int(a.gb * (1 << 30))
    with tempfile.NamedTemporaryFile(prefix="fp-bench-") as f:
        block = os.urandom(8 << 20)
        for _ in range(size // len(block)):
            f.write(block)
        f.flush()
        times = {}
        for mode in ("stat", "content", "full"):
            best = float("inf")
            for _ in range(a.reps + 1):  # the first repetition also warms the page cache
                t = time.perf_counter()
                file_fingerprint(f.name, mode)
                best = min(best, time.perf_counter() - t)
            times[mode] = best
    gb = size / (1 << 30)
    for mode, s in times.items():
        print(f"{mode:8s} {s / gb * 1000:9.3f} ms per GB   {s / times['content']:8.1f}x content")


if __name__ == "__main__":
    main()
