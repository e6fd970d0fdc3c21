"""How many native threads this process's libraries may use: the worker's share of the cores.

Lives beside the extractors because they are what must follow it (torch's intra-op pool, OpenCV, BLAS,
PyAV's decoder threads); the Dask worker preload (pipeline/runtime/worker_setup.py) sets it once per worker.
"""

from __future__ import annotations

import os

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
