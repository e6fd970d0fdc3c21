"""What every Dask worker process does before running tasks: stay quiet on Ctrl-C, and use its own cores only.

Loaded as a worker *preload* (``dask worker --preload pipeline.worker_setup``; the embedded LocalCluster
and dask-jobqueue workers get it automatically). Three reasons:

* A terminal's Ctrl-C reaches the whole foreground process group, workers included. The driver owns the
  shutdown (it stops submitting and closes the cluster); workers that also caught SIGINT would print
  tracebacks over its message. So workers ignore SIGINT.
* N workers x 1 thread only scale if each worker's native pools (OpenCV, OpenMP/BLAS, torch intra-op,
  FFmpeg decoding) follow ``threads_per_worker``; by default each of them grabs every core.
* Dask's nanny starts workers with an allocator setting that halves the speed of frame-sized allocations
  (``tune_malloc``).
"""

from __future__ import annotations

import os
import signal
import threading

_THREADS: int | None = None


def worker_threads() -> int | None:
    """Native threads this worker may use (None outside a configured worker: libraries decide)."""
    if _THREADS is not None:
        return _THREADS
    env = os.environ.get("AFFECT_WORKER_THREADS")
    return int(env) if env and env.isdigit() and int(env) > 0 else None


def limit_threads(n: int) -> None:
    """Cap the native thread pools of this process at ``n``."""
    global _THREADS
    _THREADS = n
    os.environ["AFFECT_WORKER_THREADS"] = str(n)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover - opencv is a dependency
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - comes with scikit-learn
        pass
    import sys

    if "torch" in sys.modules:  # set on import otherwise (extractors.base reads worker_threads())
        sys.modules["torch"].set_num_threads(n)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_malloc() -> bool:
    """Undo the allocator setting Dask's nanny gives every worker (``MALLOC_TRIM_THRESHOLD_=65536``).

    Setting any trim threshold switches off glibc's dynamic mmap threshold, so every allocation over
    128 KiB (each decoded frame, each float tensor) becomes a fresh mmap that is page-faulted in and
    unmapped on free: measured, the face stage ran at half speed in a worker (5.6 s vs 3.2 s for the same
    250 720p frames, one thread). Allocations up to 8 MiB (a 1080p frame is 6.2 MiB) come from the heap
    again and up to 8 MiB of freed heap is kept: 4.2-5.0 s for those frames, for ~110 MB more worker RSS
    (32/64 MiB was faster, 3.7 s, but cost 200-400 MB, enough to pause 2 GB SLURM workers at Dask's 80 %
    memory mark). Linux/glibc only; elsewhere nothing changes."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 8 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 8 << 20))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def dask_setup(worker) -> None:  # noqa: ANN001 - distributed.Worker; the preload hook's fixed name
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_threads(max(1, int(getattr(worker.state, "nthreads", 0) or getattr(worker, "nthreads", 1) or 1)))
    tune_malloc()
