"""What every Dask worker process does before running tasks: stay quiet on Ctrl-C, and use its own cores only.

Loaded as a worker *preload* (``dask worker --preload pipeline.runtime.worker_setup``; the embedded LocalCluster
and dask-jobqueue workers get it automatically). Four reasons:

* A terminal's Ctrl-C reaches the whole foreground process group, workers included. The driver owns the
  shutdown (it stops submitting and closes the cluster); workers that also caught SIGINT would print
  tracebacks over its message. So workers ignore SIGINT.
* N workers x 1 thread only scale if each worker's native pools (OpenCV, OpenMP/BLAS, torch intra-op,
  FFmpeg decoding) follow ``threads_per_worker``; by default each of them grabs every core.
* Dask's nanny starts workers with an allocator setting that halves the speed of frame-sized allocations
  (``tune_malloc``; how much freed memory a worker keeps instead depends on its memory per thread).
* Dask's statistical profiler walks the task thread's stack every 10 ms, holding the GIL; under a model
  called through transformers/torchvision the stack is deep, and it cost ~4 % of a worker's CPU (py-spy:
  162 samples against 3,732 of wav2vec2 forward). It is off unless ``AFFECT_DASK_PROFILE=1`` (the
  dashboard's Profile page needs it).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING

from extractors.threads import limit_threads

if TYPE_CHECKING:
    from distributed import Worker

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
LEAN = (8 << 20, 8 << 20)  # (mmap threshold, trim threshold) for workers with little memory per thread
ROOMY = (32 << 20, 64 << 20)  # glibc's own dynamic maximum (DEFAULT_MMAP_THRESHOLD_MAX) and twice that
ROOMY_PER_THREAD = 4 << 30  # worker memory per thread from which ROOMY is used


def malloc_thresholds(memory_limit: int | None, nthreads: int) -> tuple[int, int]:
    """The allocator setting for a worker: ROOMY where memory per thread allows (no memory limit: the
    machine's memory), else LEAN. ROOMY is what a plain process converges to and the fastest measured
    (face stage 243 vs 307 s on a 10-minute 720p clip; wav2vec2 17.5 vs 19.8 s on 32 clips) but keeps
    200-400 MB more freed heap per worker, enough to pause 2 GB SLURM workers at Dask's 80 % mark."""
    if not memory_limit:
        import psutil

        memory_limit = psutil.virtual_memory().total
    return ROOMY if memory_limit / max(1, nthreads) >= ROOMY_PER_THREAD else LEAN


def tune_malloc(mmap_threshold: int = LEAN[0], trim_threshold: int = LEAN[1]) -> bool:
    """Undo the allocator setting Dask's nanny gives every worker (``MALLOC_TRIM_THRESHOLD_=65536``).

    Setting any trim threshold switches off glibc's dynamic mmap threshold, so every allocation over
    128 KiB (each decoded frame, each float tensor) becomes a fresh mmap that is page-faulted in and
    unmapped on free: measured, the face stage ran at half speed in a worker (5.6 s vs 3.2 s for the same
    250 720p frames, one thread). Allocations up to ``mmap_threshold`` come from the heap again and up to
    ``trim_threshold`` of freed heap is kept; ``malloc_thresholds`` picks them from the worker's memory
    (LEAN, 8/8 MiB: 4.2-5.0 s for those frames for ~110 MB more RSS; ROOMY, 32/64 MiB: 3.7 s for 200-400
    MB more, and model tensors over 8 MiB are reused too). Linux/glibc only; elsewhere nothing changes."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and \
            bool(libc.mallopt(M_TRIM_THRESHOLD, trim_threshold))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def stop_profiler(worker: Worker) -> list[str]:
    """Remove Dask's statistical profiler from a worker that has not started its periodic callbacks yet
    (preloads run before); returns the callbacks removed."""
    if os.environ.get("AFFECT_DASK_PROFILE", "") not in ("", "0"):
        return []
    callbacks = getattr(worker, "periodic_callbacks", {})
    removed = [name for name in ("profile", "profile-cycle") if name in callbacks]
    for name in removed:
        callbacks.pop(name).stop()
    return removed


def dask_setup(worker: Worker) -> None:  # the preload hook's fixed name
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop_profiler(worker)
    threads = max(1, int(getattr(worker.state, "nthreads", 0) or getattr(worker, "nthreads", 1) or 1))
    limit_threads(threads)
    manager = getattr(worker, "memory_manager", None)
    tune_malloc(*malloc_thresholds(getattr(manager, "memory_limit", None), threads))
