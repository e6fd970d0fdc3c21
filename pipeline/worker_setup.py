"""What every Dask worker process does before running tasks: stay quiet on Ctrl-C, and use its own cores only.

Loaded as a worker *preload* (``dask worker --preload pipeline.worker_setup``; the embedded LocalCluster
and dask-jobqueue workers get it automatically). Two reasons:

* A terminal's Ctrl-C reaches the whole foreground process group, workers included. The driver owns the
  shutdown (it stops submitting and closes the cluster); workers that also caught SIGINT would print
  tracebacks over its message. So workers ignore SIGINT.
* N workers x 1 thread only scale if each worker's native pools (OpenCV, OpenMP/BLAS, torch intra-op,
  FFmpeg decoding) follow ``threads_per_worker``; by default each of them grabs every core.
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


def dask_setup(worker) -> None:  # noqa: ANN001 - distributed.Worker; the preload hook's fixed name
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_threads(max(1, int(getattr(worker.state, "nthreads", 0) or getattr(worker, "nthreads", 1) or 1)))
